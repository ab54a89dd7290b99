"""The jobs one after the other, with no switching at all (arm "serial"): the yardstick.

CPU-only jobs: each job runs all its steps, then the next one starts. This is the least time the
work can take on one thread; every other arm does the same steps and adds its switches.
Jobs that wait on IO: each job makes its fetches in turn, and each fetch blocks the thread for
the server's whole delay. Nothing else happens while it waits: the waits add up, jobs x waits x W.
"""
from experiment import cpu_step, run_switching


def run_cpu(jobs, steps):
    results = []
    for seed in range(jobs):
        x = seed
        for _ in range(steps):
            x = cpu_step(x)
        results.append(x)
    return results, 0


def run_io(jobs, waits, fetch):
    for _ in range(jobs):
        for _ in range(waits):
            fetch()  # blocks this one thread for the server's delay
    return 0


if __name__ == "__main__":
    run_switching("serial", run_cpu, run_io)
