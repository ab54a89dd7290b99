# Non-blocking echo server with busy polling (starter).
#
# The model: no call ever waits. On a non-blocking socket accept() and recv() return at once,
# with a connection or data if there is one, otherwise they raise BlockingIOError (EAGAIN). One
# loop asks the listener and then every connection, again and again, with no sleep and no
# select/poll/epoll. send() may take only part of a reply, or raise BlockingIOError: keep what
# is left per connection and retry it on the next sweep.
#
# strace -f -c should show, in steady state: accept4 and recvfrom in huge numbers, nearly all
# failing with EAGAIN (the "EAGAIN storm"), sendto when there is something to echo.
# Limits: one core at ~100% even when every client is idle; latency grows with the sweep.
#
# As it stands this file runs but echoes nothing: it accepts each client and closes it at once.
import os
import socket

PORT = int(os.environ.get("PORT", "7000"))
BACKLOG = 511


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", PORT))  # all interfaces: the grader's clients are elsewhere
    listener.listen(BACKLOG)
    # TODO: make the listener non-blocking: listener.setblocking(False)
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    connections = {}  # socket -> bytearray of reply bytes the kernel has not taken yet
    while True:  # the busy loop: no sleep, no select
        # TODO: accept() on the non-blocking listener; BlockingIOError means nobody is waiting.
        conn, _ = listener.accept()  # blocks for now (the listener is still blocking)
        # TODO: instead of closing it, make conn non-blocking and add it to `connections`.
        conn.close()
        for conn, pending in list(connections.items()):
            # TODO: if `pending` is not empty, send() it and drop what was sent; else recv():
            #       b"" means the peer closed; data -> append data.upper() to pending and send.
            #       BlockingIOError: try again next sweep. ConnectionResetError, BrokenPipeError
            #       or a b"" from recv: remove the connection from `connections` and close it.
            pass


if __name__ == "__main__":
    main()
