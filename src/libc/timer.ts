// A timer as an fd: timerfd(2). The open-loop client (src/clients/rate.ts) sends each request at
// its scheduled time; epoll_wait's timeout counts whole milliseconds, too coarse for requests due
// every few hundred microseconds, so the client watches a timerfd in its epoll set instead and
// arms it (to the nanosecond; the kernel's timer slack, 50 µs by default, applies) for the next
// request due. See call.ts for how every call is made and checked.
import { check, libc, retrying } from './call.js';

const c = {
  timerfd_create: libc.func('int timerfd_create(int clockid, int flags)'),
  timerfd_settime: libc.func('int timerfd_settime(int fd, int flags, void *new_value, void *old_value)'),
  read: libc.func('long read(int fd, void *buf, size_t count)'),
};

// Constants of Linux x86_64 / glibc (checked against the C headers).
/** the clock of performance.now() and process.hrtime (libuv's uv_hrtime). */
export const CLOCK_MONOTONIC = 1;
export const TFD_NONBLOCK = 0o4000;
export const TFD_CLOEXEC = 0o2000000;
/** struct itimerspec: it_interval then it_value, each a struct timespec of two 64-bit fields. */
const ITIMERSPEC_SIZE = 32;

/** timerfd_create(2) on CLOCK_MONOTONIC, non-blocking: an fd that turns readable when the timer expires. Throws ErrnoError (EMFILE...). */
export function timerCreate(): number {
  return check('timerfd_create', c.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
}

const setting = Buffer.alloc(ITIMERSPEC_SIZE);

/**
 * Arms the timer to expire once, `microseconds` from now (at least 1 ns: a zero would disarm it).
 * timerfd_settime(2), relative, no interval.
 */
export function timerArm(fd: number, microseconds: number): void {
  const nanoseconds = Math.max(1, Math.round(microseconds * 1000));
  setting.fill(0);
  setting.writeBigInt64LE(BigInt(Math.floor(nanoseconds / 1e9)), 16);
  setting.writeBigInt64LE(BigInt(nanoseconds % 1e9), 24);
  check('timerfd_settime', c.timerfd_settime(fd, 0, setting, null));
}

const expirations = Buffer.alloc(8);

/** Reads (and so clears) the expirations since the last read: 0 when it has not expired (EAGAIN). */
export function timerClear(fd: number): number {
  const read = retrying('read', () => Number(c.read(fd, expirations, 8)), true);
  return read === 8 ? Number(expirations.readBigUInt64LE(0)) : 0;
}
