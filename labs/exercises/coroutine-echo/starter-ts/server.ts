// coroutine-echo starter (TypeScript, libc through koffi): coroutines over an epoll scheduler.
//
// The model: one coroutine per connection, all on ONE thread. A coroutine is a generator: where
// it would block (EAGAIN) it yields a Wait ("resume me once this fd is readable / writable") and
// the scheduler runs the others; once none can run, the scheduler sleeps in epoll_wait until a
// socket is ready (phase 1, for all connections at once). What Python's asyncio gives its users,
// the Scheduler below gives you; you write the coroutines.
// Blocks in: epoll_wait only; every socket is non-blocking.
// strace -f -c should show: epoll_wait, epoll_ctl, recvfrom, sendto; never select, pselect6,
//   poll or ppoll; no thread per connection.
// Limits: one core; a coroutine that makes a blocking call (or never yields) stalls all others.
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
const EINTR = 4, EAGAIN = 11, ECONNRESET = 104, EPIPE = 32, ECONNABORTED = 103;
const EPOLL_CLOEXEC = 0o2000000, EPOLL_CTL_ADD = 1;
const EPOLLIN = 0x001, EPOLLOUT = 0x004, EPOLLERR = 0x008, EPOLLHUP = 0x010, EPOLLRDHUP = 0x2000;
const EPOLLET = 1 << 31;
/** struct epoll_event is packed on x86_64: uint32 events at 0, uint64 data at 4 (we store the fd). */
const EVENT_SIZE = 12;

/** A -1 return becomes an exception naming the call and its errno (read right after the call). */
function check(name: string, ret: number): number {
  if (ret === -1) throw new Error(`${name} failed: errno ${koffi.errno()}`);
  return ret;
}

/** What a coroutine yields where it would block: resume me once `fd` is ready to `direction`. */
interface Wait {
  fd: number;
  direction: 'read' | 'write';
}
type Coroutine = Generator<Wait, void, void>;

/**
 * Runs coroutines until they wait, parks them, and wakes them from epoll_wait. Each fd is added
 * once, for both directions, edge-triggered: a coroutine waits only right after its call failed
 * with EAGAIN, so the next edge is the one it waits for.
 */
class Scheduler {
  private readonly epfd = check('epoll_create1', epoll_create1(EPOLL_CLOEXEC));
  private readonly events = Buffer.alloc(256 * EVENT_SIZE);
  private readonly runQueue: Coroutine[] = [];
  private readonly registered = new Set<number>();
  private readonly readers = new Map<number, Coroutine>();
  private readonly writers = new Map<number, Coroutine>();

  spawn(coroutine: Coroutine): void {
    this.runQueue.push(coroutine);
  }

  /** Closes a fd that coroutines waited on (the next accept may reuse its number). */
  close(fd: number): void {
    this.registered.delete(fd);
    this.readers.delete(fd);
    this.writers.delete(fd);
    close(fd);
  }

  run(): never {
    for (;;) {
      for (let i = 0; i < this.runQueue.length; i++) this.step(this.runQueue[i]);
      this.runQueue.length = 0;
      const n = epoll_wait(this.epfd, this.events, this.events.length / EVENT_SIZE, -1);
      if (n === -1 && koffi.errno() === EINTR) continue;
      check('epoll_wait', n);
      for (let i = 0; i < n; i++) {
        const mask = this.events.readUInt32LE(i * EVENT_SIZE);
        const fd = this.events.readUInt32LE(i * EVENT_SIZE + 4);
        // An error or hang-up wakes both directions: the call the coroutine retries reports it.
        if (mask & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) this.wake(this.readers, fd);
        if (mask & (EPOLLOUT | EPOLLHUP | EPOLLERR)) this.wake(this.writers, fd);
      }
    }
  }

  private wake(waiting: Map<number, Coroutine>, fd: number): void {
    const coroutine = waiting.get(fd);
    if (!coroutine) return;
    waiting.delete(fd);
    this.runQueue.push(coroutine);
  }

  private step(coroutine: Coroutine): void {
    const next = coroutine.next();
    if (next.done) return;
    const { fd, direction } = next.value;
    if (!this.registered.has(fd)) {
      const event = Buffer.alloc(EVENT_SIZE);
      event.writeUInt32LE((EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) >>> 0, 0);
      event.writeUInt32LE(fd, 4);
      check('epoll_ctl', epoll_ctl(this.epfd, EPOLL_CTL_ADD, fd, event));
      this.registered.add(fd);
    }
    (direction === 'read' ? this.readers : this.writers).set(fd, coroutine);
  }
}

const scheduler = new Scheduler();

/** recv(2) as a coroutine sees it: the bytes read (0: the peer closed), waiting where it would block. */
function* receive(fd: number, buffer: Buffer): Generator<Wait, number> {
  for (;;) {
    const n = recv(fd, buffer, buffer.length, 0);
    if (n >= 0) return n;
    const errno = koffi.errno();
    if (errno === EAGAIN) yield { fd, direction: 'read' };
    else if (errno !== EINTR) throw new Error(`recv failed: errno ${errno}`);
  }
}

/** send(2) until the kernel took all of data[0..length]. */
function* sendAll(fd: number, data: Buffer, length: number): Generator<Wait, void> {
  // TODO: loop send(fd, rest, restLength, MSG_NOSIGNAL). On EAGAIN yield { fd, direction:
  //       'write' } and try again; on another errno throw (ECONNRESET, EPIPE: the peer is gone).
  //       If `data` is a buffer other coroutines reuse, copy what is left before you yield.
}

function* serveConnection(fd: number): Coroutine {
  // TODO: with a receive buffer of 65536 bytes: n = yield* receive(fd, buffer); 0 means the
  //       peer closed. Upper-case bytes 0x61-0x7a (subtract 0x20), then yield* sendAll(...).
  //       Again until the peer closes. A peer that resets (an exception) ends only this
  //       coroutine: catch it, and call scheduler.close(fd) in every case (try/finally).
  scheduler.close(fd); // until then the skeleton hangs up at once
}

function* acceptForever(listener: number): Coroutine {
  for (;;) {
    const fd = accept4(listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      scheduler.spawn(serveConnection(fd));
      continue;
    }
    const errno = koffi.errno();
    // EINTR, ECONNABORTED (the client already gave up): try again; EAGAIN (none queued), or
    // EMFILE (no fd left): wait for the next connection.
    if (errno !== EINTR && errno !== ECONNABORTED) yield { fd: listener, direction: 'read' };
  }
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

scheduler.spawn(acceptForever(listener));
scheduler.run();
