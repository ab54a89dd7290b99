# selectors-echo, reference solution: IO multiplexing through Python's selectors module.
#
# The model: selectors.DefaultSelector() is the best multiplexer the platform has: epoll on
# Linux. One thread waits in sel.select() for every socket at once (phase 1, waiting for data);
# each ready socket's callback, stored in key.data, then recv()s (phase 2, the copy, no wait).
# The selectors example of the Python docs, plus an output buffer per connection.
# Blocks in: sel.select(), that is epoll_wait; every socket is non-blocking.
# strace -f -c shows: epoll_wait, recvfrom, sendto, epoll_ctl (register and unregister per
#   connection, modify when a reply could not be sent whole); never select, pselect6, poll or ppoll.
#   The kernel cannot tell this server from one written with select.epoll() by hand.
# Limits: those of epoll (level-triggered); a peer that sends without ever reading makes its
#   output buffer grow.
import os
import selectors
import socket

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
sel = selectors.DefaultSelector()


class Connection:
    """One client: its socket and the reply bytes the kernel has not taken yet."""

    def __init__(self, sock):
        self.sock, self.out, self.peer_closed, self.events = sock, bytearray(), False, READ
        sel.register(sock, READ, self.on_event)  # key.data: the callback for this socket

    def on_event(self, sock, mask):
        try:
            if mask & READ:
                data = sock.recv(65536)
                if data:
                    self.out += data.upper()  # bytes.upper() changes ASCII a-z only
                else:
                    self.peer_closed = True   # send what is left, then close
            while self.out:
                sent = sock.send(self.out)
                del self.out[:sent]
        except BlockingIOError:
            pass                              # the send buffer is full: wait for EVENT_WRITE
        except OSError:                       # ConnectionResetError, BrokenPipeError, ...
            return self.close()
        if self.peer_closed and not self.out:
            return self.close()
        # Keep reading while the peer sends; ask for EVENT_WRITE only while output is pending.
        events = (0 if self.peer_closed else READ) | (WRITE if self.out else 0)
        if events != self.events:
            self.events = events
            sel.modify(sock, events, self.on_event)

    def close(self):
        sel.unregister(self.sock)
        self.sock.close()


def accept(listener, mask):
    try:
        sock, _ = listener.accept()
    except OSError:  # the client already gave up, or no fd is left
        return
    sock.setblocking(False)
    Connection(sock)


port = int(os.environ.get("PORT", "7000"))
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", port))
listener.listen(511)
listener.setblocking(False)
sel.register(listener, READ, accept)
print(f"listening on 0.0.0.0:{port}", flush=True)

while True:
    for key, mask in sel.select():  # no timeout: the thread sleeps until a socket is ready
        callback = key.data
        callback(key.fileobj, mask)
