// Runs one lab on a runtime and returns what it measured. A server of one's own (`server: DIR`)
// is prepared (copied, built) once before the first run, by what the CLI hands in
// (RunOptions.ownServers). The steps of one run (one server under load) are:
//   1. start the server and, beside it, every client process (container), which waits to be told
//      where to connect; wait for the server's ready line (a server of one's own: until it
//      listens on its port); read its limits and its idle baseline, and the kernel's memory
//      (src/tracer/kernel-memory.ts)
//   2. attach the tracer (after start-up, so module loading is not counted): the eBPF observer,
//      attached once for the lab, is armed for this server; strace (trace phase only) attaches
//   3. connect the clients in order, each one's connections established and warmed up (one round
//      trip each, see src/clients/warmup.ts) before the next connects
//   4. read the kernel's memory again, every connection held (its growth: RunRecord.kernel); start
//      the /proc probe, the host sample and every client's measured window at once; wait
//      for the results
//   5. stop the probe and the tracer; stop the clients and the server
// Measured runs are interleaved across models, repetition by repetition, so that a noisy moment
// of the machine does not fall on one model only. The syscall counts come from the measured runs
// themselves under the eBPF observer (the default where the machine allows it); under strace,
// which slows a server 5-10x, from traced runs of their own after the measured ones, likewise
// interleaved.
// A failing run is recorded with its error and the lab goes on; an abort (Ctrl-C) stops it. Either
// way the results hold every run measured so far, marked incomplete. The analysis of what was
// measured is not made here (src/analysis/).
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { environmentOf, labHeaderOf } from './records.js';
import { DEFAULT_SERVE_OPTIONS, declarationOf, findModel, models } from '../servers/index.js';
import { NO_SERVER_EVENTS } from '../shared/server-events.js';
import { answeredOf, clientResults, RESULTS_SCHEMA_VERSION, runThroughput, type ClientRecord, type LabRecord, type Measurement, type RunRecord, type VariantRecord } from '../shared/results.js';
import type { OwnServers, PreparedOwnServer, RunningClient, RunningServer, Runtime, RuntimeFacts } from '../runtime/runtime.js';
import { startHostSample } from '../tracer/host.js';
import { kernelMemoryGrowth, readKernelMemory } from '../tracer/kernel-memory.js';
import type { Observer, TracerKind } from '../tracer/observe.js';
import { LabFileError, LabRunError, RuntimeUnavailableError, UsageError } from '../errors.js';
import type { LoadedLab } from './load.js';
import { experimentRunCount, runExperimentLab } from './experiment-runner.js';
import { traceRunsOf, variantsOf, type Lab, type Variant } from './schema.js';
import { recordSoFar, resumedOf, runKey } from './journal.js';

const SERVER_LOG_LINES = 50;
/**
 * How long a server's end may take to be reported once what its clients saw suggests it (every
 * connection of a client closed, a client failed): a container's end comes from its engine a
 * moment after its sockets closed, a process's from its parent's wait().
 */
const SERVER_END_SETTLE_MS = 2000;

export interface RunOptions {
  /** overrides the lab's duration (seconds). */
  durationSeconds?: number;
  /** overrides the connections of every echo client. */
  connections?: number;
  /** overrides the rate of every echo client (requests per second per connection): each runs open-loop (src/clients/rate.ts). */
  rate?: number;
  /** runs each of the lab's clients as this many client processes (containers); default 1. */
  clients?: number;
  /**
   * how to count syscalls in a lab that counts them: bpf (the measured runs themselves), strace
   * (runs of their own), auto (default): bpf where this runtime allows it, else strace; or none
   * (--no-trace): not counted, and the verdicts that need counts say so. A server with a tracer
   * of its own (observer-effect) keeps it.
   */
  tracer?: 'auto' | TracerKind | 'none';
  signal?: AbortSignal;
  onProgress?: (progress: RunProgress) => void;
  /** a line for the user, said once (auto fell back to strace, and why). */
  onNotice?: (line: string) => void;
  /**
   * builds and starts the lab's servers of their own (`server: DIR`, `command: [...]`): the
   * grader's sandbox, which the CLI hands in (src/grade/own-server.ts). Needed only by a lab
   * that has one; without it, such a lab throws UsageError.
   */
  ownServers?: OwnServers;
  /**
   * The journal: called after each finished run with the measurement so far, marked incomplete
   * ("interrupted (controller killed) after N of M runs", src/labs/journal.ts), and awaited before
   * the next run starts, so that a controller killed at any moment leaves every finished run on
   * disk. A rejection (a full disk) stops the lab: the error is the lab's incomplete reason.
   */
  onRecorded?: (soFar: Measurement) => Promise<void>;
  /** a run of this lab to continue (its results.json, same settings: journal.ts): the runs it holds are kept in place, not made again. */
  resume?: Measurement;
  /** what `iolab run` was asked, recorded as results.json's `settings` (journal.ts labSettings). */
  settings?: Measurement['settings'];
}

export interface RunProgress {
  lab: string;
  step: number;
  steps: number;
  /** the server and, in a sweep, the swept value: "select, idle=1000". */
  subject: string;
  phase: 'measure' | 'trace';
  repetition: number;
  /** set once the run is over: its error, and (echo clients) round trips per second and requests answered. */
  outcome?: {
    error: string | null;
    roundTripsPerSecond: number | null;
    answered: number;
    /** an experiment lab's run: what it measured, in a few words ("1.61 s"). */
    summary?: string;
  };
}


function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** "select" or, in a sweep, "select, idle=1000": how progress lines and errors name a run. */
function subjectOf(lab: Lab, step: Step): string {
  return lab.sweep && step.sweepValue !== null ? `${step.variant.label}, ${lab.sweep.client}=${step.sweepValue}` : step.variant.label;
}

function describeStep(lab: Lab, step: Step): string {
  return `${subjectOf(lab, step)}, ${step.phase}`;
}

interface Step {
  variant: Variant;
  sweepValue: number | null;
  phase: 'measure' | 'trace';
  repetition: number;
  /** the tracer attached to this run, or null. */
  tracer: TracerKind | null;
}

/**
 * The runs of a lab, in order. `counting`: how the lab's counts are taken (null: not counted). A
 * server with a tracer of its own (observer-effect) runs under it in its measured runs and has
 * no trace runs.
 */
function plan(lab: Lab, counting: TracerKind | null): Step[] {
  const steps: Step[] = [];
  const variants = variantsOf(lab);
  const sweepValues = lab.sweep?.connections ?? [null];
  const measureTracer = (variant: Variant): TracerKind | null =>
    variant.tracer === 'none' ? null : (variant.tracer ?? (counting === 'bpf' ? 'bpf' : null));
  for (let repetition = 0; repetition < lab.repetitions; repetition++) {
    for (const sweepValue of sweepValues) for (const variant of variants) steps.push({ variant, sweepValue, phase: 'measure', repetition, tracer: measureTracer(variant) });
  }
  if (counting === 'strace') {
    for (let repetition = 0; repetition < traceRunsOf(lab); repetition++) {
      for (const sweepValue of sweepValues) for (const variant of variants.filter((v) => v.tracer === null)) steps.push({ variant, sweepValue, phase: 'trace', repetition, tracer: 'strace' });
    }
  }
  return steps;
}

interface Overrides {
  connections?: number;
  rate?: number;
  /** client processes (containers) per client of the lab. */
  clients: number;
}

/** How progress and errors name one process of a client: "load", or with --clients 3 "load-2". */
function processName(client: { name: string; replica: number }, replicas: number): string {
  return replicas > 1 ? `${client.name}-${client.replica + 1}` : client.name;
}

/** The lab's clients as one run starts them: names filled in, --connections and the sweep applied. */
function clientsOfRun(lab: Lab, sweepValue: number | null, overrides: Pick<Overrides, 'connections' | 'rate'>): LabRecord['clients'] {
  return lab.clients.map((client, index) => {
    // --rate makes every echo client open-loop at that rate; otherwise the lab's, if any.
    const rate = client.mode === 'echo' ? (overrides.rate ?? client.rate) : undefined;
    return {
      name: client.name ?? `${client.mode}-${index + 1}`,
      mode: client.mode,
      connections:
        lab.sweep?.client === client.name && sweepValue !== null
          ? sweepValue
          : client.mode === 'echo' && overrides.connections !== undefined
            ? overrides.connections
            : client.connections,
      messageSize: client.messageSize,
      ...(rate !== undefined ? { rate } : {}),
    };
  });
}

/** A server of the lab as results.json records it: its options with defaults, and what its model declares. */
function variantRecord(variant: Variant, prepared: ReadonlyMap<string, PreparedOwnServer>): VariantRecord {
  const own = variant.own;
  const ready = prepared.get(variant.label);
  return {
    label: variant.label,
    model: variant.model,
    nofile: variant.nofile,
    options: { ...DEFAULT_SERVE_OPTIONS, ...variant.options },
    // A server of one's own claims a model (as:) or is classified by the analysis.
    declared: !own || own.as !== null ? declarationOf(findModel(own?.as ?? variant.model)) : null,
    ...(own
      ? {
          own: {
            source: own.dir ?? own.command!.join(' '),
            description: ready?.description ?? 'not prepared',
            claims: own.as,
            candidates: own.as === null ? models.map(declarationOf) : [],
            fits: null,
          },
        }
      : {}),
    ...(variant.tracer !== null ? { tracer: variant.tracer } : {}),
  };
}

/**
 * Prepares (copies, builds) each server of one's own once, before the lab's first run: by label.
 * Throws before anything is measured: LabFileError for a directory that is not there (the lab
 * file's field, or --server), LabRunError for one that holds no server or does not build (its
 * compile error), having removed what it prepared.
 */
async function prepareOwnServers(lab: Lab, file: string, runtime: Runtime, ownServers: OwnServers | undefined): Promise<Map<string, PreparedOwnServer>> {
  const prepared = new Map<string, PreparedOwnServer>();
  const labDir = dirname(resolve(file));
  try {
    for (const [index, variant] of variantsOf(lab).entries()) {
      if (!variant.own) continue;
      if (!ownServers) throw new UsageError(`lab ${lab.name}: ${variant.label} is a server of its own, and this runner was given nothing to build it with`);
      const dir = variant.own.dir === null ? null : resolve(labDir, variant.own.dir);
      if (dir !== null && !statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
        throw new LabFileError(file, [`models[${index}].server: ${variant.own.dir}: no such directory (${dir})`]);
      }
      try {
        prepared.set(variant.label, await ownServers.prepare({ label: variant.label, dir, command: variant.own.command, labDir, nofile: variant.nofile }, runtime));
      } catch (error) {
        throw new LabRunError(`lab ${lab.name}: server ${variant.label} cannot run: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  } catch (error) {
    await Promise.all([...prepared.values()].map((own) => own.dispose().catch(() => {})));
    throw error;
  }
  return prepared;
}

/** A run's record before anything was measured. */
function emptyRecord(step: Step, durationSeconds: number): RunRecord {
  return {
    model: step.variant.model,
    variant: step.variant.label,
    sweepValue: step.sweepValue,
    phase: step.phase,
    repetition: step.repetition,
    startedAt: new Date().toISOString(),
    durationSeconds,
    serverPid: null,
    serverRuntime: null,
    clients: [],
    proc: null,
    baseline: null,
    limits: null,
    trace: null,
    host: null,
    events: NO_SERVER_EVENTS,
    serverLog: [],
    error: null,
  };
}

/**
 * Whether the server still runs. `suspect`: its clients saw what a server's end looks like, so an
 * end in progress gets SERVER_END_SETTLE_MS to be reported before the server counts as alive.
 */
async function serverAlive(server: RunningServer, suspect: boolean): Promise<boolean> {
  for (const deadline = Date.now() + (suspect ? SERVER_END_SETTLE_MS : 0); ; await new Promise((resolve) => setTimeout(resolve, 50))) {
    if (!(await server.alive())) return false;
    if (Date.now() >= deadline) return true;
  }
}

/** "server select-server (a server of its own) ended during the run: it exited (status 1); its output ends: ..." */
async function serverEnded(step: Step, server: RunningServer): Promise<string> {
  return `server ${step.variant.label} (${step.variant.own ? 'a server of its own' : `model=${step.variant.model}`}) ended during the run: ${(await server.ending()) ?? 'how, unknown'}`;
}

async function runOnce(lab: Lab, step: Step, runtime: Runtime, durationSeconds: number, overrides: Overrides, own: PreparedOwnServer | null): Promise<RunRecord> {
  const record = emptyRecord(step, durationSeconds);
  let server: RunningServer | null = null;
  let observer: Observer | null = null;
  const clients: RunningClient[] = [];
  const clientSpecs = clientsOfRun(lab, step.sweepValue, overrides).flatMap((client) =>
    // --clients N: N client processes (containers) for each of the lab's clients, in order.
    Array.from({ length: overrides.clients }, (_, replica) => ({ ...client, replica })),
  );
  // Every client process (container) starts now, beside the server, and connects when told
  // (below): starting one took about as long as a run's set-up otherwise (Node, a container).
  // Each keeps its connections after its window until it is stopped, so an idle crowd holds the
  // server until the others are done.
  const launching = Promise.allSettled(
    clientSpecs.map((spec) => runtime.startClient({ ...spec, name: processName(spec, overrides.clients), durationSeconds, target: null })),
  );
  try {
    server = own ? await own.start() : await runtime.startServer({ model: step.variant.model, nofile: step.variant.nofile, options: step.variant.options });
    record.serverPid = server.pid;
    record.serverRuntime = server.runtime;
    observer = await server.observe({ tracer: step.tracer });
    record.limits = observer.limits;
    record.baseline = observer.baseline;
    // The kernel's memory before any client, against the same with every connection held (below).
    const kernelBefore = await readKernelMemory().catch(() => null);
    const launched = await launching;
    const failedToStart = launched.find((outcome) => outcome.status === 'rejected');
    if (failedToStart) throw failedToStart.reason;
    clients.push(...launched.map((outcome) => (outcome as PromiseFulfilledResult<RunningClient>).value));
    // The lab's clients connect in order; the copies of one client (--clients N) side by side.
    for (let first = 0; first < clients.length; first += overrides.clients) {
      const copies = clients.slice(first, first + overrides.clients);
      for (const client of copies) client.connect(server.target);
      await Promise.all(copies.map((client) => client.ready));
    }
    const kernelHeld = kernelBefore && (await readKernelMemory().catch(() => null));
    record.kernel = kernelBefore && kernelHeld ? kernelMemoryGrowth(kernelBefore, kernelHeld) : null;
    const host = await startHostSample();
    await observer.startWindow();
    await Promise.all(clients.map((client) => client.start()));
    // The window ends with the clients that measure; hold clients only keep the server busy.
    const measuring = clients.filter((_, i) => clientSpecs[i].mode !== 'hold');
    await Promise.allSettled((measuring.length ? measuring : clients).map((client) => client.result));
    record.host = await host.stop();
    const observed = await observer.stop();
    observer = null;
    record.proc = observed.proc;
    record.trace = observed.trace;
    const outcomes = await Promise.allSettled(clients.map((client) => client.result));
    record.clients = clientSpecs.map((spec, i): ClientRecord => {
      const outcome = outcomes[i];
      return outcome.status === 'fulfilled'
        ? { ...spec, result: outcome.value, error: null }
        : { ...spec, result: null, error: message(outcome.reason) };
    });
    const failed = record.clients.filter((client) => client.error);
    if (failed.length) record.error = failed.map((client) => `client ${processName(client, overrides.clients)}: ${client.error}`).join('; ');
    // Every connection of a client closed by the server: most likely the server's end.
    const allClosed = record.clients.some((client) => client.result && client.result.connected > 0 && client.result.closedByServer >= client.result.connected);
    if (!(await serverAlive(server, failed.length > 0 || allClosed))) {
      // A server that died is the cause of what its clients saw (their connections reset).
      const ended = await serverEnded(step, server);
      record.error = record.error ? `${ended} (then: ${record.error})` : ended;
    }
  } catch (error) {
    // A server that died is the cause of what failed after it (its /proc gone, its clients reset).
    record.error = server && !(await serverAlive(server, true)) ? `${await serverEnded(step, server)} (then: ${message(error)})` : message(error);
    // Keep what the clients that did start measured.
    if (record.clients.length === 0) {
      record.clients = clientSpecs.map((spec) => ({ ...spec, result: null, error: 'not run: the run failed before this client finished' }));
    }
  } finally {
    if (observer) {
      // What was observed up to the failure is kept; an observer that cannot even stop is killed.
      const observed = await observer.stop().catch(() => null);
      if (observed) {
        record.proc = observed.proc;
        record.trace = observed.trace;
      } else observer.kill();
    }
    if (server) {
      record.serverLog = server.log().slice(0, SERVER_LOG_LINES);
      record.events = server.events();
    }
    // What they measured is in: the clients (every one started, connected or not) and the server stop together.
    const started = (await launching).flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    await Promise.all([...started.map((client) => client.stop()), server?.stop()]);
  }
  return record;
}


/**
 * Which tracer counts the lab's syscalls (bpf where asked or, on auto, where the runtime allows
 * it; else strace), and which tracers cannot run here, with why: a server that asks for one of
 * those (its own `tracer`) gets runs that failed with that reason. Throws RuntimeUnavailableError
 * when --tracer bpf was asked for and cannot run.
 */
async function chooseTracer(lab: Lab, runtime: Runtime, options: RunOptions): Promise<{ counting: TracerKind | null; tracerName: string | null; unavailable: Map<TracerKind, string> }> {
  const wanted = options.tracer ?? 'auto';
  const checks = new Map<TracerKind, Awaited<ReturnType<Runtime['tracer']>>>();
  const check = async (kind: TracerKind) => {
    if (!checks.has(kind)) checks.set(kind, await runtime.tracer(kind));
    return checks.get(kind)!;
  };
  const ownTracers = variantsOf(lab).flatMap((v) => (v.tracer === 'bpf' || v.tracer === 'strace' ? [v.tracer] : []));
  for (const kind of new Set(ownTracers)) await check(kind);
  let counting: TracerKind | null = null;
  if (traceRunsOf(lab) > 0 && wanted === 'none') options.onNotice?.(`${lab.name}: syscalls not counted (--no-trace): the verdicts that need counts are inconclusive`);
  if (traceRunsOf(lab) > 0 && wanted !== 'none') {
    if (wanted !== 'strace') {
      const bpf = await check('bpf');
      if (bpf.available) counting = 'bpf';
      else if (wanted === 'bpf') throw new RuntimeUnavailableError(`--tracer bpf: ${bpf.reason}`);
      else options.onNotice?.(`counting syscalls with strace, in runs of their own: the eBPF observer cannot run on the ${runtime.name} runtime (${bpf.reason})`);
    }
    if (counting === null && (await check('strace')).available) counting = 'strace';
  }
  const unavailable = new Map([...checks].flatMap(([kind, c]) => (c.available ? [] : [[kind, c.reason] as const])));
  const named = counting !== null ? checks.get(counting) : undefined;
  const tracerName = named?.available
    ? `${named.name} (${counting === 'bpf' ? 'eBPF, in the measured runs' : 'ptrace, in runs of their own'})`
    : traceRunsOf(lab) > 0 && wanted === 'none' ? 'none: not asked for (--no-trace)' : null;
  return { counting, tracerName, unavailable };
}

/** The record of a run that could not start (its tracer cannot run here). */
function notRun(step: Step, durationSeconds: number, error: string): RunRecord {
  return { ...emptyRecord(step, durationSeconds), error };
}

/**
 * How many measured runs runLab makes of `loaded` (every server, sweep step and repetition; an
 * experiment's arms), for progress estimates: counting with strace adds runs of its own.
 */
export function measuredRunCount(loaded: LoadedLab): number {
  if (loaded.experiment) return experimentRunCount(loaded.experiment);
  return loaded.lab.repetitions * (loaded.lab.sweep?.connections.length ?? 1) * variantsOf(loaded.lab).length;
}

/**
 * Runs every step of the lab (measured runs, then strace's runs of their own) on `runtime` and
 * returns what was measured, complete or not: a failed run is recorded and the lab goes on; an
 * abort stops it. Throws only when the runtime cannot start at all, or --tracer bpf cannot run
 * (RuntimeUnavailableError). An experiment lab runs its scripts instead (src/labs/experiment-runner.ts).
 */
export async function runLab(loaded: LoadedLab, runtime: Runtime, options: RunOptions = {}): Promise<Measurement> {
  if (loaded.experiment) return runExperimentLab({ lab: loaded.experiment, file: loaded.file }, runtime, options);
  const { lab, file } = loaded;
  const durationSeconds = options.durationSeconds ?? lab.duration;
  const startedAt = new Date().toISOString();
  const runs: RunRecord[] = [];
  let incompleteReason: string | null = null;
  const traceRuns = traceRunsOf(lab);
  const facts = await runtime.facts();
  const { counting, tracerName, unavailable } = await chooseTracer(lab, runtime, options);
  if (traceRuns > 0 && counting === null && options.tracer !== 'none') incompleteReason = `no tracer on the ${runtime.name} runtime: syscall counts were not taken (${unavailable.get('strace') ?? unavailable.get('bpf')})`;
  const steps = plan(lab, counting);
  const kept = new Map((options.resume?.runs ?? []).map((run) => [runKey(run), run]));
  let reused = 0;
  const prepared = await prepareOwnServers(lab, file, runtime, options.ownServers);
  try {
    // On disk before the first run: a run killed in its first is there to be resumed too.
    await recordSoFar(options.onRecorded, measurementOf, 0, steps.length);
    for (const [index, step] of steps.entries()) {
      const done = kept.get(runKey({ variant: step.variant.label, sweepValue: step.sweepValue, phase: step.phase, repetition: step.repetition }));
      if (done) {
        runs.push(done);
        reused++;
        if (done.error) incompleteReason ??= `run ${index + 1} (${describeStep(lab, step)}) failed: ${done.error}`;
        continue;
      }
      if (options.signal?.aborted) {
        incompleteReason = `interrupted (${String(options.signal.reason ?? 'aborted')}) after ${index} of ${steps.length} runs`;
        break;
      }
      const progress: RunProgress = {
        lab: lab.name,
        step: index + 1,
        steps: steps.length,
        subject: subjectOf(lab, step),
        phase: step.phase,
        repetition: step.repetition,
      };
      options.onProgress?.(progress);
      const missing = step.tracer !== null ? unavailable.get(step.tracer) : undefined;
      const own = prepared.get(step.variant.label) ?? null;
      const record = missing
        ? notRun(step, durationSeconds, `${step.tracer} cannot run on the ${runtime.name} runtime: ${missing}`)
        : await runOnce(lab, step, runtime, durationSeconds, { connections: options.connections, rate: options.rate, clients: options.clients ?? 1 }, own);
      // A failed run: was it the runtime (an engine restarted under it), and can the lab go on?
      const recovery = record.error && !missing && !options.signal?.aborted ? await runtime.recover?.() : undefined;
      if (recovery?.cause) record.error = `${recovery.cause}: ${record.error}`;
      runs.push(record);
      options.onProgress?.({ ...progress, outcome: { error: record.error, roundTripsPerSecond: runThroughput(record), answered: clientResults(record, 'echo').reduce((sum, c) => sum + answeredOf(c), 0) } });
      if (record.error && !options.signal?.aborted) incompleteReason ??= `run ${index + 1} (${describeStep(lab, step)}) failed: ${record.error}`;
      if (recovery?.stop) incompleteReason = `run ${index + 1} (${describeStep(lab, step)}) failed, and the lab stopped after it: ${recovery.stop}`;
      const unrecorded = await recordSoFar(options.onRecorded, measurementOf, runs.length, steps.length);
      if (unrecorded) {
        incompleteReason = unrecorded;
        break;
      }
      if (recovery?.stop) break;
    }
  } finally {
    await Promise.all([...prepared.values()].map((own) => own.dispose().catch(() => {})));
  }
  if (options.signal?.aborted && !incompleteReason?.startsWith('interrupted')) {
    incompleteReason = `interrupted (${String(options.signal.reason ?? 'aborted')}) during run ${runs.length} of ${steps.length}`;
  }
  return measurementOf(incompleteReason);

  /** What was measured so far, with `reason` (null: complete). */
  function measurementOf(reason: string | null): Measurement {
    return {
      schemaVersion: RESULTS_SCHEMA_VERSION,
      lab: {
        ...labHeaderOf(lab, file),
        variants: variantsOf(lab).map((variant) => variantRecord(variant, prepared)),
        clients: clientsOfRun(lab, null, { connections: options.connections, rate: options.rate }),
        sweep: lab.sweep ?? null,
        verdict: lab.verdict?.[0] ?? null,
        ...(lab.verdict && lab.verdict.length > 1 ? { verdicts: lab.verdict } : {}),
        durationSeconds,
        repetitions: lab.repetitions,
        traceRuns: counting === 'strace' ? traceRuns : 0,
        nofile: lab.nofile ?? null,
      },
      environment: environmentOf(runtime, facts, { name: tracerName, kind: counting }, options.clients ?? 1),
      startedAt: options.resume?.startedAt ?? startedAt,
      finishedAt: new Date().toISOString(),
      complete: reason === null,
      incompleteReason: reason,
      runs: [...runs],
      ...(options.settings && { settings: options.settings }),
      ...resumedOf(options.resume, reused),
    };
  }
}

