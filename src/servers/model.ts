// What every IO-model server provides. A model gets a listening socket and serves the echo
// protocol on it forever; everything else (the socket, the ready line, the echo itself) is shared.
// What a model declares about itself (its traits and fingerprint) is defined in
// src/shared/model.ts, where every later stage can read it.
import type { ModelDeclaration } from '../shared/model.js';

export { SERVING_THREAD_PREFIX, type Fingerprint, type ModelDeclaration, type ModelTraits } from '../shared/model.js';

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

export interface ServerModel extends ModelDeclaration {
  /** the knobs of ServeOptions this model reads (a lab may set only these for it). */
  options?: readonly (keyof ServeOptions)[];
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

/** What results.json records of a model: its declaration, without the code. */
export function declarationOf(model: ModelDeclaration): ModelDeclaration {
  return { name: model.name, summary: model.summary, traits: model.traits, fingerprint: model.fingerprint };
}
