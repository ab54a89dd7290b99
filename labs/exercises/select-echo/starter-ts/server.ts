// select() echo server (starter, TypeScript over koffi): one thread, IO multiplexing.
//
// The model: the server waits in ONE place, select(2), which watches every fd at once and
// returns when some are ready: readable (data, a new client, or the peer closed) or writable
// (room to send a reply the kernel refused earlier). The recv/send that follow do not wait.
// Keep a per-connection output buffer: a connection with pending output goes into the write
// set, the others into the read set. select overwrites the sets: rebuild them before each call.
//
// strace -f -c should show, in steady state: select (or pselect6), recvfrom, sendto.
// No poll, no epoll, no second thread.
// Limits: an fd_set has FD_SETSIZE = 1024 bits: select cannot watch an fd >= 1024. Refuse
// (close) such connections and keep serving the others.
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
const select = libc.func('int select(int nfds, void *readfds, void *writefds, void *exceptfds, void *timeout)');

// Linux x86_64 constants.
const AF_INET = 2, SOCK_STREAM = 1, SOCK_CLOEXEC = 0o2000000, SOL_SOCKET = 1, SO_REUSEADDR = 2;
const SOCK_NONBLOCK = 0o4000; // accept4 flag: the new fd is non-blocking from the start
const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000;
const MSG_NOSIGNAL = 0x4000; // send() to a closed peer fails with EPIPE instead of killing us
const EINTR = 4, EAGAIN = 11, EPIPE = 32, ECONNABORTED = 103, ECONNRESET = 104, ETIMEDOUT = 110;
const PEER_GONE = new Set([EPIPE, ECONNABORTED, ECONNRESET, ETIMEDOUT]);
const FD_SETSIZE = 1024;

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

/** glibc's fd_set: 1024 bits, fd n is bit n % 8 of byte n / 8. */
const fdSet = {
  create: (): Buffer => Buffer.alloc(FD_SETSIZE / 8),
  add: (set: Buffer, fd: number): void => { set[fd >> 3] |= 1 << (fd & 7); },
  has: (set: Buffer, fd: number): boolean => (set[fd >> 3] & (1 << (fd & 7))) !== 0,
};

function main(): void {
  const listener = check('socket', socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  check('setsockopt', setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, one, 4));
  check('bind', bind(listener, anyAddress(PORT), 16));
  check('listen', listen(listener, BACKLOG));
  setNonBlocking(listener);
  writeSync(1, `listening on 0.0.0.0:${PORT}\n`);
  const pending = new Map<number, Buffer | null>(); // fd -> reply bytes not sent yet
  const readable = fdSet.create();
  const writable = fdSet.create();
  for (;;) {
    readable.fill(0);
    writable.fill(0);
    fdSet.add(readable, listener);
    let highest = listener;
    // TODO: add every connection: to `writable` if it has pending bytes, else to `readable`;
    //       keep `highest` the largest fd added.
    if (select(highest + 1, readable, writable, null, null) === -1) continue; // EINTR
    if (fdSet.has(readable, listener)) {
      const fd = accept4(listener, null, null, SOCK_CLOEXEC | SOCK_NONBLOCK);
      // TODO: fd >= FD_SETSIZE: close it at once (log one line the first time) and go on.
      //       Otherwise keep it: pending.set(fd, null) instead of closing it.
      if (fd >= 0) close(fd);
    }
    for (const fd of pending.keys()) {
      // TODO: writable -> send() the pending bytes (MSG_NOSIGNAL), keep what is left.
      //       readable -> recv(): 0 means the peer closed; n > 0 -> upper-case ASCII a-z in
      //       buffer[0..n) and send, keeping a copy of what the kernel did not take.
      //       EAGAIN: wait for select again; PEER_GONE or 0 from recv: close and forget the fd.
    }
  }
}

main();
