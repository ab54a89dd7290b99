// The scheduler under the coroutine model (what gevent calls its hub), and the socket calls a
// coroutine makes through it (gevent's patched socket module).
//
// A coroutine is a generator. It runs until it would block; instead of blocking it yields a Wait
// (this fd, readable or writable) and the scheduler parks it. Once the run queue is empty, one
// epoll_wait tells which fds became ready, their coroutines go back on the run queue, and the
// queue runs in order, each coroutine until its next Wait (round robin). Nothing else switches:
// no timer, no preemption.
//
// epoll_ctl stays at one call per fd: a fd is added the first time a coroutine waits on it, for
// both directions and edge-triggered, and never changed; close() below drops it (as the kernel
// does). That is safe because a coroutine parks only right after its call failed with EAGAIN, so
// the next edge (new data, send buffer space freed) is the one it waits for; an edge that comes
// while nobody waits is dropped, and the coroutine sees its cause when it makes its call again.
// Level-triggered, a fd registered for EPOLLOUT would wake every epoll_wait while its socket is
// writable; asyncio avoids that by adding and removing the fd around each wait, which costs two
// epoll_ctl per wait, that is per round trip.
import { acceptConnection, closeQuietly } from './echo.js';
import * as libc from '../libc/index.js';

/** What a coroutine yields when it would block: resume me once `fd` is ready to `direction`. */
export interface Wait {
  fd: number;
  direction: 'read' | 'write';
}

export type Coroutine = Generator<Wait, void, void>;

const MAX_EVENTS = 256;
const REGISTERED = libc.EPOLLIN | libc.EPOLLOUT | libc.EPOLLRDHUP | libc.EPOLLET;
// An error or a hang-up wakes both directions: the call the coroutine retries reports it.
const WAKES_READER = libc.EPOLLIN | libc.EPOLLRDHUP | libc.EPOLLHUP | libc.EPOLLERR;
const WAKES_WRITER = libc.EPOLLOUT | libc.EPOLLHUP | libc.EPOLLERR;

export class Scheduler {
  private readonly epfd = libc.epollCreate();
  private readonly events = Buffer.alloc(MAX_EVENTS * libc.EPOLL_EVENT_SIZE);
  private readonly runQueue: Coroutine[] = [];
  private readonly registered = new Set<number>();
  private readonly readers = new Map<number, Coroutine>();
  private readonly writers = new Map<number, Coroutine>();

  spawn(coroutine: Coroutine): void {
    this.runQueue.push(coroutine);
  }

  /** Closes a fd coroutines waited on. Forgetting it matters: the next accept may reuse its number. */
  close(fd: number): void {
    this.registered.delete(fd);
    this.readers.delete(fd);
    this.writers.delete(fd);
    closeQuietly(fd);
  }

  run(): never {
    for (;;) {
      // Coroutines spawned while the queue runs join its end and run in the same pass.
      for (let i = 0; i < this.runQueue.length; i++) this.step(this.runQueue[i]);
      this.runQueue.length = 0;

      const ready = libc.epollWait(this.epfd, this.events, -1);
      for (let i = 0; i < ready; i++) {
        const fd = libc.eventFd(this.events, i);
        const mask = libc.eventMask(this.events, i);
        if (mask & WAKES_READER) this.wake(this.readers, fd);
        if (mask & WAKES_WRITER) this.wake(this.writers, fd);
      }
    }
  }

  private wake(waiting: Map<number, Coroutine>, fd: number): void {
    const coroutine = waiting.get(fd);
    if (!coroutine) return;
    waiting.delete(fd);
    this.runQueue.push(coroutine);
  }

  /** Runs a coroutine until it waits (then parks it) or ends. */
  private step(coroutine: Coroutine): void {
    const next = coroutine.next();
    if (next.done) return;
    const { fd, direction } = next.value;
    if (!this.registered.has(fd)) {
      libc.epollControl(this.epfd, libc.EPOLL_CTL_ADD, fd, REGISTERED);
      this.registered.add(fd);
    }
    (direction === 'read' ? this.readers : this.writers).set(fd, coroutine);
  }
}

// The calls a coroutine makes with `yield*`: each tries the non-blocking call and, where it would
// block, waits for the scheduler to resume it; to the caller it looks like a blocking call.

/** accept4(2): the next connection's fd (non-blocking). */
export function* accept(listener: number): Generator<Wait, number> {
  for (;;) {
    const fd = acceptConnection(listener, libc.SOCK_NONBLOCK);
    if (fd !== libc.WOULD_BLOCK) return fd;
    yield { fd: listener, direction: 'read' };
  }
}

/** recv(2) into `buffer`: the bytes read, 0 when the peer closed. */
export function* recv(fd: number, buffer: Buffer): Generator<Wait, number> {
  for (;;) {
    const received = libc.recv(fd, buffer);
    if (received !== libc.WOULD_BLOCK) return received;
    yield { fd, direction: 'read' };
  }
}

/** send(2) until the kernel took buffer[0..length]. */
export function* sendAll(fd: number, buffer: Buffer, length: number): Generator<Wait, void> {
  let source = buffer;
  let sent = 0;
  while (sent < length) {
    const n = libc.send(fd, source, sent, length - sent);
    if (n !== libc.WOULD_BLOCK) {
      sent += n;
      continue;
    }
    // Other coroutines reuse the shared receive buffer while this one is parked: keep a copy.
    if (source === buffer) {
      source = Buffer.from(buffer.subarray(sent, length));
      length -= sent;
      sent = 0;
    }
    yield { fd, direction: 'write' };
  }
}
