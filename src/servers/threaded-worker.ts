// The body of one connection's thread (see threaded.ts): serve the fd it was born for with
// blocking recv/send until the client leaves, then end, and the thread with it.
import { workerData } from 'node:worker_threads';
import { setThreadName } from '../libc/thread.js';
import { echoUntilClosed, RECEIVE_BUFFER_SIZE } from './echo.js';
import { SERVING_THREAD_PREFIX } from './model.js';

setThreadName(`${SERVING_THREAD_PREFIX}conn`);
echoUntilClosed((workerData as { fd: number }).fd, Buffer.alloc(RECEIVE_BUFFER_SIZE));
