# select() echo server: one thread, IO multiplexing over non-blocking sockets.
#
# The model: the server waits in ONE place, select(), which watches every socket at once and
# returns when some are ready: the listener or a connection readable (data, a new client, or
# the peer closed), a connection writable (room to send a reply the kernel refused earlier).
# The recv/send that follow do not wait, because the kernel said they would not.
# Every call hands the kernel the whole list again and the kernel scans all of it: the cost
# grows with the number of watched sockets, idle or not.
#
# strace -f -c shows, in steady state: select (or pselect6), then recvfrom and sendto on the
# ready sockets. No poll, no epoll, no second thread.
# Limits: select's fd_set holds FD_SETSIZE = 1024 bits, so it cannot watch an fd >= 1024
# (Python raises "ValueError: filedescriptor out of range in select()"). A connection that lands
# on such an fd is closed at once; the others keep being served.
import errno
import os
import select
import socket

PORT = int(os.environ.get("PORT", "7000"))
BACKLOG = 511
CHUNK = 65536
FD_SETSIZE = 1024
# A peer that goes away ends its own connection, never the server.
PEER_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)
refused_once = False  # the fd >= FD_SETSIZE refusal is printed once


def step(conn, pending):
    """A ready connection: send what is pending, else read and echo. False: the peer is gone."""
    try:
        if not pending:  # only read more once the previous reply is out
            data = conn.recv(CHUNK)  # select said readable: returns at once
            if not data:
                return False
            pending += data.upper()  # bytes.upper() changes only ASCII a-z
        sent = conn.send(pending)  # may take only part of it
        del pending[:sent]
    except BlockingIOError:
        pass  # no room to send after all: select will say when there is
    except PEER_GONE:
        return False
    return True


def accept_one(listener, connections):
    """A connection is waiting. Returns False when no fd is free (stop watching the listener)."""
    global refused_once
    try:
        conn, _ = listener.accept()  # select said readable: returns at once
    except (BlockingIOError, ConnectionAbortedError):
        return True  # the client left before we took it
    except OSError as error:
        if error.errno in (errno.EMFILE, errno.ENFILE):
            return False  # else select would report the listener ready again at once, forever
        raise
    if conn.fileno() >= FD_SETSIZE:  # select could never watch it: refuse it, serve the others
        if not refused_once:
            print(f"refusing connections: fd {conn.fileno()} is past FD_SETSIZE ({FD_SETSIZE})", flush=True)
            refused_once = True
        conn.close()
        return True
    conn.setblocking(False)
    connections[conn] = bytearray()
    return True


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", PORT))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    connections = {}  # socket -> bytearray of reply bytes not sent yet
    accepting = True
    while True:
        # Wait to read from a connection with nothing pending, to write to one with a reply left.
        readers = [conn for conn, pending in connections.items() if not pending]
        writers = [conn for conn, pending in connections.items() if pending]
        if accepting:
            readers.append(listener)
        readable, writable, _ = select.select(readers, writers, [])  # the only place we wait
        for conn in readable + writable:
            if conn is listener:
                accepting = accept_one(listener, connections)
            elif not step(conn, connections[conn]):
                del connections[conn]
                conn.close()
                accepting = True  # an fd is free again


if __name__ == "__main__":
    main()
