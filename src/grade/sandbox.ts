// Where a submission runs while it is graded. A sandbox starts the student's server, says where
// it listens (or why not), observes it (the same Observer as the labs: /proc and strace), runs
// probes against it, reports how it ended, and tears everything down. It judges nothing:
// grade.ts and checks.ts do. runtime/docker-sandbox.ts isolates; runtime/local-sandbox.ts
// does not, and says so.
import type { ListenerReport } from '../tracer/listeners.js';
import type { ObserveOptions, Observer } from '../tracer/observe.js';
import type { ProbeOutcome, ProbeRequest } from './probe.js';
import type { SandboxLimits } from './report.js';
import type { PreparedSubmission } from './submission.js';

export type { SandboxLimits };

/** The port the server is asked to listen on (env PORT) in a container. */
export const SANDBOX_PORT = 7000;

export const DEFAULT_LIMITS: SandboxLimits = {
  memoryMb: 512,
  cpus: 1,
  pids: 256,
  // above FD_SETSIZE, so that the select ceiling is the program's and not the sandbox's
  nofile: 4096,
  tmpfsMb: 64,
  readOnlyRoot: true,
  capabilities: 'none (all dropped)',
  noNewPrivileges: true,
  network: 'internal (no route out)',
  user: 'nobody (65534)',
};

/** A line of a server's output as the feedback shows it: a flood of long lines stays readable. */
export function clipOutputLine(line: string): string {
  return line.length > 500 ? `${line.slice(0, 500)}...` : line;
}

/** How the server process ended, or that it runs. */
export interface ServerState {
  running: boolean;
  /** exit status, or a signal's name; null while running. */
  exit: number | string | null;
  /** killed for exceeding the memory limit. */
  oomKilled: boolean;
  /** the memory limit it ran under, in bytes, where the sandbox sets one (Docker); null or absent: none. */
  memoryLimit?: number | null;
  /** the last lines it wrote (stdout and stderr). */
  output: string[];
}

export interface RunningProbe {
  /** its connections are up (hold, load); at once for the other probes. */
  ready: Promise<void>;
  result: Promise<ProbeOutcome>;
}

export interface SandboxedServer {
  /** HOST:PORT at which a client on the sandbox's network reaches the server (a lab's clients: src/grade/own-server.ts). */
  address(): string;
  /** waits until the server listens on its port on every interface, exits, or the time is up. */
  waitListening(timeoutMs: number): Promise<ListenerReport>;
  /** observes process `pid` (as waitListening found it): limits, baseline, window, strace. */
  observe(pid: number, options: ObserveOptions): Promise<Observer>;
  probe(request: ProbeRequest): RunningProbe;
  state(): Promise<ServerState>;
  stop(): Promise<void>;
}

export interface GradeSandbox {
  readonly name: 'docker' | 'local';
  /** names this grading's containers (label iolab.run) or processes, in progress lines. */
  readonly id: string;
  /** null when nothing is isolated (local). */
  readonly limits: SandboxLimits | null;
  /** the value of PORT given to the server. */
  readonly port: number;
  /** the image and engine, or the machine: for the report. */
  describe(): Promise<string>;
  /** readies the submission to run (builds a C server; the Docker sandbox builds its image). Throws NotGradableError, or SubmissionError for a build that fails on the student's code. */
  prepare(submission: PreparedSubmission): Promise<void>;
  /** starts the server (again, after a crash). */
  start(): Promise<SandboxedServer>;
  /** tears down everything it started. Idempotent. */
  close(): Promise<void>;
}
