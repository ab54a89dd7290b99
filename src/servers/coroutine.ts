// Coroutines (green threads): every connection on ONE thread, each served by straight-line code.
//
// What gevent does with greenlets and patched sockets, and asyncio with coroutines: the handler
// below reads like the blocking model's loop (recv, upper-case, send, again), but it is a
// generator, and its recv, sendAll and accept come from coroutine-scheduler.ts: each tries the
// non-blocking call and, where it would block (EAGAIN), yields to the scheduler instead, which
// parks it and runs other coroutines until epoll reports its fd ready. Phase 1 (waiting for data)
// happens in the scheduler's epoll_wait, for all connections at once; phase 2 is the recvfrom.
// The acceptor is a coroutine too, spawning one coroutine per connection.
//
// Concurrency without threads and without locks: one thread runs everything and a switch happens
// only where a coroutine would block, so between two waits a coroutine has every variable to
// itself (the shared receive buffer too: sendAll copies what it could not send before it waits).
// The costs: switching with no IO to overlap only costs time (a generator resumed, a run queue
// kept: with one connection this is the epoll model plus overhead); a coroutine that never waits
// is never switched away from; and one coroutine that makes a real blocking call, one the
// scheduler does not know about, stalls all the others. `--blocking-call-ms N` shows it: the
// first connection's handler calls nanosleep before each reply (time.sleep() under gevent
// without monkey-patching), and every other connection waits those N ms with it.
//
// Syscalls in steady state: epoll_wait, recvfrom, sendto; epoll_ctl once per connection and none
// per round trip (each fd is registered once, edge-triggered: see the scheduler); with
// --blocking-call-ms, clock_nanosleep.
// Limits: one core; no fd ceiling beyond RLIMIT_NOFILE; fair only as far as handlers wait.
import { accept, type Coroutine, recv, Scheduler, sendAll } from './coroutine-scheduler.js';
import { isPeerGone, RECEIVE_BUFFER_SIZE, upperCaseInPlace } from './echo.js';
import * as libc from '../libc/index.js';
import { sleepMilliseconds } from '../libc/time.js';
import type { TypeScriptModel } from './model.js';

function* serveConnection(scheduler: Scheduler, fd: number, buffer: Buffer, blockingCallMs: number): Coroutine {
  try {
    for (;;) {
      const received = yield* recv(fd, buffer);
      if (received === 0) return;
      upperCaseInPlace(buffer, received);
      // A real blocking call: the thread sleeps, and with it every coroutine.
      if (blockingCallMs > 0) sleepMilliseconds(blockingCallMs);
      yield* sendAll(fd, buffer, received);
    }
  } catch (error) {
    if (!isPeerGone(error)) throw error;
  } finally {
    scheduler.close(fd);
  }
}

function* acceptForever(scheduler: Scheduler, listener: number, buffer: Buffer, blockingCallMs: number): Coroutine {
  for (let first = true; ; first = false) {
    const fd = yield* accept(listener);
    scheduler.spawn(serveConnection(scheduler, fd, buffer, first ? blockingCallMs : 0));
  }
}

export const coroutine: TypeScriptModel = {
  name: 'coroutine',
  summary: 'green threads on one thread: generator handlers yield where they would block, a scheduler resumes them from epoll',
  options: ['blockingCallMs'],
  traits: {
    waits: 'ready-list',
    perConnection: 'none',
    concurrency: 'all',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: 'edge',
    coroutines: true,
  },
  fingerprint: {
    waitsIn: ['epoll_wait', 'epoll_pwait'],
    required: [['epoll_wait', 'epoll_pwait'], ['epoll_ctl'], ['recvfrom']],
    forbidden: ['select', 'pselect6', 'poll', 'ppoll'],
  },
  serve(listener, options) {
    libc.setNonBlocking(listener);
    const scheduler = new Scheduler();
    scheduler.spawn(acceptForever(scheduler, listener, Buffer.alloc(RECEIVE_BUFFER_SIZE), options.blockingCallMs));
    scheduler.run();
  },
};
