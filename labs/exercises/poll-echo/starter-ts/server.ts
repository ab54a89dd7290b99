// poll-echo starter (TypeScript, libc through koffi): IO multiplexing with poll(2).
//
// The model: one thread waits in poll() for every socket at once (phase 1, waiting for data),
// then recv()s from the sockets the kernel reported ready (phase 2, the copy, which does not wait).
// Blocks in: poll() only; every socket is non-blocking.
// strace -f -c should show: poll, recvfrom, sendto; never select, pselect6 or epoll_wait.
// Limits: every call hands the kernel the whole pollfd array, and it scans all of it.
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
const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');

// Linux x86_64 constants.
const AF_INET = 2, SOCK_STREAM = 1, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_REUSEADDR = 2, MSG_NOSIGNAL = 0x4000;
const EINTR = 4, EAGAIN = 11, ECONNRESET = 104, EPIPE = 32;
const POLLIN = 0x001, POLLOUT = 0x004, POLLERR = 0x008, POLLHUP = 0x010;

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

// struct pollfd { int fd; short events; short revents; }: 8 bytes each. Entry 0 is the listener.
const POLLFD_SIZE = 8;
let fds = Buffer.alloc(64 * POLLFD_SIZE);
let count = 1;
fds.writeInt32LE(listener, 0);
fds.writeInt16LE(POLLIN, 4);
const receiveBuffer = Buffer.alloc(65536);

for (;;) {
  const ready = poll(fds, count, -1); // no timeout: the thread sleeps until a socket is ready
  if (ready === -1 && koffi.errno() === EINTR) continue;
  check('poll', ready);

  // TODO: for each entry i >= 1 whose revents (fds.readUInt16LE(i * 8 + 6)) is not 0:
  //   1. If POLLIN/POLLHUP/POLLERR: n = recv(fd, receiveBuffer, 65536, 0). 0 means the peer
  //      closed; -1 with errno EAGAIN means nothing after all; ECONNRESET means it reset.
  //      Otherwise upper-case bytes 0x61-0x7a (subtract 0x20) and append them to the
  //      connection's output buffer (a copy: receiveBuffer is reused).
  //   2. send(fd, pending, length, MSG_NOSIGNAL) until all is sent or it fails with EAGAIN.
  //   3. Set the entry's events (offset i * 8 + 4): POLLIN, plus POLLOUT while output is pending.
  //   4. A peer that closed (once its output is sent) or reset (ECONNRESET, EPIPE): close(fd)
  //      and remove its entry (move the last entry into its place). The server keeps running.

  if (fds.readUInt16LE(6) !== 0) {
    const fd = accept4(listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      // TODO: add an entry { fd, POLLIN } at index `count` (grow `fds` when it is full) and an
      //       empty output buffer for it. Until then the skeleton hangs up at once:
      close(fd);
    }
  }
}
