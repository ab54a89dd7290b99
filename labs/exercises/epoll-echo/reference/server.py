# epoll-echo, reference solution: IO multiplexing with epoll, level-triggered.
#
# The model: the list of watched sockets lives in the kernel. Each socket is registered once
# (epoll_ctl), and epoll_wait sleeps until some are ready and returns only those (phase 1,
# waiting for data); the recv() that follows copies the data (phase 2) and does not wait.
# Level-triggered: while unread data (or room to send, for EPOLLOUT) remains, every epoll_wait
# reports the socket again, so one recv per event is enough.
# Blocks in: epoll_wait only; every socket is non-blocking.
# strace -f -c shows: epoll_wait, recvfrom, sendto, epoll_ctl (add and delete per connection,
#   modify when a reply could not be sent whole); never select, pselect6, poll or ppoll.
# Limits: the cost grows with READY fds, not watched ones; Linux only; a peer that sends
#   without ever reading makes its output buffer grow.
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
conns = {}       # fd -> socket of every open connection
out = {}         # fd -> bytearray: reply bytes the kernel has not taken yet
masks = {}       # fd -> the events it is registered for (change them only when they change)
closing = set()  # fds whose peer has closed: close them once their output is sent


def close(fd):
    ep.unregister(fd)
    conns.pop(fd).close()
    del out[fd], masks[fd]
    closing.discard(fd)


def on_event(fd, events):
    sock, buf = conns[fd], out[fd]
    try:
        # EPOLLHUP and EPOLLERR come unasked: the recv that follows tells what happened.
        if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and fd not in closing:
            data = sock.recv(65536)
            if data:
                buf += data.upper()  # bytes.upper() changes ASCII a-z only; other bytes stay
            else:
                closing.add(fd)      # the peer closed: send what is left, then close
        while buf:
            sent = sock.send(buf)
            del buf[:sent]
    except BlockingIOError:
        pass                         # the kernel's send buffer is full: wait for EPOLLOUT
    except OSError:                  # ConnectionResetError, BrokenPipeError, ...: peer gone
        close(fd)
        return
    if fd in closing and not buf:
        close(fd)
        return
    # Keep reading while the peer sends; ask for EPOLLOUT only while output is pending
    # (level-triggered EPOLLOUT on an idle socket would wake every epoll_wait).
    want = (0 if fd in closing else select.EPOLLIN) | (select.EPOLLOUT if buf else 0)
    if want != masks[fd]:
        ep.modify(fd, want)
        masks[fd] = want


while True:
    for fd, events in ep.poll():  # no timeout: the thread sleeps until a socket is ready
        if fd == listener.fileno():
            try:
                sock, _ = listener.accept()
            except OSError:          # the client already gave up, or no fd is left
                continue
            sock.setblocking(False)
            fd = sock.fileno()
            conns[fd], out[fd], masks[fd] = sock, bytearray(), select.EPOLLIN
            ep.register(fd, select.EPOLLIN)
        elif fd in conns:
            on_event(fd, events)
