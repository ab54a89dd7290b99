// The queue between the pool's acceptor (the main thread) and its worker threads: a ring of
// accepted fds in a SharedArrayBuffer that every thread maps, one producer, many consumers, no
// lock.
//
// Two counters only grow: PUT (fds the acceptor has pushed) and CLAIMED (fds workers have taken);
// PUT - CLAIMED fds wait in the ring. A worker reads the slot at CLAIMED first and then claims it
// by advancing CLAIMED with compareExchange (losing that race to another worker, it tries again).
// Reading before claiming is what lets the acceptor reuse a slot as soon as CLAIMED has passed it.
// The counters wrap at 2^32 and the capacity is a power of two, so `& mask` stays right.
//
// Waiting is Atomics.wait: an idle worker sleeps until PUT moves, the acceptor facing a full ring
// until CLAIMED moves. V8 builds Atomics.wait/notify on a condition variable, which sleeps and
// wakes in futex(2): that is the futex traffic strace shows. A notify with nobody waiting makes
// no system call.

const PUT = 0;
const CLAIMED = 1;
const HEADER_WORDS = 2;

export class FdQueue {
  private readonly words: Int32Array;
  private readonly mask: number;

  /** A queue over `buffer`, made by `FdQueue.create` on one thread and handed to the others. */
  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
    this.mask = this.capacity - 1;
  }

  static create(capacity: number): FdQueue {
    if (!Number.isInteger(capacity) || capacity < 1 || (capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`queue capacity must be a power of two, not ${capacity}`);
    }
    return new FdQueue(new SharedArrayBuffer((HEADER_WORDS + capacity) * Int32Array.BYTES_PER_ELEMENT));
  }

  get capacity(): number {
    return this.words.length - HEADER_WORDS;
  }

  /** fds pushed and not yet taken by a worker. */
  get waiting(): number {
    return (Atomics.load(this.words, PUT) - Atomics.load(this.words, CLAIMED)) | 0;
  }

  /** Acceptor: sleeps while the ring is full (a worker taking an fd wakes it). */
  waitForRoom(): void {
    for (;;) {
      const claimed = Atomics.load(this.words, CLAIMED);
      if (((Atomics.load(this.words, PUT) - claimed) | 0) < this.capacity) return;
      Atomics.wait(this.words, CLAIMED, claimed);
    }
  }

  /** Acceptor (the only producer), after waitForRoom: pushes an fd and wakes one idle worker. */
  put(fd: number): void {
    const put = Atomics.load(this.words, PUT);
    if (((put - Atomics.load(this.words, CLAIMED)) | 0) >= this.capacity) throw new RangeError('put() on a full queue: call waitForRoom() first');
    Atomics.store(this.words, HEADER_WORDS + (put & this.mask), fd);
    Atomics.store(this.words, PUT, (put + 1) | 0);
    Atomics.notify(this.words, PUT, 1);
  }

  /** Worker: the next fd, sleeping until there is one. */
  take(): number {
    for (;;) {
      const claimed = Atomics.load(this.words, CLAIMED);
      if (Atomics.load(this.words, PUT) === claimed) {
        Atomics.wait(this.words, PUT, claimed);
        continue;
      }
      const fd = Atomics.load(this.words, HEADER_WORDS + (claimed & this.mask));
      if (Atomics.compareExchange(this.words, CLAIMED, claimed, (claimed + 1) | 0) === claimed) {
        Atomics.notify(this.words, CLAIMED, 1);
        return fd;
      }
    }
  }
}
