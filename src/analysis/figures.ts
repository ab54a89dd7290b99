// The figures of a lab, derived from its runs by pure functions: no IO, no clock, no formatting.
// The verdicts, the observations and (through results.json) the report all read these, so that
// each fact is computed once and has one number everywhere.
//
// Two kinds of run feed different figures (see RunRecord.phase):
// - 'measure' runs (no tracer, several repetitions): throughput, latency, requests answered,
//   CPU, threads, memory. Each is given as the median over the repetitions, with the lowest and
//   highest where a verdict may compare it, because the machines are shared and noisy.
// - 'trace' runs (strace attached): syscall counts only, summed over the traced runs. strace
//   stops the server at every call, so a traced run's pace says nothing about the model.
// A run that failed (error set, or a client without a result) is left out of every figure and
// listed instead: a throughput of 0 from a crashed client would drag a median down silently.
import { checkFingerprint, checkFingerprintByJob } from '../shared/model.js';
import {
  answeredOf,
  clientResults,
  grown,
  isFailed,
  resultsOf,
  mergeCounts,
  runThroughput,
  type ClientFigures,
  type ClientResult,
  type FailedRun,
  type LatencyFigures,
  type MeasureFigures,
  type Measurement,
  type PhaseFigures,
  type RunRecord,
  type Spread,
  type SubjectFigures,
  type SyscallCount,
  type TraceFigures,
  type UringOp,
  type VariantRecord,
  type WaitFigures,
  type Waits,
} from '../shared/results.js';
import { medianServerEvents } from '../shared/server-events.js';
import { median, spreadOf } from '../shared/spread.js';

export { answeredOf, clientResults, grown, isFailed, resultsOf, runThroughput };
export { median, spreadOf } from '../shared/spread.js';

function medianOrNull(values: readonly (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  return present.length === 0 ? null : median(present);
}

function maxOrNull(values: readonly number[]): number | null {
  return values.length === 0 ? null : Math.max(...values);
}

const sum = (values: readonly number[]) => values.reduce((total, v) => total + v, 0);




/** Connections a client established: the idle crowd and, for a hold client, its probe. */
export function connectionsOf(result: ClientResult): number {
  return result.connected + (result.probe !== null ? 1 : 0);
}



/** Echo requests answered in one run (window and drain), all echo clients together: what a traced window's calls answered. */
export function runAnswered(run: RunRecord): number {
  return sum(clientResults(run, 'echo').map(answeredOf));
}

/** Echo round trips of one run, all echo clients (or the named one) together. */
export function runRoundTrips(run: RunRecord, client?: string): number {
  return sum((client ? resultsOf(run, client) : clientResults(run, 'echo')).filter((c) => c.mode === 'echo').map((c) => c.roundTrips));
}

/**
 * One run's latency over some echo clients. Percentiles cannot be merged exactly without the
 * clients' histograms, which results.json does not carry: we take the mean of the clients'
 * percentiles weighted by their round trips (exact for one client, a close approximation for
 * clients under the same load), and the largest max, which is exact.
 */
export function runLatency(results: readonly ClientResult[]): LatencyFigures | null {
  const echo = results.filter((c) => c.mode === 'echo' && c.latency.count > 0);
  if (echo.length === 0) return null;
  const total = sum(echo.map((c) => c.latency.count));
  const weighted = (pick: (c: ClientResult) => number) => sum(echo.map((c) => pick(c) * c.latency.count)) / total;
  // p99.9 only where every client measured it (results of older clients lack it).
  const p999 = echo.every((c) => c.latency.p999Us !== undefined) ? { p999Us: weighted((c) => c.latency.p999Us!) } : {};
  return {
    p50Us: weighted((c) => c.latency.p50Us),
    p90Us: weighted((c) => c.latency.p90Us),
    p99Us: weighted((c) => c.latency.p99Us),
    ...p999,
    maxUs: Math.max(...echo.map((c) => c.latency.maxUs)),
  };
}

function medianLatency(latencies: readonly (LatencyFigures | null)[]): LatencyFigures | null {
  const present = latencies.filter((l): l is LatencyFigures => l !== null);
  if (present.length === 0) return null;
  return {
    p50Us: median(present.map((l) => l.p50Us)),
    p90Us: median(present.map((l) => l.p90Us)),
    p99Us: median(present.map((l) => l.p99Us)),
    ...(present.every((l) => l.p999Us !== undefined) ? { p999Us: median(present.map((l) => l.p999Us!)) } : {}),
    maxUs: median(present.map((l) => l.maxUs)),
  };
}

/**
 * An open-loop client's round trips per second in one run: the round trips of its window over
 * the window, every replica together; the same definition as runThroughput's.
 */
export function achievedRate(results: readonly ClientResult[]): number {
  return sum(results.map((c) => (c.durationSeconds > 0 ? c.roundTrips / c.durationSeconds : 0)));
}

/** Requests per second an open-loop client's schedule offered in one run, every replica together; null for a closed-loop client. */
export function offeredRate(results: readonly ClientResult[]): number | null {
  const open = results.flatMap((c) => (c.openLoop ? [c.openLoop] : []));
  return open.length === 0 ? null : sum(open.map((o) => o.offeredPerSecond));
}

/** The open-loop figures of a client over its runs (see ClientFiguresSchema.openLoop); undefined for a closed-loop client. */
function openLoopFigures(perRun: readonly ClientResult[][]): ClientFigures['openLoop'] {
  const runs = perRun.filter((results) => results.some((c) => c.openLoop));
  if (runs.length === 0) return undefined;
  const all = runs.flat().flatMap((c) => (c.openLoop ? [c.openLoop] : []));
  return {
    ratePerConnection: all[0].ratePerConnection,
    offeredPerSecond: median(runs.map((results) => offeredRate(results) ?? 0)),
    achievedPerSecond: spreadOf(runs.map(achievedRate)),
    scheduled: sum(all.map((o) => o.scheduled)),
    sentLate: sum(all.map((o) => o.sentLate)),
    notSent: sum(all.map((o) => o.notSent)),
    lowerBounds: sum(all.map((o) => o.lowerBounds)),
    serviceLatency: medianLatency(
      runs.map((results) => runLatency(results.flatMap((c) => (c.openLoop && c.openLoop.serviceLatency.count > 0 ? [{ ...c, latency: c.openLoop.serviceLatency }] : [])))),
    ),
    sendLagP99Us: median(runs.map(sendLagOf)),
  };
}

/** An open-loop client's own send lag in one run (OpenLoop.sendLag), p99 in µs: the latest of its replicas; 0 when none ran open-loop. */
export function sendLagOf(results: readonly ClientResult[]): number {
  return Math.max(0, ...results.flatMap((c) => (c.openLoop ? [c.openLoop.sendLag.p99Us] : [])));
}

/** Server CPU time per echo round trip in one run, in microseconds (of the named client's round trips, or all). */
export function cpuPerRoundTrip(run: RunRecord, client?: string): number | null {
  const roundTrips = runRoundTrips(run, client);
  if (!run.proc || roundTrips === 0) return null;
  return ((run.proc.cpuUserSeconds + run.proc.cpuSystemSeconds) / roundTrips) * 1e6;
}


function clientFigures(runs: readonly RunRecord[], name: string, mode: ClientResult['mode']): ClientFigures {
  const perRun = runs.map((run) => resultsOf(run, name));
  const all = perRun.flat();
  const medianOfSums = (pick: (c: ClientResult) => number) => median(perRun.map((results) => sum(results.map(pick))));
  const connectErrors: Record<string, number> = {};
  for (const result of all) {
    for (const [code, n] of Object.entries(result.connectErrors)) connectErrors[code] = (connectErrors[code] ?? 0) + n;
  }
  const probes = all.flatMap((c) => (c.probe ? [c.probe] : []));
  return {
    name,
    mode,
    connections: medianOfSums((c) => c.connected),
    connectionsAnswered: medianOfSums((c) => c.connectionsAnswered),
    warmup: { connections: medianOfSums((c) => c.warmup.connections), answered: medianOfSums((c) => c.warmup.answered) },
    requests: {
      sent: sum(all.map((c) => c.requestsSent)),
      answered: sum(all.map(answeredOf)),
      unanswered: sum(all.map((c) => c.unanswered)),
      wrong: sum(all.map((c) => c.wrongReplies)),
    },
    closedByServer: sum(all.map((c) => c.closedByServer)),
    connectErrors,
    roundTripsPerSecond:
      mode === 'echo' ? spreadOf(perRun.map((results) => sum(results.map((c) => (c.durationSeconds > 0 ? c.roundTrips / c.durationSeconds : 0))))) : null,
    latency: mode === 'echo' ? medianLatency(perRun.map(runLatency)) : null,
    probe:
      probes.length === 0
        ? null
        : {
            sent: sum(probes.map((p) => p.sent)),
            answered: sum(probes.map((p) => p.answered)),
            p50Us: medianOrNull(probes.map((p) => (p.latency.count > 0 ? p.latency.p50Us : null))),
          },
    cpuPercent: medianOrNull(perRun.map((results) => (results.length ? Math.max(...results.map((c) => c.cpuPercent)) : null))),
    ...(mode === 'echo' && perRun.some((results) => results.some((c) => c.openLoop)) ? { openLoop: openLoopFigures(perRun) } : {}),
  };
}

export function measureFigures(runs: readonly RunRecord[], clients: readonly { name: string; mode: ClientResult['mode'] }[]): MeasureFigures | null {
  if (runs.length === 0) return null;
  const procs = runs.flatMap((run) => (run.proc ? [run.proc] : []));
  const echoRoundTrips = (run: RunRecord) => runRoundTrips(run);
  return {
    repetitions: runs.length,
    throughput: spreadOf(runs.map(runThroughput).filter((t): t is number => t !== null)),
    latency: medianLatency(runs.map((run) => runLatency(clientResults(run, 'echo')))),
    clients: clients.map((client) => clientFigures(runs, client.name, client.mode)),
    cpuPercent: spreadOf(procs.map((p) => p.cpuPercent)),
    cpuPerRoundTripUs: spreadOf(runs.map((run) => cpuPerRoundTrip(run)).filter((v): v is number => v !== null)),
    clientCpuPercent: medianOrNull(
      runs.map((run) => {
        const echo = clientResults(run, 'echo');
        return echo.length ? Math.max(...echo.map((c) => c.cpuPercent)) : null;
      }),
    ),
    processesPeak: maxOrNull(procs.flatMap((p) => (p.processesPeak === undefined ? [] : [p.processesPeak]))),
    threadsPeak: maxOrNull(procs.map((p) => p.threadsPeak)),
    fdsPeak: maxOrNull(procs.map((p) => p.fdsPeak)),
    peakRssKb: maxOrNull(procs.map((p) => p.peakRssKb)),
    threadsAdded: medianOrNull(runs.map((run) => grown(run, 'threadsPeak'))),
    fdsAdded: medianOrNull(runs.map((run) => grown(run, 'fdsPeak'))),
    rssAddedKb: medianOrNull(runs.map((run) => grown(run, 'peakRssKb'))),
    pssAddedKb: medianOrNull(runs.map((run) => grown(run, 'pssKb'))),
    switchesPerRoundTrip: medianOrNull(runs.map((run) => (run.proc && echoRoundTrips(run) ? run.proc.voluntaryContextSwitches / echoRoundTrips(run) : null))),
  };
}

function phaseFigures(serving: SyscallCount[], runtime: SyscallCount[], divide: { roundTrips?: number; connections?: number }): PhaseFigures {
  const figures = (rows: SyscallCount[]) =>
    rows
      .map((row) => ({
        ...row,
        perRoundTrip: divide.roundTrips ? row.calls / divide.roundTrips : null,
        perConnection: divide.connections ? row.calls / divide.connections : null,
      }))
      .sort((a, b) => b.calls - a.calls || a.syscall.localeCompare(b.syscall));
  return {
    serving: figures(serving),
    runtime: figures(runtime),
    servingCalls: sum(serving.map((s) => s.calls)),
    runtimeCalls: sum(runtime.map((s) => s.calls)),
  };
}

/**
 * The syscall figures of a row's counted runs, and its fingerprint checked against what its
 * server declares: by name for a model of the registry, by job (checkFingerprintByJob) for a
 * server of one's own; null for one that declares nothing (fits no model). null: no counted run.
 */
export function traceFigures(runs: readonly RunRecord[], variant: Pick<VariantRecord, 'declared' | 'own'>): TraceFigures | null {
  const traced = runs.filter((run) => run.trace !== null);
  if (traced.length === 0) return null;
  // The traced window lasts until the requests in flight at the clients' deadline are answered.
  const roundTrips = sum(traced.map((run) => runAnswered(run)));
  const connections = sum(traced.flatMap((run) => clientResults(run).map(connectionsOf)));
  const window = {
    serving: mergeCounts(...traced.map((run) => run.trace!.window.serving)),
    runtime: mergeCounts(...traced.map((run) => run.trace!.window.runtime)),
  };
  const setup = {
    serving: mergeCounts(...traced.map((run) => run.trace!.setup.serving)),
    runtime: mergeCounts(...traced.map((run) => run.trace!.setup.runtime)),
  };
  const servingCallsOf = (run: RunRecord) => sum(run.trace!.window.serving.map((s) => s.calls));
  return {
    runs: traced.length,
    windowSeconds: sum(traced.map((run) => run.trace!.windowSeconds)),
    roundTrips,
    connections,
    servingPerRoundTrip: spreadOf(traced.flatMap((run) => (runAnswered(run) > 0 ? [servingCallsOf(run) / runAnswered(run)] : []))),
    window: phaseFigures(window.serving, window.runtime, { roundTrips }),
    setup: phaseFigures(setup.serving, setup.runtime, { connections }),
    threads: {
      serving: Math.max(...traced.map((run) => run.trace!.threads.serving)),
      runtime: Math.max(...traced.map((run) => run.trace!.threads.runtime)),
    },
    fingerprint: variant.declared ? (variant.own ? checkFingerprintByJob : checkFingerprint)(variant.declared.fingerprint, mergeCounts(setup.serving, window.serving), roundTrips) : null,
    ...(traced.every((run) => run.trace!.tracer === 'bpf') ? { tracer: 'bpf' as const, waits: waitFigures(traced), uring: uringFigures(traced) } : {}),
  };
}

/** Where the serving threads waited, over the runs that timed their calls: each share is of every thread's window added up. */
export function waitFigures(runs: readonly RunRecord[]): WaitFigures | null {
  const timed = runs.flatMap((run) => (run.trace?.waits && run.trace.waits.threads > 0 ? [run.trace.waits] : []));
  if (timed.length === 0) return null;
  const threadSecondsOf = (waits: Waits) => waits.threads * waits.windowSeconds;
  const threadSeconds = sum(timed.map(threadSecondsOf));
  if (threadSeconds <= 0) return null;
  const syscalls = [...new Set(timed.flatMap((waits) => waits.serving.map((row) => row.syscall)))];
  const rows = syscalls.map((syscall) => {
    const of = (waits: Waits) => waits.serving.find((row) => row.syscall === syscall);
    return {
      syscall,
      insideShare: sum(timed.map((waits) => of(waits)?.insideSeconds ?? 0)) / threadSeconds,
      blockedShare: sum(timed.map((waits) => of(waits)?.blockedSeconds ?? 0)) / threadSeconds,
      blockedShares: timed.map((waits) => (threadSecondsOf(waits) > 0 ? (of(waits)?.blockedSeconds ?? 0) / threadSecondsOf(waits) : 0)),
      threads: Math.max(...timed.map((waits) => of(waits)?.threads ?? 0)),
      mainWaitOf: Math.max(...timed.map((waits) => of(waits)?.mainWaitOf ?? 0)),
    };
  });
  return {
    runs: timed.length,
    threads: Math.max(...timed.map((waits) => waits.threads)),
    threadSeconds,
    rows: rows.sort((a, b) => b.insideShare - a.insideShare),
  };
}

/** The io_uring requests of the traced windows by opcode, added over the runs. */
function uringFigures(runs: readonly RunRecord[]): UringOp[] {
  const byOpcode = new Map<string, UringOp>();
  for (const op of runs.flatMap((run) => run.trace?.uring?.window ?? [])) {
    const sumOp = byOpcode.get(op.opcode) ?? { opcode: op.opcode, submitted: 0, failed: 0, errnos: {} };
    sumOp.submitted += op.submitted;
    sumOp.failed += op.failed;
    for (const [errno, n] of Object.entries(op.errnos)) sumOp.errnos[errno] = (sumOp.errnos[errno] ?? 0) + n;
    byOpcode.set(op.opcode, sumOp);
  }
  return [...byOpcode.values()].sort((a, b) => b.submitted - a.submitted);
}

/** One row of a lab: a server, and in a sweep one value of the swept connections. */
export interface Subject {
  subject: string;
  variant: VariantRecord;
  sweepValue: number | null;
}

/**
 * What a row of the report is about: a server (a model, or a variant of one) and, in a lab with a
 * sweep, one value of the swept connections: "select" or "select, idle=1000".
 */
export function subjectName(results: Pick<Measurement, 'lab'>, run: Pick<RunRecord, 'variant' | 'sweepValue'>): string {
  const sweep = results.lab.sweep;
  return sweep && run.sweepValue !== null ? `${run.variant}, ${sweep.client}=${run.sweepValue}` : run.variant;
}

/** The lab's rows in its order: sweep values outside, servers inside. */
export function subjectsOf(results: Pick<Measurement, 'lab'>): Subject[] {
  return (results.lab.sweep?.connections ?? [null]).flatMap((sweepValue) =>
    results.lab.variants.map((variant) => ({ subject: subjectName(results, { variant: variant.label, sweepValue }), variant, sweepValue })),
  );
}

/** The runs of a row that count (not failed) and carry syscall counts: trace runs (strace), or measured runs (bpf). */
export function countedRunsOf(results: Measurement, subject: Subject): RunRecord[] {
  return results.runs.filter((run) => run.trace !== null && subjectName(results, run) === subject.subject && !isFailed(run));
}

/** The runs of a row that count (not failed), by phase. */
export function runsOf(results: Measurement, subject: Subject, phase: RunRecord['phase']): RunRecord[] {
  return results.runs.filter((run) => run.phase === phase && subjectName(results, run) === subject.subject && !isFailed(run));
}

export function subjectFigures(results: Measurement, subject: Subject): SubjectFigures {
  const all = results.runs.filter((run) => subjectName(results, run) === subject.subject);
  const measureRuns = runsOf(results, subject, 'measure');
  const traceRuns = countedRunsOf(results, subject);
  return {
    subject: subject.subject,
    variant: subject.variant.label,
    model: subject.variant.model,
    sweepValue: subject.sweepValue,
    measure: measureFigures(measureRuns, results.lab.clients),
    trace: traceFigures(traceRuns, subject.variant),
    // Limits are read the same way in every run; any run that got them will do, failed or not.
    limits: [...measureRuns, ...traceRuns, ...all].find((run) => run.limits !== null)?.limits ?? null,
    // Per measure run that counts, like every other figure (a failed run's error says why it failed).
    events: medianServerEvents(measureRuns.map((run) => run.events)),
  };
}

export function failedRuns(results: Measurement): FailedRun[] {
  return results.runs.filter(isFailed).map((run) => ({
    subject: subjectName(results, run),
    phase: run.phase,
    repetition: run.repetition,
    error: run.error,
    clientErrors: run.clients.flatMap((c) => (c.result === null ? [{ client: c.name, error: c.error ?? 'no result and no error recorded' }] : [])),
  }));
}
