// hold mode: the connections are opened and then sit idle, as a crowd of clients that think
// before they speak. Meanwhile one PROBE connection, opened after all of them, asks a small
// request, waits for the reply, pauses PROBE_INTERVAL_MS and asks again. On a server that serves
// one connection at a time the probe queues behind the idle crowd and is never answered; on a
// multiplexing server it is answered at once, however large the crowd.
import type { ClientResult } from '../report/results.js';
import * as libc from '../libc/index.js';
import { countConnectFailure, finishConnect, openConnections, startConnect } from './connect.js';
import { Exchange } from './exchange.js';
import { Poller, yieldToEventLoop } from './poller.js';
import { Tally, type ClientSettings } from './run.js';

const PROBE_INTERVAL_MS = 100;
/** epoll_wait sleeps at most this long, so the deadline is kept even if the server never answers. */
const WAIT_MS = 20;

export async function runHold(settings: ClientSettings): Promise<ClientResult> {
  const tally = new Tally();
  const poller = new Poller();
  const held = new Set<number>();
  const scratch = Buffer.allocUnsafe(Math.max(settings.messageSize, 4096));
  /** The probe's fd while its handshake is in progress. */
  let connectingProbeFd = -1;
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
    for (const fd of fds) {
      poller.add(fd, libc.EPOLLIN | libc.EPOLLRDHUP);
      held.add(fd);
    }
    tally.connected = held.size;
    await settings.onReady();

    const startedAt = performance.now();
    tally.windowStarted();
    const deadline = startedAt + settings.durationSeconds * 1000;
    try {
      const { fd, connected } = startConnect(settings.address);
      if (connected) {
        probe = new Exchange(fd, settings.messageSize, poller);
        nextProbeAt = startedAt;
      } else {
        poller.add(fd, libc.EPOLLOUT);
        connectingProbeFd = fd;
      }
    } catch (error) {
      countConnectFailure(tally, error);
      probeGone = true;
    }

    let now = performance.now();
    while (now < deadline && (held.size > 0 || !probeGone)) {
      const ready = poller.wait(Math.min(WAIT_MS, deadline - now, nextProbeAt - now));
      now = performance.now();
      for (let i = 0; i < ready; i++) {
        const fd = poller.fdAt(i);
        if (fd === connectingProbeFd) {
          poller.remove(fd);
          connectingProbeFd = -1;
          if (finishConnect(fd, tally)) {
            probe = new Exchange(fd, settings.messageSize, poller);
            nextProbeAt = now;
          } else probeGone = true;
        } else if (probe !== null && fd === probe.fd) {
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
        } else if (held.has(fd)) {
          if (!stillOpen(fd, scratch, tally)) held.delete(fd);
        }
      }
      if (probe !== null && !probe.awaitingReply && now >= nextProbeAt) ask(probe);
      if (poller.dueForYield(now)) await yieldToEventLoop();
      now = performance.now();
    }
    const durationSeconds = (performance.now() - startedAt) / 1000;

    if (connectingProbeFd !== -1) tally.note('the probe connection was still not established at the end (the server never completed its handshake)');
    if (probeGone && tally.roundTrips === 0) tally.note('the probe connection failed before it was answered');
    if (probe?.awaitingReply) tally.unanswered = 1;
    const latency = tally.latency.summary();
    return tally.result(settings, durationSeconds, { sent: tally.requestsSent, answered: tally.roundTrips, latency });
  } finally {
    for (const fd of held) libc.close(fd);
    if (connectingProbeFd !== -1) libc.close(connectingProbeFd);
    probe?.close();
    poller.close();
  }
}

/**
 * An idle connection turned readable: the server closed it, reset it, or (against the protocol)
 * sent something, which is read and dropped. Returns false, after closing it, if it is gone.
 */
function stillOpen(fd: number, scratch: Buffer, tally: Tally): boolean {
  try {
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
