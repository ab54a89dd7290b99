// echo mode's measured window on io_uring: the same requests, checks and counts as the epoll loop
// in echo.ts, without a system call per request. Why: at 64 connections the epoll loop makes
// three calls through koffi per round trip (epoll_wait, recv, send: a syscall plus ~0.3-0.7 µs of
// FFI each) and saturates its core well below what a C load generator drives against the same
// C server (bench/generator.sh, bench/client-ceiling.md).
//
// Here the kernel does the IO. Each connection has, in memory the kernel may point to, its
// request and a place for its reply. One loop turn:
//   1. io_uring_enter submits every SQE written in the last turn and waits for a completion (at
//      most WAIT_MS, so the deadline is kept against a server that never answers);
//   2. each completion (CQE) is a RECV that put bytes of a reply into the connection's reply
//      memory: they are checked against the expected echo (Exchange.checkReply); a complete reply
//      is a round trip, and the next request is numbered and written as two SQEs: a SEND of the
//      whole request linked to a RECV of its reply.
// The SEND has MSG_WAITALL (the kernel sends all of it, waiting for room in the socket buffer,
// as a 256 KiB request needs), IOSQE_CQE_SKIP_SUCCESS (no completion when it succeeds) and
// IOSQE_IO_LINK (the RECV starts when the SEND is done, and is cancelled if it fails). So a round
// trip costs one completion, the SQEs are plain writes into the mmapped ring, and one
// io_uring_enter carries the sends and receives of every connection that was answered: no FFI
// call per request. A reply that arrives in pieces takes one RECV per piece.
//
// The ring is set up with SINGLE_ISSUER and DEFER_TASKRUN (Linux >= 6.1): the kernel finishes the
// RECVs that were waiting for data in one batch when this thread waits in io_uring_enter, instead
// of interrupting it for each. Where io_uring is unavailable (no such kernel, a seccomp profile
// that blocks it, kernel.io_uring_disabled), echo.ts runs its epoll loop instead. The result says
// which ran (ClientResult.engine).
//
// Memory the kernel holds a pointer to must stay mapped until the operation is over: at the end,
// connections with a RECV in flight are shut down (the RECV then completes with 0) and the
// completions are reaped before the memory is unmapped.
import { ErrnoError, RuntimeUnavailableError, UsageError } from '../errors.js';
import * as libc from '../libc/index.js';
import {
  IORING_OP_RECV,
  IORING_OP_SEND,
  IORING_SETUP_DEFER_TASKRUN,
  IORING_SETUP_SINGLE_ISSUER,
  IOSQE_CQE_SKIP_SUCCESS,
  IOSQE_IO_LINK,
  mapMemory,
  Ring,
  unmapMemory,
  type KernelMemory,
} from '../libc/uring.js';
import type { ClientEngine } from '../shared/results.js';
import type { EchoWindow } from './echo.js';
import type { Exchange } from './exchange.js';
import { yieldToEventLoop } from './poller.js';

/** `IOLAB_CLIENT_ENGINE=epoll` or `=io_uring` forces an engine (tests, benchmarks); unset: io_uring where available. */
export const ENGINE_VARIABLE = 'IOLAB_CLIENT_ENGINE';

/** send(2) flag: return only when all of it is sent (io_uring then retries short sends itself). */
const MSG_WAITALL = 0x100;
/** SQ ring slots: two per connection (its SEND and RECV), at most this many; more are submitted midway (Ring.prepare). */
const MAX_SUBMISSION_ENTRIES = 4096;
/** A reply is received in pieces of at most this many bytes into its connection's reply memory. */
const MAX_REPLY_PIECE_BYTES = 64 * 1024;
/** Each connection's request and reply memory start on a cache line of their own. */
const CACHE_LINE_BYTES = 64;
/** shutdown(2): no more sends or receives (the peer sees a FIN; a RECV waiting on it completes with 0). */
const SHUT_RDWR = 2;
/** At the end, completions of shut-down connections are awaited at most this long (then the memory is left mapped). */
const CLOSE_WAIT_MS = 1000;

/** user_data of a connection's operation: its index, and which of the two it is. */
const SEND = 0;
const RECV = 1;
const userData = (index: number, operation: number) => index * 2 + operation;

const roundUp = (bytes: number, multiple: number) => Math.ceil(bytes / multiple) * multiple;

/**
 * The io_uring engine of one echo client, or null when the epoll loop must run: the
 * machine does not allow io_uring, the kernel is older than 6.1, or IOLAB_CLIENT_ENGINE=epoll.
 * With IOLAB_CLIENT_ENGINE=io_uring an unavailable ring is a RuntimeUnavailableError instead;
 * another value is a UsageError.
 * `connections` and `messageSize` (bytes) size its rings and memory.
 */
export function openEchoRing(connections: number, messageSize: number): { ring: EchoRing | null; engine: ClientEngine } {
  const wanted = process.env[ENGINE_VARIABLE] ?? 'auto';
  if (wanted === 'epoll') return { ring: null, engine: 'epoll' };
  if (wanted !== 'auto' && wanted !== 'io_uring') {
    throw new UsageError(`${ENGINE_VARIABLE}=${wanted}: expected epoll or io_uring`);
  }
  try {
    return { ring: new EchoRing(connections, messageSize), engine: 'io_uring' };
  } catch (error) {
    // Expected on many machines (see the header): the epoll loop does the same work, at more CPU per round trip.
    if (!(error instanceof RuntimeUnavailableError) || wanted === 'io_uring') throw error;
    return { ring: null, engine: 'epoll' };
  }
}

export class EchoRing {
  private readonly ring: Ring;
  private readonly memory: KernelMemory;
  private readonly requestBytes: number;
  private readonly stride: number;
  private readonly replyPieceBytes: number;
  /** Per connection index: its Exchange (undefined once closed), whether a RECV is in flight, a view of its reply memory. */
  private exchanges: (Exchange | undefined)[] = [];
  private readonly receiving: boolean[] = [];
  private readonly replyViews: Buffer[] = [];
  private receivesInFlight = 0;

  /** Use openEchoRing, which falls back to epoll. A RuntimeUnavailableError when this machine has no usable io_uring. */
  constructor(connections: number, messageSize: number) {
    const submissionEntries = Math.min(MAX_SUBMISSION_ENTRIES, 2 ** Math.ceil(Math.log2(Math.max(2 * connections, 8))));
    try {
      this.ring = new Ring(submissionEntries, 2 * submissionEntries, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    } catch (error) {
      // EINVAL: a kernel before 6.1, which does not know these flags.
      if (error instanceof RuntimeUnavailableError && /EINVAL/.test(error.message)) {
        throw new RuntimeUnavailableError(`${error.message}: the client's io_uring loop needs Linux >= 6.1 (IORING_SETUP_DEFER_TASKRUN)`);
      }
      throw error;
    }
    // Linux >= 6.1 also brings the rest this file needs: waits with a timeout (IORING_FEAT_EXT_ARG,
    // 5.11), IOSQE_CQE_SKIP_SUCCESS (5.17) and SENDs that MSG_WAITALL keeps going (5.18).
    this.requestBytes = roundUp(messageSize, CACHE_LINE_BYTES);
    this.replyPieceBytes = Math.min(messageSize, MAX_REPLY_PIECE_BYTES);
    this.stride = this.requestBytes + roundUp(this.replyPieceBytes, CACHE_LINE_BYTES);
    try {
      this.memory = mapMemory(Math.max(1, connections) * this.stride);
    } catch (error) {
      this.ring.close();
      throw error;
    }
    for (let index = 0; index < connections; index++) {
      this.replyViews.push(Buffer.from(this.memory.bytes, index * this.stride + this.requestBytes, this.replyPieceBytes));
      this.receiving.push(false);
    }
  }

  /** Where connection `index` builds its request (messageSize bytes): pass it to new Exchange(). */
  requestMemory(index: number, messageSize: number): Buffer {
    return Buffer.from(this.memory.bytes, index * this.stride, messageSize);
  }

  /** SEND of the request's unsent bytes (if any: the warm-up may have sent it all), linked to a RECV of the reply. */
  private sendAndReceive(index: number, exchange: Exchange): void {
    const length = exchange.unsentBytes;
    if (length > 0) {
      const address = this.memory.address + index * this.stride + exchange.unsentFrom;
      this.ring.prepare(IORING_OP_SEND, exchange.fd, address, length, libc.MSG_NOSIGNAL | MSG_WAITALL, userData(index, SEND), IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS);
      // Counted as sent now: if the SEND fails, the connection is lost anyway.
      exchange.sent(length);
    }
    this.receive(index, exchange);
  }

  private receive(index: number, exchange: Exchange): void {
    const length = Math.min(exchange.missingBytes, this.replyPieceBytes);
    const address = this.memory.address + index * this.stride + this.requestBytes;
    this.ring.prepare(IORING_OP_RECV, exchange.fd, address, length, 0, userData(index, RECV));
    this.receiving[index] = true;
    this.receivesInFlight++;
  }

  /**
   * The window's loop (see the header). `window.exchanges` are the connections open when it
   * starts, by index; a warm-up request still unanswered on one of them is its first request.
   * Counts into window.tally; returns when the window and its drain are over or no connection is
   * left, with the performance.now() at which the window ended (the deadline, or earlier when every
   * connection was lost).
   */
  async runWindow(window: EchoWindow): Promise<number> {
    const { tally, deadline, drainDeadline, answeredConnections } = window;
    this.exchanges = [...window.exchanges];
    let open = 0;
    /** Requests written in this turn: they leave when the next io_uring_enter submits them. */
    const written: Exchange[] = [];
    const lose = (index: number, exchange: Exchange) => {
      exchange.close();
      this.exchanges[index] = undefined;
      open--;
    };
    const next = (index: number, exchange: Exchange) => {
      tally.requestsSent++;
      exchange.beginRequest(0);
      written.push(exchange);
      this.sendAndReceive(index, exchange);
    };
    for (let index = 0; index < this.exchanges.length; index++) {
      const exchange = this.exchanges[index];
      if (exchange === undefined || !exchange.isOpen) {
        this.exchanges[index] = undefined;
        continue;
      }
      open++;
      // A warm-up request the server has not answered yet is the window's first request.
      if (exchange.awaitingReply) {
        tally.requestsSent++;
        this.sendAndReceive(index, exchange);
      } else next(index, exchange);
    }

    let now = performance.now();
    const completed = (data: number, result: number) => {
      const index = Math.floor(data / 2);
      if (data % 2 === RECV) {
        this.receiving[index] = false;
        this.receivesInFlight--;
      }
      const exchange = this.exchanges[index];
      if (exchange === undefined) return; // a RECV cancelled after its SEND failed, on a connection already lost
      if (result < 0) {
        // A failed SEND (its RECV is then cancelled and ignored above) or RECV: ECONNRESET, EPIPE...
        tally.connectionLost(new ErrnoError(data % 2 === RECV ? 'io_uring RECV' : 'io_uring SEND', -result));
        lose(index, exchange);
        return;
      }
      if (data % 2 === SEND) {
        // MSG_WAITALL: a SEND completes short only when something stopped it; its RECV was cancelled.
        tally.note(`a SEND through io_uring stopped after ${result} bytes: connection dropped`);
        tally.closedByServer++;
        lose(index, exchange);
        return;
      }
      const progress = exchange.checkReply(this.replyViews[index], result);
      if (progress === 'incomplete') {
        this.receive(index, exchange);
        return;
      }
      if (progress !== 'complete') {
        tally.replyFailed(progress);
        lose(index, exchange);
        return;
      }
      answeredConnections.add(exchange.fd);
      // After the window: the reply was checked, but it is not a round trip of the window.
      if (now >= deadline) {
        tally.answeredAfterWindow++;
        return;
      }
      tally.roundTrips++;
      tally.latency.recordMicroseconds((now - exchange.sentAt) * 1000);
      next(index, exchange);
    };

    let windowEnd = 0;
    while (open > 0 && (now < deadline || (now < drainDeadline && this.receivesInFlight > 0))) {
      const measuring = now < deadline;
      if (measuring) windowEnd = now;
      const submittedAt = performance.now();
      for (const exchange of written) exchange.sentAt = submittedAt;
      written.length = 0;
      this.ring.enter(1, Math.min(window.waitMs, (measuring ? deadline : drainDeadline) - now));
      // The time the replies were seen: processing the batch must not count as server latency.
      now = performance.now();
      this.ring.forEachCompletion(completed);
      if (window.poller.dueForYield(now)) await yieldToEventLoop();
      now = performance.now();
    }
    return Math.min(Math.max(windowEnd, now), deadline);
  }

  /**
   * Ends what is in flight, then frees the ring and the memory: every connection with a RECV in
   * flight is shut down (the RECV completes with 0; a SEND still sending fails and cancels it),
   * the completions are reaped, and only then is the memory unmapped. If some never come (within
   * CLOSE_WAIT_MS), the memory is left mapped rather than risk the kernel writing into memory
   * reused for something else. The connections themselves are closed by their Exchanges.
   */
  close(): void {
    for (let index = 0; index < this.receiving.length; index++) {
      const exchange = this.exchanges[index];
      if (!this.receiving[index] || !exchange?.isOpen) continue;
      try {
        libc.shutdown(exchange.fd, SHUT_RDWR);
      } catch (error) {
        // ENOTCONN: the server has reset it; the RECV has completed or is about to.
        if (!(error instanceof ErrnoError)) throw error;
      }
    }
    const giveUpAt = performance.now() + CLOSE_WAIT_MS;
    while (this.receivesInFlight > 0 && performance.now() < giveUpAt) {
      this.ring.enter(1, giveUpAt - performance.now());
      this.ring.forEachCompletion((data) => {
        if (data % 2 !== RECV) return;
        this.receiving[Math.floor(data / 2)] = false;
        this.receivesInFlight--;
      });
    }
    this.ring.close();
    if (this.receivesInFlight === 0) unmapMemory(this.memory);
  }
}
