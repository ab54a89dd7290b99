// What a runtime does for a lab: start a server and wait for its ready line, observe it (limits,
// /proc probe, strace), start clients and collect their results, tear everything down. It never
// analyses anything; the lab runner and the report do. local.ts runs processes on this machine;
// a Docker runtime sits beside it behind the same interface.
import type { ClientResult, SwarmPlacement } from '../shared/results.js';
import type { ServerEventCounts } from '../shared/server-events.js';
import type { ObserveOptions, Observer, TracerKind } from '../tracer/observe.js';
import type { TracerCheck } from '../tracer/bpf.js';
import type { ServeOptions } from '../servers/model.js';
import type { LineSource } from './process.js';

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
  alive(): boolean | Promise<boolean>;
  /** once it has exited: how ("exited with code 1", "killed by SIGSEGV") and the last lines of its stderr; else null. */
  ending(): string | null | Promise<string | null>;
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
  /** an open-loop echo client's requests per second per connection (`iolab client --rate`); absent or null: closed loop. */
  rate?: number | null;
  durationSeconds: number;
  /**
   * HOST:PORT of the server; null: the client starts now (its process or container, its code
   * loaded) and connects once told where, by RunningClient.connect: a lab starts its clients
   * beside the server, not after it.
   */
  target: string | null;
}

export interface RunningClient {
  readonly name: string;
  /** a client started with no target: connect to `target` (HOST:PORT) now. Throws Error when it was given one. */
  connect(target: string): void;
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
  /**
   * Starts a program of the package (an experiment's script, its slow servers): locally a process
   * in the package's root, in Docker a container of the lab image in /opt/iolab on the run's
   * network. close() stops it like everything else. Throws LabRunError when it cannot be started
   * (no such program; in Docker, the engine refused the container).
   */
  startProgram(spec: ProgramSpec): Promise<RunningProgram>;
  /** on a swarm (src/swarm/runtime.ts): its nodes and where the lab's containers ran so far; absent elsewhere. */
  placement?(): SwarmPlacement;
  /**
   * After a run failed: what happened to the runtime itself, and whether the lab can go on. Docker:
   * waits (at most a minute) for the engine to answer again and, if it was stopped or restarted,
   * readies the run's reaper and network anew. `cause`: what the runtime did to the run (added to
   * its error), null when nothing; `stop`: why the lab cannot go on, null when it can. Never throws.
   */
  recover?(): Promise<{ cause: string | null; stop: string | null }>;
}

/** A program for Runtime.startProgram. */
export interface ProgramSpec {
  /** what it is, one word: "slow-servers", "experiment" (Docker: part of the container's name). */
  role: string;
  /** how errors name it: "the switching script switching_gevent.py". */
  description: string;
  /** the program and its arguments: an absolute path (/usr/bin/python3), files relative to the package's root. */
  command: string[];
  /**
   * whether it listens for the runtime's other programs: the runtime appends `--host ADDRESS`,
   * the address to listen on (127.0.0.1 locally; 0.0.0.0 in a container, for the run's network).
   */
  listens: boolean;
}

/** A program started by Runtime.startProgram. */
export interface RunningProgram {
  /** the host name at which the runtime's other programs reach it: 127.0.0.1, or the container's name. */
  readonly host: string;
  /** what it prints, line by line (the last 200 of each stream), and how it ended. */
  readonly output: LineSource;
  /** resolves once it has ended: its exit code, or the signal's name ("SIGTERM"), or "gone" (a container removed). */
  readonly exited: Promise<number | string>;
  /** stops it (SIGTERM, then SIGKILL; Docker: removes the container). Idempotent. */
  stop(): Promise<void>;
}

/**
 * A server of one's own in a lab (`server: DIR` or `command: [...]`, src/labs/schema.ts), as the
 * lab runner asks for it. The runner cannot build or confine one itself (that is the grader's
 * sandbox, a later stage): the CLI hands it an OwnServers that can (src/grade/own-server.ts).
 */
export interface OwnServerSpec {
  /** the lab's name for it, in errors and progress. */
  label: string;
  /** its directory, resolved, or null: `command` runs in `labDir`. */
  dir: string | null;
  command: string[] | null;
  /** the lab file's directory. */
  labDir: string;
  /** RLIMIT_NOFILE (soft = hard), or null: the runtime's default. */
  nofile: number | null;
}

/** A server of one's own, prepared (copied, built) once for the lab and started once per run. */
export interface PreparedOwnServer {
  /** what it is: "server.py (Python) from ./my-select-server". */
  readonly description: string;
  /** starts it and waits until it listens; throws an Error that says why it did not (it exited, it listens elsewhere). */
  start(): Promise<RunningServer>;
  /** removes the prepared copy and image. Idempotent. */
  dispose(): Promise<void>;
}

export interface OwnServers {
  /** copies and builds the server for `runtime`; throws an Error naming the server and the mistake (no server, a compile error). */
  prepare(spec: OwnServerSpec, runtime: Runtime): Promise<PreparedOwnServer>;
}
