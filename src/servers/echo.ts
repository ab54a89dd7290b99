// The echo protocol and the connection bookkeeping that every model shares, so that a model file
// holds only its mechanism: how it waits. The protocol: every byte received is sent back, in
// order, with ASCII a-z upper-cased; partial sends are completed; a peer that closes or resets
// ends only its own connection.
//
// Every accepted connection gets TCP_NODELAY, as the load generator's do: a reply goes out at
// once. Without it, Nagle's algorithm holds back the last, short segment of a large reply until
// the peer acknowledges the rest, and the peer delays that acknowledgement by up to 40 ms:
// measured here, 200 KB messages made 93 round trips/s against epoll without it and 1,290 with
// it, a lab about TCP's timers rather than the IO model. It costs one setsockopt per connection.
import { ErrnoError, errnoCode } from '../errors.js';
import * as libc from '../libc/index.js';
import { log, OnceReporter } from './log.js';

/** One receive buffer per server thread: the kernel copies into it, we send from it. */
export const RECEIVE_BUFFER_SIZE = 64 * 1024;

const LOWER_A = 0x61;
const LOWER_Z = 0x7a;

export function upperCaseInPlace(buf: Buffer, length: number): void {
  for (let i = 0; i < length; i++) {
    const byte = buf[i];
    if (byte >= LOWER_A && byte <= LOWER_Z) buf[i] = byte - 0x20;
  }
}

/** A peer going away mid-call is the peer's business, not the server's: end that connection. */
const PEER_GONE = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

export function isPeerGone(error: unknown): boolean {
  return error instanceof ErrnoError && PEER_GONE.has(error.code);
}

/** The same judgement for an errno that arrives as a value (an io_uring completion's -result). */
export function isPeerGoneErrno(errno: number): boolean {
  return PEER_GONE.has(errnoCode(errno));
}

export function closeQuietly(fd: number): void {
  try {
    libc.close(fd);
  } catch (error) {
    log(`close(${fd}) failed: ${(error as Error).message}`);
  }
}

const acceptRefusals = new OnceReporter();

/** Sends each reply at once (see the header): setsockopt(TCP_NODELAY) on an accepted connection. */
export function replyAtOnce(fd: number): void {
  libc.setIntOption(fd, libc.IPPROTO_TCP, libc.TCP_NODELAY, 1);
}

/**
 * accept4(2) one connection, with TCP_NODELAY set: its fd, or WOULD_BLOCK when none is queued on
 * a non-blocking listener, or when the fd table is full (EMFILE/ENFILE: the connection stays
 * queued in the kernel, reported once per streak).
 */
export function acceptConnection(listener: number, flags = 0): number {
  try {
    const fd = libc.accept(listener, flags);
    if (fd !== libc.WOULD_BLOCK) {
      acceptRefusals.cleared();
      replyAtOnce(fd);
    }
    return fd;
  } catch (error) {
    if (error instanceof ErrnoError && (error.code === 'EMFILE' || error.code === 'ENFILE')) {
      const limit = libc.getNofileLimit();
      acceptRefusals.happened({
        event: 'fd-exhausted',
        errno: error.code,
        message: `accept4 refused a connection: ${error.code} (no free fd: RLIMIT_NOFILE soft=${limit.soft} hard=${limit.hard})`,
      });
      return libc.WOULD_BLOCK;
    }
    if (error instanceof ErrnoError && error.code === 'ECONNABORTED') return libc.WOULD_BLOCK;
    throw error;
  }
}

/** Blocking IO: serve one client until it closes. recv blocks in both phases; send blocks until the kernel took every byte. */
export function echoUntilClosed(fd: number, buffer: Buffer): void {
  try {
    for (;;) {
      const received = libc.recv(fd, buffer);
      if (received === 0) break;
      upperCaseInPlace(buffer, received);
      for (let sent = 0; sent < received; ) sent += libc.send(fd, buffer, sent, received - sent);
    }
  } catch (error) {
    if (!isPeerGone(error)) throw error;
  } finally {
    closeQuietly(fd);
  }
}

/** A non-blocking connection and the reply bytes the kernel has not taken yet. */
export class Connection {
  /** Bytes of a reply still to send (a copy: the shared receive buffer is reused). */
  pending: Buffer | null = null;
  open = true;
  constructor(readonly fd: number) {}

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.pending = null;
    closeQuietly(this.fd);
  }

  /**
   * One recv and the echo of what it brought. Returns false when nothing was there (EAGAIN).
   * Afterwards check `open` (the peer left) and `pending` (the kernel's send buffer was full:
   * wait for writability before reading more, or replies would pile up without bound).
   */
  receiveAndEcho(buffer: Buffer): boolean {
    try {
      const received = libc.recv(this.fd, buffer);
      if (received === libc.WOULD_BLOCK) return false;
      if (received === 0) {
        this.close();
        return true;
      }
      upperCaseInPlace(buffer, received);
      this.sendFrom(buffer, received);
      return true;
    } catch (error) {
      if (!isPeerGone(error)) throw error;
      this.close();
      return true;
    }
  }

  /** Sends what is pending; returns true when nothing is left and the connection is still open. */
  flush(): boolean {
    if (!this.pending) return this.open;
    try {
      this.sendFrom(this.pending, this.pending.length);
    } catch (error) {
      if (!isPeerGone(error)) throw error;
      this.close();
    }
    return this.open && this.pending === null;
  }

  private sendFrom(source: Buffer, length: number): void {
    let sent = 0;
    while (sent < length) {
      const n = libc.send(this.fd, source, sent, length - sent);
      if (n === libc.WOULD_BLOCK) break;
      sent += n;
    }
    this.pending = sent === length ? null : Buffer.from(source.subarray(sent, length));
  }
}
