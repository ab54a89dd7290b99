// echo mode: every connection ping-pongs as fast as the server answers. One request out, wait
// for its whole reply, check it, record the round trip, send the next: each connection has at
// most one request in flight, so round trips per second show how many connections the server
// serves at once, and how fast. Before the window each connection warms up (warmup.ts); no new
// request is sent after the window, and the ones in flight get DRAIN_MS to come back.
//
// A round trip is one messageSize-byte request and its reply, complete and checked.
//
// Two engines run the window, with the same requests, checks and counts: io_uring
// (echo-uring.ts: the kernel does the IO, no system call per request) wherever the machine allows
// it, else the epoll loop below (epoll_wait, then recv and send for each ready connection). The
// connecting and the warm-up are the same for both (connect.ts, warmup.ts, over epoll).
import type { ClientResult } from '../shared/results.js';
import * as libc from '../libc/index.js';
import { openConnections } from './connect.js';
import { openEchoRing } from './echo-uring.js';
import { Exchange } from './exchange.js';
import { Poller, yieldToEventLoop } from './poller.js';
import { Tally, type ClientSettings } from './run.js';
import { warmUp } from './warmup.js';

/** epoll_wait sleeps at most this long, so the deadline is kept even if the server never answers. */
const WAIT_MS = 20;
/**
 * When the window ends, requests already sent get this long to be answered before they count as
 * unanswered: a request in flight at the deadline is not a server that failed to answer.
 */
const DRAIN_MS = 250;
/** Replies are read through one shared buffer of at most this size, checked piece by piece. */
const MAX_SCRATCH_BYTES = 1024 * 1024;

/** What a window's loop is given: the connections open when it starts, its times (performance.now(), ms) and where it counts. */
export interface EchoWindow {
  tally: Tally;
  /** Closed ones (isOpen false) are skipped; a warm-up request still unanswered is the window's first request. */
  exchanges: readonly Exchange[];
  deadline: number;
  /** Requests in flight at the deadline may be answered until then. */
  drainDeadline: number;
  /** No wait for completions or readiness lasts longer. */
  waitMs: number;
  /** Every connection's fd is registered in it (the epoll loop waits in it; both yield through it). */
  poller: Poller;
  /** fds of the connections that had a reply in the window or its drain. */
  answeredConnections: Set<number>;
  /** Where a reply is read (epoll loop). */
  scratch: Buffer;
}

export async function runEcho(settings: ClientSettings): Promise<ClientResult> {
  const tally = new Tally();
  const poller = new Poller();
  const exchanges: Exchange[] = [];
  let engine: ReturnType<typeof openEchoRing> | null = null;

  try {
    const fds = await openConnections(poller, settings.address, settings.connections, settings.connectTimeoutSeconds, tally);
    engine = openEchoRing(fds.length, settings.messageSize);
    for (const fd of fds) {
      const requestMemory = engine.ring?.requestMemory(exchanges.length, settings.messageSize);
      exchanges.push(new Exchange(fd, settings.messageSize, poller, requestMemory));
    }
    tally.connected = fds.length;
    const scratch = Buffer.allocUnsafe(Math.min(settings.messageSize, MAX_SCRATCH_BYTES));
    tally.warmup = await warmUp(poller, exchanges, scratch, tally, () => {});
    await settings.onReady();

    const startedAt = performance.now();
    tally.windowStarted();
    const deadline = startedAt + settings.durationSeconds * 1000;
    const window: EchoWindow = { tally, exchanges, deadline, drainDeadline: deadline + DRAIN_MS, waitMs: WAIT_MS, poller, answeredConnections: new Set(), scratch };
    const windowEnd = engine.ring ? await engine.ring.runWindow(window) : await runWindowOnEpoll(window);
    const durationSeconds = (windowEnd - startedAt) / 1000;

    const open = exchanges.filter((exchange) => exchange.isOpen);
    if (open.length === 0 && tally.connected > 0 && windowEnd < deadline) tally.note('every connection was closed before the end: stopped early');
    for (const exchange of open) if (exchange.awaitingReply) tally.unanswered++;
    tally.connectionsAnswered = window.answeredConnections.size;
    const result: ClientResult = { ...tally.result(settings, durationSeconds), engine: engine.engine };
    await settings.onResult(result);
    return result;
  } finally {
    engine?.ring?.close();
    for (const exchange of exchanges) exchange.close();
    poller.close();
  }
}

/**
 * The window on epoll: epoll_wait, then for each ready connection recv (and check) what came of
 * its reply and send the next request. Returns the performance.now() at which the window ended
 * (the deadline, or earlier when every connection was lost).
 */
async function runWindowOnEpoll(window: EchoWindow): Promise<number> {
  const { tally, deadline, drainDeadline, poller, scratch, answeredConnections } = window;
  const byFd: (Exchange | undefined)[] = [];
  let open = 0;
  const closeConnection = (exchange: Exchange) => {
    exchange.close();
    byFd[exchange.fd] = undefined;
    open--;
  };
  const sendNext = (exchange: Exchange) => {
    try {
      tally.requestsSent++;
      exchange.sendNext();
    } catch (error) {
      tally.connectionLost(error);
      closeConnection(exchange);
    }
  };
  for (const exchange of window.exchanges) {
    if (!exchange.isOpen) continue;
    byFd[exchange.fd] = exchange;
    open++;
  }
  for (const exchange of byFd) {
    if (exchange === undefined) continue;
    // A warm-up request the server has not answered yet is the window's first request.
    if (exchange.awaitingReply) tally.requestsSent++;
    else sendNext(exchange);
  }

  const awaiting = () => byFd.some((exchange) => exchange?.awaitingReply);
  let now = performance.now();
  let windowEnd = 0;
  while (open > 0 && (now < deadline || (now < drainDeadline && awaiting()))) {
    const measuring = now < deadline;
    if (measuring) windowEnd = now;
    const ready = poller.wait(Math.min(window.waitMs, (measuring ? deadline : drainDeadline) - now));
    // The time the replies were seen: processing the batch must not count as server latency.
    now = performance.now();
    for (let i = 0; i < ready; i++) {
      const exchange = byFd[poller.fdAt(i)];
      if (exchange === undefined) continue;
      try {
        const mask = poller.maskAt(i);
        if (mask & libc.EPOLLOUT) exchange.continueSending();
        // EPOLLERR and EPOLLHUP too: recv then reports what happened.
        if (!(mask & (libc.EPOLLIN | libc.EPOLLERR | libc.EPOLLHUP))) continue;
        const progress = exchange.receive(scratch);
        if (progress === 'incomplete') continue;
        if (progress === 'complete') {
          answeredConnections.add(exchange.fd);
          // After the window: the reply was checked, but it is not a round trip of the window.
          if (now >= deadline) {
            tally.answeredAfterWindow++;
            continue;
          }
          tally.roundTrips++;
          const latencyMs = now - exchange.sentAt;
          // The next request first: recording the latency is then not on the round trip's path.
          sendNext(exchange);
          tally.latency.recordMicroseconds(latencyMs * 1000);
          continue;
        }
        tally.replyFailed(progress);
        closeConnection(exchange);
      } catch (error) {
        tally.connectionLost(error);
        closeConnection(exchange);
      }
    }
    if (poller.dueForYield(now)) await yieldToEventLoop();
    now = performance.now();
  }
  return Math.min(Math.max(windowEnd, now), deadline);
}
