// Thread per connection: blocking IO, one new thread for every client.
//
// The main thread blocks in accept4 (a blocking listener, as in the blocking model) and hands
// each new fd to a NEW thread, which blocks in recvfrom and sendto for that one client, as the
// blocking model's single thread did, and ends when the client leaves. While one thread waits
// for its client, the scheduler runs the others: every client is served at once, and the kernel,
// not our code, decides who runs.
//
// A thread here is a Node worker_thread: an OS thread (clone3) PLUS a V8 isolate with its own
// heap, its own libuv loop and its own copy of our modules, so it costs far more than a C
// thread's stack. Measured on this machine (Node 20; 100 held connections and the probe of
// `iolab client --mode hold --connections 100`): exactly one more thread per connection in
// /proc/PID/task, and about 8 MB of RSS per connection, nearly all of it the isolate (9.6 MB
// without the resourceLimits below). Each start costs about 60 ms of CPU (a fresh isolate
// bootstraps Node and loads our modules again), paid on every connect. A C server pays a stack
// (a few pages touched of 8 MB reserved) and a clone.
//
// Syscalls in steady state: accept4 and clone3 (one per connection) on the main thread,
// recvfrom and sendto on the connection threads, futex between threads (a worker's start-up and
// exit, V8's platform threads). Each connection's start also shows epoll_create1, epoll_ctl and
// some 40 epoll_pwait (epoll_wait on Node 18), with some 70 statx and 30 openat: the worker runs
// its OWN libuv loop while the ESM loader finds and reads our module files, and the main thread
// runs one turn of its loop per accept (see below). None of these epolls ever watches a client
// socket; still, epoll cannot be forbidden for this model.
// Limits: memory and start-up time per connection; at thousands of connections, thousands of
// threads for the scheduler and gigabytes of RSS. No ceiling but memory and RLIMIT_NPROC. (koffi
// never frees its per-isolate state: RSS creeps by about 30 KB per ended connection.)
import { Worker } from 'node:worker_threads';
import { acceptConnection } from './echo.js';
import { report } from './log.js';
import type { TypeScriptModel } from './model.js';

const CONNECTION_THREAD = new URL('./threaded-worker.js', import.meta.url);

/**
 * Caps for each connection's isolate: a V8 heap sizes itself by its limit, so a lower cap is a
 * smaller heap reserved and touched up front (measured: 9.6 MB per connection without caps, 8.0
 * with these; 6 MB of old space saves no more). Node's own start-up leaves about 4.7 MB in old
 * space and the echo loop adds nothing lasting (its buffer lives outside the heap): 8 MB is
 * headroom. A thread that ever ran out would be stopped, its client left unserved, and logged
 * below. The JS stack stays shallow.
 */
const CONNECTION_THREAD_LIMITS = { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8, stackSizeMb: 1 };

/** One turn of Node's event loop: where a finished worker is joined and its 'exit' delivered. */
const oneLoopTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export const threaded: TypeScriptModel = {
  name: 'threaded',
  summary: 'a new thread per connection (a worker_thread: OS thread + V8 isolate), blocking recv/send in each',
  traits: {
    waits: 'blocking-call',
    perConnection: 'thread',
    concurrency: 'all',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: null,
    coroutines: false,
  },
  fingerprint: {
    waitsIn: ['accept4', 'recvfrom'],
    required: [['accept4'], ['recvfrom'], ['sendto'], ['clone', 'clone3'], ['futex']],
    forbidden: ['select', 'pselect6', 'poll', 'ppoll'],
  },
  async serve(listener) {
    for (;;) {
      const client = acceptConnection(listener);
      if (client >= 0) {
        const thread = new Worker(CONNECTION_THREAD, { workerData: { fd: client }, resourceLimits: CONNECTION_THREAD_LIMITS });
        thread.on('error', (error) => report({ event: 'connection-failed', message: `threaded: the thread serving fd ${client} failed: ${error.message}` }));
      }
      // A finished thread is joined (its stack freed) and its Worker released only when this
      // loop runs: blocking in accept4 for ever kept about 60 KB per closed connection here.
      // One turn per accept suffices (an epoll_pwait with timeout 0).
      await oneLoopTurn();
    }
  },
};
