// io_uring through its raw system calls: the two shared rings, the memory the kernel writes
// into, and the layouts of a submission (SQE) and a completion (CQE) from <linux/io_uring.h>
// (offsets checked with offsetof on x86_64). liburing would hide all this, but Debian's 2.3 keeps
// its SQE helpers as inline functions in headers, which an FFI cannot call; the kernel interface
// itself is small: io_uring_setup once, two mmaps, then io_uring_enter.
//
// The rings are shared memory, each with one producer. We write SQEs and publish them by moving
// the SQ tail; the kernel consumes them and moves the SQ head. The kernel writes CQEs and moves
// the CQ tail; we read them and move the CQ head. An index is read with Atomics.load (acquire)
// before the entries it covers, and written with Atomics.store (release) after them; Atomics are
// sequentially consistent, stronger than needed and still cheap.
//
// Everything the kernel keeps a pointer to while an operation is in flight (the rings, each
// receive/send buffer) is mmapped: a JS Buffer could be moved or freed by the garbage collector.
import { readFileSync } from 'node:fs';
import koffi from 'koffi';
import { ErrnoError, errnoCode, RuntimeUnavailableError } from '../errors.js';
import { EAGAIN, EINTR, libc } from './call.js';

// glibc has no wrappers for io_uring_*; syscall(2) is an assembly stub that moves its integer
// arguments into registers, so a fixed prototype per call is the same call as `long syscall(long,
// ...)`, without koffi preparing a variadic call each time (measured: 0.7 µs instead of 1.3).
const c = {
  io_uring_setup: libc.func('syscall', 'long', ['long', 'uint32', 'void *']),
  io_uring_enter: libc.func('syscall', 'long', ['long', 'int', 'uint32', 'uint32', 'uint32', 'void *', 'size_t']),
  mmap: libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)'),
  munmap: libc.func('int munmap(uintptr_t addr, size_t length)'),
  close: libc.func('int close(int fd)'),
};

// The same numbers on every architecture but alpha (io_uring came after the syscall tables were unified).
const SYS_io_uring_setup = 425;
const SYS_io_uring_enter = 426;

export const IORING_OP_ACCEPT = 13;
export const IORING_OP_CLOSE = 19;
export const IORING_OP_SEND = 26;
export const IORING_OP_RECV = 27;

/** SQE flags (the byte after the opcode). */
export const IOSQE_IO_LINK = 1 << 2;
export const IOSQE_CQE_SKIP_SUCCESS = 1 << 6;

const IORING_SETUP_CQSIZE = 1 << 3;
/** Only one thread submits (the kernel can skip some locking; Linux >= 6.0). */
export const IORING_SETUP_SINGLE_ISSUER = 1 << 12;
/**
 * Completion work (the copy of a RECV that was waiting for data) runs only when the submitting
 * thread waits in io_uring_enter, in one batch, instead of interrupting it each time (Linux >= 6.1).
 */
export const IORING_SETUP_DEFER_TASKRUN = 1 << 13;
const IORING_ENTER_GETEVENTS = 1 << 0;
const IORING_ENTER_EXT_ARG = 1 << 3;
/** struct io_uring_getevents_arg: sigmask, sigmask_sz, pad, ts (a pointer to a __kernel_timespec). */
const GETEVENTS_ARG_SIZE = 24;
const TIMESPEC_OFFSET = 32;
const IORING_OFF_SQES = 0x10000000;
/** The features this file relies on, each with the reason. */
const REQUIRED_FEATURES = [
  { bit: 1 << 0, name: 'IORING_FEAT_SINGLE_MMAP', why: 'one mapping for both rings (Linux >= 5.4)' },
  { bit: 1 << 1, name: 'IORING_FEAT_NODROP', why: 'completions are never dropped when the CQ ring is full (Linux >= 5.5)' },
  { bit: 1 << 5, name: 'IORING_FEAT_FAST_POLL', why: 'a recv with no data waits on the socket, not in an io-wq thread each (Linux >= 5.7)' },
];

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MAP_POPULATE = 0x8000;
const MAP_FAILED = 0xffffffffffffffffn;
const EBUSY = 16;
const ETIME = 62;

const PARAMS_SIZE = 120;
const SQE_SIZE = 64;
const CQE_SIZE = 16;
const TWO_TO_32 = 2 ** 32;

/** Memory the kernel may hold a pointer to: its address (for SQEs) and an ArrayBuffer over it (for us). */
export interface KernelMemory {
  address: number;
  bytes: ArrayBuffer;
}

function mmap(what: string, length: number, prot: number, flags: number, fd: number, offset: number): KernelMemory {
  const pointer = c.mmap(null, length, prot, flags, fd, offset);
  const address = koffi.address(pointer) as bigint;
  if (address === MAP_FAILED) throw new ErrnoError('mmap', koffi.errno(), what);
  return { address: Number(address), bytes: koffi.view(pointer, length) };
}

/** Private anonymous memory: pages are committed only when first written (by us or the kernel). */
export function mapMemory(length: number): KernelMemory {
  return mmap(`${length} bytes of buffers`, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

/**
 * Gives memory from mapMemory back. Only once no operation in flight points into it: the kernel
 * would write into whatever is mapped at that address next. Views over it must not be used again.
 */
export function unmapMemory(memory: KernelMemory): void {
  if (c.munmap(memory.address, memory.bytes.byteLength) === -1) throw new ErrnoError('munmap', koffi.errno());
}

/** One line that says why io_uring_setup failed on this machine, for someone who can fix it. */
function explainSetupFailure(errno: number): string {
  const code = errnoCode(errno);
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return null;
    }
  };
  const disabled = read('/proc/sys/kernel/io_uring_disabled')?.trim();
  const seccomp = /^Seccomp:\s*(\d)/m.exec(read('/proc/self/status') ?? '')?.[1];
  let why: string;
  if (code === 'EPERM' && disabled === '2') why = 'io_uring is disabled on this machine (kernel.io_uring_disabled=2)';
  else if (code === 'EPERM' && disabled === '1') why = 'io_uring is allowed only to root and kernel.io_uring_group here (kernel.io_uring_disabled=1)';
  else if ((code === 'EPERM' || code === 'ENOSYS') && seccomp === '2') {
    why = "blocked by this process's seccomp filter (newer Docker default profiles block io_uring: allow io_uring_setup, io_uring_enter and io_uring_register)";
  } else if (code === 'EPERM') why = 'refused by the kernel (kernel.io_uring_disabled, a seccomp profile or a security module)';
  else if (code === 'ENOSYS') why = 'this kernel has no io_uring (Linux >= 5.1 with CONFIG_IO_URING)';
  else if (code === 'ENOMEM') why = 'no memory for the rings (kernels before 5.12 charge them to RLIMIT_MEMLOCK: raise ulimit -l)';
  else why = `errno ${errno}`;
  return `io_uring_setup failed: ${code}: ${why}`;
}

/** An io_uring instance: the SQ and CQ rings and the SQE array, mapped into this process. */
export class Ring {
  readonly fd: number;
  readonly submissionEntries: number;
  readonly completionEntries: number;
  /** The SQ ring and CQ ring share one mapping (IORING_FEAT_SINGLE_MMAP); indexes in 32-bit words. */
  private readonly ring: Uint32Array;
  private readonly signedRing: Int32Array;
  private readonly sqes: Uint32Array;
  private readonly sqHead: number;
  private readonly sqTail: number;
  private readonly sqMask: number;
  private readonly cqHead: number;
  private readonly cqTail: number;
  private readonly cqMask: number;
  private readonly cqes: number;
  /** Our copy of the SQ tail: SQEs written but not yet published. Only we write it. */
  private tail = 0;
  private readonly mappings: KernelMemory[];
  /** For enter with a timeout: a getevents_arg at 0 and the timespec it points to at TIMESPEC_OFFSET. */
  private waitArgument: { memory: KernelMemory; words: Uint32Array; bytes: Uint8Array } | null = null;

  /**
   * io_uring_setup(2) with `entries` SQE slots (what may be written between two io_uring_enter
   * calls; operations in flight are not limited by it) and room for `completionEntries`
   * completions not yet read, plus `setupFlags` (IORING_SETUP_*; a kernel that does not know one
   * fails with EINVAL). A RuntimeUnavailableError when this machine does not allow io_uring.
   */
  constructor(entries: number, completionEntries: number, setupFlags = 0) {
    // The kernel reads and fills the params during the call only: a Buffer is fine here.
    const params = Buffer.alloc(PARAMS_SIZE);
    params.writeUInt32LE(completionEntries, 4);
    params.writeUInt32LE(IORING_SETUP_CQSIZE | setupFlags, 8);
    const fd = c.io_uring_setup(SYS_io_uring_setup, entries, params);
    if (fd === -1) throw new RuntimeUnavailableError(explainSetupFailure(koffi.errno()));
    this.fd = fd;

    const features = params.readUInt32LE(20);
    const missing = REQUIRED_FEATURES.filter((f) => (features & f.bit) === 0);
    if (missing.length > 0) {
      throw new RuntimeUnavailableError(`io_uring on this kernel lacks ${missing.map((f) => `${f.name} (${f.why})`).join(', ')}`);
    }
    this.submissionEntries = params.readUInt32LE(0);
    this.completionEntries = params.readUInt32LE(4);
    const sq = (field: number) => params.readUInt32LE(40 + field);
    const cq = (field: number) => params.readUInt32LE(80 + field);
    const sqArray = sq(24);
    const ringBytes = Math.max(sqArray + this.submissionEntries * 4, cq(20) + this.completionEntries * CQE_SIZE);
    const rings = mmap('the SQ and CQ rings', ringBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    const sqes = mmap('the SQE array', this.submissionEntries * SQE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    this.mappings = [rings, sqes];

    this.ring = new Uint32Array(rings.bytes);
    this.signedRing = new Int32Array(rings.bytes);
    this.sqes = new Uint32Array(sqes.bytes);
    [this.sqHead, this.sqTail, this.sqMask] = [sq(0) / 4, sq(4) / 4, this.ring[sq(8) / 4]];
    [this.cqHead, this.cqTail, this.cqMask, this.cqes] = [cq(0) / 4, cq(4) / 4, this.ring[cq(8) / 4], cq(20) / 4];
    // The SQ array maps ring slots to SQE indexes; slot i always names SQE i, as liburing does.
    for (let i = 0; i < this.submissionEntries; i++) this.ring[sqArray / 4 + i] = i;
    this.tail = Atomics.load(this.ring, this.sqTail);
  }

  /** SQEs written and not yet taken by the kernel. */
  private unsubmitted(): number {
    return (this.tail - Atomics.load(this.ring, this.sqHead)) >>> 0;
  }

  /**
   * Writes one SQE: `opcode` on `fd` with the memory at `address` (0: none) of `length` bytes,
   * `opFlags` (msg_flags, accept_flags, ...) and `userData` (an integer < 2^53) that its
   * completion will carry back, and `sqeFlags` (IOSQE_*). Published to the kernel by the next
   * `enter`; when the SQ ring is full, the ones already written are submitted first.
   */
  prepare(opcode: number, fd: number, address: number, length: number, opFlags: number, userData: number, sqeFlags = 0): void {
    while (this.unsubmitted() === this.submissionEntries) this.enter(0);
    const s = this.sqes;
    const w = (this.tail & this.sqMask) * (SQE_SIZE / 4);
    s[w] = opcode | (sqeFlags << 8); // ioprio: 0
    s[w + 1] = fd;
    s[w + 2] = 0; // off / addr2
    s[w + 3] = 0;
    s[w + 4] = address >>> 0;
    s[w + 5] = Math.floor(address / TWO_TO_32);
    s[w + 6] = length;
    s[w + 7] = opFlags;
    s[w + 8] = userData >>> 0;
    s[w + 9] = Math.floor(userData / TWO_TO_32);
    s.fill(0, w + 10, w + 16);
    this.tail = (this.tail + 1) >>> 0;
  }

  /**
   * io_uring_enter(2): submits every SQE written since the last call and, when `minComplete` > 0,
   * waits until that many completions are in the CQ ring (the only place this model blocks), or
   * at most `timeoutMs` milliseconds when given (needs IORING_FEAT_EXT_ARG, Linux >= 5.11).
   * Throws ErrnoError for anything but EINTR, EBUSY, EAGAIN and ETIME (the timeout).
   */
  enter(minComplete: number, timeoutMs?: number): void {
    Atomics.store(this.ring, this.sqTail, this.tail);
    let flags = minComplete > 0 ? IORING_ENTER_GETEVENTS : 0;
    let argument: Uint8Array | null = null;
    if (timeoutMs !== undefined && minComplete > 0) {
      argument = this.timeoutArgument(timeoutMs);
      flags |= IORING_ENTER_EXT_ARG;
    }
    for (;;) {
      const ret = c.io_uring_enter(SYS_io_uring_enter, this.fd, this.unsubmitted(), minComplete, flags, argument, argument ? GETEVENTS_ARG_SIZE : 0);
      if (ret >= 0) return;
      const errno = koffi.errno();
      if (errno === EINTR) continue;
      // The timeout passed with fewer completions than asked for.
      if (errno === ETIME) return;
      // Completions the kernel kept aside (CQ ring full, IORING_FEAT_NODROP) or no memory for new
      // requests: reading the CQ ring makes room, and the next call submits what is left.
      if (errno === EBUSY || errno === EAGAIN) return;
      throw new ErrnoError('io_uring_enter', errno);
    }
  }

  /** The getevents_arg for a wait of at most `timeoutMs`: the kernel copies it (and the timespec) during the call. */
  private timeoutArgument(timeoutMs: number): Uint8Array {
    if (this.waitArgument === null) {
      const memory = mapMemory(TIMESPEC_OFFSET + 16);
      const words = new Uint32Array(memory.bytes);
      const timespecAddress = memory.address + TIMESPEC_OFFSET;
      words[4] = timespecAddress >>> 0;
      words[5] = Math.floor(timespecAddress / TWO_TO_32);
      this.waitArgument = { memory, words, bytes: new Uint8Array(memory.bytes) };
    }
    const nanoseconds = Math.max(0, Math.round(timeoutMs * 1e6));
    const seconds = Math.floor(nanoseconds / 1e9);
    const words = this.waitArgument.words;
    words[TIMESPEC_OFFSET / 4] = seconds;
    words[TIMESPEC_OFFSET / 4 + 1] = 0;
    words[TIMESPEC_OFFSET / 4 + 2] = nanoseconds - seconds * 1e9;
    words[TIMESPEC_OFFSET / 4 + 3] = 0;
    return this.waitArgument.bytes;
  }

  /**
   * Unmaps the rings and closes the ring's fd; the kernel then cancels what is still in flight,
   * in the background. Memory that operations in flight point to must stay mapped (see unmapMemory).
   */
  close(): void {
    for (const mapping of this.mappings) unmapMemory(mapping);
    if (this.waitArgument) unmapMemory(this.waitArgument.memory);
    this.waitArgument = null;
    if (c.close(this.fd) === -1) throw new ErrnoError('close', koffi.errno());
  }

  /**
   * Hands each completion in the CQ ring to `handle` with the SQE's user data and its result
   * (what the syscall would have returned, or -errno). Returns how many there were.
   */
  forEachCompletion(handle: (userData: number, result: number) => void): number {
    let head = Atomics.load(this.ring, this.cqHead);
    const tail = Atomics.load(this.ring, this.cqTail);
    let count = 0;
    while (head !== tail) {
      const w = this.cqes + (head & this.cqMask) * (CQE_SIZE / 4);
      const userData = this.ring[w + 1] * TWO_TO_32 + this.ring[w];
      const result = this.signedRing[w + 2];
      // The slot is ours until the head moves past it: copy first, then give it back, so that a
      // handler that submits (and lets the kernel complete) more finds the ring with room.
      head = (head + 1) >>> 0;
      Atomics.store(this.ring, this.cqHead, head);
      handle(userData, result);
      count++;
    }
    return count;
  }
}

const FDS_PER_CHUNK = 1024;

/**
 * One `size`-byte buffer per fd number, for the kernel to receive into and send from. Mapped in
 * chunks of 1024 fds the first time an fd of the chunk appears, so that the address of fd N's
 * buffer is computed, not looked up; untouched pages (idle connections) cost no memory.
 */
export class BuffersByFd {
  private readonly chunks: KernelMemory[] = [];
  constructor(readonly size: number) {}

  private chunk(fd: number): KernelMemory {
    const index = Math.floor(fd / FDS_PER_CHUNK);
    return (this.chunks[index] ??= mapMemory(FDS_PER_CHUNK * this.size));
  }

  address(fd: number): number {
    return this.chunk(fd).address + (fd % FDS_PER_CHUNK) * this.size;
  }

  /** A Buffer over fd's buffer (no copy): what the kernel wrote there, and where to edit it. */
  view(fd: number): Buffer {
    return Buffer.from(this.chunk(fd).bytes, (fd % FDS_PER_CHUNK) * this.size, this.size);
  }
}
