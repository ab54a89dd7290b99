"""Greenlets: jobs that switch explicitly with greenlet.switch() (arm "greenlets").

A greenlet is a coroutine with a stack of its own: it can switch away from inside any function
it has called, not only at a `yield` of its own frame, and comes back exactly there. Nobody
switches for it: here every job switches to its parent, the main greenlet, which runs the
round-robin scheduler and switches to the next job. Each such hand-over is one switch.

CPU-only jobs: each job switches after every step. Nothing is overlapped; each switch (saving
one greenlet's stack, restoring another's) only adds time.
Jobs that wait on IO: each job switches after every fetch. But fetch() is the plain, blocking
socket code: the thread sleeps in recv() for the server's whole delay, with every greenlet in it.
Switching alone does not overlap a blocking call: the waits still add up.
"""
from collections import deque
from functools import partial

from greenlet import greenlet, getcurrent

from experiment import cpu_step, run_switching


def cpu_job(seed, steps):
    x = seed
    for _ in range(steps):
        x = cpu_step(x)
        getcurrent().parent.switch()  # a switch: to the scheduler, which switches to the next job
    return x


def io_job(waits, fetch):
    for _ in range(waits):
        fetch()                       # the whole thread sleeps in recv(), every greenlet with it
        getcurrent().parent.switch()  # a switch, but only after the wait is over


def round_robin(functions):
    """Runs each function in a greenlet of its own, switching to each in turn until every one has
    ended. Returns their results and the switches."""
    queue = deque((index, greenlet(function)) for index, function in enumerate(functions))
    results = [None] * len(functions)
    switches = 0
    while queue:
        index, job = queue.popleft()
        value = job.switch()  # runs the job until it switches back, or ends (then: its return value)
        if job.dead:
            results[index] = value
            continue
        switches += 1
        queue.append((index, job))
    return results, switches


def run_cpu(jobs, steps):
    return round_robin([partial(cpu_job, seed, steps) for seed in range(jobs)])


def run_io(jobs, waits, fetch):
    _, switches = round_robin([partial(io_job, waits, fetch) for _ in range(jobs)])
    return switches


if __name__ == "__main__":
    run_switching("greenlets", run_cpu, run_io)
