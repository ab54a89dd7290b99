# coroutine-echo, reference solution: coroutines with asyncio.
#
# The model: one coroutine per connection, all on ONE thread. The handler reads like blocking
# code (read, upper-case, write, again), but each `await` where it would wait hands control
# back to asyncio's event loop, which runs other coroutines and, once none can run, sleeps in
# epoll_wait until a socket is ready (phase 1, for all connections at once); the recv that
# follows is phase 2. A switch happens only at an await: no locks needed, no thread per client.
# Blocks in: epoll_wait only (asyncio picks epoll through selectors.DefaultSelector on Linux).
# strace -f -c shows: epoll_wait, recvfrom, sendto, epoll_ctl (per connection, and around each
#   wait for writability); never select, pselect6, poll or ppoll; no clone (no threads).
# Limits: one core; a handler that makes a blocking call (time.sleep, a blocking socket, heavy
#   computation) stalls every other connection until it returns.
import asyncio
import os
import socket


async def handle(reader, writer):
    try:
        while data := await reader.read(65536):  # b"": the peer closed its side
            writer.write(data.upper())  # bytes.upper() changes ASCII a-z only
            await writer.drain()        # waits (yields) while the send buffer is full
    except OSError:                     # ConnectionResetError, BrokenPipeError, ...: peer gone
        pass
    finally:
        writer.close()                  # sends what is still buffered, then closes the socket


async def main():
    port = int(os.environ.get("PORT", "7000"))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.setblocking(False)
    # asyncio calls listen() itself, with this backlog; handle() runs once per connection.
    server = await asyncio.start_server(handle, sock=listener, backlog=511)
    print(f"listening on 0.0.0.0:{port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
