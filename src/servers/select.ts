// IO multiplexing with select(2): one call watches many fds and returns when some are ready.
//
// Phase 1 (waiting for data) happens inside select, for all connections at once; phase 2 (the
// copy) is the recvfrom that follows, which no longer waits because the data is there. Every
// call hands the kernel the whole fd_set again and the kernel scans all of it: the cost grows
// with the number of WATCHED fds, idle or not. select modifies the sets it is given, so they are
// rebuilt before every call.
//
// glibc's fd_set has FD_SETSIZE = 1024 bits, so select through the C library cannot watch an fd
// >= 1024 (C aborts under _FORTIFY_SOURCE, Python raises ValueError). The kernel would accept a
// larger bitmap; we enforce the C library's limit, as every real select server lives with it: a
// connection that lands on fd >= 1024 is refused (closed) with one log line.
//
// Syscalls in steady state: select (or pselect6), then recvfrom and sendto on the ready fds.
// Limits: fds < 1024; cost linear in watched fds; with one connection, two calls per request.
import { acceptConnection, Connection, RECEIVE_BUFFER_SIZE } from './echo.js';
import * as libc from '../libc/index.js';
import { report } from './log.js';
import type { TypeScriptModel } from './model.js';

export const select: TypeScriptModel = {
  name: 'select',
  summary: 'select(2) over fd_set bitmaps rebuilt every call; fds must be < FD_SETSIZE (1024)',
  traits: {
    waits: 'scan-all-fds',
    perConnection: 'none',
    concurrency: 'all',
    fdCeiling: 'FD_SETSIZE',
    triggering: 'level',
    coroutines: false,
  },
  fingerprint: {
    waitsIn: ['select', 'pselect6'],
    required: [['select', 'pselect6'], ['recvfrom']],
    forbidden: ['poll', 'ppoll', 'epoll_wait', 'epoll_pwait'],
  },
  serve(listener) {
    libc.setNonBlocking(listener);
    const buffer = Buffer.alloc(RECEIVE_BUFFER_SIZE);
    const connections = new Map<number, Connection>();
    const readable = libc.fdSet.create();
    const writable = libc.fdSet.create();
    for (;;) {
      readable.fill(0);
      writable.fill(0);
      libc.fdSet.add(readable, listener);
      let highest = listener;
      for (const [fd, connection] of connections) {
        // Waiting to write: don't read more from a client whose replies the kernel isn't taking.
        libc.fdSet.add(connection.pending ? writable : readable, fd);
        highest = Math.max(highest, fd);
      }

      libc.select(highest + 1, readable, writable, null);

      if (libc.fdSet.has(readable, listener)) {
        const client = acceptConnection(listener, libc.SOCK_NONBLOCK);
        if (client >= libc.FD_SETSIZE) {
          report({
            event: 'refused',
            fd: client,
            limit: 'FD_SETSIZE',
            message: `select: refused connection on fd ${client}: an fd_set holds fds < FD_SETSIZE=${libc.FD_SETSIZE}`,
          });
          libc.close(client);
        } else if (client >= 0) {
          connections.set(client, new Connection(client));
        }
      }
      for (const [fd, connection] of connections) {
        if (libc.fdSet.has(writable, fd)) connection.flush();
        else if (libc.fdSet.has(readable, fd)) connection.receiveAndEcho(buffer);
        if (!connection.open) connections.delete(fd);
      }
    }
  },
};
