"""IO multiplexing with poll(2) (python-poll; twin: poll).

Like select, but the sockets to watch are an array of struct pollfd (an fd and the events asked
for), kept in a select.poll object: register() adds a socket, modify() changes what it waits for,
unregister() removes it. Phase 1 (waiting for data) happens inside poll, for every connection at
once; phase 2 (the copy) is the recv that follows, which no longer waits. An entry names its fd
as a number, not as a bit of a fixed-size bitmap: no FD_SETSIZE, any fd below RLIMIT_NOFILE can
be watched. What did not change from select: every call hands the kernel the whole array and the
kernel scans all of it, so the cost grows with the number of WATCHED sockets, idle or not.

strace -f -c, steady state: poll, then recvfrom and sendto on the ready sockets. No select, no
epoll, no second thread.
Limits: cost linear in watched fds; with one connection, two calls per request.
"""
import select

from iolab_listen import accept, echo_step, listen


def main():
    listener = listen("python-poll")
    listener.setblocking(False)
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    connections = {}  # fd -> (socket, bytearray: reply bytes not sent yet)
    while True:
        for fd, events in poller.poll():  # the only place we wait
            if fd == listener.fileno():
                conn = accept(listener)  # None: the client left, or no fd is free (reported)
                if conn is not None:
                    conn.setblocking(False)
                    connections[conn.fileno()] = (conn, bytearray())
                    poller.register(conn, select.POLLIN)
                continue
            # POLLHUP and POLLERR come unasked: the recv or send in echo_step() tells which.
            conn, out = connections[fd]
            was_writing = bool(out)
            if not echo_step(conn, out):
                poller.unregister(fd)
                del connections[fd]
                conn.close()
            elif bool(out) != was_writing:
                # A reply is left: wait for room to send it (and read nothing more meanwhile);
                # or it went out: wait for data again.
                poller.modify(fd, select.POLLOUT if out else select.POLLIN)


if __name__ == "__main__":
    main()
