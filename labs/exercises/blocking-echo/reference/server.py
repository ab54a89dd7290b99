# Blocking echo server: one thread, one client at a time.
#
# The model: every call waits until it can finish. accept() blocks until a client connects;
# recv() blocks until bytes arrive and the kernel has copied them into our buffer; sendall()
# blocks until the kernel has taken every byte of the reply. While we serve one client, nobody
# else is served: the next client waits in the kernel's accept queue (backlog 511) until the
# current one closes.
#
# strace -f -c shows, in steady state: accept4, recvfrom, sendto (and close). No select, poll
# or epoll, and no clone: there is one thread and it never asks "who is ready?".
# Limits: one client at a time; a client that connects and stays idle blocks everyone else.
#
# Note: never call settimeout() on these sockets. With a timeout Python waits in poll() before
# each recv/send, and the server no longer uses the blocking model.
import os
import socket

PORT = int(os.environ.get("PORT", "7000"))
BACKLOG = 511
CHUNK = 65536
# A peer that goes away ends its own connection, never the server.
PEER_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


def serve(conn):
    """Echo one client until it closes: recv blocks for data, sendall blocks until sent."""
    try:
        while True:
            data = conn.recv(CHUNK)  # blocks; b"" means the peer closed
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
        serve(conn)  # the next accept waits until this client is done


if __name__ == "__main__":
    main()
