# Non-blocking echo server with busy polling: O_NONBLOCK everywhere and a loop that keeps asking.
#
# The model: no call ever waits. accept() and recv() on a non-blocking socket return at once:
# with data or a connection if there is one, otherwise they fail with EAGAIN (Python raises
# BlockingIOError). One loop asks the listener and then every connection, round and round, with
# no readiness API (no select, poll or epoll) and no sleep. Replies the kernel cannot take yet
# (send() may be partial or raise BlockingIOError) wait in a per-connection buffer.
#
# strace -f -c shows, in steady state: accept4 and recvfrom in huge numbers, nearly all of them
# failing with EAGAIN (the "EAGAIN storm"), sendto when there is something to echo. Nothing else.
# Limits: one core at ~100% even when every client is idle; a reply waits for a full sweep over
# all connections, so latency grows with their number.
import os
import socket

PORT = int(os.environ.get("PORT", "7000"))
BACKLOG = 511
CHUNK = 65536
# A peer that goes away ends its own connection, never the server.
PEER_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


def step(conn, pending):
    """One try on one connection. `pending` holds reply bytes the kernel has not taken yet.
    Returns False when the connection is over (the peer closed or reset)."""
    try:
        # Only read more once the previous reply is out: otherwise a client that sends but
        # does not read would make `pending` grow without bound.
        if not pending:
            data = conn.recv(CHUNK)  # never waits: data, b"" (peer closed) or BlockingIOError
            if not data:
                return False
            pending += data.upper()  # bytes.upper() changes only ASCII a-z
        sent = conn.send(pending)  # may take only part of it, or raise BlockingIOError
        del pending[:sent]
    except BlockingIOError:
        pass  # EAGAIN: nothing to read, or no room to send; try again next sweep
    except PEER_GONE:
        return False
    return True


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", PORT))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    connections = {}  # socket -> bytearray of reply bytes not sent yet
    while True:  # the busy loop: no sleep, no select
        try:
            conn, _ = listener.accept()
            conn.setblocking(False)
            connections[conn] = bytearray()
        except OSError:
            pass  # BlockingIOError: nobody waiting; or a client that left, or no free fd
        for conn, pending in list(connections.items()):
            if not step(conn, pending):
                del connections[conn]
                conn.close()


if __name__ == "__main__":
    main()
