// The production event loop: Node's own net module, over libuv. This is what students meet in real
// code (Node, and the same loop under many other runtimes): the loop, the readiness calls and the
// buffering are the library's; the program only says what to do with each chunk of data.
//
// libuv's loop on Linux is level-triggered epoll: every socket is registered with epoll_ctl
// (EPOLL_CTL_ADD when reading starts, EPOLL_CTL_MOD to add EPOLLOUT while a write waits for room,
// EPOLL_CTL_DEL before close), and the loop blocks in epoll_pwait (not epoll_wait) with the
// timeout of its nearest timer. Phase 1 happens there; phase 2 is the read. On a stream socket
// libuv calls read(2) and write(2), not recvfrom/sendto: it reads into a 64 KiB buffer and reads
// again only while reads come back full (no EAGAIN read per event), and a reply is written at once
// from inside socket.write(); only what the kernel did not take is queued and finished by the loop.
// Only when several chunks wait for one socket at once does Node gather them into one writev(2)
// (no run traced while writing this model showed one).
//
// Backpressure is the program's job, as in every event loop: write() returns false once the queue
// is full, and this server stops reading that socket (pause) until 'drain'. A peer's FIN gets a
// shutdown(SHUT_WR) once the replies are out, then close.
//
// Syscalls in steady state: epoll_pwait, read, write; epoll_ctl per connection (add, delete);
// accept4, shutdown and close per connection; futex from V8's helper threads.
// Limits: one thread; cost grows with READY fds; no fd ceiling beyond RLIMIT_NOFILE. A callback
// that blocks or computes for long stalls every connection.
import { createServer, type Socket } from 'node:net';
import { upperCaseInPlace } from './echo.js';
import { log, OnceReporter } from './log.js';
import type { TypeScriptModel } from './model.js';

const acceptFailures = new OnceReporter();

function echo(socket: Socket): void {
  socket.setNoDelay(true); // as every model's connection (see echo.ts)
  socket.on('data', (chunk: Buffer) => {
    upperCaseInPlace(chunk, chunk.length);
    // Without the pause, a client that sends but does not read would grow this queue without bound.
    if (!socket.write(chunk)) socket.pause();
  });
  socket.on('drain', () => socket.resume());
  // A reset or a broken pipe: Node destroys this socket after 'error'; an unhandled 'error' would
  // end the whole process instead.
  socket.on('error', () => {});
}

export const eventloop: TypeScriptModel = {
  name: 'eventloop',
  summary: "Node's net module: libuv's event loop (level-triggered epoll_pwait, read/write)",
  traits: {
    waits: 'runtime-loop',
    perConnection: 'none',
    concurrency: 'all',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: null,
    coroutines: false,
  },
  fingerprint: {
    waitsIn: ['epoll_pwait', 'epoll_wait'],
    required: [['epoll_pwait', 'epoll_wait'], ['epoll_ctl'], ['read'], ['write', 'writev']],
    forbidden: ['select', 'pselect6', 'poll', 'ppoll', 'recvfrom', 'sendto'],
  },
  serve(listener) {
    const server = createServer(echo);
    server.on('connection', () => acceptFailures.cleared());
    // libuv reports an accept that failed (EMFILE: no free fd) as an error of the server.
    server.on('error', (error: NodeJS.ErrnoException) => {
      const message = `eventloop: accept failed: ${error.code ?? error.message}`;
      if (error.code === 'EMFILE' || error.code === 'ENFILE') acceptFailures.happened({ event: 'fd-exhausted', errno: error.code, message });
      else log(message);
    });
    server.listen({ fd: listener });
  },
};
