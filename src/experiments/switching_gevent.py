"""gevent: greenlets, a hub that switches between them, and monkey-patched sockets (arm "gevent").

monkey.patch_all() replaces the blocking parts of the standard library (socket, select, time.sleep,
...) with cooperative versions. It comes first, before anything imports socket. From then on a
recv() that would block does not: it registers the socket with the hub's event loop (libev or
libuv, epoll underneath) and switches to the hub, which runs another greenlet that is ready. When
the data comes, the hub switches back. The job's code stays straight-line code: the same fetch()
as the serial version. gevent.spawn() starts a job in a greenlet; gevent.joinall() waits for all.

CPU-only jobs: there is no IO to wait for, so nothing switches by itself; each job gives way after
every step with gevent.sleep(0), a switch to the hub and on to the next greenlet. Only overhead.
Jobs that wait on IO: while one job waits for the server, the hub runs the others, which send
their requests too: all the waits overlap, and the jobs take about the longest chain of waits,
waits x W, not jobs x waits x W.
"""
from gevent import monkey

monkey.patch_all()  # first: every socket made from here on is gevent's

import gevent  # noqa: E402  (after the patch, on purpose)

from experiment import cpu_step, run_switching  # noqa: E402


def cpu_job(seed, steps):
    x = seed
    for _ in range(steps):
        x = cpu_step(x)
        gevent.sleep(0)  # a switch: to the hub, which runs the next greenlet that is ready
    return x


def io_job(waits, fetch):
    for _ in range(waits):
        fetch()  # the patched recv() switches to the hub while this job waits: the others run


def run_cpu(jobs, steps):
    greenlets = [gevent.spawn(cpu_job, seed, steps) for seed in range(jobs)]
    gevent.joinall(greenlets, raise_error=True)
    return [g.value for g in greenlets], jobs * steps  # one gevent.sleep(0) per step


def run_io(jobs, waits, fetch):
    gevent.joinall([gevent.spawn(io_job, waits, fetch) for _ in range(jobs)], raise_error=True)
    return None  # the hub switches inside the patched calls, out of our sight: not counted


if __name__ == "__main__":
    run_switching("gevent", run_cpu, run_io)
