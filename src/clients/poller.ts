// The client's epoll set: one epoll fd and one Buffer that epoll_wait fills with ready events.
// The loops read the events out of that Buffer through a 32-bit view of it (struct epoll_event is
// 12 packed bytes: the mask, then the data, whose low half is the fd), so a wait allocates
// nothing however many events it returns, and reading one costs an array access.
import * as libc from '../libc/index.js';

const EVENTS_PER_WAIT = 1024;
const WORDS_PER_EVENT = libc.EPOLL_EVENT_SIZE / 4;
/** The loops hold the thread; every this many ms they let Node run its timers and signal handlers. */
const YIELD_INTERVAL_MS = 50;

export class Poller {
  private readonly epollFd = libc.epollCreate();
  private readonly events = Buffer.alloc(EVENTS_PER_WAIT * libc.EPOLL_EVENT_SIZE);
  private readonly words = new Uint32Array(this.events.buffer, this.events.byteOffset, EVENTS_PER_WAIT * WORDS_PER_EVENT);
  private lastYieldAt = performance.now();

  add(fd: number, events: number): void {
    libc.epollControl(this.epollFd, libc.EPOLL_CTL_ADD, fd, events);
  }

  modify(fd: number, events: number): void {
    libc.epollControl(this.epollFd, libc.EPOLL_CTL_MOD, fd, events);
  }

  remove(fd: number): void {
    libc.epollControl(this.epollFd, libc.EPOLL_CTL_DEL, fd, 0);
  }

  /** Waits at most timeoutMs; returns how many events are ready (read them with fdAt and maskAt). */
  wait(timeoutMs: number): number {
    return libc.epollWait(this.epollFd, this.events, Math.max(0, Math.ceil(timeoutMs)));
  }

  /** The fd of the i-th ready event (libc.eventFd, without the Buffer read). */
  fdAt(i: number): number {
    return this.words[i * WORDS_PER_EVENT + 1];
  }

  /** The mask (EPOLLIN, ...) of the i-th ready event (libc.eventMask, without the Buffer read). */
  maskAt(i: number): number {
    return this.words[i * WORDS_PER_EVENT];
  }

  /** True about every YIELD_INTERVAL_MS: the caller should then `await yieldToEventLoop()`. */
  dueForYield(now: number): boolean {
    if (now - this.lastYieldAt < YIELD_INTERVAL_MS) return false;
    this.lastYieldAt = now;
    return true;
  }

  close(): void {
    libc.close(this.epollFd);
  }
}

/** Lets Node's event loop run once (a signal handler, a timer of the caller), then resumes. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
