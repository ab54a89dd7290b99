# Thread-per-connection echo server: blocking IO, one new thread for every client.
#
# The model: the main thread blocks in accept() and hands each new connection to a new thread,
# which blocks in recv() and sendall() for that one client, exactly as the blocking server's
# single thread did, and ends when the client leaves. While one thread waits for its client the
# kernel's scheduler runs the others, so every client is served at once.
#
# strace -f -c shows, in steady state: accept4 and clone3 (or clone) once per connection on
# the main thread, recvfrom and sendto on the connection threads, futex between threads (the
# interpreter's lock). No select or poll: nobody asks "who is ready?", every thread just waits.
# Limits: a thread (stack, kernel task) per connection: memory and scheduling cost grow with
# the number of clients; at thousands of clients, thousands of threads.
#
# Note: never call settimeout() on these sockets. With a timeout Python waits in poll() before
# each recv/send.
import os
import socket
import threading

PORT = int(os.environ.get("PORT", "7000"))
BACKLOG = 511
CHUNK = 65536
# A peer that goes away ends its own connection (and its thread), never the server.
PEER_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


def serve(conn):
    """The body of one connection's thread: echo until the client closes, then end."""
    try:
        while True:
            data = conn.recv(CHUNK)  # blocks only this thread; b"" means the peer closed
            if not data:
                return
            # bytes.upper() changes only ASCII a-z and leaves every other byte as it is.
            conn.sendall(data.upper())  # loops over partial sends for us
    except PEER_GONE:
        pass
    finally:
        conn.close()


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", PORT))
    listener.listen(BACKLOG)
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    while True:
        try:
            conn, _ = listener.accept()  # blocks until a client connects
        except PEER_GONE:
            continue  # the client left before we took it
        # daemon=True: a thread still serving a client does not keep the process alive on exit.
        thread = threading.Thread(target=serve, args=(conn,), daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": out of memory or thread limit
            conn.close()


if __name__ == "__main__":
    main()
