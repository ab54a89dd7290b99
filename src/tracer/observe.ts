// Everything a lab observes of one server, in one place: its limits and its idle baseline when
// observing starts, then (optionally) a tracer attached (the eBPF observer, src/tracer/bpf.ts, or
// strace), then the /proc window while the clients measure. The baseline and the window are of the server's process tree (the pid and every
// descendant: a server that forks per connection), the limits of the pid itself. The local runtime runs this in the controller; the Docker runtime runs it
// in a sidecar container that shares the server's PID namespace (`iolab observe --pid 1`).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVING_THREAD_PREFIX } from '../shared/model.js';
import type { Limits, ProbedProcWindow, TraceRecord } from '../shared/results.js';
import { ProcProbe, readLimits, readThreadNames, readThreadsInCalls } from './proc.js';
import { startStrace, type StraceSession } from './strace.js';
import { BpfSession, cgroupIdOf, LabBpf, type BpfCount } from './bpf.js';
import { processIds } from './listeners.js';
import { countStraceLog } from './strace-log.js';

/** The two tracers: eBPF (counts in the measured run itself) and strace (a run of its own: it stops the server at every call). */
export type TracerKind = 'bpf' | 'strace';

export interface ObserveOptions {
  /**
   * the tracer to attach for the syscall counts, or null. Calls before startWindow() are the
   * set-up; calls from then until stop() (the clients' windows and the drain of the requests
   * still in flight) are the window. strace slows the server: only for runs of their own.
   */
  tracer: TracerKind | null;
  /**
   * which tasks the eBPF observer counts: the process tree of the pid (default), or every task of
   * the pid's cgroup (a container: the sidecar sees the host's pids of no one, and the cgroup
   * leaves out the clients and the sidecar itself).
   */
  bpfScope?: 'process-tree' | 'cgroup';
  /**
   * the lab's eBPF observer, armed for this server (a process tree): started once for the lab,
   * not per run. Without it, a bpftrace of its own counts this server.
   */
  labBpf?: LabBpf;
}

export interface Observed {
  proc: ProbedProcWindow;
  /** null when not traced. */
  trace: TraceRecord | null;
}

export interface Observer {
  readonly limits: Limits;
  /** the server before any client: processes, threads, fds and RSS to subtract from the window's peaks. */
  readonly baseline: ProbedProcWindow;
  /** the measured window begins (every client is connected and starts now). */
  startWindow(): Promise<void>;
  /** ends the window and the tracing. */
  stop(): Promise<Observed>;
  /** teardown after a failure; idempotent. */
  kill(): void;
}

export async function observeProcess(pid: number, options: ObserveOptions): Promise<Observer> {
  const limits = await readLimits(pid);
  const baseline = await (await ProcProbe.start(pid)).stop();
  let scratch: string | null = null;
  let strace: StraceSession | null = null;
  let bpf: BpfCount | null = null;
  let namesAtAttach = new Map<number, string>();
  if (options.tracer === 'strace') {
    scratch = await mkdtemp(join(tmpdir(), 'iolab-strace-'));
    strace = await startStrace(pid, { outputFile: join(scratch, 'calls.log') });
    // Once attached, every thread that exists is traced; the ones born later are seen being born.
    namesAtAttach = await readThreadNames(pid);
  } else if (options.tracer === 'bpf') {
    const filter =
      options.bpfScope === 'cgroup'
        ? { kind: 'cgroup' as const, id: await cgroupIdOf(pid) }
        : { kind: 'pids' as const, pids: [pid, ...(await processIds('/proc', pid)).filter((other) => other !== pid)] };
    bpf = filter.kind === 'pids' && options.labBpf ? await options.labBpf.arm(filter.pids) : await BpfSession.start(filter, SERVING_THREAD_PREFIX);
  }
  let probe: ProcProbe | null = null;
  let windowStart: number | null = null;
  const removeScratch = () => (scratch ? rm(scratch, { recursive: true, force: true }) : Promise.resolve());
  return {
    limits,
    baseline,
    async startWindow() {
      windowStart = Date.now() / 1000;
      bpf?.startWindow();
      probe = await ProcProbe.start(pid);
    },
    async stop() {
      try {
        bpf?.endWindow();
        // A window that never started (a client failed first) still reports the server as it is.
        const proc = await (probe ?? (await ProcProbe.start(pid))).stop();
        // The threads in a call now: the timeline's rows for those that waited in one since before tracing (an idle pool thread).
        if (bpf) return { proc, trace: await bpf.stop(await readThreadsInCalls(await processIds('/proc', pid))) };
        if (!strace) return { proc, trace: null };
        const windowEnd = Date.now() / 1000;
        const log = await strace.stop();
        const counted = countStraceLog(log, { namesAtAttach, servingPrefix: SERVING_THREAD_PREFIX, windowStart, windowEnd });
        const windowSeconds = windowStart === null ? 0 : windowEnd - windowStart;
        return {
          proc,
          // No timeline: strace stops every thread at every call, and sees no switch between threads.
          trace: { tracer: 'strace', setup: counted.setup, window: counted.window, windowSeconds: Math.round(windowSeconds * 1000) / 1000, threads: counted.threads, timeline: null },
        };
      } finally {
        await removeScratch();
      }
    },
    kill() {
      strace?.kill();
      bpf?.kill();
      void probe?.stop().catch(() => {});
      void removeScratch();
    },
  };
}

/** Signals that drive `iolab observe` in a sidecar: the window starts, then everything stops. */
export const OBSERVER_SIGNALS = { startWindow: 'SIGUSR2', stop: 'SIGTERM' } as const;

/**
 * `iolab observe --pid N [--tracer bpf|strace] [--bpf-scope cgroup]`, the sidecar's side: one JSON line on
 * stdout once observing (and tracing) has begun ({limits, baseline}), one when the window starts
 * ({window: "started"}) on SIGUSR2, and one with what was observed ({proc, trace}) on SIGTERM;
 * then it exits.
 */
export async function serveObserver(pid: number, options: ObserveOptions): Promise<void> {
  const say = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);
  const observer = await observeProcess(pid, options);
  const keepAlive = setInterval(() => {}, 60_000);
  let stopping: Promise<void> | null = null;
  process.on(OBSERVER_SIGNALS.startWindow, () => {
    void observer.startWindow().then(() => say({ window: 'started' }));
  });
  await new Promise<void>((resolve, reject) => {
    process.on(OBSERVER_SIGNALS.stop, () => {
      stopping ??= observer.stop().then((observed) => {
        say(observed);
        clearInterval(keepAlive);
        resolve();
      }, reject);
    });
    say({ limits: observer.limits, baseline: observer.baseline });
  });
}

/** A request to `iolab observe --serve`, one JSON line on its stdin; each is answered by a line with the same id. */
export type ObserverRequest =
  | { id: number; observe: { pid: number; tracer: TracerKind | null } }
  | { id: number; window: 'start' }
  | { id: number; stop: true }
  | { id: number; kill: true };

/**
 * `iolab observe --serve`, the Docker runtime's observer for a whole lab, a server at a time (in
 * a sidecar in the host's PID namespace: the pids it is given are the host's). Requests come as
 * JSON lines on stdin (ObserverRequest); each gets one JSON line on stdout with its id: {limits,
 * baseline} once observing `pid`, {window: "started"}, {proc, trace} (the window ended), {killed:
 * true}, or {error} when the request failed. One eBPF observer (LabBpf) serves every server: it
 * is attached once. Ends when stdin does.
 */
export async function serveObserverRequests(): Promise<void> {
  const { createInterface } = await import('node:readline');
  const say = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);
  const labBpf = new LabBpf(SERVING_THREAD_PREFIX);
  let observer: Observer | null = null;
  const handle = async (request: ObserverRequest): Promise<object> => {
    if ('observe' in request) {
      observer?.kill();
      observer = await observeProcess(request.observe.pid, { tracer: request.observe.tracer, labBpf });
      return { limits: observer.limits, baseline: observer.baseline };
    }
    if (!observer) throw new Error('no server is being observed');
    if ('window' in request) {
      await observer.startWindow();
      return { window: 'started' };
    }
    const current = observer;
    observer = null;
    if ('stop' in request) return { ...(await current.stop()) };
    current.kill();
    return { killed: true };
  };
  const lines = createInterface({ input: process.stdin });
  // One request at a time, in order: a stop must not overtake its window's start.
  let queue = Promise.resolve();
  lines.on('line', (line) => {
    queue = queue.then(async () => {
      let request: ObserverRequest;
      try {
        request = JSON.parse(line) as ObserverRequest;
      } catch {
        say({ id: null, error: `not a JSON request: ${line.slice(0, 200)}` });
        return;
      }
      try {
        say({ id: request.id, ...(await handle(request)) });
      } catch (error) {
        say({ id: request.id, error: error instanceof Error ? error.message : String(error) });
      }
    });
  });
  await new Promise<void>((resolve) => lines.once('close', resolve));
  await queue;
  (observer as Observer | null)?.kill();
  labBpf.close();
}
