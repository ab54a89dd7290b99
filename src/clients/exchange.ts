// One connection's request/reply cycle under the course protocol: the client sends messageSize
// bytes of lower-case letters and digits, the server must send the same bytes back with a-z
// upper-cased. Both buffers are allocated once per connection; a new request only rewrites its
// sequence number, so the hot path allocates nothing.
//
// Every request starts with its sequence number (base 36), so a stale reply, a reply meant for
// another connection (each has its own random filler) or bytes out of order cannot match.
//
// The epoll loop sends and receives through the methods here (sendNext, continueSending,
// receive); the io_uring loop (echo-uring.ts) lets the kernel do the IO and uses only the
// bookkeeping (beginRequest, sent, checkReply), with the request in memory the kernel reads from.
import { randomFillSync } from 'node:crypto';
import * as libc from '../libc/index.js';
import type { Poller } from './poller.js';

const DIGITS = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz', 'latin1');
const DIGITS_UPPER_CASED = Buffer.from('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'latin1');
const SEQUENCE_DIGITS = 8;

export type ReplyProgress = 'incomplete' | 'complete' | 'wrong' | 'closed';

export class Exchange {
  private readonly request: Buffer;
  private readonly expectedReply: Buffer;
  private sequence = 0;
  /** Bytes of the current request sent, and of its reply received and checked. */
  private sentBytes = 0;
  private receivedBytes = 0;
  private watchingWritable = false;
  private closed = false;
  /** performance.now() when the current request was sent. */
  sentAt = 0;
  /** A request is out and its reply is not complete yet. */
  awaitingReply = false;

  /**
   * Takes over a connected fd and adds it to the poller, watched for replies. `requestMemory`
   * (messageSize bytes): where the request is built, when the kernel must be able to read it
   * there (io_uring); by default a Buffer of its own.
   */
  constructor(
    readonly fd: number,
    messageSize: number,
    private readonly poller: Poller,
    requestMemory: Buffer = Buffer.allocUnsafe(messageSize),
  ) {
    this.request = randomFillSync(requestMemory);
    this.expectedReply = Buffer.allocUnsafe(messageSize);
    for (let i = 0; i < messageSize; i++) {
      const digit = this.request[i] % DIGITS.length;
      this.request[i] = DIGITS[digit];
      this.expectedReply[i] = DIGITS_UPPER_CASED[digit];
    }
    poller.add(fd, libc.EPOLLIN);
  }

  /** Numbers the next request and sends what the kernel takes of it. Throws ErrnoError (EPIPE...). */
  sendNext(): void {
    this.beginRequest(performance.now());
    this.continueSending();
  }

  /** Numbers the next request (nothing sent yet) and waits for its reply from now on; `sentAt` as performance.now(). */
  beginRequest(sentAt: number): void {
    let rest = ++this.sequence;
    for (let i = Math.min(SEQUENCE_DIGITS, this.request.length) - 1; i >= 0; i--) {
      const digit = rest % 36;
      rest = (rest - digit) / 36;
      this.request[i] = DIGITS[digit];
      this.expectedReply[i] = DIGITS_UPPER_CASED[digit];
    }
    this.sentBytes = 0;
    this.receivedBytes = 0;
    this.awaitingReply = true;
    this.sentAt = sentAt;
  }

  /** The request's bytes not sent yet: request.subarray(unsentFrom). */
  get unsentFrom(): number {
    return this.sentBytes;
  }

  /** The request's bytes the kernel has not taken yet. */
  get unsentBytes(): number {
    return this.request.length - this.sentBytes;
  }

  /** Bytes of the reply still to come. */
  get missingBytes(): number {
    return this.expectedReply.length - this.receivedBytes;
  }

  /** The kernel took `bytes` more of the request. */
  sent(bytes: number): void {
    this.sentBytes += bytes;
  }

  /**
   * Sends until the request is out or the socket buffer is full; in the second case the fd is
   * also watched for EPOLLOUT until the rest is sent (a 256 KiB request takes several sends).
   */
  continueSending(): void {
    while (this.sentBytes < this.request.length) {
      const sent = libc.send(this.fd, this.request, this.sentBytes);
      if (sent === libc.WOULD_BLOCK) {
        if (!this.watchingWritable) this.poller.modify(this.fd, libc.EPOLLIN | libc.EPOLLOUT);
        this.watchingWritable = true;
        return;
      }
      this.sentBytes += sent;
    }
    if (this.watchingWritable) this.poller.modify(this.fd, libc.EPOLLIN);
    this.watchingWritable = false;
  }

  /**
   * Reads what has arrived of the reply (never more than the reply's length: extra bytes are
   * the next reply's problem) into `scratch`, checking each piece as it comes.
   */
  receive(scratch: Buffer): ReplyProgress {
    const size = this.expectedReply.length;
    while (this.receivedBytes < size) {
      const received = libc.recv(this.fd, scratch, 0, Math.min(size - this.receivedBytes, scratch.length));
      if (received === libc.WOULD_BLOCK) return 'incomplete';
      const progress = this.checkReply(scratch, received);
      if (progress !== 'incomplete') return progress;
    }
    return 'complete';
  }

  /**
   * The next `length` bytes of the reply arrived in piece[0..length): checks them against the
   * expected echo. 0 bytes means the server closed the connection; `length` must not exceed
   * missingBytes (never read past the reply: extra bytes are the next reply's problem).
   */
  checkReply(piece: Buffer, length: number): ReplyProgress {
    if (length === 0) return 'closed';
    const start = this.receivedBytes;
    if (piece.compare(this.expectedReply, start, start + length, 0, length) !== 0) return 'wrong';
    this.receivedBytes += length;
    if (this.receivedBytes < this.expectedReply.length) return 'incomplete';
    this.awaitingReply = false;
    return 'complete';
  }

  /** False once closed. */
  get isOpen(): boolean {
    return !this.closed;
  }

  /** close(2) also takes the fd out of the epoll set. Closing again does nothing (the fd number may be someone else's by then). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }
}
