"""Blocking IO: one thread, one client at a time (model python-blocking; twin: blocking).

accept() blocks until a client connects; then recv() blocks through both phases of a read:
phase 1, waiting for data, and phase 2, the kernel's copy into our buffer. sendall() blocks until
the kernel has taken the whole reply. While this thread waits on one client, nobody accepts or
serves another: a second client waits in the kernel's accept queue until the first disconnects.

strace -f -c, steady state: accept4, recvfrom, sendto, close; nothing else per request. No
select, poll or epoll (nobody asks "who is ready?"), no clone (no second thread).
Limits: one client at a time (starvation); a client that connects and stays idle blocks everyone.
Never call settimeout() on these sockets: with a timeout CPython waits in poll() before each call.
"""
from iolab_listen import accept, echo_blocking, listen


def main():
    listener = listen("python-blocking")
    while True:
        conn = accept(listener)  # sleeps until a client connects
        if conn is not None:
            echo_blocking(conn)  # this thread sleeps in recv; the next client waits until this one is done


if __name__ == "__main__":
    main()
