"""Coroutines (green threads) with gevent: a greenlet per connection (python-gevent; twin: coroutine).

monkey.patch_all() replaces the socket module's blocking calls with gevent's, so the code below is
the blocking model's code, word for word: recv, upper-case, sendall, again. Underneath, every
socket is non-blocking: a recv tries the call and, when it would block (EAGAIN), parks its
greenlet and switches to gevent's hub, which runs the other greenlets and, when none can run,
waits in its event loop (libev, on epoll) until a socket is ready, then switches back to the
greenlet waiting for it. Phase 1 (waiting for data) happens in the hub's epoll_wait, for every
connection at once; phase 2 is the recv that follows. The acceptor is a greenlet too, spawning
one greenlet per connection.

Concurrency without threads and without locks: one thread runs everything and a switch happens
only where a greenlet would block. The costs: switching with no IO to overlap only costs time; a
greenlet that never waits is never switched away from; and one greenlet that makes a real
blocking call, one gevent did not patch (a C extension's own socket, time.sleep in a program
that did not patch time), stalls all the others.

strace -f -c, steady state: recvfrom (a share of them failing with EAGAIN: gevent tries the
call before it waits), then epoll_wait in the hub for those, sendto; epoll_ctl once per
connection; gevent's own getsockopt(SO_SNDBUF) per sendall and libev's getpid per loop turn (its
fork check). No select, no poll, no clone (no thread per connection). A recv that finds data
never switches: under strace, which slows the server more than its clients, most recvs do, and
epoll_wait all but disappears.
Limits: one core; no fd ceiling beyond RLIMIT_NOFILE; fair only as far as handlers wait.
"""
from gevent import monkey

monkey.patch_all()  # first, before anything imports socket

import gevent  # noqa: E402

from iolab_listen import accept, echo_blocking, listen  # noqa: E402


def main():
    listener = listen("python-gevent")  # a gevent socket: patched
    while True:
        conn = accept(listener)  # this greenlet waits for a client; the others run
        if conn is None:
            # No free fd (reported) or a client that left. gevent raises EMFILE at once, without
            # switching: give the other greenlets a moment to run (and close their connections).
            gevent.sleep(0.01)
            continue
        gevent.spawn(echo_blocking, conn)  # a patched recv: this greenlet waits, the hub runs the others


if __name__ == "__main__":
    main()
