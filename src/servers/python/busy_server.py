"""Non-blocking IO with busy polling (python-busy; twin: nonblocking).

setblocking(False) on every socket, and one loop that keeps asking. accept() and recv() never
wait: when nothing is there they fail at once with EAGAIN, which Python raises as
BlockingIOError, and the loop asks the next socket, round and round, with no readiness API and
no sleep. Phase 1 (waiting for data) never blocks: it is spent asking, again and again; phase 2
(the copy) is the recv that finally finds data. A reply the kernel cannot take whole waits in
the connection's output buffer, and that client is not read again until it is sent.

strace -f -c, steady state: accept4 and recvfrom in huge numbers, nearly all failing with EAGAIN
(the "EAGAIN storm"); sendto when there is something to echo. No select, poll or epoll.
Limits: one core at ~100% even when every client is idle; a reply waits for a full sweep over
every connection, so latency grows with their number.
"""
from iolab_listen import accept, echo_step, listen


def main():
    listener = listen("python-busy")
    listener.setblocking(False)
    connections = {}  # socket -> bytearray: reply bytes not sent yet
    while True:  # the busy loop: no sleep, no select
        conn = accept(listener)  # None at once when nobody is waiting
        if conn is not None:
            conn.setblocking(False)
            connections[conn] = bytearray()
        for conn, out in list(connections.items()):
            if not echo_step(conn, out):
                del connections[conn]
                conn.close()


if __name__ == "__main__":
    main()
