// Sleeping: the calls that block a thread for a while without any fd to wait on.
import { libc, retrying } from './call.js';

const c = {
  nanosleep: libc.func('int nanosleep(void *request, void *remaining)'),
};

/**
 * nanosleep(2) for `ms` milliseconds: the whole thread stops, whatever else it had to do. glibc
 * makes it as clock_nanosleep, which is what strace shows. Interrupted by a signal, it sleeps
 * the rest: the kernel writes what remains into the same timespec, which the retry passes again.
 */
export function sleepMilliseconds(ms: number): void {
  const timespec = Buffer.alloc(16);
  timespec.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  timespec.writeBigInt64LE(BigInt(Math.floor((ms % 1000) * 1e6)), 8);
  retrying('nanosleep', () => c.nanosleep(timespec, timespec));
}
