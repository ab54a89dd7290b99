// Test helpers: real servers started by the local runtime, and plain node:net sockets to talk to
// them (the tests check the servers, so their own client need not be fast).
import { spawn } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { analyse } from '../src/analysis/index.js';
import { resolveLab } from '../src/labs/load.js';
import { runLab, type RunOptions } from '../src/labs/runner.js';
import type { Lab } from '../src/labs/schema.js';
import { LocalRuntime } from '../src/runtime/local.js';
import type { Runtime } from '../src/runtime/runtime.js';
import type { ClaimVerdict } from '../src/shared/verdicts.js';
import { mergeCounts, type Results, type SyscallCount, type TraceRecord } from '../src/shared/results.js';
import type { RunningServer, ServerSpec } from '../src/runtime/runtime.js';

export interface TestServer {
  server: RunningServer;
  port: number;
  close(): Promise<void>;
}

export async function startTestServer(model: string, nofile: number | null = null, options: ServerSpec['options'] = {}): Promise<TestServer> {
  const runtime = new LocalRuntime();
  const server = await runtime.startServer({ model, nofile, options });
  return { server, port: Number(server.target.split(':')[1]), close: () => runtime.close() };
}

export function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port, noDelay: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** What the echo protocol must send back: the same bytes with ASCII a-z upper-cased. */
export function expectedEcho(data: Buffer): Buffer {
  return Buffer.from(data.map((byte) => (byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte)));
}

/** Collects everything a socket receives; `until(n)` resolves once n bytes are in. */
export class Receiver {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiting: { n: number; resolve: (b: Buffer) => void } | null = null;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.check();
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => (this.closed = true));
  }

  get received(): number {
    return this.length;
  }

  private check(): void {
    if (this.waiting && this.length >= this.waiting.n) {
      const { n, resolve } = this.waiting;
      this.waiting = null;
      const all = Buffer.concat(this.chunks);
      this.chunks = [all.subarray(n)];
      this.length -= n;
      resolve(all.subarray(0, n));
    }
  }

  until(n: number): Promise<Buffer> {
    return new Promise((resolve) => {
      this.waiting = { n, resolve };
      this.check();
    });
  }
}

export async function echo(socket: Socket, receiver: Receiver, data: Buffer): Promise<Buffer> {
  const reply = receiver.until(data.length);
  socket.write(data);
  return reply;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function lowercaseBytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = 0x61 + (x % 26);
  }
  return out;
}

export interface Traced {
  /** the calls of the model's own threads, set-up and window together (what its fingerprint is checked against). */
  syscalls: SyscallCount[];
  /** the calls of the runtime's other threads. */
  runtime: SyscallCount[];
  threads: TraceRecord['threads'];
  roundTrips: number;
  unanswered: number;
  wrongReplies: number;
}

/**
 * A server of `model` under echo load from the real client for 1 s, traced the way a lab traces
 * it: strace attached before the clients connect (so each connection's set-up is counted too),
 * the window started with the client's.
 */
export async function traceUnderLoad(
  model: string,
  { connections = 4, options = {} }: { connections?: number; options?: ServerSpec['options'] } = {},
): Promise<Traced> {
  const runtime = new LocalRuntime();
  try {
    const server = await runtime.startServer({ model, nofile: null, options });
    const observer = await server.observe({ tracer: 'strace' });
    const client = await runtime.startClient({ name: 'load', mode: 'echo', connections, messageSize: 64, durationSeconds: 1, target: server.target });
    await client.ready;
    await observer.startWindow();
    await client.start();
    const result = await client.result;
    const { trace } = await observer.stop();
    if (!trace) throw new Error('the observer traced nothing');
    return {
      syscalls: mergeCounts(trace.setup.serving, trace.window.serving),
      runtime: mergeCounts(trace.setup.runtime, trace.window.runtime),
      threads: trace.threads,
      roundTrips: result.roundTrips,
      unanswered: result.unanswered,
      wrongReplies: result.wrongReplies,
    };
  } finally {
    await runtime.close();
  }
}

/** How many calls of these names the counts hold. */
export function callsOf(counts: readonly SyscallCount[], ...names: string[]): number {
  return counts.filter((s) => names.includes(s.syscall)).reduce((sum, s) => sum + s.calls, 0);
}

/** Opens `count` connections one after the other (in accept order), each with its Receiver. */
export async function openConnections(port: number, count: number): Promise<{ sockets: Socket[]; receivers: Receiver[] }> {
  const sockets: Socket[] = [];
  const receivers: Receiver[] = [];
  for (let i = 0; i < count; i++) {
    const socket = await connect(port);
    socket.on('error', () => {});
    sockets.push(socket);
    receivers.push(new Receiver(socket));
  }
  return { sockets, receivers };
}

const IOLAB = join(import.meta.dirname, '..', 'bin', 'iolab.js');

/**
 * A runIolab stderr watcher that sends `signal` (SIGINT unless told) `delayMs` after the output
 * first matches `pattern`. `sent`: whether the output matched (the signal is then on its way);
 * `at`: when the signal was sent (Date.now() milliseconds), 0 before.
 */
export function signalAfter(pattern: RegExp, delayMs: number, signal: NodeJS.Signals = 'SIGINT') {
  const watcher = {
    sent: false,
    at: 0,
    watch: (stderr: string, kill: (signal: NodeJS.Signals) => void): void => {
      if (watcher.sent || !pattern.test(stderr)) return;
      watcher.sent = true;
      setTimeout(() => {
        watcher.at = Date.now();
        kill(signal);
      }, delayMs);
    },
  };
  return watcher;
}

/**
 * Runs the `iolab` command to its end. `onStderr` sees its stderr so far each time more comes,
 * with a way to signal it. It runs in a process group of its own, so that a test can find
 * everything it started.
 */
export function runIolab(
  args: string[],
  onStderr?: (text: string, kill: (signal: NodeJS.Signals) => void) => void,
): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [IOLAB, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      onStderr?.(stderr, (signal) => child.kill(signal));
    });
    child.on('close', (code) => resolve({ code, stdout, stderr, pid: child.pid! }));
  });
}

/**
 * Runs a lab of labs/ with changes (a shorter duration, fewer servers) on `runtime`, expects no
 * run to fail, and returns the results with their analysis, as `iolab run` would write them.
 */
export async function runShortLab(name: string, runtime: Runtime, changes: Partial<Lab>, options: RunOptions = {}): Promise<Results> {
  const loaded = await resolveLab(name);
  const measured = await runLab({ ...loaded, lab: { ...loaded.lab, ...changes } }, runtime, options);
  expect(measured.runs.filter((run) => run.error).map((run) => `${run.variant} ${run.phase}: ${run.error}`), 'runs that failed').toEqual([]);
  return analyse(measured);
}

/** The phrase a CPU part of a verdict carries when it failed on a machine busy with something else. */
const BUSY_MACHINE = 'a busy machine takes CPU from the server';

/**
 * A verdict that must hold. A part judged on CPU may instead be inconclusive when the machine was
 * busy with something else during the run (a shared CI machine): the verdict says so itself.
 */
export function expectHolds(verdict: ClaimVerdict): void {
  const notHolding = verdict.parts.filter((part) => part.verdict !== 'holds');
  const excused = notHolding.every((part) => part.verdict === 'inconclusive' && part.measurement.includes(BUSY_MACHINE));
  expect(notHolding.length === 0 || excused, `${verdict.subject}: ${verdict.verdict}: ${verdict.measurement}`).toBe(true);
}

/**
 * A verdict that the measurement must not contradict: it holds, or is inconclusive with its
 * reason (a load that kept a server too busy to sleep, for the two-phases rule), but never
 * "does not hold here" unless a busy machine excuses it as expectHolds does.
 */
export function expectNotContradicted(verdict: ClaimVerdict): void {
  if (verdict.verdict === 'inconclusive') return;
  expectHolds(verdict);
}

/**
 * A time limit for a test that runs a lab: sized by its runs (each of `seconds` of load, plus the
 * start of a server and its clients, the warm-up and the teardown, generously for a busy machine),
 * never by a guess of how fast this machine is.
 */
export function labTimeoutMs(runs: number, seconds: number, overheadSecondsPerRun = 10): number {
  return 60_000 + runs * (seconds + overheadSecondsPerRun) * 1000;
}

/** A submission directory holding `files` (name to text), in the system's temporary folder. */
export async function submissionDir(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'iolab-test-submission-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(root, name), text);
  return root;
}

/** A writable copy of a case of test/fixtures/grader-cases/, for tests that build in it or change it. */
export async function copyGraderCase(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `iolab-case-${name}-`));
  await cp(join(import.meta.dirname, 'fixtures', 'grader-cases', name), dir, { recursive: true });
  return dir;
}
