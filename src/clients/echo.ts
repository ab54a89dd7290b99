// echo mode: every connection ping-pongs as fast as the server answers. One request out, wait
// for its whole reply, check it, record the round trip, send the next: each connection has at
// most one request in flight, so round trips per second show how many connections the server
// serves at once, and how fast. Before the window each connection warms up (warmup.ts); no new
// request is sent after the window, and the ones in flight get DRAIN_MS to come back.
//
// A round trip is one messageSize-byte request and its reply, complete and checked.
import type { ClientResult } from '../shared/results.js';
import * as libc from '../libc/index.js';
import { openConnections } from './connect.js';
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

export async function runEcho(settings: ClientSettings): Promise<ClientResult> {
  const tally = new Tally();
  const poller = new Poller();
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

  try {
    const fds = await openConnections(poller, settings.address, settings.connections, settings.connectTimeoutSeconds, tally);
    for (const fd of fds) byFd[fd] = new Exchange(fd, settings.messageSize, poller);
    tally.connected = open = fds.length;
    const scratch = Buffer.allocUnsafe(Math.min(settings.messageSize, MAX_SCRATCH_BYTES));
    tally.warmup = await warmUp(poller, fds.map((fd) => byFd[fd]!), scratch, tally, (gone) => {
      byFd[gone.fd] = undefined;
      open--;
    });
    await settings.onReady();

    const startedAt = performance.now();
    tally.windowStarted();
    const deadline = startedAt + settings.durationSeconds * 1000;
    const answeredConnections = new Set<number>();
    for (const exchange of byFd) {
      if (exchange === undefined) continue;
      // A warm-up request the server has not answered yet is the window's first request.
      if (exchange.awaitingReply) tally.requestsSent++;
      else sendNext(exchange);
    }

    const drainDeadline = deadline + DRAIN_MS;
    const awaiting = () => byFd.some((exchange) => exchange?.awaitingReply);
    let now = performance.now();
    let windowEnd = 0;
    while (open > 0 && (now < deadline || (now < drainDeadline && awaiting()))) {
      const measuring = now < deadline;
      if (measuring) windowEnd = now;
      const ready = poller.wait(Math.min(WAIT_MS, (measuring ? deadline : drainDeadline) - now));
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
            tally.latency.recordMicroseconds((now - exchange.sentAt) * 1000);
            sendNext(exchange);
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
    const durationSeconds = (Math.min(Math.max(windowEnd, now), deadline) - startedAt) / 1000;

    if (open === 0 && tally.connected > 0 && now < deadline) tally.note('every connection was closed before the end: stopped early');
    for (const exchange of byFd) if (exchange?.awaitingReply) tally.unanswered++;
    tally.connectionsAnswered = answeredConnections.size;
    const result = tally.result(settings, durationSeconds);
    await settings.onResult(result);
    return result;
  } finally {
    for (const exchange of byFd) if (exchange) closeConnection(exchange);
    poller.close();
  }
}
