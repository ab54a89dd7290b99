"""Thread per connection: blocking IO, one new thread per client (python-threading; twin: threaded).

The main thread blocks in accept() and hands each new connection to a NEW threading.Thread,
which serves that one client as the blocking model does: recv() blocks through phase 1 (waiting
for data) and phase 2 (the copy), sendall() until the kernel took the reply. While one thread
waits for its client, the kernel runs the others: every client is served at once, and the
scheduler, not our code, decides who runs. The GIL lets one thread run Python at a time, but a
thread releases it while blocked in a system call, so waiting clients cost nothing.

strace -f -c, steady state: accept4 and clone3 (one per connection: pthread_create) in the main
thread, recvfrom and sendto in the connection threads, futex between threads (the GIL, and
Thread.start() waiting for the new thread to start).
Limits: a thread per connection: its stack (8 MB reserved, a few pages touched) and its place in
the scheduler's queue; at thousands of connections, thousands of threads. No ceiling but memory,
RLIMIT_NPROC and RLIMIT_NOFILE.
"""
import threading

from iolab_listen import accept, echo_blocking, listen


def main():
    listener = listen("python-threading")
    while True:
        conn = accept(listener)  # sleeps until a client connects
        if conn is not None:
            # its thread sleeps in recv while the kernel runs the others
            threading.Thread(target=echo_blocking, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
