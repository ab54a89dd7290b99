// What every IO-model server provides. A model gets a listening socket and serves the echo
// protocol on it forever; everything else (the socket, the ready line, the echo itself) is shared.
// What a model declares about itself (its traits and fingerprint) is defined in
// src/shared/model.ts, where every later stage can read it.
import { existsSync } from 'node:fs';
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

/** A model written in TypeScript: `iolab server` runs it in the Node process (src/servers/listen.ts). */
export interface TypeScriptModel extends ModelDeclaration {
  program?: undefined;
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

/**
 * A model written in another language (the course's Python servers, src/servers/python/): a
 * program that takes `--host H --port P` (P 0: any free port), listens there and prints the same
 * ready line as src/servers/listen.ts (`listening on HOST:PORT model=NAME pid=PID runtime=...`),
 * and reports server events as the same JSON lines on stderr. It takes no options.
 */
export interface ProgramModel extends ModelDeclaration {
  program: {
    language: 'python';
    /** the program's file, relative to the package's root: src/servers/python/select_server.py */
    file: string;
  };
  /** the TypeScript model that does the same with the same mechanism (python-select: select), or null. */
  twin: string | null;
  options?: undefined;
  needsIoUring?: undefined;
}

export type ServerModel = TypeScriptModel | ProgramModel;

/**
 * Debian's python3, where apt's python3-gevent and python3-greenlet are (the lab image's, and
 * .ci/run installs them): another python3 first on PATH (pyenv, a virtualenv) may lack gevent.
 */
const SYSTEM_PYTHON = '/usr/bin/python3';

/** The python3 that runs the Python models, and a student's server.py beside them: Debian's, else the first on PATH. */
export function pythonInterpreter(): string {
  return existsSync(SYSTEM_PYTHON) ? SYSTEM_PYTHON : 'python3';
}

/** The command that starts a program model: its interpreter and its file (`root`: the package's root). */
export function programCommand(model: ProgramModel, root: string): string[] {
  const python = pythonInterpreter();
  // -B: no __pycache__ written beside the model's file (the package's directory may be read-only).
  return [python, '-B', `${root.replace(/\/+$/, '')}/${model.program.file}`];
}

/** What results.json records of a model: its declaration, without the code. */
export function declarationOf(model: ModelDeclaration): ModelDeclaration {
  return { name: model.name, summary: model.summary, traits: model.traits, fingerprint: model.fingerprint };
}
