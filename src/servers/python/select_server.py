"""IO multiplexing with select(2) (python-select; twin: select).

One thread waits in ONE place, select.select(), handed every socket at once: it returns when some
are ready (the listener or a connection readable: data, a new client, or the peer closed; a
connection writable: room for a reply the kernel refused earlier). Phase 1 (waiting for data)
happens inside select, for every connection at once; phase 2 (the copy) is the recv that
follows, which no longer waits because the data is there. Every call hands the kernel the whole
set again (CPython builds the fd_sets from our lists on each call) and the kernel scans all of
it: the cost grows with the number of WATCHED sockets, idle or not.

glibc's fd_set has FD_SETSIZE = 1024 bits: select cannot watch an fd >= 1024 (CPython raises
"ValueError: filedescriptor out of range in select()"). A connection that lands on such an fd
is closed at once and reported ("refused"); the others keep being served.

strace -f -c, steady state: select (glibc makes it pselect6 on some systems), then recvfrom and
sendto on the ready sockets. No poll, no epoll, no second thread.
Limits: fds < 1024; cost linear in watched fds; with one connection, two calls per request
(select + recvfrom) where blocking IO makes one.
"""
import select

from iolab_listen import FD_SETSIZE, accept, echo_step, listen, report


def take(listener, connections):
    """The listener is readable: accept the connection, unless select could never watch its fd."""
    conn = accept(listener)  # None: the client left, or no fd is free (reported)
    if conn is None:
        return
    fd = conn.fileno()
    if fd >= FD_SETSIZE:
        message = f"select: refused connection on fd {fd}: an fd_set holds fds < FD_SETSIZE={FD_SETSIZE}"
        report({"event": "refused", "fd": fd, "limit": "FD_SETSIZE", "message": message})
        conn.close()
        return
    conn.setblocking(False)
    connections[conn] = bytearray()


def main():
    listener = listen("python-select")
    listener.setblocking(False)
    connections = {}  # socket -> bytearray: reply bytes not sent yet
    while True:
        # Read from a connection with nothing pending, write to one with a reply left (a client
        # whose replies the kernel is not taking is not read from).
        readers = [listener] + [conn for conn, out in connections.items() if not out]
        writers = [conn for conn, out in connections.items() if out]
        readable, writable, _ = select.select(readers, writers, [])  # the only place we wait
        for sock in readable + writable:
            if sock is listener:
                take(listener, connections)
            elif not echo_step(sock, connections[sock]):
                del connections[sock]
                sock.close()


if __name__ == "__main__":
    main()
