// epoll-echo starter (TypeScript, libc through koffi): IO multiplexing with epoll, level-triggered.
//
// The model: each socket is registered once with the kernel (epoll_ctl); epoll_wait sleeps until
// some are ready and returns only those (phase 1, waiting for data); the recv() that follows
// copies the data (phase 2) and does not wait.
// Blocks in: epoll_wait only; every socket is non-blocking.
// strace -f -c should show: epoll_wait, epoll_ctl, recvfrom, sendto; never select, pselect6,
//   poll or ppoll.
// Limits: Linux only; the cost grows with READY fds, not with watched ones.
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
const EPOLLIN = 0x001, EPOLLOUT = 0x004, EPOLLERR = 0x008, EPOLLHUP = 0x010;
/** struct epoll_event is packed on x86_64: uint32 events at 0, uint64 data at 4 (we store the fd). */
const EVENT_SIZE = 12;

/** A -1 return becomes an exception naming the call and its errno (read right after the call). */
function check(name: string, ret: number): number {
  if (ret === -1) throw new Error(`${name} failed: errno ${koffi.errno()}`);
  return ret;
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
writeSync(1, `listening on 0.0.0.0:${port}\n`);

const epfd = check('epoll_create1', epoll_create1(EPOLL_CLOEXEC));
const controlEvent = Buffer.alloc(EVENT_SIZE);
/** epoll_ctl(2) with the fd itself as the event's data. */
function control(op: number, fd: number, events: number): void {
  controlEvent.writeUInt32LE(events >>> 0, 0);
  controlEvent.writeUInt32LE(fd, 4);
  check('epoll_ctl', epoll_ctl(epfd, op, fd, controlEvent));
}
control(EPOLL_CTL_ADD, listener, EPOLLIN);

const MAX_EVENTS = 256;
const events = Buffer.alloc(MAX_EVENTS * EVENT_SIZE);
const receiveBuffer = Buffer.alloc(65536);

/** Connection `fd` is ready for `mask` (EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLERR bits). */
function onEvent(fd: number, mask: number): void {
  // TODO:
  //   1. If EPOLLIN/EPOLLHUP/EPOLLERR: n = recv(fd, receiveBuffer, 65536, 0). 0 means the peer
  //      closed; -1 with errno EAGAIN means nothing after all; ECONNRESET means it reset.
  //      Otherwise upper-case bytes 0x61-0x7a (subtract 0x20) and append them to the
  //      connection's output buffer (a copy: receiveBuffer is reused).
  //   2. send(fd, pending, length, MSG_NOSIGNAL) until all is sent or it fails with EAGAIN.
  //   3. control(EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLOUT) while output is pending, EPOLLIN again
  //      once it is sent; only when this changes (each call is a syscall).
  //   4. A peer that closed (once its output is sent) or reset (ECONNRESET, EPIPE):
  //      control(EPOLL_CTL_DEL, fd, 0), close(fd), forget it. The server keeps running.
}

for (;;) {
  const ready = epoll_wait(epfd, events, MAX_EVENTS, -1); // no timeout: sleeps until one is ready
  if (ready === -1 && koffi.errno() === EINTR) continue;
  check('epoll_wait', ready);
  for (let i = 0; i < ready; i++) {
    const mask = events.readUInt32LE(i * EVENT_SIZE);
    const fd = events.readUInt32LE(i * EVENT_SIZE + 4);
    if (fd !== listener) {
      onEvent(fd, mask);
      continue;
    }
    const client = accept4(listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client >= 0) {
      // TODO: control(EPOLL_CTL_ADD, client, EPOLLIN) and give it an empty output buffer.
      //       Until then the skeleton hangs up at once:
      close(client);
    }
  }
}
