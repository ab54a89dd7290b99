# selectors-echo starter: IO multiplexing through Python's selectors module.
#
# The model: selectors.DefaultSelector() picks the best multiplexer of the platform, epoll on
# Linux. One thread waits in sel.select() for every socket at once (phase 1, waiting for data);
# the callback stored in each socket's key.data then recv()s (phase 2, the copy, no wait).
# Blocks in: sel.select(), that is epoll_wait; every socket is non-blocking.
# strace -f -c should show: epoll_wait, epoll_ctl, recvfrom, sendto; never select, pselect6,
#   poll or ppoll.
# Limits: those of epoll; one thread.
#
# This skeleton listens and accepts, then hangs up on every client: fill in the TODOs.
import os
import selectors
import socket

sel = selectors.DefaultSelector()
out = {}  # socket -> bytearray: reply bytes the kernel has not taken yet


def on_connection_event(sock, mask):
    # TODO: `sock` is ready; mask holds selectors.EVENT_READ and/or EVENT_WRITE.
    #   1. If EVENT_READ: data = sock.recv(65536). b"" means the peer closed. Otherwise append
    #      data.upper() to out[sock] (bytes.upper() changes ASCII a-z only, never decode).
    #   2. send() from out[sock] and delete what was sent, until it is empty or send() raises
    #      BlockingIOError (the kernel's send buffer is full).
    #   3. While out[sock] is not empty, sel.modify(sock, EVENT_READ | EVENT_WRITE,
    #      on_connection_event); once it is empty, EVENT_READ again.
    #   4. When the peer closed (once out[sock] is sent) or on ConnectionResetError,
    #      BrokenPipeError, ConnectionAbortedError: sel.unregister(sock), sock.close(),
    #      del out[sock]. The server itself must keep running.
    pass


def accept(listener, mask):
    try:
        sock, _ = listener.accept()
    except OSError:  # the client already gave up
        return
    sock.setblocking(False)
    # TODO: out[sock] = bytearray(), then sel.register(sock, selectors.EVENT_READ,
    #       on_connection_event): key.data is the callback. Until then the skeleton hangs up:
    sock.close()


port = int(os.environ.get("PORT", "7000"))
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", port))
listener.listen(511)
listener.setblocking(False)
sel.register(listener, selectors.EVENT_READ, accept)
print(f"listening on 0.0.0.0:{port}", flush=True)

while True:
    for key, mask in sel.select():  # no timeout: the thread sleeps until a socket is ready
        callback = key.data
        callback(key.fileobj, mask)
