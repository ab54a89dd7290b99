// IO multiplexing with epoll, level-triggered.
//
// The interest list lives in the kernel: each fd is registered once with epoll_ctl, and
// epoll_wait returns only the fds that are ready. Phase 1 happens inside epoll_wait; phase 2 is
// the recvfrom that follows. Level-triggered: as long as unread data (or a free send buffer, for
// EPOLLOUT) remains, every epoll_wait reports the fd again, so reading once per event is safe.
//
// Syscalls in steady state: epoll_wait, recvfrom, sendto; epoll_ctl per connection (add, and a
// switch to EPOLLOUT and back when a reply could not be sent whole).
// Limits: cost grows with READY fds, not watched ones; no fd ceiling beyond RLIMIT_NOFILE.
import { acceptConnection, Connection, RECEIVE_BUFFER_SIZE } from './echo.js';
import * as libc from '../libc/index.js';
import type { TypeScriptModel } from './model.js';

const MAX_EVENTS = 256;

export const epoll: TypeScriptModel = {
  name: 'epoll',
  summary: 'epoll, level-triggered: interest list registered once, epoll_wait returns ready fds',
  traits: {
    waits: 'ready-list',
    perConnection: 'none',
    concurrency: 'all',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: 'level',
    coroutines: false,
  },
  fingerprint: {
    waitsIn: ['epoll_wait', 'epoll_pwait'],
    required: [['epoll_wait', 'epoll_pwait'], ['epoll_ctl'], ['recvfrom']],
    forbidden: ['select', 'pselect6', 'poll', 'ppoll'],
  },
  serve(listener) {
    libc.setNonBlocking(listener);
    const buffer = Buffer.alloc(RECEIVE_BUFFER_SIZE);
    const events = Buffer.alloc(MAX_EVENTS * libc.EPOLL_EVENT_SIZE);
    const connections = new Map<number, Connection>();
    const epfd = libc.epollCreate();
    libc.epollControl(epfd, libc.EPOLL_CTL_ADD, listener, libc.EPOLLIN);

    for (;;) {
      const ready = libc.epollWait(epfd, events, -1);
      for (let i = 0; i < ready; i++) {
        const fd = libc.eventFd(events, i);
        if (fd === listener) {
          const client = acceptConnection(listener, libc.SOCK_NONBLOCK);
          if (client >= 0) {
            connections.set(client, new Connection(client));
            libc.epollControl(epfd, libc.EPOLL_CTL_ADD, client, libc.EPOLLIN);
          }
          continue;
        }
        const connection = connections.get(fd);
        if (!connection) continue;
        const wasWaitingToWrite = connection.pending !== null;
        if (wasWaitingToWrite) connection.flush();
        else connection.receiveAndEcho(buffer);

        if (!connection.open) {
          connections.delete(fd); // close() removed it from the interest list
        } else if (wasWaitingToWrite !== (connection.pending !== null)) {
          // The send buffer filled (wait for EPOLLOUT) or drained (back to EPOLLIN).
          libc.epollControl(epfd, libc.EPOLL_CTL_MOD, fd, connection.pending ? libc.EPOLLOUT : libc.EPOLLIN);
        }
      }
    }
  },
};
