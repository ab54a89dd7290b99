// The warm-up before a client's window: every connection sends one request and waits for its
// reply. A server does per-connection work when a client arrives (accept4, a new thread and its
// start-up, epoll_ctl); the window must measure serving, not that: a thread-per-connection
// server built on Node workers needs about 60 ms of CPU per connection to start its thread, so
// 33 connections arriving at once kept it from answering for 1 to 2 s (measured here, in Docker).
//
// The warm-up ends when every connection has had its reply (or was closed), or when no new reply
// has come for a while: WARMUP_FIRST_REPLY_MS for the first one, WARMUP_QUIET_MS after each
// later one. A server that serves one client at a time (blocking, a pool of K) never answers the
// others, and that is what the window must then show. Replies of the warm-up are not counted; a
// request still unanswered when it ends stays in flight, and its reply, if it comes in the
// window, counts there. The result says how many connections were answered and how long it took,
// so a report can tell when a window began on a server still setting up connections.
import * as libc from '../libc/index.js';
import type { Exchange } from './exchange.js';
import { type Poller, yieldToEventLoop } from './poller.js';
import type { Tally } from './run.js';

/**
 * The first reply may take this long: a thread-per-connection server on Node starts its threads
 * in parallel, and 33 of them took 0.45 s here before the first answered (more on a busy machine).
 */
export const WARMUP_FIRST_REPLY_MS = 2_000;
/** After a reply, no new one for this long and the warm-up is over: several times one Node worker's start-up under load (~60-150 ms here). */
export const WARMUP_QUIET_MS = 500;
/** The longest a warm-up may take, however steadily replies keep coming. */
export const WARMUP_MAX_MS = 15_000;
/** epoll_wait sleeps at most this long, so the deadlines are kept even if the server never answers. */
const WAIT_MS = 20;

export interface Warmup {
  connections: number;
  answered: number;
  seconds: number;
}

/**
 * Sends one request on every exchange (each must be registered in `poller` for EPOLLIN, as the
 * Exchange constructor does) and reads the replies until the end described above. Connections
 * the server closes, resets or answers wrongly are counted in `tally` and closed; `onGone` hears
 * of each.
 */
export async function warmUp(poller: Poller, exchanges: readonly Exchange[], scratch: Buffer, tally: Tally, onGone: (exchange: Exchange) => void): Promise<Warmup> {
  const startedAt = performance.now();
  const byFd = new Map(exchanges.map((exchange) => [exchange.fd, exchange]));
  const lose = (exchange: Exchange) => {
    byFd.delete(exchange.fd);
    exchange.close();
    onGone(exchange);
  };
  for (const exchange of exchanges) {
    try {
      exchange.sendNext();
    } catch (error) {
      tally.connectionLost(error);
      lose(exchange);
    }
  }
  let answered = 0;
  let lastProgressAt = performance.now();
  const waiting = () => [...byFd.values()].some((exchange) => exchange.awaitingReply);
  const quiet = (now: number) => now - lastProgressAt >= (answered === 0 ? WARMUP_FIRST_REPLY_MS : WARMUP_QUIET_MS);
  for (let now = performance.now(); waiting() && !quiet(now) && now - startedAt < WARMUP_MAX_MS; now = performance.now()) {
    const ready = poller.wait(WAIT_MS);
    for (let i = 0; i < ready; i++) {
      const exchange = byFd.get(poller.fdAt(i));
      if (exchange === undefined) continue;
      try {
        const mask = poller.maskAt(i);
        if (mask & libc.EPOLLOUT) exchange.continueSending();
        if (!(mask & (libc.EPOLLIN | libc.EPOLLERR | libc.EPOLLHUP)) || !exchange.awaitingReply) continue;
        const progress = exchange.receive(scratch);
        if (progress === 'incomplete') continue;
        lastProgressAt = performance.now();
        if (progress === 'complete') answered++;
        else {
          tally.replyFailed(progress);
          lose(exchange);
        }
      } catch (error) {
        tally.connectionLost(error);
        lose(exchange);
      }
    }
    if (poller.dueForYield(performance.now())) await yieldToEventLoop();
  }
  return { connections: exchanges.length, answered, seconds: Math.round(performance.now() - startedAt) / 1000 };
}
