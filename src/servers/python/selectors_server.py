"""IO multiplexing with the selectors module (python-selectors; twin: epoll).

selectors.DefaultSelector() is the best multiplexer of the platform: on Linux an EpollSelector,
so this is the epoll model written the way the course's selectors example writes it: register
each socket with the data it needs (here its output buffer, in key.data), then loop over
sel.select(). Phase 1 (waiting for data) happens inside sel.select(), that is epoll_wait, for
every connection at once; phase 2 (the copy) is the recv that follows, which does not wait.
Level-triggered, as select and poll are.

strace -f -c, steady state: epoll_wait, recvfrom, sendto; epoll_ctl per connection (register and
unregister, and modify when a reply could not be sent whole). No select, no poll: the kernel
cannot tell this server from one written with select.epoll() by hand.
Limits: those of epoll (the cost grows with READY fds; no fd ceiling beyond RLIMIT_NOFILE).
"""
import selectors

from iolab_listen import accept, echo_step, listen

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def main():
    listener = listen("python-selectors")
    listener.setblocking(False)
    sel = selectors.DefaultSelector()  # EpollSelector on Linux
    sel.register(listener, READ, data=None)
    while True:
        for key, mask in sel.select():  # no timeout: sleeps until a socket is ready
            if key.data is None:  # the listener
                conn = accept(listener)  # None: the client left, or no fd is free (reported)
                if conn is not None:
                    conn.setblocking(False)
                    sel.register(conn, READ, data=bytearray())  # key.data: its output buffer
                continue
            conn, out = key.fileobj, key.data
            was_writing = bool(out)
            if not echo_step(conn, out):
                sel.unregister(conn)
                conn.close()
            elif bool(out) != was_writing:
                # A reply is left: wait for room to send it (and read nothing more meanwhile);
                # or it went out: wait for data again.
                sel.modify(conn, WRITE if out else READ, data=out)


if __name__ == "__main__":
    main()
