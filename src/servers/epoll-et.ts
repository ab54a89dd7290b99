// IO multiplexing with epoll, edge-triggered (EPOLLET).
//
// The interest list lives in the kernel, as with level-triggered epoll, but epoll_wait reports an
// fd when its state CHANGES (new data arrived, send-buffer space came free), once, not for as long
// as it stays ready. So each connection is registered once for both directions,
// EPOLLIN|EPOLLOUT|EPOLLET, and never modified: no epoll_ctl per reply that could not be sent
// whole. The price is the reader's duty: on every event, work until the kernel says EAGAIN (accept
// until EAGAIN, recvfrom until EAGAIN, sendto until done or EAGAIN), because bytes left in the
// socket raise no new event: they stay stranded until the peer sends more. `iolab server --model
// epoll-et --no-drain` reads once per event, to show exactly that bug.
//
// Syscalls in steady state: epoll_wait, recvfrom (one more per event than level-triggered: the
// EAGAIN that ends the drain), sendto; epoll_ctl once per connection (the add; close removes it).
// Limits: as epoll (cost grows with READY fds; no ceiling beyond RLIMIT_NOFILE). A connection is
// served until EAGAIN before the next ready one: a client that answers faster than this loop reads
// (as when strace slows the server) keeps the loop on its connection for many round trips while
// the others wait, and epoll_wait is seldom called (epoll(7), "Starvation"; the cure is a list of
// fds still to drain, served round-robin). When accept fails for want of an fd (EMFILE), the
// queued connection raises no new edge: it waits until another connection arrives.
import { acceptConnection, Connection, RECEIVE_BUFFER_SIZE } from './echo.js';
import * as libc from '../libc/index.js';
import type { TypeScriptModel } from './model.js';

const MAX_EVENTS = 256;

/** Reads and echoes until recvfrom says EAGAIN, the peer leaves, or a reply could not go out whole. */
function drain(connection: Connection, buffer: Buffer): void {
  while (connection.receiveAndEcho(buffer) && connection.open && connection.pending === null);
}

export const epollEdgeTriggered: TypeScriptModel = {
  name: 'epoll-et',
  summary: 'epoll, edge-triggered: each fd registered once for in and out, drained until EAGAIN on every event',
  options: ['drain'],
  traits: {
    waits: 'ready-list',
    perConnection: 'none',
    concurrency: 'all',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: 'edge',
    coroutines: false,
  },
  fingerprint: {
    waitsIn: ['epoll_wait', 'epoll_pwait'],
    required: [['epoll_wait', 'epoll_pwait'], ['epoll_ctl'], ['recvfrom']],
    forbidden: ['select', 'pselect6', 'poll', 'ppoll'],
  },
  serve(listener, options) {
    libc.setNonBlocking(listener);
    const buffer = Buffer.alloc(RECEIVE_BUFFER_SIZE);
    const events = Buffer.alloc(MAX_EVENTS * libc.EPOLL_EVENT_SIZE);
    const connections = new Map<number, Connection>();
    const epfd = libc.epollCreate();
    libc.epollControl(epfd, libc.EPOLL_CTL_ADD, listener, libc.EPOLLIN | libc.EPOLLET);

    for (;;) {
      const ready = libc.epollWait(epfd, events, -1);
      for (let i = 0; i < ready; i++) {
        const fd = libc.eventFd(events, i);
        if (fd === listener) {
          // One edge for however many connections are queued: take them all.
          for (let client = acceptConnection(listener, libc.SOCK_NONBLOCK); client >= 0; client = acceptConnection(listener, libc.SOCK_NONBLOCK)) {
            connections.set(client, new Connection(client));
            libc.epollControl(epfd, libc.EPOLL_CTL_ADD, client, libc.EPOLLIN | libc.EPOLLOUT | libc.EPOLLET);
          }
          continue;
        }
        const connection = connections.get(fd);
        if (!connection) continue;
        // Whichever edge this is: first send what is owed; then, if the kernel took it all, read.
        // A reply left pending stops the reading (or replies would pile up without bound): the
        // send buffer coming free is itself an edge, and that event resumes the reading.
        if (connection.flush()) {
          if (options.drain) drain(connection, buffer);
          else connection.receiveAndEcho(buffer); // the bug: what this read left waits for the next edge
        }

        if (!connection.open) connections.delete(fd); // close() removed it from the interest list
      }
    }
  },
};
