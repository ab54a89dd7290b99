"""Process per connection: blocking IO, one forked child per client (python-fork; no TS twin).

The classic UNIX server. The parent blocks in accept(); for each new connection it calls
os.fork(), and the child, a copy of the parent, serves that one client as the blocking model
does (recv() blocks through phase 1, waiting for data, and phase 2, the copy; sendall() until the
kernel took the reply), then exits with os._exit(). The parent closes its copy of the
connection and goes back to accept(). Every client is served at once, each by its own process:
nothing is shared, so nothing needs a lock, and a child that crashes takes only its client along.

A child that exits stays a zombie until its parent collects its exit status: on SIGCHLD the
parent reaps every child that has ended (waitpid with WNOHANG, until none is left).
The parent keeps its children's pids: when it is told to end (SIGTERM, SIGINT), they end too.

strace -f -c, steady state: accept4, clone (fork(2) is clone(2) on Linux: one per connection,
without CLONE_THREAD) and rt_sigprocmask in the parent; recvfrom and sendto in the children;
wait4 and rt_sigreturn in the parent as children end.
Limits: a whole process per connection (its page tables, its copy-on-write pages, its task in the
scheduler); forking is slower than starting a thread. No ceiling but memory, RLIMIT_NPROC and
RLIMIT_NOFILE (the parent's own fds stay few: it closes each connection after the fork).
"""
import os
import signal
import sys

from iolab_listen import accept, echo_blocking, listen

children = set()  # pids of the children still running
HELD = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def reap(signum, frame):
    """SIGCHLD: collect every child that has ended, so that none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no child at all
            return
        if pid == 0:               # children left, none of them ended
            return
        children.discard(pid)


def stop(signum, frame):
    """SIGTERM or SIGINT: end the children with the server, then the server."""
    for pid in list(children):  # a copy: reap() may change the set meanwhile
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


def main():
    listener = listen("python-fork")
    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        conn = accept(listener)  # sleeps until a client connects (SIGCHLD interrupts it: retried)
        if conn is None:
            continue
        # Signals held back across the fork: reap() must not see this child end before the parent
        # knows it, nor the child run the parent's stop().
        signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
        pid = os.fork()
        if pid == 0:  # the child: serve this client, then exit, never back into the loop
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
                listener.close()  # the parent accepts; the child needs only its client
                echo_blocking(conn)  # this process sleeps in recv; the others run
            finally:
                os._exit(0)
        children.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
        conn.close()  # the parent: the child has its own copy of the connection


if __name__ == "__main__":
    main()
