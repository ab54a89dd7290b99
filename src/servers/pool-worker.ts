// The body of one pool thread (see pool.ts): take the next accepted fd from the queue, serve it
// with blocking recv/send until its client leaves, take the next. With nothing queued it sleeps
// in Atomics.wait (futex). It never returns to its own event loop once serving.
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { setThreadName } from '../libc/thread.js';
import { echoUntilClosed, RECEIVE_BUFFER_SIZE } from './echo.js';
import { FdQueue } from './fd-queue.js';
import { report } from './log.js';
import { SERVING_THREAD_PREFIX } from './model.js';

setThreadName(`${SERVING_THREAD_PREFIX}pool`);

const queue = new FdQueue((workerData as { queue: SharedArrayBuffer }).queue);
const buffer = Buffer.alloc(RECEIVE_BUFFER_SIZE);
parentPort!.postMessage('ready');

for (;;) {
  const fd = queue.take();
  try {
    echoUntilClosed(fd, buffer);
  } catch (error) {
    // The main thread never runs its event loop again, so it would never hear of this thread's
    // death: the pool would shrink in silence. Log it (the fd is closed) and take the next one.
    report({ event: 'connection-failed', message: `pool: thread ${threadId} failed serving fd ${fd}: ${(error as Error).message}` });
  }
}
