// Thread pool: K threads, started before serving, take accepted connections from a queue.
//
// The main thread blocks in accept4 (a blocking listener) and pushes each new fd into a queue
// in shared memory (fd-queue.ts). Each of the K pool threads (pool-worker.ts) takes the next fd,
// serves that client with blocking recvfrom/sendto until it leaves, and takes the next; an idle
// one sleeps in Atomics.wait, a futex. K clients are served at once: the (K+1)-th is accepted
// and queued, and its request waits in its socket until a thread is free. The ceiling caps the
// cost (K threads whatever the load) and is also the model's limit.
//
// The threads are Node worker_threads, each an OS thread plus a V8 isolate (about 10 MB each, see
// threaded.ts), and they are started in prepare(), before the ready line: a tracer attached
// after it sees no clone, only serving. A full queue (QUEUE_CAPACITY fds waiting) stops the
// accepting: the main thread sleeps until a worker takes one, and the kernel's backlog holds
// the connections that keep coming.
//
// Syscalls in steady state: accept4 (main thread), recvfrom and sendto (pool threads), futex
// (a pushed fd waking an idle thread). No clone, and no epoll: once serving, no thread ever
// returns to its event loop.
// Limits: K clients at a time; an idle client holds a thread as long as it stays connected.
import { Worker } from 'node:worker_threads';
import { acceptConnection } from './echo.js';
import { FdQueue } from './fd-queue.js';
import type { ServeOptions, TypeScriptModel } from './model.js';

const POOL_THREAD = new URL('./pool-worker.js', import.meta.url);
/** Accepted connections that may wait for a thread; a power of two (see fd-queue.ts). */
const QUEUE_CAPACITY = 4096;

let queue: FdQueue | null = null;

async function startThreads(count: number): Promise<FdQueue> {
  const shared = FdQueue.create(QUEUE_CAPACITY);
  await Promise.all(
    Array.from({ length: count }, () => {
      const thread = new Worker(POOL_THREAD, { workerData: { queue: shared.buffer } });
      return new Promise<void>((resolve, reject) => {
        thread.once('message', () => resolve());
        thread.once('error', reject);
        thread.once('exit', (code) => reject(new Error(`a pool thread exited (code ${code}) before it was ready`)));
      });
    }),
  );
  return shared;
}

export const pool: TypeScriptModel = {
  name: 'pool',
  summary: 'K threads started up front take accepted fds from a queue; the (K+1)-th client waits',
  options: ['threads'],
  traits: {
    waits: 'blocking-call',
    perConnection: 'none',
    concurrency: 'pool',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: null,
    coroutines: false,
  },
  fingerprint: {
    waitsIn: ['accept4', 'recvfrom'],
    required: [['accept4'], ['recvfrom'], ['sendto'], ['futex']],
    forbidden: ['select', 'pselect6', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait', 'clone', 'clone3'],
  },
  async prepare(options: ServeOptions) {
    queue = await startThreads(options.threads);
  },
  async serve(listener, options) {
    const fds = queue ?? (await startThreads(options.threads));
    for (;;) {
      fds.waitForRoom();
      const client = acceptConnection(listener);
      if (client >= 0) fds.put(client);
    }
  },
};
