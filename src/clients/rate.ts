// echo mode, open-loop (a `rate`): every connection sends requests on a schedule, whatever the
// server does, as wrk2 does. A closed-loop client (echo.ts) sends its next request only when the
// last reply has come: a server that stalls for a second is simply asked less during that second,
// and the requests that would have waited are never measured ("coordinated omission"). Here:
//
//   - request k of connection i is scheduled at t0_i + k/rate; the connections' t0 are staggered
//     across one interval (t0_i = start + i/(connections·rate)), so the schedule offers
//     rate × connections requests per second, evenly spread;
//   - a connection has at most one request in flight: a request is sent at the later of its
//     scheduled send time and the reply to the request before it (then it counts as sent late);
//   - its latency is reply time − scheduled send time: the wait behind the request before it is
//     part of it (wrk2's correction for coordinated omission);
//   - a request scheduled in the window that has no reply when the client stops (its drain of
//     DRAIN_MS over: sent and unanswered, or never sent) is recorded at its wait so far, a lower
//     bound, so that a connection the server never serves cannot drop out of the percentiles.
//
// Sends are timed by a timerfd in the epoll set (src/libc/timer.ts): epoll_wait's timeout counts
// whole milliseconds, too coarse for requests due every few hundred microseconds. The client's
// own lateness on requests it could send on time is reported (sendLag): it is part of every
// latency measured here.
//
// The connections, the request/reply cycle and the warm-up are echo.ts's (connect.ts, Exchange,
// Poller, warmUp, Tally); only the loop that decides when to send differs.
import type { ClientResult } from '../shared/results.js';
import * as libc from '../libc/index.js';
import { timerArm, timerClear, timerCreate } from '../libc/timer.js';
import { openConnections } from './connect.js';
import { Exchange } from './exchange.js';
import { LatencyRecorder } from './latency.js';
import { Poller, yieldToEventLoop } from './poller.js';
import { Tally, type ClientSettings } from './run.js';
import { warmUp } from './warmup.js';

/** epoll_wait sleeps at most this long (the timerfd wakes it sooner), so the deadlines are kept whatever happens. */
const WAIT_MS = 20;
/** As in echo.ts: requests in flight when the window ends get this long to be answered. */
const DRAIN_MS = 250;
/** Replies are read through one shared buffer of at most this size, checked piece by piece. */
const MAX_SCRATCH_BYTES = 1024 * 1024;

/** One connection's place in the schedule. */
interface Scheduled {
  exchange: Exchange;
  /** performance.now() of its request 0. */
  t0: number;
  /** the index of the next request not yet sent; while a reply is awaited, `next - 1` is in flight. */
  next: number;
  /** false once the server closed it (or it failed). */
  alive: boolean;
}

/**
 * Runs an open-loop echo client (settings.rate requests per second per connection) as the header
 * describes, and returns its result: `latency` from the scheduled send time (µs, HDR percentiles
 * p50 to p99.9 and max), `openLoop` with the offered rate, the requests scheduled, sent late,
 * never sent and recorded as lower bounds, the latency from the actual send, and the client's
 * own send lag. Throws only what a bug would (a non-errno error); a server that closes or resets
 * connections is counted, not thrown.
 */
export async function runOpenLoop(settings: ClientSettings): Promise<ClientResult> {
  const rate = settings.rate;
  if (rate === null || !(rate > 0)) throw new Error(`runOpenLoop needs a rate above 0, not ${rate}`);
  const intervalMs = 1000 / rate;
  const tally = new Tally();
  const service = new LatencyRecorder();
  const lag = new LatencyRecorder();
  const poller = new Poller();
  const timer = timerCreate();
  const byFd: (Scheduled | undefined)[] = [];
  /** every connection not yet closed, whatever the phase: the finally closes these. */
  const live = new Set<Exchange>();
  let open = 0;
  let awaiting = 0;
  let sentLate = 0;
  const scheduledAt = (conn: Scheduled, k: number) => conn.t0 + k * intervalMs;
  const closeConnection = (conn: Scheduled) => {
    if (!conn.alive) return;
    if (conn.exchange.awaitingReply) awaiting--;
    conn.alive = false;
    live.delete(conn.exchange);
    conn.exchange.close();
    byFd[conn.exchange.fd] = undefined;
    open--;
  };
  const send = (conn: Scheduled) => {
    try {
      tally.requestsSent++;
      conn.next++;
      awaiting++;
      conn.exchange.sendNext();
    } catch (error) {
      tally.connectionLost(error);
      closeConnection(conn);
    }
  };

  try {
    poller.add(timer, libc.EPOLLIN);
    const fds = await openConnections(poller, settings.address, settings.connections, settings.connectTimeoutSeconds, tally);
    for (const fd of fds) live.add(new Exchange(fd, settings.messageSize, poller));
    tally.connected = open = fds.length;
    const scratch = Buffer.allocUnsafe(Math.min(settings.messageSize, MAX_SCRATCH_BYTES));
    // warmUp closes a connection it loses itself.
    tally.warmup = await warmUp(poller, [...live], scratch, tally, (gone) => {
      live.delete(gone);
      open--;
    });
    await settings.onReady();

    const startedAt = performance.now();
    tally.windowStarted();
    const deadline = startedAt + settings.durationSeconds * 1000;
    const drainDeadline = deadline + DRAIN_MS;
    const connections: Scheduled[] = [...live].map((exchange, i, all) => ({ exchange, t0: startedAt + (i * intervalMs) / all.length, next: 0, alive: true }));
    for (const conn of connections) {
      byFd[conn.exchange.fd] = conn;
      // A warm-up request the server has not answered yet is the connection's request 0, scheduled
      // (and, for its latency from the send, sent) at the connection's t0.
      if (conn.exchange.awaitingReply) {
        tally.requestsSent++;
        conn.next = 1;
        awaiting++;
      }
    }
    const n = connections.length;
    // The schedule as one sequence of slots in time order: slot g is request floor(g/n) of connection g mod n.
    const slotTime = (g: number) => startedAt + (g * intervalMs) / n;
    let slot = 0;
    let armedFor = -1;
    const answeredConnections = new Set<number>();
    let now = performance.now();
    let windowEnd = 0;
    // Past the deadline: the slots scheduled before it that the loop reached late are still sent
    // (their replies count in the drain), then the replies in flight get the drain.
    while (n > 0 && open > 0 && (now < deadline || slotTime(slot) < deadline || (now < drainDeadline && awaiting > 0))) {
      const measuring = now < deadline;
      if (measuring) windowEnd = now;
      // Every slot now due: its connection sends if it is free and at that request; a busy one
      // sends it late, when the reply it awaits comes.
      for (let due = slotTime(slot); due <= now && due < deadline; due = slotTime(++slot)) {
        const conn = connections[slot % n];
        if (!conn.alive || conn.next !== Math.floor(slot / n) || conn.exchange.awaitingReply) continue;
        lag.recordMicroseconds((now - due) * 1000);
        send(conn);
      }
      const wakeAt = measuring ? Math.min(slotTime(slot), deadline) : drainDeadline;
      if (wakeAt !== armedFor && wakeAt > now) {
        timerArm(timer, (wakeAt - now) * 1000);
        armedFor = wakeAt;
      }
      const ready = poller.wait(Math.min(WAIT_MS, (measuring ? deadline : drainDeadline) - now));
      // The time the replies were seen: processing the batch must not count as server latency.
      now = performance.now();
      for (let i = 0; i < ready; i++) {
        const fd = poller.fdAt(i);
        if (fd === timer) {
          timerClear(timer);
          armedFor = -1;
          continue;
        }
        const conn = byFd[fd];
        if (conn === undefined) continue;
        const exchange = conn.exchange;
        try {
          const mask = poller.maskAt(i);
          if (mask & libc.EPOLLOUT) exchange.continueSending();
          if (!(mask & (libc.EPOLLIN | libc.EPOLLERR | libc.EPOLLHUP))) continue;
          const progress = exchange.receive(scratch);
          if (progress === 'incomplete') continue;
          if (progress !== 'complete') {
            tally.replyFailed(progress);
            closeConnection(conn);
            continue;
          }
          awaiting--;
          answeredConnections.add(fd);
          const scheduled = scheduledAt(conn, conn.next - 1);
          // Requests scheduled in the window are all timed, whenever their reply comes (a warm-up
          // request, sent before its slot, may be answered before it: 0).
          if (scheduled < deadline) {
            tally.latency.recordMicroseconds(Math.max(0, now - scheduled) * 1000);
            service.recordMicroseconds(Math.max(0, now - Math.max(exchange.sentAt, scheduled)) * 1000);
          }
          // After the window: checked and timed, but not a round trip of the window.
          if (now >= deadline) tally.answeredAfterWindow++;
          else tally.roundTrips++;
          const nextAt = scheduledAt(conn, conn.next);
          // Its slot passed while this reply was awaited: sent late, now (in the drain too, if it
          // was scheduled in the window). Otherwise its slot sends it.
          if (nextAt <= now && nextAt < deadline) {
            sentLate++;
            send(conn);
          }
        } catch (error) {
          tally.connectionLost(error);
          closeConnection(conn);
        }
      }
      if (poller.dueForYield(now)) await yieldToEventLoop();
      now = performance.now();
    }
    const durationSeconds = n > 0 ? (Math.min(Math.max(windowEnd, now), deadline) - startedAt) / 1000 : 0;

    // What the schedule asked of each connection in the window, and what became of it.
    const endAt = Math.min(now, drainDeadline);
    let scheduledInWindow = 0;
    let notSent = 0;
    let lowerBounds = 0;
    for (const conn of connections) {
      const inWindow = Math.max(0, Math.ceil((deadline - conn.t0) / intervalMs));
      scheduledInWindow += inWindow;
      const unsent = Math.max(0, inWindow - conn.next);
      notSent += unsent;
      if (!conn.alive) continue;
      // The unanswered request in flight, then those never sent: each at its wait so far.
      const first = conn.exchange.awaitingReply ? conn.next - 1 : conn.next;
      for (let k = first; k < inWindow; k++) {
        tally.latency.recordMicroseconds((endAt - scheduledAt(conn, k)) * 1000);
        lowerBounds++;
      }
    }
    if (open === 0 && tally.connected > 0 && now < deadline) tally.note('every connection was closed before the end: stopped early');
    for (const conn of connections) if (conn.alive && conn.exchange.awaitingReply) tally.unanswered++;
    tally.connectionsAnswered = answeredConnections.size;
    const lagged = lag.summary();
    const result: ClientResult = {
      ...tally.result(settings, durationSeconds),
      // the paced loop drives its IO through epoll (and its timerfd), never io_uring.
      engine: 'epoll',
      openLoop: {
        ratePerConnection: rate,
        offeredPerSecond: rate * n,
        scheduled: scheduledInWindow,
        sentLate,
        notSent,
        lowerBounds,
        serviceLatency: service.summary(),
        sendLag: { p99Us: lagged.p99Us, maxUs: lagged.maxUs },
      },
    };
    await settings.onResult(result);
    return result;
  } finally {
    for (const exchange of live) exchange.close();
    libc.close(timer);
    poller.close();
  }
}
