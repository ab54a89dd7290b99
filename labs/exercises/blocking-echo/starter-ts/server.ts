// Blocking echo server (starter, TypeScript over koffi): one thread, one client at a time.
//
// The model: every call waits until it can finish. accept4 blocks until a client connects;
// recv blocks until bytes arrive; send blocks until the kernel has taken the bytes (it may take
// only part of them: send the rest). While you serve one client, the next one waits in the
// kernel's accept queue. Node's event loop never runs: the main thread sits in these calls.
//
// strace -f -c should show, in steady state: accept4, recvfrom, sendto (and close).
// No select, poll or epoll, and no clone (no new thread).
// Limits: one client at a time; an idle client blocks everyone else.
//
// As it stands this file runs but echoes nothing: it accepts each client and closes it at once.
import koffi from 'koffi';
import { writeSync } from 'node:fs';

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

/** Serve one client until it closes, then close its fd. */
function serve(fd: number): void {
  // TODO: with const buffer = Buffer.alloc(65536), loop: n = recv(fd, buffer, buffer.length, 0); 0 means the peer closed, so stop;
  //       -1 with errno EINTR: retry; an errno in PEER_GONE: stop (this client only).
  // TODO: upper-case ASCII a-z in buffer[0..n) (bytes 0x61-0x7a minus 0x20, nothing else),
  //       then send(fd, buffer.subarray(sent), n - sent, MSG_NOSIGNAL) until all n bytes are out.
  close(fd); // every accepted fd must be closed
}

function main(): void {
  const listener = check('socket', socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  check('setsockopt', setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, one, 4));
  check('bind', bind(listener, anyAddress(PORT), 16));
  check('listen', listen(listener, BACKLOG));
  writeSync(1, `listening on 0.0.0.0:${PORT}\n`);
  for (;;) {
    const fd = accept4(listener, null, null, SOCK_CLOEXEC); // blocks until a client connects
    if (fd === -1) continue; // EINTR, or a client that left before we took it
    serve(fd);
  }
}

main();
