// poll(2) and its array of struct pollfd (see call.ts for how every call is made and checked).
//
// struct pollfd { int fd; short events; short revents; } is 8 bytes, no padding: fd at 0, events
// at 4, revents at 6. The array lives in a Buffer the caller owns and hands to the kernel whole on
// every call; the kernel writes only revents, so the caller may keep the array between calls.
import { libc, retrying } from './call.js';

const c = {
  poll: libc.func('int poll(void *fds, unsigned long nfds, int timeout)'),
};

// Constants of Linux x86_64 (asm-generic/poll.h).
export const POLLIN = 0x001;
export const POLLOUT = 0x004;
/** Reported in revents whether asked for or not: an error is pending on the socket. */
export const POLLERR = 0x008;
/** Reported in revents whether asked for or not: the peer closed (both directions). */
export const POLLHUP = 0x010;
/** Reported in revents whether asked for or not: the fd is not open (a bug of the caller). */
export const POLLNVAL = 0x020;

export const POLLFD_SIZE = 8;

/**
 * poll(2) over the first `count` entries of `fds`. `timeoutMs` -1 blocks until an fd is ready.
 * Returns how many entries have a non-zero revents (0 on timeout).
 */
export function poll(fds: Buffer, count: number, timeoutMs: number): number {
  return retrying('poll', () => c.poll(fds, count, timeoutMs));
}

/** Reading and writing the i-th struct pollfd of an array held in a Buffer. */
export const pollfd = {
  /** A Buffer for `count` entries (grow it with `grow`). */
  create: (count: number): Buffer => Buffer.alloc(count * POLLFD_SIZE),
  /** A Buffer twice as large holding the same entries. */
  grow: (fds: Buffer): Buffer => {
    const larger = Buffer.alloc(fds.length * 2);
    fds.copy(larger);
    return larger;
  },
  capacity: (fds: Buffer): number => fds.length / POLLFD_SIZE,
  /** Sets the i-th entry to watch `fd` for `events`, with revents cleared. */
  set(fds: Buffer, i: number, fd: number, events: number): void {
    fds.writeInt32LE(fd, i * POLLFD_SIZE);
    fds.writeInt16LE(events, i * POLLFD_SIZE + 4);
    fds.writeInt16LE(0, i * POLLFD_SIZE + 6);
  },
  /** Copies entry `from` over entry `to` (to fill the hole a closed fd leaves). */
  move(fds: Buffer, from: number, to: number): void {
    fds.copy(fds, to * POLLFD_SIZE, from * POLLFD_SIZE, (from + 1) * POLLFD_SIZE);
  },
  fd: (fds: Buffer, i: number): number => fds.readInt32LE(i * POLLFD_SIZE),
  setEvents(fds: Buffer, i: number, events: number): void {
    fds.writeInt16LE(events, i * POLLFD_SIZE + 4);
  },
  revents: (fds: Buffer, i: number): number => fds.readUInt16LE(i * POLLFD_SIZE + 6),
};
