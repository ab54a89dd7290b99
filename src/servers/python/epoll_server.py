"""IO multiplexing with epoll, level-triggered (python-epoll; twin: epoll).

The list of watched sockets lives in the kernel: each one is registered once (epoll_ctl), and
epoll.poll() sleeps in epoll_wait until some are ready and returns only those. Phase 1 (waiting
for data) happens inside epoll_wait, for every connection at once; phase 2 (the copy) is the recv
that follows, which does not wait. Level-triggered (no EPOLLET): as long as unread data (or room
to send, for EPOLLOUT) remains, every epoll_wait reports the socket again, so one recv per event
is enough.

strace -f -c, steady state: epoll_wait, recvfrom, sendto; epoll_ctl per connection (the add; a
switch to EPOLLOUT and back when a reply could not be sent whole; close() removes the socket from
the interest list). No select, no poll, no second thread.
Limits: the cost grows with READY fds, not watched ones; no fd ceiling beyond RLIMIT_NOFILE;
Linux only.
"""
import select

from iolab_listen import accept, echo_step, listen


def main():
    listener = listen("python-epoll")
    listener.setblocking(False)
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN)
    connections = {}  # fd -> (socket, bytearray: reply bytes not sent yet)
    while True:
        for fd, events in ep.poll():  # epoll_wait: the only place we wait
            if fd == listener.fileno():
                conn = accept(listener)  # None: the client left, or no fd is free (reported)
                if conn is not None:
                    conn.setblocking(False)
                    connections[conn.fileno()] = (conn, bytearray())
                    ep.register(conn.fileno(), select.EPOLLIN)
                continue
            # EPOLLHUP and EPOLLERR come unasked: the recv or send in echo_step() tells which.
            conn, out = connections[fd]
            was_writing = bool(out)
            if not echo_step(conn, out):
                del connections[fd]
                conn.close()  # closing the socket removes it from the interest list
            elif bool(out) != was_writing:
                # A reply is left: wait for room to send it (and read nothing more meanwhile);
                # or it went out: wait for data again.
                ep.modify(fd, select.EPOLLOUT if out else select.EPOLLIN)


if __name__ == "__main__":
    main()
