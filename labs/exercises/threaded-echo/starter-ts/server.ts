// Thread-per-connection echo server (starter, TypeScript over koffi and worker_threads).
//
// The model: the main thread blocks in accept4 and hands each new fd to a NEW thread, which
// blocks in recv and send for that one client and ends when the client leaves. While one
// thread waits, the kernel's scheduler runs the others: every client is served at once.
// A thread here is a Node worker_thread: an OS thread plus its own V8 isolate. This one file is
// both programs: the main thread runs main(), each worker runs serve() on its fd.
//
// strace -f -c should show, in steady state: accept4 and clone3 (or clone) once per connection,
// recvfrom and sendto on the connection threads, futex between threads. No select or poll.
// (Each worker's start-up also shows Node's own epoll calls: they never watch a client socket.)
// Limits: a thread per connection, and a worker costs megabytes and milliseconds to start.
//
// As it stands this file runs but echoes nothing: it accepts each client and closes it at once.
import koffi from 'koffi';
import { writeSync } from 'node:fs';
import { isMainThread, Worker, workerData } from 'node:worker_threads';

// Every thread loads this file again, so every thread declares its own copy of these.
const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int domain, int type, int protocol)');
const setsockopt = libc.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)');
const bind = libc.func('int bind(int fd, void *addr, uint32_t len)');
const listen = libc.func('int listen(int fd, int backlog)');
const accept4 = libc.func('int accept4(int fd, void *addr, void *len, int flags)');
const recv = libc.func('long recv(int fd, void *buf, size_t len, int flags)');
const send = libc.func('long send(int fd, void *buf, size_t len, int flags)');
const close = libc.func('int close(int fd)');

// Linux x86_64 constants.
const AF_INET = 2, SOCK_STREAM = 1, SOCK_CLOEXEC = 0o2000000, SOL_SOCKET = 1, SO_REUSEADDR = 2;
const MSG_NOSIGNAL = 0x4000; // send() to a closed peer fails with EPIPE instead of killing us
const EINTR = 4, EPIPE = 32, ECONNABORTED = 103, ECONNRESET = 104, ETIMEDOUT = 110;
const PEER_GONE = new Set([EPIPE, ECONNABORTED, ECONNRESET, ETIMEDOUT]);

const PORT = Number(process.env.PORT ?? 7000);
const BACKLOG = 511;

/** Throws on -1 with the errno, read at once (the next FFI call may overwrite it). */
function check(name: string, ret: number): number {
  if (ret === -1) throw new Error(`${name} failed: errno ${koffi.errno()}`);
  return ret;
}

/** struct sockaddr_in for 0.0.0.0:port (all interfaces). */
function anyAddress(port: number): Buffer {
  const addr = Buffer.alloc(16);
  addr.writeUInt16LE(AF_INET, 0);
  addr.writeUInt16BE(port, 2); // network byte order; bytes 4..7 stay 0 = 0.0.0.0
  return addr;
}

/** The body of one connection's thread: echo until the client closes, then close the fd. */
function serve(fd: number): void {
  // TODO: with const buffer = Buffer.alloc(65536), loop: n = recv(fd, buffer, buffer.length, 0);
  //       0 means the peer closed, so stop; -1 with errno EINTR: retry; an errno in PEER_GONE:
  //       stop (this client only).
  // TODO: upper-case ASCII a-z in buffer[0..n) (bytes 0x61-0x7a minus 0x20, nothing else),
  //       then send(fd, buffer.subarray(sent), n - sent, MSG_NOSIGNAL) until all n bytes are out.
  close(fd); // every accepted fd must be closed
}

/** One turn of Node's event loop: where finished workers are joined and their memory freed. */
const oneLoopTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function main(): Promise<void> {
  const listener = check('socket', socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  check('setsockopt', setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, one, 4));
  check('bind', bind(listener, anyAddress(PORT), 16));
  check('listen', listen(listener, BACKLOG));
  writeSync(1, `listening on 0.0.0.0:${PORT}\n`);
  for (;;) {
    const fd = accept4(listener, null, null, SOCK_CLOEXEC); // blocks until a client connects
    if (fd >= 0) {
      // TODO: do not serve the client on this thread: start a thread for it with
      //       new Worker(new URL(import.meta.url), { workerData: { fd } })
      //       and go straight back to accept4 (the worker runs serve(fd), see the bottom).
      serve(fd);
    }
    await oneLoopTurn(); // lets Node clean up after workers that have ended
  }
}

if (isMainThread) {
  void main();
} else {
  serve((workerData as { fd: number }).fd);
}
