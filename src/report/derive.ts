// The figures a report shows, derived from results.json by pure functions: no IO, no clock, no
// formatting. Observations, the Markdown writer and (later) the grader all read these, so that a
// median is computed in one place only.
//
// Two kinds of run feed different figures (see RunRecord.phase):
// - 'measure' runs (no tracer, several repetitions): throughput, latency, errors, CPU, memory. We
//   quote the median across repetitions, because the machines are shared and noisy.
// - 'trace' runs (strace attached): syscall counts. strace stops the server at every syscall, so
//   a traced run's timings say more about strace than about the model; we keep only its counts
//   and the round trips the clients completed meanwhile, to express counts per round trip.
// A run that failed (error set, or a client without a result) is left out of every figure and
// listed instead: a throughput of 0 from a crashed client would drag a median down silently.
import type { ClientResult, Limits, Results, RunRecord, SyscallCount } from './results.js';
import { models as registeredModels, type Fingerprint, type ServerModel } from '../servers/index.js';

/** What the report needs to know about a model besides its runs: the registry entry, minus `serve`. */
export type ModelDescription = Pick<ServerModel, 'name' | 'summary' | 'fingerprint' | 'concurrency'>;

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** Latency percentiles in microseconds: each the median across repetitions. */
export interface LatencyFigures {
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
}

export interface ErrorTotals {
  wrongReplies: number;
  unanswered: number;
  closedByServer: number;
  /** failed connects by errno code, summed over runs and clients. */
  connectErrors: Record<string, number>;
}

export interface MeasureFigures {
  /** measure runs that count (without error). */
  repetitions: number;
  /** echo round trips per second, summed over echo clients; null when no run had an echo client. */
  throughput: Spread | null;
  /** null when no echo client completed a round trip. */
  latency: LatencyFigures | null;
  errors: ErrorTotals;
  /** median; percent of one core. */
  cpuPercent: number | null;
  /** median over runs of the busiest echo client's own CPU, percent of one core. */
  clientCpuPercent: number | null;
  threadsPeak: number | null;
  fdsPeak: number | null;
  peakRssKb: number | null;
  /** the hold clients' probe connections, summed over runs; null when no hold client had one. */
  probe: { sent: number; answered: number } | null;
}

/** One row of the traced run's `strace -c` table, with the figures we derive from it. */
export interface SyscallFigures extends SyscallCount {
  /** errors / calls: for recvfrom and accept4 on a non-blocking socket, the EAGAIN share. */
  failedShare: number;
  /** null when the traced run completed no round trip. */
  callsPerRoundTrip: number | null;
}

export interface FingerprintCheck {
  /**
   * 'inconclusive': a required call is missing but the traced run completed no round trip; a
   * server blocked in one call (the blocking model behind a client that holds it) makes no calls
   * to count, which is not evidence against the model. A forbidden call seen is never inconclusive.
   */
  verdict: 'matches' | 'does not match' | 'inconclusive';
  /** Each required entry with the alternatives that were seen and their calls (none: missing). */
  required: { anyOf: string[]; seen: { syscall: string; calls: number }[] }[];
  /** Every forbidden call with its count; calls > 0 is a violation. */
  forbidden: { syscall: string; calls: number }[];
}

export interface TraceFigures {
  /** trace runs that count; their counts are summed. */
  runs: number;
  durationSeconds: number;
  /** echo round trips completed while strace was attached. */
  roundTrips: number;
  /** round trips per second UNDER STRACE: not comparable with the measured throughput. */
  roundTripsPerSecondUnderStrace: number | null;
  /** connections the clients had established during the traced run. */
  connections: number;
  totalCalls: number;
  totalErrors: number;
  /** null when the traced run completed no round trip. */
  syscallsPerRoundTrip: number | null;
  /** sorted by calls, most first. */
  syscalls: SyscallFigures[];
  /** null when the model is not in the registry (no fingerprint to check against). */
  fingerprint: FingerprintCheck | null;
}

/** Matching server log lines, over all of a model's runs. */
export interface LogLines {
  lines: string[];
  /** how many runs logged at least one of them. */
  runs: number;
}

/** Server log lines worth an observation. */
export interface ServerLogFigures {
  /** the server refused (closed) a connection, e.g. select at fd >= FD_SETSIZE. */
  refusals: LogLines;
  /** the server ran out of file descriptors (EMFILE: per process, ENFILE: system-wide). */
  fdExhaustion: LogLines;
  /** some run's log reached the 50 lines results.json keeps: counts above are lower bounds. */
  truncated: boolean;
}

export interface ModelFigures {
  /** the subject of the row (see subjectOf): a model, a variant, and in a sweep the swept value. */
  model: string;
  /** the server: the model's name or a variant's label. */
  variant: string;
  sweepValue: number | null;
  /** from the model registry; null for a model this version of iolab does not know. */
  description: ModelDescription | null;
  measure: MeasureFigures | null;
  trace: TraceFigures | null;
  limits: Limits | null;
  serverLog: ServerLogFigures;
  /** the runs that count, for rules that need more than the figures above. */
  measureRuns: RunRecord[];
  traceRuns: RunRecord[];
}

/** A run left out of the figures, and why. */
export interface FailedRun {
  model: string;
  phase: RunRecord['phase'];
  repetition: number;
  error: string | null;
  clientErrors: { client: string; error: string }[];
}

export interface LabFigures {
  /** the lab's models in its order, then any other model that appears in the runs. */
  models: ModelFigures[];
  failedRuns: FailedRun[];
}

/** The calls whose per-round-trip figures tell the models apart. */
export const INTERESTING_SYSCALLS = [
  'accept4',
  'recvfrom',
  'sendto',
  'select',
  'pselect6',
  'poll',
  'ppoll',
  'epoll_wait',
  'epoll_pwait',
  'epoll_ctl',
] as const;

/** The calls a multiplexing model waits in: one call per loop iteration. */
export const WAITING_SYSCALLS = ['select', 'pselect6', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait'] as const;

/** The middle value; for an even count, the mean of the two middle values. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function spread(values: readonly number[]): Spread | null {
  if (values.length === 0) return null;
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

function medianOrNull(values: readonly number[]): number | null {
  return values.length === 0 ? null : median(values);
}

function maxOrNull(values: readonly number[]): number | null {
  return values.length === 0 ? null : Math.max(...values);
}

function clientResults(run: RunRecord, mode?: ClientResult['mode']): ClientResult[] {
  return run.clients.flatMap((client) =>
    client.result && (!mode || client.result.mode === mode) ? [client.result] : [],
  );
}

/** A hold client's `connected` counts its idle crowd; a probe that asked was one more connection. */
export function connectionsOf(result: ClientResult): number {
  return result.connected + (result.probe && result.probe.sent > 0 ? 1 : 0);
}

function isFailed(run: RunRecord): boolean {
  return run.error !== null || run.clients.some((client) => client.result === null);
}

/** Echo round trips per second in one run, all echo clients together; null without echo clients. */
export function runThroughput(run: RunRecord): number | null {
  const echo = clientResults(run, 'echo');
  if (echo.length === 0) return null;
  // Each client measures its own window; one that never started (0 s) adds nothing.
  return echo.reduce((sum, c) => sum + (c.durationSeconds > 0 ? c.roundTrips / c.durationSeconds : 0), 0);
}

/**
 * One run's latency over all its echo clients. Percentiles cannot be merged exactly without the
 * clients' histograms, which results.json does not carry: we take the mean of the clients'
 * percentiles weighted by their round trips (exact for one client, a close approximation for
 * clients under the same load), and the largest max, which is exact. We prefer this to "the
 * busiest client's figures": that would drop the slow clients, the ones a reader looks for.
 */
export function runLatency(run: RunRecord): LatencyFigures | null {
  const echo = clientResults(run, 'echo').filter((c) => c.latency.count > 0);
  if (echo.length === 0) return null;
  const total = echo.reduce((sum, c) => sum + c.latency.count, 0);
  const weighted = (pick: (c: ClientResult) => number) =>
    echo.reduce((sum, c) => sum + pick(c) * c.latency.count, 0) / total;
  return {
    p50Us: weighted((c) => c.latency.p50Us),
    p90Us: weighted((c) => c.latency.p90Us),
    p99Us: weighted((c) => c.latency.p99Us),
    maxUs: Math.max(...echo.map((c) => c.latency.maxUs)),
  };
}

function errorTotals(runs: readonly RunRecord[]): ErrorTotals {
  const totals: ErrorTotals = { wrongReplies: 0, unanswered: 0, closedByServer: 0, connectErrors: {} };
  for (const result of runs.flatMap((run) => clientResults(run))) {
    totals.wrongReplies += result.wrongReplies;
    totals.unanswered += result.unanswered;
    totals.closedByServer += result.closedByServer;
    for (const [code, count] of Object.entries(result.connectErrors)) {
      totals.connectErrors[code] = (totals.connectErrors[code] ?? 0) + count;
    }
  }
  return totals;
}

export function measureFigures(runs: readonly RunRecord[]): MeasureFigures | null {
  if (runs.length === 0) return null;
  const latencies = runs.map(runLatency).filter((l): l is LatencyFigures => l !== null);
  const procs = runs.flatMap((run) => (run.proc ? [run.proc] : []));
  const probes = runs.flatMap((run) => clientResults(run, 'hold').flatMap((c) => (c.probe ? [c.probe] : [])));
  return {
    repetitions: runs.length,
    throughput: spread(runs.map(runThroughput).filter((t): t is number => t !== null)),
    latency:
      latencies.length === 0
        ? null
        : {
            p50Us: median(latencies.map((l) => l.p50Us)),
            p90Us: median(latencies.map((l) => l.p90Us)),
            p99Us: median(latencies.map((l) => l.p99Us)),
            maxUs: median(latencies.map((l) => l.maxUs)),
          },
    errors: errorTotals(runs),
    cpuPercent: medianOrNull(procs.map((p) => p.cpuPercent)),
    clientCpuPercent: medianOrNull(
      runs.flatMap((run) => {
        const echo = clientResults(run, 'echo');
        return echo.length ? [Math.max(...echo.map((c) => c.cpuPercent))] : [];
      }),
    ),
    threadsPeak: maxOrNull(procs.map((p) => p.threadsPeak)),
    fdsPeak: maxOrNull(procs.map((p) => p.fdsPeak)),
    peakRssKb: maxOrNull(procs.map((p) => p.peakRssKb)),
    probe:
      probes.length === 0
        ? null
        : {
            sent: probes.reduce((sum, p) => sum + p.sent, 0),
            answered: probes.reduce((sum, p) => sum + p.answered, 0),
          },
  };
}

/**
 * Sums the syscall tables of several runs (usually there is one). strace -c prints a "total" row;
 * we drop it if a parser kept it, since we compute totals ourselves.
 */
function sumSyscalls(runs: readonly RunRecord[]): SyscallCount[] {
  const bySyscall = new Map<string, SyscallCount>();
  for (const row of runs.flatMap((run) => run.syscalls ?? [])) {
    if (row.syscall === 'total') continue;
    const sum = bySyscall.get(row.syscall) ?? { syscall: row.syscall, calls: 0, errors: 0, usecsPerCall: 0, seconds: 0 };
    // usecs/call of the sum: weighted by calls, so that one run gives back its own figure exactly.
    const calls = sum.calls + row.calls;
    sum.usecsPerCall = calls === 0 ? 0 : (sum.usecsPerCall * sum.calls + row.usecsPerCall * row.calls) / calls;
    sum.calls = calls;
    sum.errors += row.errors;
    sum.seconds += row.seconds;
    bySyscall.set(row.syscall, sum);
  }
  return [...bySyscall.values()];
}

export function checkFingerprint(
  fingerprint: Fingerprint,
  syscalls: readonly SyscallCount[],
  roundTrips: number,
): FingerprintCheck {
  const callsOf = (name: string) => syscalls.find((s) => s.syscall === name)?.calls ?? 0;
  const required = fingerprint.required.map((anyOf) => ({
    anyOf,
    seen: anyOf.filter((name) => callsOf(name) > 0).map((name) => ({ syscall: name, calls: callsOf(name) })),
  }));
  const forbidden = fingerprint.forbidden.map((name) => ({ syscall: name, calls: callsOf(name) }));
  const missing = required.some((r) => r.seen.length === 0);
  const violated = forbidden.some((f) => f.calls > 0);
  const verdict = violated ? 'does not match' : !missing ? 'matches' : roundTrips > 0 ? 'does not match' : 'inconclusive';
  return { verdict, required, forbidden };
}

export function traceFigures(runs: readonly RunRecord[], fingerprint: Fingerprint | null): TraceFigures | null {
  const traced = runs.filter((run) => run.syscalls !== null);
  if (traced.length === 0) return null;
  const roundTrips = traced.flatMap((run) => clientResults(run, 'echo')).reduce((sum, c) => sum + c.roundTrips, 0);
  const rates = traced.map(runThroughput).filter((t): t is number => t !== null);
  const perRoundTrip = (n: number) => (roundTrips > 0 ? n / roundTrips : null);
  const summed = sumSyscalls(traced);
  const totalCalls = summed.reduce((sum, s) => sum + s.calls, 0);
  return {
    runs: traced.length,
    durationSeconds: traced.reduce((sum, run) => sum + run.durationSeconds, 0),
    roundTrips,
    roundTripsPerSecondUnderStrace: rates.length === 0 ? null : rates.reduce((a, b) => a + b, 0) / rates.length,
    connections: traced.flatMap((run) => clientResults(run)).reduce((sum, c) => sum + connectionsOf(c), 0),
    totalCalls,
    totalErrors: summed.reduce((sum, s) => sum + s.errors, 0),
    syscallsPerRoundTrip: perRoundTrip(totalCalls),
    syscalls: summed
      .map((s) => ({ ...s, failedShare: s.calls === 0 ? 0 : s.errors / s.calls, callsPerRoundTrip: perRoundTrip(s.calls) }))
      .sort((a, b) => b.calls - a.calls || a.syscall.localeCompare(b.syscall)),
    fingerprint: fingerprint ? checkFingerprint(fingerprint, summed, roundTrips) : null,
  };
}

const LOG_LINES_KEPT = 50;

function logLines(runs: readonly RunRecord[], matches: (line: string) => boolean): LogLines {
  const perRun = runs.map((run) => run.serverLog.filter(matches));
  return { lines: perRun.flat(), runs: perRun.filter((lines) => lines.length > 0).length };
}

function serverLogFigures(runs: readonly RunRecord[]): ServerLogFigures {
  return {
    refusals: logLines(runs, (line) => line.includes('refused connection')),
    fdExhaustion: logLines(runs, (line) => /\bE[MN]FILE\b/.test(line)),
    truncated: runs.some((run) => run.serverLog.length >= LOG_LINES_KEPT),
  };
}

/** The traced rows of the calls that tell the models apart, in INTERESTING_SYSCALLS order. */
export function interestingSyscalls(figures: ModelFigures): SyscallFigures[] {
  return INTERESTING_SYSCALLS.flatMap((name) => syscallOf(figures, name) ?? []);
}

/** The syscall row of a traced model, or null when strace saw no such call. */
export function syscallOf(figures: ModelFigures, syscall: string): SyscallFigures | null {
  return figures.trace?.syscalls.find((s) => s.syscall === syscall) ?? null;
}

/**
 * What a row of the report is about: a server (a model, or a variant of one) and, in a lab with a
 * sweep, one value of the swept connections: "select" or "select, idle=1000".
 */
export function subjectOf(results: Pick<Results, 'lab'>, run: Pick<RunRecord, 'variant' | 'sweepValue'>): string {
  const sweep = results.lab.sweep;
  return sweep && run.sweepValue !== null ? `${run.variant}, ${sweep.client}=${run.sweepValue}` : run.variant;
}

export function deriveFigures(results: Results, catalog: readonly ModelDescription[] = registeredModels): LabFigures {
  // The lab's order: sweep values outside, servers inside; then anything else the runs hold.
  const subjects = new Map<string, { model: string; variant: string; sweepValue: number | null }>();
  for (const sweepValue of results.lab.sweep?.connections ?? [null]) {
    for (const { label, model } of results.lab.variants) subjects.set(subjectOf(results, { variant: label, sweepValue }), { model, variant: label, sweepValue });
  }
  for (const { model, variant, sweepValue } of results.runs) {
    const name = subjectOf(results, { variant, sweepValue });
    if (!subjects.has(name)) subjects.set(name, { model, variant, sweepValue });
  }
  const models = [...subjects].map(([name, subject]): ModelFigures => {
    const runs = results.runs.filter((run) => subjectOf(results, run) === name);
    const description = catalog.find((m) => m.name === subject.model) ?? null;
    const counted = runs.filter((run) => !isFailed(run));
    const measureRuns = counted.filter((run) => run.phase === 'measure');
    const traceRuns = counted.filter((run) => run.phase === 'trace');
    return {
      model: name,
      variant: subject.variant,
      sweepValue: subject.sweepValue,
      description,
      measure: measureFigures(measureRuns),
      trace: traceFigures(traceRuns, description?.fingerprint ?? null),
      // Limits are read the same way in every run; any run that got them will do, failed or not.
      limits: [...measureRuns, ...traceRuns, ...runs].find((run) => run.limits !== null)?.limits ?? null,
      // Failed runs' logs too: a server's last words often say why it failed.
      serverLog: serverLogFigures(runs),
      measureRuns,
      traceRuns,
    };
  });
  const failedRuns = results.runs.filter(isFailed).map(
    (run): FailedRun => ({
      model: subjectOf(results, run),
      phase: run.phase,
      repetition: run.repetition,
      error: run.error,
      clientErrors: run.clients.flatMap((c) =>
        c.result === null ? [{ client: c.name, error: c.error ?? 'no result and no error recorded' }] : [],
      ),
    }),
  );
  return { models, failedRuns };
}
