# coroutine-echo starter: coroutines with asyncio.
#
# The model: one coroutine per connection, all on ONE thread. Each `await` where the handler
# would wait hands control back to asyncio's event loop, which runs other coroutines and, when
# none can run, sleeps in epoll_wait until a socket is ready.
# Blocks in: epoll_wait only (asyncio picks epoll through selectors.DefaultSelector on Linux).
# strace -f -c should show: epoll_wait, epoll_ctl, recvfrom, sendto; never select, pselect6,
#   poll or ppoll; no thread per connection.
# Limits: one core; any blocking call in a handler (time.sleep, a blocking socket) stalls all.
#
# This skeleton listens and accepts, then hangs up on every client: fill in the TODO.
import asyncio
import os
import socket


async def handle(reader, writer):
    # TODO: until the peer closes (await reader.read(65536) returns b""):
    #   write back data.upper() with writer.write (bytes.upper() changes ASCII a-z only),
    #   then `await writer.drain()`, which waits while the kernel's send buffer is full.
    #   Catch ConnectionResetError, BrokenPipeError, ConnectionAbortedError: a peer that resets
    #   ends only its own connection. Close the writer in every case (try/finally).
    #   Never call a blocking function here: use `await asyncio.sleep(...)`, not time.sleep.
    writer.close()  # until then the skeleton hangs up at once


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
