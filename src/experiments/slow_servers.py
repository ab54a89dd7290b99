"""K slow servers: each answers a request D ms after it arrives, like a slow web site.

The other end of the experiments that wait on IO (concurrent_client.py, switching_*.py). Each of
the K servers listens on its own port; each connection gets a thread of its own, which reads one
request (HTTP/1.0: up to the blank line), sleeps D ms, sends a short reply and closes. So a
server answers any number of clients at once, each after D ms: what a client waits for is the
delay, never another client.

Prints one line once every server listens:
    listening on HOST ports=PORT,PORT,... delay_ms=D pid=PID
and serves until it is stopped (SIGTERM).
"""
import argparse
import os
import socketserver
import threading
import time

REPLY = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nslow\n"


class SlowHandler(socketserver.BaseRequestHandler):
    def handle(self):
        request = b""
        while b"\r\n\r\n" not in request:
            data = self.request.recv(4096)
            if not data:
                return  # the client left before its request was complete
            request += data
        time.sleep(self.server.delay_seconds)  # the slow part: D ms before any answer
        self.request.sendall(REPLY)
        # handle() returning closes the connection: the end of an HTTP/1.0 reply


class SlowServer(socketserver.ThreadingTCPServer):
    daemon_threads = True          # a connection's thread does not keep the process alive
    allow_reuse_address = True
    request_queue_size = 128       # the listen backlog: many clients may connect at once


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--servers", type=int, default=1, help="how many servers (ports): K")
    parser.add_argument("--delay-ms", type=int, default=200, help="each answer's delay: D")
    args = parser.parse_args()

    servers = []
    for _ in range(args.servers):
        server = SlowServer((args.host, 0), SlowHandler)  # port 0: the kernel picks a free one
        server.delay_seconds = args.delay_ms / 1000
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports = ",".join(str(server.server_address[1]) for server in servers)
    print(f"listening on {args.host} ports={ports} delay_ms={args.delay_ms} pid={os.getpid()}", flush=True)
    threading.Event().wait()  # serve until stopped


if __name__ == "__main__":
    main()
