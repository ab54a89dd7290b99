// selectors-echo starter (TypeScript, libc through koffi): a selector with callbacks over epoll.
//
// The model: Python's selectors.DefaultSelector is epoll on Linux, behind register / modify /
// unregister / select, with a callback kept per socket (key.data). Node has no such module, so
// this file has a small one below (epoll_ctl and epoll_wait). One thread waits in select() for
// every socket at once (phase 1); the ready socket's callback then recv()s (phase 2, no wait).
// Blocks in: epoll_wait only; every socket is non-blocking.
// strace -f -c should show: epoll_wait, epoll_ctl, recvfrom, sendto; never select, pselect6,
//   poll or ppoll.
// Limits: those of epoll; one thread.
//
// This skeleton listens and accepts, then hangs up on every client: fill in the TODOs.
import { writeSync } from 'node:fs';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int domain, int type, int protocol)');
const setsockopt = libc.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)');
const bind = libc.func('int bind(int fd, void *addr, uint32_t len)');
const listen = libc.func('int listen(int fd, int backlog)');
const accept4 = libc.func('int accept4(int fd, void *addr, void *len, int flags)');
const recv = libc.func('long recv(int fd, void *buf, size_t len, int flags)');
const send = libc.func('long send(int fd, void *buf, size_t len, int flags)');
const close = libc.func('int close(int fd)');
const epoll_create1 = libc.func('int epoll_create1(int flags)');
const epoll_ctl = libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)');
const epoll_wait = libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)');

// Linux x86_64 constants.
const AF_INET = 2, SOCK_STREAM = 1, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_REUSEADDR = 2, MSG_NOSIGNAL = 0x4000;
const EINTR = 4, EAGAIN = 11, ECONNRESET = 104, EPIPE = 32;
const EPOLL_CLOEXEC = 0o2000000, EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
/** The selector's events are epoll's: EVENT_READ = EPOLLIN, EVENT_WRITE = EPOLLOUT. */
const EVENT_READ = 0x001, EVENT_WRITE = 0x004;
/** struct epoll_event is packed on x86_64: uint32 events at 0, uint64 data at 4 (we store the fd). */
const EVENT_SIZE = 12;

/** A -1 return becomes an exception naming the call and its errno (read right after the call). */
function check(name: string, ret: number): number {
  if (ret === -1) throw new Error(`${name} failed: errno ${koffi.errno()}`);
  return ret;
}

/** What a selector calls when `fd` is ready; `mask` holds EVENT_READ and/or EVENT_WRITE. */
type Callback = (fd: number, mask: number) => void;

/** A tiny selectors.DefaultSelector: epoll, level-triggered, a callback per fd (its key.data). */
class Selector {
  private readonly epfd = check('epoll_create1', epoll_create1(EPOLL_CLOEXEC));
  private readonly callbacks = new Map<number, Callback>();
  private readonly event = Buffer.alloc(EVENT_SIZE);
  private readonly ready = Buffer.alloc(256 * EVENT_SIZE);

  register(fd: number, events: number, callback: Callback): void {
    this.control(EPOLL_CTL_ADD, fd, events);
    this.callbacks.set(fd, callback);
  }

  modify(fd: number, events: number): void {
    this.control(EPOLL_CTL_MOD, fd, events);
  }

  unregister(fd: number): void {
    this.control(EPOLL_CTL_DEL, fd, 0);
    this.callbacks.delete(fd);
  }

  /** Sleeps until some fds are ready (no timeout), then calls their callbacks. */
  select(): void {
    const n = epoll_wait(this.epfd, this.ready, this.ready.length / EVENT_SIZE, -1);
    if (n === -1 && koffi.errno() === EINTR) return;
    check('epoll_wait', n);
    for (let i = 0; i < n; i++) {
      const fd = this.ready.readUInt32LE(i * EVENT_SIZE + 4);
      // An error or hang-up (EPOLLERR, EPOLLHUP) wakes both directions: the next call reports it.
      let mask = this.ready.readUInt32LE(i * EVENT_SIZE);
      if (mask & ~EVENT_WRITE) mask |= EVENT_READ;
      if (mask & ~EVENT_READ) mask |= EVENT_WRITE;
      this.callbacks.get(fd)?.(fd, mask & (EVENT_READ | EVENT_WRITE));
    }
  }

  private control(op: number, fd: number, events: number): void {
    this.event.writeUInt32LE(events, 0);
    this.event.writeUInt32LE(fd, 4);
    check('epoll_ctl', epoll_ctl(this.epfd, op, fd, this.event));
  }
}

const sel = new Selector();
const receiveBuffer = Buffer.alloc(65536);

function onConnectionEvent(fd: number, mask: number): void {
  // TODO:
  //   1. If mask & EVENT_READ: n = recv(fd, receiveBuffer, 65536, 0). 0 means the peer closed;
  //      -1 with errno EAGAIN means nothing after all; ECONNRESET means it reset. Otherwise
  //      upper-case bytes 0x61-0x7a (subtract 0x20) and append them to this connection's
  //      output buffer (a copy: receiveBuffer is reused).
  //   2. send(fd, pending, length, MSG_NOSIGNAL) until all is sent or it fails with EAGAIN.
  //   3. sel.modify(fd, EVENT_READ | EVENT_WRITE) while output is pending, EVENT_READ again
  //      once it is sent; only when this changes (each call is a syscall).
  //   4. A peer that closed (once its output is sent) or reset (ECONNRESET, EPIPE):
  //      sel.unregister(fd), close(fd), forget it. The server keeps running.
}

function accept(listener: number, _mask: number): void {
  const fd = accept4(listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return; // the client already gave up
  // TODO: sel.register(fd, EVENT_READ, onConnectionEvent) and give it an empty output buffer.
  //       Until then the skeleton hangs up at once:
  close(fd);
}

const port = Number(process.env.PORT ?? 7000);
const listener = check('socket', socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
const one = Buffer.alloc(4);
one.writeInt32LE(1);
check('setsockopt', setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, one, 4));
const address = Buffer.alloc(16); // struct sockaddr_in; sin_addr 0.0.0.0: all interfaces
address.writeUInt16LE(AF_INET, 0);
address.writeUInt16BE(port, 2);
check('bind', bind(listener, address, 16));
check('listen', listen(listener, 511));
sel.register(listener, EVENT_READ, accept);
writeSync(1, `listening on 0.0.0.0:${port}\n`);

for (;;) sel.select();
