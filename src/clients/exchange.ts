// One connection's request/reply cycle under the course protocol: the client sends messageSize
// bytes of lower-case letters and digits, the server must send the same bytes back with a-z
// upper-cased. Both buffers are allocated once per connection; a new request only rewrites its
// sequence number, so the hot path allocates nothing.
//
// Every request starts with its sequence number (base 36), so a stale reply, a reply meant for
// another connection (each has its own random filler) or bytes out of order cannot match.
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
  private sentBytes = 0;
  private receivedBytes = 0;
  private watchingWritable = false;
  /** performance.now() when the current request was sent. */
  sentAt = 0;
  /** A request is out and its reply is not complete yet. */
  awaitingReply = false;

  /** Takes over a connected fd and adds it to the poller, watched for replies. */
  constructor(
    readonly fd: number,
    messageSize: number,
    private readonly poller: Poller,
  ) {
    this.request = randomFillSync(Buffer.allocUnsafe(messageSize));
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
    this.sentAt = performance.now();
    this.continueSending();
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
      if (received === 0) return 'closed';
      const start = this.receivedBytes;
      if (scratch.compare(this.expectedReply, start, start + received, 0, received) !== 0) return 'wrong';
      this.receivedBytes += received;
    }
    this.awaitingReply = false;
    return 'complete';
  }

  /** close(2) also takes the fd out of the epoll set. */
  close(): void {
    libc.close(this.fd);
  }
}
