"""Coroutines on asyncio's event loop, with streams (python-asyncio; twin: eventloop).

asyncio.start_server() accepts the connections and runs one coroutine, serve(), for each. The
handler reads like blocking code (read, upper-case, write, again), but each `await` where it would
wait hands control back to asyncio's event loop, which runs the other coroutines and, once none
can run, sleeps in its selector, selectors.DefaultSelector (epoll on Linux, level-triggered).
Phase 1 (waiting for data) happens there, in epoll_wait, for every connection at once; phase 2
is the recv the loop makes once a socket is ready, before it hands the data to reader.read().
The loop, the readiness calls and the buffering are the library's, as in Node's net module: a
write is tried at once, and only what the kernel did not take is queued and finished by the
loop; `await writer.drain()` waits while that queue is full (backpressure). asyncio sets
TCP_NODELAY only on sockets made with proto IPPROTO_TCP, and ours has proto 0: serve() sets it.

strace -f -c, steady state: epoll_wait, recvfrom, sendto; per connection accept4, epoll_ctl (add,
delete; modify while a reply waits for room), setsockopt and close. No select, no poll, no clone.
With one connection, two epoll_wait per round trip: one with timeout 0 (the loop has callbacks
ready to run, so it only peeks) and the one it sleeps in; and an mmap, mremap and munmap per
read (asyncio's recv asks for up to 256 KiB, which CPython allocates with mmap before shrinking
it to what came).
Limits: one core; cost grows with READY fds; no fd ceiling beyond RLIMIT_NOFILE. A coroutine that
blocks or computes for long stalls every connection. When accept finds no free fd (EMFILE),
asyncio stops accepting for a second, then tries again.
"""
import asyncio
import errno
import socket

from iolab_listen import PEER_GONE, RECV_SIZE, accept_failed, accept_succeeded, listen, upper


async def serve(reader, writer):
    """Echo one client until it closes, in its own coroutine."""
    accept_succeeded()
    try:
        # Each reply at once (see iolab_listen.py): the one setsockopt of a connection.
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = await reader.read(RECV_SIZE)  # this coroutine waits; the loop runs the others
            if not data:
                return
            writer.write(upper(data))
            await writer.drain()  # waits while the kernel is not taking our replies
    except PEER_GONE:
        pass
    finally:
        writer.close()


def on_loop_error(loop, context):
    """asyncio's accept loop reports an accept that failed for want of an fd here."""
    error = context.get("exception")
    if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
        accept_failed(error)
    else:
        loop.default_exception_handler(context)


async def main():
    listener = listen("python-asyncio")
    asyncio.get_running_loop().set_exception_handler(on_loop_error)
    server = await asyncio.start_server(serve, sock=listener)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
