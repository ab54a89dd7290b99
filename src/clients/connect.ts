// Opening many connections from one thread: non-blocking connect, then epoll tells when each
// handshake is over (the socket turns writable) and SO_ERROR tells how it went.
import { ErrnoError, errnoCode } from '../errors.js';
import { plural } from '../shared/format.js';
import * as libc from '../libc/index.js';
import type { Poller } from './poller.js';
import { yieldToEventLoop } from './poller.js';
import type { Address, Tally } from './run.js';

/**
 * A burst of thousands of SYNs overflows a listen backlog of 128 and turns into retransmits
 * one second later; a bounded number in flight keeps the connect phase short and fair.
 */
const MAX_HANDSHAKES_IN_FLIGHT = 256;
/** How long one epoll_wait may sleep, so that the timeout is checked even when nothing happens. */
const WAIT_MS = 20;

/**
 * Starts a non-blocking connect with TCP_NODELAY set (a small request must leave at once, not
 * wait for Nagle). Returns the fd and whether the handshake is already complete; throws the
 * ErrnoError of socket() or connect() (EMFILE, ECONNREFUSED, ...).
 */
export function startConnect(address: Address): { fd: number; connected: boolean } {
  const fd = libc.socket(libc.SOCK_NONBLOCK);
  try {
    libc.setIntOption(fd, libc.IPPROTO_TCP, libc.TCP_NODELAY, 1);
    return { fd, connected: libc.connect(fd, address.ip, address.port) };
  } catch (error) {
    libc.close(fd);
    throw error;
  }
}

/** Counts a connect that failed at once; anything but an ErrnoError is a bug and goes on up. */
export function countConnectFailure(tally: Tally, error: unknown): void {
  if (!(error instanceof ErrnoError)) throw error;
  tally.connectFailed(error.code);
  if (error.code === 'EMFILE') tally.note(`${error.message}: the open-file limit is ${libc.getNofileLimit().soft}`);
}

/**
 * Finishes a handshake whose socket epoll reported: true if connected; otherwise counts the
 * failure by its errno code and closes the fd.
 */
export function finishConnect(fd: number, tally: Tally): boolean {
  const errno = libc.socketError(fd);
  if (errno === 0) return true;
  tally.connectFailed(errnoCode(errno));
  libc.close(fd);
  return false;
}

/**
 * Raises the open-file limit, then opens `count` connections, at most MAX_HANDSHAKES_IN_FLIGHT
 * at a time. A failed connect is counted and the others go on. Handshakes still in progress
 * after `timeoutSeconds` (a server whose backlog is full drops SYNs, and the kernel would retry
 * for two minutes) are abandoned and counted as ETIMEDOUT. Returns the fds that connected, no
 * longer in the epoll set. Events of fds the poller held before are left alone.
 */
export async function openConnections(poller: Poller, address: Address, count: number, timeoutSeconds: number, tally: Tally): Promise<number[]> {
  const notRaised = libc.raiseNofileToHard();
  if (notRaised) tally.note(notRaised);
  const connected: number[] = [];
  const inProgress = new Set<number>();
  const giveUpAt = performance.now() + timeoutSeconds * 1000;
  let started = 0;
  while (started < count || inProgress.size > 0) {
    while (started < count && inProgress.size < MAX_HANDSHAKES_IN_FLIGHT) {
      started++;
      try {
        const { fd, connected: done } = startConnect(address);
        if (done) connected.push(fd);
        else {
          poller.add(fd, libc.EPOLLOUT);
          inProgress.add(fd);
        }
      } catch (error) {
        countConnectFailure(tally, error);
      }
    }
    if (inProgress.size === 0) continue;

    const now = performance.now();
    if (now >= giveUpAt) {
      abandon(inProgress, count - started, timeoutSeconds, tally);
      break;
    }
    const ready = poller.wait(Math.min(WAIT_MS, giveUpAt - now));
    for (let i = 0; i < ready; i++) {
      const fd = poller.fdAt(i);
      // Only our handshakes: an fd the caller had in the poller already is not ours to finish.
      if (!inProgress.has(fd)) continue;
      inProgress.delete(fd);
      poller.remove(fd);
      if (finishConnect(fd, tally)) connected.push(fd);
    }
    if (poller.dueForYield(performance.now())) await yieldToEventLoop();
  }
  return connected;
}

function abandon(inProgress: Set<number>, neverStarted: number, timeoutSeconds: number, tally: Tally): void {
  for (const fd of inProgress) {
    libc.close(fd);
    tally.connectFailed('ETIMEDOUT');
  }
  for (let i = 0; i < neverStarted; i++) tally.connectFailed('ETIMEDOUT');
  tally.note(
    `${plural(inProgress.size + neverStarted, 'connection was', 'connections were')} not established after ${timeoutSeconds} s ` +
      '(counted as ETIMEDOUT): the server is not completing handshakes (a full listen backlog?)',
  );
}
