// Signal-driven IO: the kernel sends a signal when an fd becomes ready.
//
// Each socket gets an owner (fcntl F_SETOWN_EX: this thread), a signal (F_SETSIG: a realtime
// signal) and O_ASYNC. From then on the kernel queues one signal per event: data arrived, send
// space freed after a short send, the peer left, a connection waits on the listener. Each signal
// carries the fd (si_fd) and what happened (si_band, as poll bits). Waiting for data (phase 1) is
// no longer a call the process makes per socket: the process is told. The copy (phase 2) is
// still the recvfrom that follows, and it still blocks the process.
//
// Why no signal handler: the textbook program installs a handler and goes on with other work
// until a signal interrupts it. A JavaScript function cannot be a handler: a handler runs between
// any two instructions, where V8 cannot run JS, and koffi loses the deliveries. So the signals
// are blocked in this thread and consumed synchronously: read(2) of a signalfd returns the queued
// signals as 128-byte records. This loop has no other work, so it waits in that read; a program
// with work to do would read the signalfd when it pleases while the kernel keeps queuing.
//
// Why a realtime signal: a plain SIGIO carries no fd and does not queue (one pending bit per
// signal number), so every socket would need testing. Realtime signals queue, one per event, with
// their si_fd. SIGRTMIN is asked from glibc at run time: it keeps the kernel's first two realtime
// signals for its threads. The signal targets this thread (F_OWNER_TID), the only one that blocks
// it: Node runs other threads, and a signal left to them would kill the process (default action).
//
// Edge-like: a signal is sent when something happens, never again for data left unread, so a
// connection named by a signal is served until recvfrom says EAGAIN (a new connection too: its
// first bytes may have come before O_ASYNC). Not in one go: a client that sends again as fast as
// it is answered would keep the server to itself. The connections still to finish form a ready
// list served one recv per pass, round robin (epoll(7) gives the same advice for EPOLLET); between
// passes a second, non-blocking signalfd takes the signals queued meanwhile, and the blocking one
// is read only when the ready list is empty.
//
// Overflow: queued signals count against RLIMIT_SIGPENDING. When the queue is full the kernel
// drops the realtime signal and sends a plain SIGIO instead: "something happened, somewhere". On
// SIGIO the listener and every connection go on the ready list.
//
// Syscalls in steady state: read (of the signalfds; the non-blocking one often fails with EAGAIN),
// recvfrom, sendto; fcntl three times per connection at accept (F_SETSIG, F_SETOWN_EX, F_SETFL).
// No select, poll or epoll.
// Limits: every event is a signal (queued and copied out, 128 bytes each); the queue overflows
// under load and the fallback costs a scan of every connection; a queued signal may name an fd
// already closed or reused. Rarely used in practice: epoll gives the same news without signals.
import { acceptConnection, Connection, RECEIVE_BUFFER_SIZE } from './echo.js';
import * as signals from '../libc/signals.js';
import { OnceReporter } from './log.js';
import type { TypeScriptModel } from './model.js';

/** Records one read of a signalfd may return: one per queued signal. */
const MAX_RECORDS = 64;
/**
 * An overflow streak ends after this long without a SIGIO. Under sustained load the queue fills
 * again every few reads: a log line each time it was briefly not full would flood the log.
 */
const OVERFLOW_QUIET_MS = 1000;

export const sigio: TypeScriptModel = {
  name: 'sigio',
  summary: 'signal-driven: O_ASYNC + F_SETSIG queue a realtime signal per ready fd, read from a signalfd',
  traits: {
    waits: 'signal',
    perConnection: 'none',
    concurrency: 'all',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: 'edge',
    coroutines: false,
  },
  fingerprint: {
    waitsIn: ['read'],
    required: [['read'], ['fcntl'], ['recvfrom']],
    forbidden: ['select', 'pselect6', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait'],
  },
  serve(listener) {
    const readinessSignal = signals.realtimeSignalMin();
    const mask = [readinessSignal, signals.SIGIO];
    signals.blockSignalsInThisThread(mask);
    // Two readers of the same queue: one to sleep on, one to look without sleeping.
    const waitForSignals = signals.signalFd(mask);
    const takeQueuedSignals = signals.signalFd(mask, true);
    const thisThread = signals.gettid();
    const signalWhenReady = (fd: number) => {
      // The signal and its owner first: O_ASYNC arms it, and the first event must not go astray.
      signals.setReadinessSignal(fd, readinessSignal);
      signals.setOwnerThread(fd, thisThread);
      signals.setAsyncNonBlocking(fd);
    };
    const overflows = new OnceReporter();
    const overflow = `sigio: realtime signal queue full (RLIMIT_SIGPENDING=${signals.pendingSignalsLimit()}), the kernel sent a plain SIGIO without an fd instead`;

    const buffer = Buffer.alloc(RECEIVE_BUFFER_SIZE);
    const records = Buffer.alloc(MAX_RECORDS * signals.SIGNALFD_SIGINFO_SIZE);
    const connections = new Map<number, Connection>();
    /** Connections named by a signal that have not reached EAGAIN yet (a Set keeps insertion order). */
    const ready = new Set<Connection>();

    const acceptAll = () => {
      for (;;) {
        const client = acceptConnection(listener);
        if (client < 0) return;
        signalWhenReady(client);
        const connection = new Connection(client);
        connections.set(client, connection);
        ready.add(connection);
      }
    };
    /**
     * One step: send what is pending, else one recv and its echo. False: nothing more until a
     * signal. Whatever si_band said (POLL_IN, POLL_OUT, POLL_HUP, POLL_ERR), this step is right.
     */
    const serveOnce = (connection: Connection): boolean => {
      // A send buffer still full: the kernel signals again (POLL_OUT) once it has room.
      if (connection.pending) return connection.flush();
      return connection.receiveAndEcho(buffer) && connection.open;
    };

    signalWhenReady(listener);
    acceptAll();
    let lastOverflow = 0;
    for (;;) {
      const count = signals.readSignals(ready.size === 0 ? waitForSignals : takeQueuedSignals, records);
      let listenerReady = false;
      for (let i = 0; i < count; i++) {
        if (signals.siginfoSignal(records, i) === signals.SIGIO) {
          // Some events were dropped and SIGIO does not say whose: every fd is a suspect.
          overflows.happened({ event: 'signal-queue-overflow', message: `${overflow}: rescanning the listener and ${connections.size} connections` });
          lastOverflow = Date.now();
          listenerReady = true;
          for (const connection of connections.values()) ready.add(connection);
          continue;
        }
        const fd = signals.siginfoFd(records, i);
        if (fd === listener) listenerReady = true;
        else {
          // No entry: a signal queued before its connection closed.
          const connection = connections.get(fd);
          if (connection) ready.add(connection);
        }
      }
      if (lastOverflow !== 0 && Date.now() - lastOverflow > OVERFLOW_QUIET_MS) {
        overflows.cleared();
        lastOverflow = 0;
      }
      if (listenerReady) acceptAll();
      for (const connection of ready) {
        if (serveOnce(connection)) continue;
        ready.delete(connection);
        if (!connection.open) connections.delete(connection.fd);
      }
    }
  },
};
