# poll-echo starter: IO multiplexing with poll(2).
#
# The model: one thread waits in poll() for every socket at once (phase 1, waiting for data),
# then recv()s from the sockets the kernel reported ready (phase 2, the copy, which does not wait).
# Blocks in: poll() only; every socket is non-blocking.
# strace -f -c should show: poll, recvfrom, sendto; never select, pselect6 or epoll_wait.
# Limits: every call hands the kernel the whole list of watched fds, and it scans all of them.
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

poller = select.poll()
poller.register(listener, select.POLLIN)
conns = {}  # fd -> socket of every open connection
out = {}    # fd -> bytearray: reply bytes the kernel has not taken yet


def on_event(fd, events):
    # TODO: connection `fd` is ready; `events` holds POLLIN, POLLOUT, POLLHUP, POLLERR bits.
    #   1. If readable: data = sock.recv(65536). b"" means the peer closed. Otherwise append
    #      data.upper() to out[fd] (bytes.upper() changes ASCII a-z only, never decode).
    #   2. send() from out[fd] and delete what was sent, until it is empty or send() raises
    #      BlockingIOError (the kernel's send buffer is full).
    #   3. poller.modify(fd, ...): POLLIN, plus POLLOUT only while out[fd] is not empty.
    #   4. When the peer closed (once out[fd] is sent) or on ConnectionResetError,
    #      BrokenPipeError, ConnectionAbortedError: poller.unregister(fd), close the socket,
    #      forget it in conns and out. The server itself must keep running.
    pass


while True:
    for fd, events in poller.poll():  # no timeout: the thread sleeps until a socket is ready
        if fd == listener.fileno():
            try:
                sock, _ = listener.accept()
            except OSError:  # the client already gave up
                continue
            sock.setblocking(False)
            # TODO: remember sock in conns, give it an empty bytearray in out, and register
            #       it for POLLIN. Until then the skeleton hangs up at once:
            sock.close()
        elif fd in conns:
            on_event(fd, events)
