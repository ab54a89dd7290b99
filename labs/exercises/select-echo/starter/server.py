# select() echo server (starter): one thread, IO multiplexing over non-blocking sockets.
#
# The model: the server waits in ONE place, select.select(readers, writers, []), which watches
# every socket at once and returns the ready ones: readable (data, a new client, or the peer
# closed) or writable (room to send a reply the kernel refused earlier). The recv/send that
# follow do not wait. Keep a per-connection output buffer; a connection with pending output goes
# into `writers`, the others into `readers`.
#
# strace -f -c should show, in steady state: select (or pselect6), recvfrom, sendto.
# No poll, no epoll, no second thread.
# Limits: select watches only fds < FD_SETSIZE = 1024: select.select raises "ValueError:
# filedescriptor out of range in select()" for a larger one. Refuse (close) such connections.
#
# As it stands this file runs but echoes nothing: it accepts each client and closes it at once.
import os
import select
import socket

PORT = int(os.environ.get("PORT", "7000"))
BACKLOG = 511
FD_SETSIZE = 1024


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", PORT))  # all interfaces: the grader's clients are elsewhere
    listener.listen(BACKLOG)
    listener.setblocking(False)
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    connections = {}  # socket -> bytearray of reply bytes the kernel has not taken yet
    while True:
        # TODO: readers = the listener + connections with nothing pending;
        #       writers = connections with pending output.
        readers, writers = [listener], []
        readable, writable, _ = select.select(readers, writers, [])  # the only place to wait
        for sock in readable + writable:
            if sock is listener:
                conn, _ = listener.accept()
                # TODO: if conn.fileno() >= FD_SETSIZE, close it at once (print one line the
                #       first time) and keep serving the others. Otherwise make it
                #       non-blocking and add it to `connections` instead of closing it.
                conn.close()
            else:
                # TODO: writable -> send() the pending bytes, drop what was sent.
                #       readable -> recv(): b"" means the peer closed; data -> queue
                #       data.upper() and try to send it. BlockingIOError: select will tell you
                #       when to retry. ConnectionResetError, BrokenPipeError or b"": remove the
                #       connection and close it.
                pass


if __name__ == "__main__":
    main()
