"""Generators as coroutines: jobs that yield, and a round-robin scheduler (arm "generators").

A generator function runs until its `yield`, hands control back to whoever called next() on it,
and goes on from there at the next call: a coroutine, switched by hand. The scheduler below keeps
the jobs in a queue and resumes each in turn until it yields again; each yield is one switch.

CPU-only jobs: each job yields after every step. There is nothing to overlap: every switch only
adds its own cost (leaving the generator's frame, the scheduler's loop, resuming the next frame).
Jobs that wait on IO: each job yields after every fetch. But fetch() blocks the one thread for
the server's whole delay: a recv() the scheduler knows nothing about. While one job waits no other
job runs, and the switch comes only once the wait is over: the waits still add up.
"""
from collections import deque

from experiment import cpu_step, run_switching


def cpu_job(seed, steps):
    x = seed
    for _ in range(steps):
        x = cpu_step(x)
        yield  # a switch: back to the scheduler, which resumes the next job
    return x


def io_job(waits, fetch):
    for _ in range(waits):
        fetch()  # blocks the whole thread, every job with it, for the server's delay
        yield    # a switch, but only after the wait is over


def round_robin(jobs):
    """Resumes each job in turn until every one has ended. Returns their results and the switches."""
    queue = deque(enumerate(jobs))
    results = [None] * len(jobs)
    switches = 0
    while queue:
        index, job = queue.popleft()
        try:
            next(job)  # runs the job up to its next yield
        except StopIteration as ended:
            results[index] = ended.value  # the generator's return value
            continue
        switches += 1
        queue.append((index, job))
    return results, switches


def run_cpu(jobs, steps):
    return round_robin([cpu_job(seed, steps) for seed in range(jobs)])


def run_io(jobs, waits, fetch):
    _, switches = round_robin([io_job(waits, fetch) for _ in range(jobs)])
    return switches


if __name__ == "__main__":
    run_switching("generators", run_cpu, run_io)
