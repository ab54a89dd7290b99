// Non-blocking IO with busy polling: O_NONBLOCK on every socket and a loop that keeps asking.
//
// accept4 and recvfrom never wait: when nothing is there they fail at once with EAGAIN (Python:
// BlockingIOError) and the loop asks the next socket, round and round, with no readiness API and
// no sleep. Phase 1 (waiting for data) never blocks; the price is a core spinning at ~100% doing
// nothing useful, and a reply that waits for a full sweep over every connection.
//
// Syscalls in steady state: accept4 and recvfrom in huge numbers, nearly all failing with
// EAGAIN; sendto when there was something to echo.
// Limits: CPU near 100% even with idle clients; latency grows with the number of sockets swept.
import { acceptConnection, Connection, RECEIVE_BUFFER_SIZE } from './echo.js';
import * as libc from '../libc/index.js';
import type { TypeScriptModel } from './model.js';

export const nonblocking: TypeScriptModel = {
  name: 'nonblocking',
  summary: 'O_NONBLOCK sockets and a busy loop over accept and every recv (EAGAIN storm)',
  traits: {
    waits: 'spin',
    perConnection: 'none',
    concurrency: 'all',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: null,
    coroutines: false,
  },
  fingerprint: {
    waitsIn: [],
    required: [['accept4'], ['recvfrom']],
    forbidden: ['select', 'pselect6', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait'],
  },
  serve(listener) {
    libc.setNonBlocking(listener);
    const buffer = Buffer.alloc(RECEIVE_BUFFER_SIZE);
    let connections: Connection[] = [];
    for (;;) {
      const client = acceptConnection(listener, libc.SOCK_NONBLOCK);
      if (client >= 0) connections.push(new Connection(client));

      for (const connection of connections) {
        // A reply the kernel did not take yet goes out before we read more from that client.
        if (connection.flush()) connection.receiveAndEcho(buffer);
      }
      if (connections.some((connection) => !connection.open)) {
        connections = connections.filter((connection) => connection.open);
      }
    }
  },
};
