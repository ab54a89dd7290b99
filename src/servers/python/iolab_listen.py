"""What every course server shares, so that a model's file holds only its mechanism: how it waits.

The same jobs as src/servers/listen.ts, echo.ts and log.ts do for the TypeScript models:

    listener = listen("python-select")  # --host/--port parsed, bound, listening, ready line printed
    conn = accept(listener)             # a connection (TCP_NODELAY set), or None: nothing to take
    conn.sendall(upper(data))           # the echo protocol: a-z upper-cased, every other byte as is
    echo_blocking(conn)                 # one client with blocking calls, until it leaves
    echo_step(conn, out)                # one try on a non-blocking connection, its unsent reply in out

The ready line, on stdout, is what the lab's runtime waits for:
    listening on HOST:PORT model=NAME pid=PID runtime=python-X.Y.Z
Server events go to stderr as one JSON line each (src/shared/server-events.ts), human lines too.

Every accepted connection gets TCP_NODELAY, as the load generator's do: a reply goes out at once.
Without it, Nagle's algorithm holds back the last, short segment of a large reply until the peer
acknowledges the rest, and the peer delays that acknowledgement by up to 40 ms (see the header of
src/servers/echo.ts). It costs one setsockopt per connection.

SIGPIPE: Python starts with SIGPIPE ignored, so a send to a peer that has gone raises
BrokenPipeError instead of killing the server. Leave it so.

This file is named iolab_listen.py, not listen.py or select.py: the script's directory comes first
on sys.path, and a file named like a standard module would shadow that module.
"""
import argparse
import errno
import json
import os
import platform
import resource
import signal
import socket
import sys

BACKLOG = 4096        # the kernel caps it at net.core.somaxconn
RECV_SIZE = 64 * 1024  # at most this much per recv
FD_SETSIZE = 1024      # glibc's fd_set: select can watch fds 0..1023 only

# A peer that goes away (reset, broken pipe, timed out) ends its own connection, never the server.
PEER_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


def log(line):
    """A line for a person, on stderr."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def report(event):
    """A server event (src/shared/server-events.ts): one JSON line on stderr, "event" first."""
    log(json.dumps(event, separators=(",", ":")))


def upper(data):
    """The echo's reply: bytes.upper() changes ASCII a-z only and leaves every other byte as is."""
    return data.upper()


def echo_step(conn, out):
    """One try on one non-blocking connection: send the reply bytes still in `out` (a bytearray the
    kernel has not taken yet), else read and echo. Returns False when the connection is over (the
    peer closed or reset). Never waits: after a readiness call said the socket is ready, recv
    returns at once; in a busy loop, recv and send raise BlockingIOError (EAGAIN) when there is
    nothing to read or no room to send, and the loop asks again on its next sweep."""
    try:
        if not out:  # read more only once the previous reply is out
            data = conn.recv(RECV_SIZE)
            if not data:
                return False
            out += upper(data)
        sent = conn.send(out)  # may take only part of it
        del out[:sent]
    except BlockingIOError:
        pass  # EAGAIN: the caller waits (or asks again) until the socket is ready
    except PEER_GONE:
        return False
    return True


def echo_blocking(conn):
    """Echo one client with blocking calls until it closes or resets, then close its socket. recv
    sleeps through phase 1 (waiting for data) and copies in phase 2; sendall sleeps until the
    kernel took every byte. Who sleeps is the model's business: the one thread (blocking), this
    connection's thread, process or greenlet."""
    try:
        while True:
            data = conn.recv(RECV_SIZE)
            if not data:  # b"": the client closed its side
                return
            conn.sendall(upper(data))
    except PEER_GONE:
        pass  # the client reset: its connection ends, not the server
    finally:
        conn.close()


def listen(model):
    """Parses --host and --port, opens the listening socket and prints the ready line."""
    parser = argparse.ArgumentParser(description=f"the course's {model} echo server")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7000)))
    args = parser.parse_args()
    # Ctrl-C ends the server at once, without a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(BACKLOG)
    port = listener.getsockname()[1]  # port 0: the one the kernel picked
    print(f"listening on {args.host}:{port} model={model} pid={os.getpid()} runtime=python-{platform.python_version()}", flush=True)
    return listener


# accept failing for want of an fd is reported once per streak of failures (a loop that retries
# would flood stderr), and its end is logged with how many times it happened.
_failed_accepts = 0
_first_failure = ""


def accept_failed(error):
    """accept found no free fd (EMFILE: this process's RLIMIT_NOFILE; ENFILE: the system's):
    the connection stays queued in the kernel. Reports "fd-exhausted" at the first of a streak."""
    global _failed_accepts, _first_failure
    _failed_accepts += 1
    if _failed_accepts == 1:
        code = errno.errorcode[error.errno]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        _first_failure = f"accept4 refused a connection: {code} (no free fd: RLIMIT_NOFILE soft={soft} hard={hard})"
        report({"event": "fd-exhausted", "errno": code, "message": _first_failure})


def accept_succeeded():
    """A connection was taken: a streak of failed accepts, if any, is over."""
    global _failed_accepts
    if _failed_accepts > 1:
        log(f"{_first_failure}: happened {_failed_accepts} times, now cleared")
    _failed_accepts = 0


def accept(listener):
    """accept(2) one connection: the new socket, with TCP_NODELAY set. None when there was nothing
    to take: no client queued on a non-blocking listener (EAGAIN), a client that left before we
    took it (ECONNABORTED), or no free fd (EMFILE/ENFILE, see accept_failed)."""
    try:
        conn, _ = listener.accept()
    except (BlockingIOError, ConnectionAbortedError):
        return None
    except OSError as error:
        if error.errno in (errno.EMFILE, errno.ENFILE):
            accept_failed(error)
            return None
        raise
    accept_succeeded()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn
