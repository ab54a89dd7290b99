// Signals as a readiness notification: the calls of signal-driven IO (see call.ts for how every
// call is made and checked). No JavaScript function is ever installed as a signal handler: a
// handler runs at any instruction, where JS cannot run safely, and koffi loses the deliveries.
// The signals are blocked instead and read as data from a signalfd.
import { ErrnoError } from '../errors.js';
import { check, libc, retrying, WOULD_BLOCK } from './call.js';

const c = {
  libcCurrentSigrtmin: libc.func('int __libc_current_sigrtmin()'),
  sigemptyset: libc.func('int sigemptyset(void *set)'),
  sigaddset: libc.func('int sigaddset(void *set, int signo)'),
  pthread_sigmask: libc.func('int pthread_sigmask(int how, void *set, void *oldset)'),
  signalfd: libc.func('int signalfd(int fd, void *mask, int flags)'),
  read: libc.func('long read(int fd, void *buf, size_t count)'),
  gettid: libc.func('int gettid()'),
  fcntl: libc.func('int fcntl(int fd, int cmd, ...)'),
  getrlimit: libc.func('int getrlimit(int resource, void *limits)'),
};

// Constants of Linux x86_64 / glibc (checked against the C headers).
export const SIGIO = 29;
export const SIG_BLOCK = 0;
export const SFD_CLOEXEC = 0o2000000;
export const SFD_NONBLOCK = 0o4000;
export const F_SETFL = 4;
export const F_SETSIG = 10;
export const F_SETOWN_EX = 15;
export const F_OWNER_TID = 0;
export const O_NONBLOCK = 0o4000;
export const O_ASYNC = 0o20000;
export const RLIMIT_SIGPENDING = 11;
/** glibc's sigset_t: 1024 bits (the kernel reads the first 64). */
const SIGSET_SIZE = 128;
/** struct signalfd_siginfo: every record a signalfd read returns has this size. */
export const SIGNALFD_SIGINFO_SIZE = 128;

/**
 * The lowest realtime signal an application may use. The kernel's first is 32, but glibc keeps
 * 32 and 33 for its threads implementation, so SIGRTMIN is a function in C, not a constant.
 */
export function realtimeSignalMin(): number {
  return c.libcCurrentSigrtmin();
}

function signalSet(signals: readonly number[]): Buffer {
  const set = Buffer.alloc(SIGSET_SIZE);
  c.sigemptyset(set);
  for (const signo of signals) check('sigaddset', c.sigaddset(set, signo));
  return set;
}

/** Blocks `signals` for the calling thread only: they stay pending until a signalfd reads them. */
export function blockSignalsInThisThread(signals: readonly number[]): void {
  // pthread_sigmask returns the error number instead of setting errno.
  const error = c.pthread_sigmask(SIG_BLOCK, signalSet(signals), null);
  if (error !== 0) throw new ErrnoError('rt_sigprocmask', error);
}

/**
 * signalfd(2): an fd whose reads take (and so consume) the `signals` pending for the calling
 * thread. Several signalfds may read the same queue; a non-blocking one finds nothing with EAGAIN.
 */
export function signalFd(signals: readonly number[], nonBlocking = false): number {
  return check('signalfd4', c.signalfd(-1, signalSet(signals), SFD_CLOEXEC | (nonBlocking ? SFD_NONBLOCK : 0)));
}

/**
 * read(2) of a signalfd into `records`: how many signalfd_siginfo records it returned. A blocking
 * signalfd waits for at least one; a non-blocking one returns 0 when none is queued.
 */
export function readSignals(fd: number, records: Buffer): number {
  const bytes = retrying('read', () => c.read(fd, records, records.length), true);
  return bytes === WOULD_BLOCK ? 0 : bytes / SIGNALFD_SIGINFO_SIZE;
}

/** ssi_signo of the i-th record. */
export function siginfoSignal(records: Buffer, i: number): number {
  return records.readUInt32LE(i * SIGNALFD_SIGINFO_SIZE);
}

/** ssi_fd of the i-th record: the fd that became ready (realtime signals set by F_SETSIG only). */
export function siginfoFd(records: Buffer, i: number): number {
  return records.readInt32LE(i * SIGNALFD_SIGINFO_SIZE + 20);
}

/** ssi_band of the i-th record: what happened on that fd, as poll(2) bits (POLLIN, POLLOUT, ...). */
export function siginfoBand(records: Buffer, i: number): number {
  return records.readUInt32LE(i * SIGNALFD_SIGINFO_SIZE + 28);
}

/** The calling thread's kernel id (not the process id: Node runs several threads). */
export function gettid(): number {
  return c.gettid();
}

/** fcntl(F_SETOWN_EX, F_OWNER_TID): the fd's signals go to thread `tid`, not to any thread. */
export function setOwnerThread(fd: number, tid: number): void {
  const owner = Buffer.alloc(8); // struct f_owner_ex { int type; pid_t pid; }
  owner.writeInt32LE(F_OWNER_TID, 0);
  owner.writeInt32LE(tid, 4);
  check('fcntl', c.fcntl(fd, F_SETOWN_EX, 'void *', owner));
}

/** fcntl(F_SETSIG): send `signo` (queued, with si_fd and si_band) instead of a plain SIGIO. */
export function setReadinessSignal(fd: number, signo: number): void {
  check('fcntl', c.fcntl(fd, F_SETSIG, 'int', signo));
}

/** fcntl(F_SETFL, O_ASYNC|O_NONBLOCK): from now on, readiness of the fd raises its signal. */
export function setAsyncNonBlocking(fd: number): void {
  check('fcntl', c.fcntl(fd, F_SETFL, 'int', O_ASYNC | O_NONBLOCK));
}

/** RLIMIT_SIGPENDING (soft): how many signals may be queued for this user before realtime ones are dropped. */
export function pendingSignalsLimit(): number {
  const limits = Buffer.alloc(16);
  check('getrlimit', c.getrlimit(RLIMIT_SIGPENDING, limits));
  const soft = limits.readBigUInt64LE(0);
  return soft === 0xffffffffffffffffn ? Infinity : Number(soft);
}
