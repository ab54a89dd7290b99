"""What every experiment script shares: the measured section, one fetch from a slow server, one
step of CPU work, and the one JSON line a script prints.

The scripts are run by iolab (src/labs/experiment-runner.ts), one process per arm and per
repetition: a fresh interpreter for each measurement, and above all for gevent, whose
monkey.patch_all() changes the socket module for the rest of the process and cannot be undone.
Each script measures only its section (not the interpreter's start, not its imports) and prints
one line of JSON on stdout; iolab validates it (src/shared/experiments.ts), repeats, and judges.
"""
import argparse
import json
import socket
import sys
import time

# One request of the slow servers' protocol (slow_servers.py): HTTP/1.0, so the reply ends when
# the server closes the connection, as the course's "fetch a URL" examples do.
REQUEST = b"GET / HTTP/1.0\r\nHost: slow\r\n\r\n"
RECV_SIZE = 4096


def parse_address(text):
    """'host:port' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host, int(port)


def fetch(address):
    """One round trip to a slow server, with blocking calls: connect, send the request, read the
    reply until the server closes. Returns the reply's bytes.

    connect() blocks for the TCP handshake; recv() blocks through both phases of a read: the
    server's delay (phase 1, waiting for data) and the copy (phase 2). Under gevent's
    monkey-patching the same calls switch to another greenlet instead of blocking the thread.
    """
    conn = socket.create_connection(address)
    try:
        conn.sendall(REQUEST)
        reply = bytearray()
        while True:
            data = conn.recv(RECV_SIZE)  # sleeps until the server answers (its delay)
            if not data:                 # b"": the server closed: the reply is complete
                break
            reply += data
    finally:
        conn.close()
    if not reply.startswith(b"HTTP/1.0 200"):
        raise RuntimeError(f"{address[0]}:{address[1]} answered {bytes(reply[:40])!r}")
    return bytes(reply)


def cpu_step(x):
    """One step of a CPU-only job: one step of a linear congruential generator, a fraction of a
    microsecond in CPython. Small on purpose: the cost of a switch after each step shows."""
    return (x * 1103515245 + 12345) & 0x7FFFFFFF


def checksum(values):
    """The jobs' results folded into one number: every arm must do the same work."""
    total = 0
    for value in values:
        total = (total * 31 + value) & 0x7FFFFFFF
    return total


def _cpu_lines():
    """The machine's CPU times (the "cpu" lines of /proc/stat, not namespaced: in a container too
    they are the host's): iolab computes from them how busy the machine was during the section."""
    try:
        with open("/proc/stat") as stat:
            return "".join(line for line in stat if line.startswith("cpu"))
    except OSError:
        return ""


def _load_average():
    try:
        with open("/proc/loadavg") as loadavg:
            return loadavg.read().strip()
    except OSError:
        return ""


class Section:
    """The measured part of a script: wall time (time.perf_counter), the process's CPU time
    (time.process_time) and the machine's CPU times around it.

        with Section() as section:
            ...jobs...
        section.wall_seconds
    """

    def __enter__(self):
        self.proc_stat_before = _cpu_lines()
        self.cpu_start = time.process_time()
        self.start = time.perf_counter()
        return self

    def elapsed(self):
        """Seconds since the section started."""
        return time.perf_counter() - self.start

    def __exit__(self, *exc):
        self.wall_seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start
        self.proc_stat_after = _cpu_lines()
        self.load_average = _load_average()
        return False


def report(section, **fields):
    """Prints the one JSON line of a measurement: the section's times, the machine around it, and
    the script's own fields."""
    line = {
        **fields,
        "wallSeconds": section.wall_seconds,
        "cpuSeconds": section.cpu_seconds,
        "procStat": {"before": section.proc_stat_before, "after": section.proc_stat_after, "loadavg": section.load_average},
        "python": sys.version.split()[0],
    }
    print(json.dumps(line), flush=True)


def run_switching(arm, run_cpu, run_io):
    """The main() of the switching_*.py scripts: reads the arguments, runs one part of the
    experiment with the arm's jobs, and prints its line.

    run_cpu(jobs, steps) -> (results, switches): `jobs` CPU-only jobs of `steps` steps each.
    run_io(jobs, waits, fetch) -> switches, or None when the switches happen out of sight (in
        gevent's hub): `jobs` jobs that each call fetch() `waits` times, one round trip to the slow
        server each.
    """
    parser = argparse.ArgumentParser(description=f"the switching experiment, arm {arm}")
    parser.add_argument("--part", choices=["cpu", "io"], required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--steps", type=int, default=0, help="cpu: steps of each job (a switch after each)")
    parser.add_argument("--waits", type=int, default=0, help="io: fetches of each job")
    parser.add_argument("--server", help="io: HOST:PORT of the slow server")
    args = parser.parse_args()

    if args.part == "cpu":
        with Section() as section:
            results, switches = run_cpu(args.jobs, args.steps)
        report(section, experiment="switching", arm=arm, part="cpu", jobs=args.jobs, switches=switches,
               checksum=checksum(results), fetches=[])
        return

    address = parse_address(args.server)
    fetches = []
    with Section() as section:
        def timed_fetch():
            began = section.elapsed()
            fetch(address)
            ended = section.elapsed()
            fetches.append({"seconds": ended - began, "endSeconds": ended})

        switches = run_io(args.jobs, args.waits, timed_fetch)
    report(section, experiment="switching", arm=arm, part="io", jobs=args.jobs, switches=switches,
           checksum=None, fetches=fetches)
