# poll-echo, reference solution: IO multiplexing with poll(2).
#
# The model: one thread waits in poll() for every socket at once (phase 1, waiting for data),
# then recv()s from the sockets the kernel reported ready (phase 2, the copy, which does not
# wait). poll() is handed the whole list of watched fds on every call, and the kernel scans it all.
# Blocks in: poll() only; every socket is non-blocking.
# strace -f -c shows: poll, recvfrom, sendto (plus accept4 and close once per connection);
#   never select, pselect6, epoll_wait or epoll_pwait.
# Limits: each call costs time linear in the WATCHED fds, idle or not (but no 1024 cap as with
#   select); a peer that sends without ever reading makes its output buffer grow.
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
conns = {}       # fd -> socket of every open connection
out = {}         # fd -> bytearray: reply bytes the kernel has not taken yet
closing = set()  # fds whose peer has closed: close them once their output is sent


def close(fd):
    poller.unregister(fd)
    conns.pop(fd).close()
    del out[fd]
    closing.discard(fd)


def on_event(fd, events):
    sock, buf = conns[fd], out[fd]
    try:
        # POLLHUP and POLLERR come unasked: the recv that follows tells what happened.
        if events & (select.POLLIN | select.POLLHUP | select.POLLERR) and fd not in closing:
            data = sock.recv(65536)
            if data:
                buf += data.upper()  # bytes.upper() changes ASCII a-z only; other bytes stay
            else:
                closing.add(fd)      # the peer closed: send what is left, then close
        while buf:
            sent = sock.send(buf)
            del buf[:sent]
    except BlockingIOError:
        pass                         # the kernel's send buffer is full: wait for POLLOUT
    except OSError:                  # ConnectionResetError, BrokenPipeError, ...: peer gone
        close(fd)
        return
    if fd in closing and not buf:
        close(fd)
    else:
        # Keep reading while the peer sends; ask for POLLOUT only while output is pending.
        poller.modify(fd, (0 if fd in closing else select.POLLIN) | (select.POLLOUT if buf else 0))


while True:
    for fd, events in poller.poll():  # no timeout: the thread sleeps until a socket is ready
        if fd == listener.fileno():
            try:
                sock, _ = listener.accept()
            except OSError:              # the client already gave up, or no fd is left
                continue
            sock.setblocking(False)
            conns[sock.fileno()] = sock
            out[sock.fileno()] = bytearray()
            poller.register(sock, select.POLLIN)
        elif fd in conns:
            on_event(fd, events)
