// Blocking IO: one thread, one client at a time.
//
// accept4 blocks until a client connects; then recvfrom blocks through both phases of a read
// (waiting for data, then the kernel's copy into our buffer) and sendto blocks until the kernel
// has taken the reply. While this thread waits on one client, nobody accepts or serves another:
// a second client is queued in the kernel's accept backlog until the first one disconnects.
//
// Syscalls in steady state: accept4, recvfrom, sendto, close — nothing else per request.
// Limits: one client at a time (starvation); a client that connects and stays idle blocks all.
import { acceptConnection, echoUntilClosed, RECEIVE_BUFFER_SIZE } from './echo.js';
import type { TypeScriptModel } from './model.js';

export const blocking: TypeScriptModel = {
  name: 'blocking',
  summary: 'one thread; accept, then serve that client until it leaves, then the next',
  traits: {
    waits: 'blocking-call',
    perConnection: 'none',
    concurrency: 'one',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: null,
    coroutines: false,
  },
  fingerprint: {
    waitsIn: ['accept4', 'recvfrom'],
    required: [['accept4'], ['recvfrom'], ['sendto']],
    forbidden: ['select', 'pselect6', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait', 'clone', 'clone3'],
  },
  serve(listener) {
    const buffer = Buffer.alloc(RECEIVE_BUFFER_SIZE);
    for (;;) {
      const client = acceptConnection(listener);
      if (client >= 0) echoUntilClosed(client, buffer);
    }
  },
};
