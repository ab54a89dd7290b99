# Thread-per-connection echo server (starter): blocking IO, one new thread for every client.
#
# The model: the main thread blocks in accept() and hands each new connection to a NEW thread,
# which blocks in recv() and sendall() for that one client and ends when the client leaves.
# While one thread waits, the kernel's scheduler runs the others: every client is served at once.
#
# strace -f -c should show, in steady state: accept4 and clone3 (or clone) once per connection,
# recvfrom and sendto on the connection threads, futex between threads. No select or poll.
# Limits: a thread per connection: memory and scheduling cost grow with the number of clients.
#
# Never call settimeout() on these sockets: with a timeout Python waits in poll() first.
# As it stands this file runs but echoes nothing: it accepts each client and closes it at once.
import os
import socket
import threading  # noqa: F401  (you will need it)

PORT = int(os.environ.get("PORT", "7000"))
BACKLOG = 511


def serve(conn):
    """The body of one connection's thread: echo until the client closes, then close."""
    # TODO: loop: data = conn.recv(65536); b"" means the peer closed, so stop.
    # TODO: send back data.upper() (bytes.upper() changes only ASCII a-z) with conn.sendall().
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
        # TODO: do not serve the client here: start a threading.Thread(target=serve,
        #       args=(conn,), daemon=True) for it and go straight back to accept().
        serve(conn)


if __name__ == "__main__":
    main()
