# Blocking echo server (starter): one thread, one client at a time.
#
# The model: every call waits until it can finish. accept() blocks until a client connects;
# recv() blocks until bytes arrive; sendall() blocks until the kernel has taken the whole reply.
# While you serve one client, the next one waits in the kernel's accept queue.
#
# strace -f -c should show, in steady state: accept4, recvfrom, sendto (and close).
# No select, poll or epoll, and no clone (no second thread).
# Limits: one client at a time; an idle client blocks everyone else.
#
# Never call settimeout() on these sockets: with a timeout Python waits in poll() first.
# As it stands this file runs but echoes nothing: it accepts each client and closes it at once.
import os
import socket

PORT = int(os.environ.get("PORT", "7000"))
BACKLOG = 511


def serve(conn):
    """Echo one client until it closes, then close its socket."""
    # TODO: loop: data = conn.recv(65536); b"" means the peer closed, so stop.
    # TODO: send back data.upper() (bytes.upper() changes only ASCII a-z) with conn.sendall(),
    #       which keeps sending until every byte is out.
    # TODO: a peer that resets (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
    #       ends this connection only: catch those, and close the socket in every case.
    conn.close()


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", PORT))  # all interfaces: the grader's clients are elsewhere
    listener.listen(BACKLOG)
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    while True:
        conn, _ = listener.accept()  # blocks until a client connects
        serve(conn)


if __name__ == "__main__":
    main()
