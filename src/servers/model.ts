// What every IO-model server provides. A model gets a listening socket and serves the echo
// protocol on it forever; everything else (the socket, the ready line, the echo itself) is shared.

/** The system calls a model must and must not show in steady state, as `strace -c` names them. */
export interface Fingerprint {
  /** Each entry is satisfied by any one of its names (glibc may use select or pselect6). */
  required: string[][];
  /** Calls whose presence means the server is not this model. */
  forbidden: string[];
}

/** Knobs some models take (each model ignores the others); `iolab server` has a flag for each. */
export interface ServeOptions {
  /** pool: how many worker threads serve connections (the K of "the (K+1)-th client waits"). */
  threads: number;
  /**
   * coroutine: the handler of the FIRST connection makes a real blocking call (nanosleep) of this
   * many ms before each reply, one the scheduler cannot see (0: never): one coroutine that
   * blocks stalls every other connection.
   */
  blockingCallMs: number;
  /**
   * epoll-et: on every event read until EAGAIN (true), or read once (false: the classic
   * edge-triggered bug, where bytes left in the socket wait for the next edge; lab lt-vs-et).
   */
  drain: boolean;
}

export const DEFAULT_SERVE_OPTIONS: ServeOptions = { threads: 4, blockingCallMs: 0, drain: true };

export interface ServerModel {
  name: string;
  /** One line: how the model waits for data. */
  summary: string;
  fingerprint: Fingerprint;
  /**
   * How many clients it serves at the same time: 'one' (blocking), 'threads' (as many as its
   * pool has threads), 'all' (every connection, up to its fd limit).
   */
  concurrency: 'one' | 'threads' | 'all';
  /** The model calls io_uring_setup/io_uring_enter, which newer Docker seccomp profiles block. */
  needsIoUring?: boolean;
  /**
   * Optional start-up work that must be done before the ready line (pool: start its threads), so
   * that a tracer attached after the ready line counts serving, not start-up.
   */
  prepare?(options: ServeOptions): Promise<void>;
  /**
   * Serves the echo protocol on `listener` (a bound, listening, blocking socket) forever: either
   * it never returns, or it returns once Node's event loop (or worker threads) carry the serving.
   */
  serve(listener: number, options: ServeOptions): void | Promise<void>;
}
