// The one way into the C library. Every system call an iolab server or client makes goes through
// a function declared with koffi in a file of src/libc/ (the only place that declares them), and
// its result goes through `check` or `retrying` below.
//
// `check`: a -1 return becomes an ErrnoError carrying the call's name, errno and code, read
// immediately after the call (a later FFI call could overwrite errno). `retrying` also retries
// EINTR. Calls that may legitimately find nothing to do on a non-blocking fd return WOULD_BLOCK
// instead of throwing: the busy-polling model meets EAGAIN millions of times a second, and an
// exception each time would measure JavaScript, not the kernel.
//
// Hot paths pass Buffers (a pointer to their bytes), never koffi out-arrays or structs.
import koffi from 'koffi';
import { ErrnoError } from '../errors.js';

export const libc = koffi.load('libc.so.6');

export const EINTR = 4;
export const EAGAIN = 11;

/** Returned instead of throwing when a non-blocking call would block (EAGAIN / EWOULDBLOCK). */
export const WOULD_BLOCK = -1;

export function check(syscall: string, ret: number, wouldBlockIsResult = false): number {
  if (ret !== -1) return ret;
  const errno = koffi.errno();
  if (wouldBlockIsResult && errno === EAGAIN) return WOULD_BLOCK;
  throw new ErrnoError(syscall, errno);
}

/** Calls `invoke` until it does not fail with EINTR, then checks its result. */
export function retrying(syscall: string, invoke: () => number, wouldBlockIsResult = false): number {
  for (;;) {
    const ret = invoke();
    if (ret === -1 && koffi.errno() === EINTR) continue;
    return check(syscall, ret, wouldBlockIsResult);
  }
}
