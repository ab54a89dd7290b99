// Asynchronous IO with io_uring: the process asks for a whole operation, the copy included, and is
// told when it is complete.
//
// POSIX calls every other model here synchronous IO: however they wait for data (phase 1: blocked
// in recvfrom, spinning on EAGAIN, in select/epoll_wait, for a signal), the copy from the kernel
// into the process (phase 2) happens inside a recvfrom that the thread makes and waits in. Here
// the process hands the kernel a RECV with the address of the connection's buffer and goes on;
// the kernel waits for the data, copies it into that buffer, and only then posts a completion.
// Completion-based, not readiness-based: a completion says "done: N bytes are in your buffer",
// not "you may read now".
//
// One loop turn: a single io_uring_enter submits every SQE written since the last turn and waits
// for at least one completion (the only place the process blocks); then each completion is
// dispatched on its user_data, which carries the operation and the fd, and writes the next SQE:
//   ACCEPT done → RECV on the new fd, and ACCEPT again
//   RECV done   → upper-case the bytes in the buffer, SEND them from it
//   SEND done   → SEND the rest of a short send, or the next RECV
//   0 or an error (ECONNRESET, EPIPE, ...) → CLOSE the fd through the ring, like everything else
// A connection has at most one operation in flight, so one buffer per connection suffices, and
// it is closed only when nothing in flight refers to it: (operation, fd) stays unambiguous when
// the kernel hands the fd number to a new connection.
//
// Syscalls in steady state: io_uring_enter only. No accept4, recvfrom, sendto or close: the kernel
// does them inside io_uring_enter: on a socket it tries at once and, if it would block, arms a
// poll and finishes the operation when the socket is ready, in this thread's context (an io-wq
// worker thread only for what cannot be polled). One io_uring_enter may carry many RECVs and
// SENDs: under load, strace counts far fewer calls than round trips.
// Limits: Linux >= 5.7 (IORING_FEAT_FAST_POLL); often switched off (kernel.io_uring_disabled,
// newer Docker's default seccomp profile); memory the kernel holds pointers to must never move
// (mmapped: BUFFER_SIZE per connection, committed as it is touched, plus the rings); completions
// beyond the CQ ring's size wait inside the kernel (IORING_FEAT_NODROP) until we read the ring.
import { errnoCode, ErrnoError, RuntimeUnavailableError } from '../errors.js';
import { MSG_NOSIGNAL, SOCK_CLOEXEC } from '../libc/index.js';
import { BuffersByFd, IORING_OP_ACCEPT, IORING_OP_CLOSE, IORING_OP_RECV, IORING_OP_SEND, Ring } from '../libc/uring.js';
import { isPeerGoneErrno, replyAtOnce, upperCaseInPlace } from './echo.js';
import { log, OnceReporter, report } from './log.js';
import type { TypeScriptModel } from './model.js';

/** SQEs one turn may write before io_uring_enter; a turn with more submits midway (Ring.prepare). */
const SUBMISSION_ENTRIES = 4096;
/**
 * Completions waiting to be read. Each connection has one operation in flight at most, so below
 * 8191 connections the ring cannot fill; beyond, the kernel keeps the rest (IORING_FEAT_NODROP).
 */
const COMPLETION_ENTRIES = 2 * SUBMISSION_ENTRIES;
/** Per connection, not per thread as in the other models: the kernel owns it while a RECV waits. */
const BUFFER_SIZE = 16 * 1024;

/** user_data is 64 bits: the operation in the high half, the fd in the low half. */
const userData = (operation: number, fd: number) => operation * 2 ** 32 + fd;

/** A connection: its buffer (the kernel's while an operation is in flight) and the reply in it. */
interface Connection {
  buffer: Buffer;
  address: number;
  length: number;
  sent: number;
}

function openRing(): Ring {
  try {
    return new Ring(SUBMISSION_ENTRIES, COMPLETION_ENTRIES);
  } catch (error) {
    // Expected on many machines: one line that names the cause, and no stack (see cli.ts).
    if (error instanceof RuntimeUnavailableError) throw new RuntimeUnavailableError(`uring: ${error.message}`);
    throw error;
  }
}

let preparedRing: Ring | null = null;

export const uring: TypeScriptModel = {
  name: 'uring',
  summary: 'io_uring, completion-based: the kernel accepts, receives into our buffer and sends, then posts a completion',
  traits: {
    waits: 'completion',
    perConnection: 'none',
    concurrency: 'all',
    fdCeiling: 'RLIMIT_NOFILE',
    triggering: null,
    coroutines: false,
  },
  needsIoUring: true,
  fingerprint: {
    waitsIn: ['io_uring_enter'],
    required: [['io_uring_enter']],
    forbidden: ['recvfrom', 'sendto', 'accept4', 'epoll_wait', 'epoll_pwait', 'select', 'pselect6', 'poll', 'ppoll'],
  },
  // The ring is set up before the ready line: where io_uring is unavailable the server says why
  // and exits without ever announcing that it listens.
  async prepare() {
    preparedRing = openRing();
  },
  serve(listener) {
    const ring = preparedRing ?? openRing();
    const buffers = new BuffersByFd(BUFFER_SIZE);
    const connections: (Connection | undefined)[] = [];
    const acceptRefusals = new OnceReporter();
    /** The fd table was full: ACCEPT again once a CLOSE has freed an fd, not in a busy loop. */
    let acceptWaitsForFd = false;

    const accept = () => ring.prepare(IORING_OP_ACCEPT, listener, 0, 0, SOCK_CLOEXEC, userData(IORING_OP_ACCEPT, listener));
    const receive = (fd: number, c: Connection) => ring.prepare(IORING_OP_RECV, fd, c.address, BUFFER_SIZE, 0, userData(IORING_OP_RECV, fd));
    const sendRest = (fd: number, c: Connection) =>
      ring.prepare(IORING_OP_SEND, fd, c.address + c.sent, c.length - c.sent, MSG_NOSIGNAL, userData(IORING_OP_SEND, fd));
    const close = (fd: number) => {
      connections[fd] = undefined;
      ring.prepare(IORING_OP_CLOSE, fd, 0, 0, 0, userData(IORING_OP_CLOSE, fd));
    };
    const fail = (fd: number, operation: string, result: number) => {
      if (!isPeerGoneErrno(-result)) {
        report({ event: 'connection-failed', message: `uring: ${operation} on fd ${fd} failed: ${errnoCode(-result)}; closing that connection` });
      }
      close(fd);
    };

    const completed = (data: number, result: number) => {
      const fd = data >>> 0;
      switch (Math.floor(data / 2 ** 32)) {
        case IORING_OP_ACCEPT: {
          if (result >= 0) {
            acceptRefusals.cleared();
            // TCP_NODELAY as every model (echo.ts): one setsockopt call per connection, outside the ring.
            replyAtOnce(result);
            const c: Connection = { buffer: buffers.view(result), address: buffers.address(result), length: 0, sent: 0 };
            connections[result] = c;
            receive(result, c);
            accept();
            break;
          }
          const code = errnoCode(-result);
          if (code === 'EMFILE' || code === 'ENFILE') {
            acceptRefusals.happened({
              event: 'fd-exhausted',
              errno: code,
              message: `uring: ACCEPT refused a connection: ${code} (the connection waits in the listen queue until a connection closes)`,
            });
            acceptWaitsForFd = true;
          } else if (code === 'ECONNABORTED' || code === 'EINTR') accept();
          else throw new ErrnoError('io_uring ACCEPT', -result);
          break;
        }
        case IORING_OP_RECV: {
          const c = connections[fd]!;
          if (result <= 0) {
            if (result === 0) close(fd);
            else fail(fd, 'RECV', result);
            break;
          }
          upperCaseInPlace(c.buffer, result);
          c.length = result;
          c.sent = 0;
          sendRest(fd, c);
          break;
        }
        case IORING_OP_SEND: {
          const c = connections[fd]!;
          if (result < 0) {
            fail(fd, 'SEND', result);
            break;
          }
          c.sent += result;
          if (c.sent < c.length) sendRest(fd, c);
          else receive(fd, c);
          break;
        }
        case IORING_OP_CLOSE:
          if (result < 0) log(`uring: CLOSE of fd ${fd} failed: ${errnoCode(-result)}`);
          if (acceptWaitsForFd) {
            acceptWaitsForFd = false;
            accept();
          }
          break;
      }
    };

    accept();
    for (;;) {
      ring.enter(1);
      ring.forEachCompletion(completed);
    }
  },
};
