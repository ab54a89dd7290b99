// The client's epoll set: one epoll fd and one Buffer that epoll_wait fills with ready events.
// The loops read the events at offsets of that Buffer (libc.eventFd / eventMask), so a wait
// allocates nothing however many events it returns.
import * as libc from '../libc/index.js';

const EVENTS_PER_WAIT = 1024;
/** The loops hold the thread; every this many ms they let Node run its timers and signal handlers. */
const YIELD_INTERVAL_MS = 50;

export class Poller {
  private readonly epollFd = libc.epollCreate();
  private readonly events = Buffer.alloc(EVENTS_PER_WAIT * libc.EPOLL_EVENT_SIZE);
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

  fdAt(i: number): number {
    return libc.eventFd(this.events, i);
  }

  maskAt(i: number): number {
    return libc.eventMask(this.events, i);
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
