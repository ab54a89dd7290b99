// What a runtime does for a lab: start a server and wait for its ready line, observe it (limits,
// /proc probe, strace), start clients and collect their results, tear everything down. It never
// analyses anything; the lab runner and the report do. local.ts runs processes on this machine;
// a Docker runtime sits beside it behind the same interface.
import type { ClientResult } from '../shared/results.js';
import type { ServerEventCounts } from '../shared/server-events.js';
import type { ObserveOptions, Observer, TracerKind } from '../tracer/observe.js';
import type { TracerCheck } from '../tracer/bpf.js';
import type { ServeOptions } from '../servers/model.js';

export interface ServerSpec {
  model: string;
  /** the model's knobs (pool threads, coroutine blocking call); unset ones keep their defaults. */
  options?: Partial<ServeOptions>;
  /** RLIMIT_NOFILE soft = hard for the server; null keeps the runtime's default. */
  nofile: number | null;
}

export interface RunningServer {
  readonly model: string;
  /** the server's pid as the runtime sees it. */
  readonly pid: number;
  /** host:port at which the runtime's clients reach the server. */
  readonly target: string;
  /** the server's language runtime as its ready line announced it ("node v18.19.0"), or null. */
  readonly runtime: string | null;
  /** lines the server wrote on stderr so far, other than events (the last ones only). */
  log(): string[];
  /** the server's events so far (src/shared/server-events.ts), every one counted. */
  events(): ServerEventCounts;
  /** false once the server process has exited. */
  alive(): boolean;
  /** once it has exited: how ("exited with code 1", "killed by SIGSEGV") and the last lines of its stderr; else null. */
  ending(): string | null;
  /** reads its limits and idle baseline and, when tracing, attaches the tracer (see src/tracer/observe.ts). */
  observe(options: ObserveOptions): Promise<Observer>;
  /** stops the server (and whatever observes it). Idempotent. */
  stop(): Promise<void>;
}

/**
 * A client started by a runtime connects, prints `ready connections=N` on stderr, and waits for
 * this signal before its measured window: the runner starts every client's window at once.
 */
export const CLIENT_START_SIGNAL = 'SIGUSR2';

export interface ClientRunSpec {
  name: string;
  mode: 'echo' | 'hold';
  connections: number;
  messageSize: number;
  durationSeconds: number;
  target: string;
}

export interface RunningClient {
  readonly name: string;
  /** resolves once every connection of the client has connected or failed. */
  readonly ready: Promise<void>;
  /** starts the measured window (after ready). */
  start(): Promise<void>;
  /** the client's result once it finished its duration. */
  readonly result: Promise<ClientResult>;
  stop(): Promise<void>;
}

/** Where a lab ran, for results.json: the kernel the servers ran on and, in Docker, the image. */
export interface RuntimeFacts {
  kernel: string;
  container: { image: string; imageId: string; engine: string } | null;
}

export interface Runtime {
  readonly name: string;
  facts(): Promise<RuntimeFacts>;
  /** whether it can attach this tracer: its name ("strace 6.1", "bpftrace 0.17.0") or why not. Never throws. */
  tracer(kind: TracerKind): Promise<TracerCheck>;
  startServer(spec: ServerSpec): Promise<RunningServer>;
  startClient(spec: ClientRunSpec): Promise<RunningClient>;
  /** tears down every process or container this runtime started. Idempotent. */
  close(): Promise<void>;
}
