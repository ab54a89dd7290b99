# epoll-echo starter: IO multiplexing with epoll, level-triggered.
#
# The model: each socket is registered once with the kernel (epoll_ctl); epoll_wait sleeps until
# some are ready and returns only those (phase 1, waiting for data); the recv() that follows
# copies the data (phase 2) and does not wait.
# Blocks in: epoll_wait only; every socket is non-blocking.
# strace -f -c should show: epoll_wait, epoll_ctl, recvfrom, sendto; never select, pselect6,
#   poll or ppoll.
# Limits: Linux only; the cost grows with READY fds, not with watched ones.
#
# This skeleton listens and accepts, then hangs up on every client: fill in the TODOs.
import os
import select
import socket

port = int(os.environ.get("PORT", "7000"))
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", port))
listener.listen(511)
listener.setblocking(False)
print(f"listening on 0.0.0.0:{port}", flush=True)

ep = select.epoll()
ep.register(listener.fileno(), select.EPOLLIN)
conns = {}  # fd -> socket of every open connection
out = {}    # fd -> bytearray: reply bytes the kernel has not taken yet


def on_event(fd, events):
    # TODO: connection `fd` is ready; `events` holds EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLERR bits.
    #   1. If readable: data = sock.recv(65536). b"" means the peer closed. Otherwise append
    #      data.upper() to out[fd] (bytes.upper() changes ASCII a-z only, never decode).
    #   2. send() from out[fd] and delete what was sent, until it is empty or send() raises
    #      BlockingIOError (the kernel's send buffer is full).
    #   3. While out[fd] is not empty, ask for EPOLLIN | EPOLLOUT with ep.modify(fd, ...); once
    #      it is empty, EPOLLIN again. Call modify only when this changes: each call is a syscall.
    #   4. When the peer closed (once out[fd] is sent) or on ConnectionResetError,
    #      BrokenPipeError, ConnectionAbortedError: ep.unregister(fd), close the socket, forget
    #      it in conns and out. The server itself must keep running.
    pass


while True:
    for fd, events in ep.poll():  # no timeout: the thread sleeps until a socket is ready
        if fd == listener.fileno():
            try:
                sock, _ = listener.accept()
            except OSError:  # the client already gave up
                continue
            sock.setblocking(False)
            # TODO: remember sock in conns, give it an empty bytearray in out, and register
            #       its fd for EPOLLIN. Until then the skeleton hangs up at once:
            sock.close()
        elif fd in conns:
            on_event(fd, events)
