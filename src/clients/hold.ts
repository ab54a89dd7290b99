// hold mode: the connections are opened and then sit idle, as a crowd of clients that think
// before they speak. Meanwhile one PROBE connection, opened after all of them, asks a small
// request, waits for the reply, pauses PROBE_INTERVAL_MS and asks again. On a server that serves
// one connection at a time the probe queues behind the idle crowd and is never answered; on a
// multiplexing server it is answered at once, however large the crowd. Before the window every
// connection, the probe's too, makes one round trip (warmup.ts), so that the server has accepted
// and set up each of them; then the crowd falls silent.
import type { ClientResult } from '../shared/results.js';
import * as libc from '../libc/index.js';
import { openConnections } from './connect.js';
import { Exchange } from './exchange.js';
import { Poller, yieldToEventLoop } from './poller.js';
import { Tally, type ClientSettings } from './run.js';
import { warmUp } from './warmup.js';

const PROBE_INTERVAL_MS = 100;
/** epoll_wait sleeps at most this long, so the deadline is kept even if the server never answers. */
const WAIT_MS = 20;

export async function runHold(settings: ClientSettings): Promise<ClientResult> {
  const tally = new Tally();
  const poller = new Poller();
  /** The idle crowd: each connection's exchange, which carries its warm-up request. */
  const held = new Map<number, Exchange>();
  const scratch = Buffer.allocUnsafe(Math.max(settings.messageSize, 4096));
  let probe: Exchange | null = null;
  let probeGone = false;
  let nextProbeAt = Infinity;

  const dropProbe = () => {
    probe?.close();
    probe = null;
    probeGone = true;
  };
  const ask = (exchange: Exchange) => {
    nextProbeAt = Infinity;
    try {
      tally.requestsSent++;
      exchange.sendNext();
    } catch (error) {
      tally.connectionLost(error);
      dropProbe();
    }
  };

  try {
    const fds = await openConnections(poller, settings.address, settings.connections, settings.connectTimeoutSeconds, tally);
    for (const fd of fds) held.set(fd, new Exchange(fd, settings.messageSize, poller));
    tally.connected = held.size;
    // The probe connects after the whole crowd, as the newcomer that asks; on a poller of its own,
    // since the crowd's connections are in `poller` already and may turn readable meanwhile (a
    // server that closes what it cannot watch).
    const connecting = new Poller();
    let probeFd: number | undefined;
    try {
      [probeFd] = await openConnections(connecting, settings.address, 1, settings.connectTimeoutSeconds, tally);
    } finally {
      connecting.close();
    }
    const probeConnected = probeFd !== undefined;
    if (probeFd === undefined) probeGone = true;
    else probe = new Exchange(probeFd, settings.messageSize, poller);
    const warmed = [...held.values(), ...(probe ? [probe] : [])];
    tally.warmup = await warmUp(poller, warmed, scratch, tally, (gone) => {
      if (gone === probe) {
        probe = null;
        probeGone = true;
      } else held.delete(gone.fd);
    });
    await settings.onReady();

    const startedAt = performance.now();
    tally.windowStarted();
    const deadline = startedAt + settings.durationSeconds * 1000;
    // The probe asks at once; a warm-up request still unanswered is its first request of the window.
    if (probe !== null) {
      if (probe.awaitingReply) tally.requestsSent++;
      else nextProbeAt = startedAt;
    }

    let now = performance.now();
    while (now < deadline && (held.size > 0 || !probeGone)) {
      const ready = poller.wait(Math.min(WAIT_MS, deadline - now, nextProbeAt - now));
      now = performance.now();
      for (let i = 0; i < ready; i++) {
        const fd = poller.fdAt(i);
        if (probe !== null && fd === probe.fd) {
          const mask = poller.maskAt(i);
          try {
            if (mask & libc.EPOLLOUT) probe.continueSending();
            if (!(mask & (libc.EPOLLIN | libc.EPOLLERR | libc.EPOLLHUP))) continue;
            const progress = probe.receive(scratch);
            if (progress === 'complete') {
              tally.roundTrips++;
              tally.latency.recordMicroseconds((now - probe.sentAt) * 1000);
              nextProbeAt = now + PROBE_INTERVAL_MS;
            } else if (progress === 'wrong') {
              tally.wrongReplies++;
              dropProbe();
            } else if (progress === 'closed') {
              tally.closedByServer++;
              dropProbe();
            }
          } catch (error) {
            tally.connectionLost(error);
            dropProbe();
          }
        } else {
          const idle = held.get(fd);
          if (idle !== undefined && !stillOpen(idle, scratch, tally)) held.delete(fd);
        }
      }
      if (probe !== null && !probe.awaitingReply && now >= nextProbeAt) ask(probe);
      if (poller.dueForYield(now)) await yieldToEventLoop();
      now = performance.now();
    }
    const durationSeconds = (performance.now() - startedAt) / 1000;

    if (probeGone && tally.roundTrips === 0) tally.note('the probe connection failed before it was answered');
    if (probe?.awaitingReply) tally.unanswered = 1;
    const latency = tally.latency.summary();
    // A probe that never connected asked nothing: no probe at all, rather than one of 0 requests.
    const result = tally.result(settings, durationSeconds, probeConnected ? { sent: tally.requestsSent, answered: tally.roundTrips, latency } : null);
    await settings.onResult(result);
    return result;
  } finally {
    for (const idle of held.values()) idle.close();
    probe?.close();
    poller.close();
  }
}

/**
 * An idle connection turned readable: the late reply to its warm-up request, or the server
 * closed it, reset it, or (against the protocol) sent something, which is read and dropped.
 * Returns false, after closing it, if it is gone.
 */
function stillOpen(idle: Exchange, scratch: Buffer, tally: Tally): boolean {
  const fd = idle.fd;
  try {
    if (idle.awaitingReply) {
      const progress = idle.receive(scratch);
      if (progress === 'incomplete' || progress === 'complete') return true;
      tally.replyFailed(progress);
      idle.close();
      return false;
    }
    for (;;) {
      const received = libc.recv(fd, scratch);
      if (received === libc.WOULD_BLOCK) return true;
      if (received === 0) break;
      tally.note('the server sent data on an idle connection, unasked (read and dropped)');
    }
    tally.closedByServer++;
  } catch (error) {
    tally.connectionLost(error);
  }
  libc.close(fd);
  return false;
}
