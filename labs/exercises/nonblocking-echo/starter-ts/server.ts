// Non-blocking echo server with busy polling (starter, TypeScript over koffi).
//
// The model: no call ever waits. On a non-blocking fd (O_NONBLOCK) accept4 and recv return at
// once, with a connection or data if there is one, otherwise -1 with errno EAGAIN. One loop
// asks the listener and then every connection, again and again, with no sleep and no
// select/poll/epoll. send may take only part of a reply, or fail with EAGAIN: keep what is left
// per connection and retry it on the next sweep.
//
// strace -f -c should show, in steady state: accept4 and recvfrom in huge numbers, nearly all
// failing with EAGAIN (the "EAGAIN storm"), sendto when there is something to echo.
// Limits: one core at ~100% even when every client is idle; latency grows with the sweep.
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
const fcntl = libc.func('int fcntl(int fd, int cmd, ...)'); // variadic: fcntl(fd, cmd, 'int', value)

// Linux x86_64 constants.
const AF_INET = 2, SOCK_STREAM = 1, SOCK_CLOEXEC = 0o2000000, SOL_SOCKET = 1, SO_REUSEADDR = 2;
const SOCK_NONBLOCK = 0o4000; // accept4 flag: the new fd is non-blocking from the start
const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000;
const MSG_NOSIGNAL = 0x4000; // send() to a closed peer fails with EPIPE instead of killing us
const EINTR = 4, EAGAIN = 11, EPIPE = 32, ECONNABORTED = 103, ECONNRESET = 104, ETIMEDOUT = 110;
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

function setNonBlocking(fd: number): void {
  const flags = check('fcntl', fcntl(fd, F_GETFL, 'int', 0));
  check('fcntl', fcntl(fd, F_SETFL, 'int', flags | O_NONBLOCK));
}

/** A connection and the reply bytes the kernel has not taken yet. */
interface Connection {
  fd: number;
  pending: Buffer | null;
}

function main(): void {
  const listener = check('socket', socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  check('setsockopt', setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, one, 4));
  check('bind', bind(listener, anyAddress(PORT), 16));
  check('listen', listen(listener, BACKLOG));
  // TODO: make the listener non-blocking: setNonBlocking(listener).
  writeSync(1, `listening on 0.0.0.0:${PORT}\n`);
  const connections: Connection[] = [];
  for (;;) { // the busy loop: no sleep, no select
    // TODO: accept4 on the non-blocking listener with SOCK_CLOEXEC | SOCK_NONBLOCK; -1 with
    //       errno EAGAIN means nobody is waiting.
    const fd = accept4(listener, null, null, SOCK_CLOEXEC); // blocks for now
    // TODO: instead of closing it, add { fd, pending: null } to `connections`.
    if (fd >= 0) close(fd);
    for (const connection of connections) {
      // TODO: if connection.pending is set, send() it and keep what is left; else recv():
      //       0 means the peer closed; n > 0 -> upper-case ASCII a-z in buffer[0..n) and send
      //       (MSG_NOSIGNAL), keeping a copy of what the kernel did not take in pending.
      //       EAGAIN: try again next sweep; EINTR: retry; PEER_GONE or 0 from recv: close the
      //       fd and remove the connection.
    }
  }
}

main();
