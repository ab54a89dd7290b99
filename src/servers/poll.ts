// IO multiplexing with poll(2): like select, but the fds to watch are an array of struct pollfd.
//
// Phase 1 (waiting for data) happens inside poll, for all connections at once; phase 2 (the copy)
// is the recvfrom that follows. An entry names its fd as a number, not as a bit of a fixed-size
// bitmap, so there is no FD_SETSIZE: any fd below RLIMIT_NOFILE can be watched. What did not
// change from select: every call still copies the whole array into the kernel and the kernel
// scans all of it, so the cost grows with the number of WATCHED fds, idle or not.
//
// The kernel writes only revents and leaves fd and events alone, so unlike select's fd_sets the
// array is kept from one call to the next: an entry is added on accept, its events switched
// between POLLIN and POLLOUT, and a closed connection's hole is filled with the last entry (the
// array stays dense: poll has to scan every entry it is given, holes included).
//
// Syscalls in steady state: poll (or ppoll), then recvfrom and sendto on the ready fds.
// Limits: cost linear in watched fds; with one connection, two calls per request.
import { acceptConnection, Connection, RECEIVE_BUFFER_SIZE } from './echo.js';
import * as libc from '../libc/index.js';
import { poll as pollFds, pollfd, POLLIN, POLLOUT } from '../libc/poll.js';
import type { TypeScriptModel } from './model.js';

const INITIAL_ENTRIES = 64;

export const poll: TypeScriptModel = {
  name: 'poll',
  summary: 'poll(2) over an array of pollfd kept between calls; no FD_SETSIZE limit, still a linear scan',
  traits: {
    waits: 'scan-all-fds',
    perConnection: 'none',
    concurrency: 'all',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: 'level',
    coroutines: false,
  },
  fingerprint: {
    waitsIn: ['poll', 'ppoll'],
    required: [['poll', 'ppoll'], ['recvfrom']],
    forbidden: ['select', 'pselect6', 'epoll_wait', 'epoll_pwait'],
  },
  serve(listener) {
    libc.setNonBlocking(listener);
    const buffer = Buffer.alloc(RECEIVE_BUFFER_SIZE);
    let fds = pollfd.create(INITIAL_ENTRIES);
    // Entry 0 watches the listener; entry i > 0 watches connections[i].
    const connections: (Connection | null)[] = [null];
    pollfd.set(fds, 0, listener, POLLIN);
    for (;;) {
      pollFds(fds, connections.length, -1);

      // Backwards: the last entry, moved into a closed connection's place, was handled already.
      for (let i = connections.length - 1; i > 0; i--) {
        // POLLERR and POLLHUP come unasked; the recvfrom or sendto that follows tells which.
        if (pollfd.revents(fds, i) === 0) continue;
        const connection = connections[i]!;
        if (connection.pending) connection.flush();
        else connection.receiveAndEcho(buffer);

        if (!connection.open) {
          const last = connections.length - 1;
          pollfd.move(fds, last, i);
          connections[i] = connections[last];
          connections.pop();
        } else {
          // Waiting to write: don't read more from a client whose replies the kernel isn't taking.
          pollfd.setEvents(fds, i, connection.pending ? POLLOUT : POLLIN);
        }
      }

      if (pollfd.revents(fds, 0) !== 0) {
        const client = acceptConnection(listener, libc.SOCK_NONBLOCK);
        if (client >= 0) {
          if (connections.length === pollfd.capacity(fds)) fds = pollfd.grow(fds);
          pollfd.set(fds, connections.length, client, POLLIN);
          connections.push(new Connection(client));
        }
      }
    }
  },
};
