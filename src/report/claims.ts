// Verdicts on the course's claims. A lab names its rule (`verdict:` in the lab file); the rule
// reads the derived figures and says, for each server (or pair of servers), whether the claim
// holds here, with the measurement in one sentence and the figures behind it. A claim that does
// not hold on this kernel says so: that is a finding, not a failure of the lab.
//
// Every threshold below is a named constant with the reason for its value; none of them is a
// timing the tests assert.
import type { ClientResult, Results, RunRecord } from './results.js';
import { median, type LabFigures, type ModelFigures } from './derive.js';
import { formatCount, formatMicroseconds, formatPercent, joinWords } from './format.js';

export type Verdict = 'holds' | 'does not hold here' | 'inconclusive';

export interface ClaimVerdict {
  /** the server, the pair or the sweep the verdict is about. */
  subject: string;
  verdict: Verdict;
  /** what was measured, in one sentence with its numbers. */
  measurement: string;
  /** the figures behind it, by name (null: not measured). */
  figures: Record<string, number | string | null>;
}

export type ClaimRule = (results: Results, figures: LabFigures) => ClaimVerdict[];

// ---- reading the figures -------------------------------------------------------------------

/** The rows of one server across the sweep, in sweep order (one row when the lab does not sweep). */
function rowsByVariant(figures: LabFigures): Map<string, ModelFigures[]> {
  const rows = new Map<string, ModelFigures[]>();
  for (const row of figures.models) rows.set(row.variant, [...(rows.get(row.variant) ?? []), row]);
  for (const list of rows.values()) list.sort((a, b) => (a.sweepValue ?? 0) - (b.sweepValue ?? 0));
  return rows;
}

function clientNamed(run: RunRecord, name: string): ClientResult | null {
  return run.clients.find((client) => client.name === name)?.result ?? null;
}

function medianOver(runs: readonly RunRecord[], value: (run: RunRecord) => number | null): number | null {
  const values = runs.map(value).filter((v): v is number => v !== null && Number.isFinite(v));
  return values.length ? median(values) : null;
}

/** Round trips of every echo client in a run. */
function echoRoundTrips(run: RunRecord): number {
  return run.clients.reduce((sum, c) => sum + (c.result?.mode === 'echo' ? c.result.roundTrips : 0), 0);
}

/** Server CPU time per echo round trip in one run, in microseconds. */
function cpuPerRoundTrip(run: RunRecord): number | null {
  const roundTrips = echoRoundTrips(run);
  if (!run.proc || roundTrips === 0) return null;
  return ((run.proc.cpuUserSeconds + run.proc.cpuSystemSeconds) / roundTrips) * 1e6;
}

/** What the server holds beyond its idle self: fds, threads, memory (peak minus baseline). */
function grown(run: RunRecord, pick: 'fdsPeak' | 'threadsPeak' | 'peakRssKb'): number | null {
  if (!run.proc || !run.baseline) return null;
  return run.proc[pick] - run.baseline[pick];
}

/** The fingerprint's waiting calls that copy and scan every watched fd on each call. */
function scansEveryWatchedFd(row: ModelFigures): boolean {
  const waits = row.description?.fingerprint.required.flat() ?? [];
  return waits.some((name) => ['select', 'pselect6', 'poll', 'ppoll'].includes(name));
}

function ratio(after: number | null, before: number | null): number | null {
  return after === null || before === null || before <= 0 ? null : after / before;
}

const times = (r: number | null) => (r === null ? '?' : `${r.toFixed(1)}×`);
const micro = (us: number | null) => (us === null ? '—' : formatMicroseconds(us));

function verdictOf(condition: boolean | null): Verdict {
  return condition === null ? 'inconclusive' : condition ? 'holds' : 'does not hold here';
}

// ---- the rules, one per lab claim -----------------------------------------------------------

/** A model whose traced run matches its declared fingerprint shows the model the course describes. */
export const fingerprints: ClaimRule = (_results, figures) =>
  figures.models.map((row) => {
    const check = row.trace?.fingerprint ?? null;
    const seen = check?.required.flatMap((r) => r.seen.map((s) => `${s.syscall} ${formatCount(s.calls)}`)) ?? [];
    const forbiddenSeen = check?.forbidden.filter((f) => f.calls > 0).map((f) => `${f.syscall} ${formatCount(f.calls)}`) ?? [];
    const measurement = !check
      ? 'no traced run'
      : `${seen.length ? `shows ${joinWords(seen)}` : 'shows none of its required calls'}${forbiddenSeen.length ? `; but also ${joinWords(forbiddenSeen)}` : ''}`;
    return {
      subject: row.model,
      verdict: check === null || check.verdict === 'inconclusive' ? 'inconclusive' : verdictOf(check.verdict === 'matches'),
      measurement,
      figures: { syscallsPerRoundTrip: row.trace?.syscallsPerRoundTrip ?? null },
    };
  });

/**
 * Starvation: a hold client holds a connection, an echo client asks. A model that serves one
 * client at a time must leave the asker unanswered; every other model must answer it.
 */
export const starvation: ClaimRule = (_results, figures) =>
  figures.models.flatMap((row) => {
    if (!row.measureRuns.length || !row.description) return [];
    const askers = row.measureRuns.flatMap((run) => run.clients.filter((c) => c.result?.mode === 'echo').map((c) => c.result!));
    const sent = askers.reduce((sum, a) => sum + a.requestsSent, 0);
    const answered = askers.reduce((sum, a) => sum + a.roundTrips + a.answeredAfterWindow, 0);
    const oneAtATime = row.description.concurrency === 'one';
    return [
      {
        subject: row.model,
        verdict: verdictOf(sent === 0 ? null : oneAtATime ? answered === 0 : answered > 0),
        measurement: `the second client got ${formatCount(answered)} of ${formatCount(sent)} requests answered while the first held its connection${oneAtATime ? ' (this model serves one client at a time: it should get none)' : ''}`,
        figures: { sent, answered },
      },
    ];
  });

/**
 * The fd ceiling: select stops at FD_SETSIZE whatever RLIMIT_NOFILE allows; poll and epoll stop
 * only at RLIMIT_NOFILE. For each server we compute where it should stop (the smaller of
 * FD_SETSIZE, for select, and its nofile) and check that it held connections up to there, not
 * beyond, and how it refused the rest.
 */
export const fdCeiling: ClaimRule = (results, figures) =>
  [...rowsByVariant(figures)].flatMap(([variant, rows]) => {
    const runs = rows.flatMap((row) => row.measureRuns);
    if (!runs.length) return [];
    const first = rows[0];
    const limits = first.limits;
    const nofile = limits?.nofileSoft ?? null;
    const fdSetSize = limits?.fdSetSize ?? 1024;
    const isSelect = first.description?.fingerprint.required.flat().some((n) => n === 'select' || n === 'pselect6') ?? false;
    const ceiling = Math.min(nofile ?? Infinity, isSelect ? fdSetSize : Infinity);
    const fdsPeak = Math.max(...runs.map((run) => run.proc?.fdsPeak ?? 0));
    const mostAsked = Math.max(...rows.map((row) => row.sweepValue ?? 0));
    const held = Math.max(...runs.map((run) => grown(run, 'fdsPeak') ?? 0));
    const refusals = rows.reduce((sum, row) => sum + row.serverLog.refusals.lines.length, 0);
    const exhaustion = rows.reduce((sum, row) => sum + row.serverLog.fdExhaustion.lines.length, 0);
    const reachesCeiling = mostAsked + (runs[0].baseline?.fdsPeak ?? 0) >= ceiling;
    const how = refusals ? `refused connections past fd ${fdSetSize - 1} (FD_SETSIZE)` : exhaustion ? 'accept4 failed with EMFILE (RLIMIT_NOFILE)' : 'refused nothing';
    const measurement = `asked for up to ${formatCount(mostAsked)} connections: held ${formatCount(held)} (fds peaked at ${formatCount(fdsPeak)}; nofile ${nofile ?? '?'}${isSelect ? `, FD_SETSIZE ${fdSetSize}` : ''}); ${how}`;
    // At the ceiling: a few fds below it are Node's own (stdio, its event loop, the listener), and
    // select's refused connection holds fd 1024 for the moment between accept4 and close.
    const stoppedAtCeiling = fdsPeak <= ceiling + 1 && fdsPeak >= ceiling - 8 && (refusals > 0 || exhaustion > 0);
    const heldAll = held >= mostAsked && refusals === 0 && exhaustion === 0;
    return [
      {
        subject: `${variant}: ${reachesCeiling ? `stops at ${isSelect && ceiling === fdSetSize ? 'FD_SETSIZE' : 'RLIMIT_NOFILE'} (${formatCount(ceiling)})` : 'no ceiling below its nofile'}`,
        verdict: verdictOf(reachesCeiling ? stoppedAtCeiling : heldAll),
        measurement,
        figures: { asked: mostAsked, held, fdsPeak, ceiling: Number.isFinite(ceiling) ? ceiling : null, refusals, exhaustion },
      },
    ];
  });

/** How much the cost may grow across the sweep and still count as "does not grow". */
const FLAT_GROWTH = 1.5;

/**
 * Idle connections: select and poll copy and scan every watched fd on each call, so the cost of
 * a round trip grows with the idle crowd; epoll_wait returns only ready fds, so it does not.
 * Cost: server CPU time per round trip (median over repetitions), at the smallest and the largest
 * crowd.
 */
export const idleScan: ClaimRule = (results, figures) =>
  [...rowsByVariant(figures)].flatMap(([variant, rows]) => {
    if (rows.length < 2) return [];
    const [smallest, largest] = [rows[0], rows[rows.length - 1]];
    const costAt = (row: ModelFigures) => medianOver(row.measureRuns, cpuPerRoundTrip);
    const latencyAt = (row: ModelFigures) => row.measure?.latency?.p50Us ?? null;
    const growth = ratio(costAt(largest), costAt(smallest));
    const scans = scansEveryWatchedFd(smallest);
    const idle = (row: ModelFigures) => medianOver(row.measureRuns, (run) => grown(run, 'fdsPeak'));
    const capped = largest.serverLog.refusals.lines.length > 0 ? ` (it held only ${formatCount(idle(largest) ?? 0)} fds: FD_SETSIZE)` : '';
    return [
      {
        subject: `${variant}: cost ${scans ? 'grows' : 'does not grow'} with idle connections`,
        verdict: verdictOf(growth === null ? null : scans ? growth >= FLAT_GROWTH : growth < FLAT_GROWTH),
        measurement: `server CPU per round trip ${micro(costAt(smallest))} with ${formatCount(smallest.sweepValue ?? 0)} idle, ${micro(costAt(largest))} with ${formatCount(largest.sweepValue ?? 0)}${capped} (${times(growth)}); p50 latency ${micro(latencyAt(smallest))} → ${micro(latencyAt(largest))}`,
        figures: { cpuPerRoundTripSmallUs: costAt(smallest), cpuPerRoundTripLargeUs: costAt(largest), growth },
      },
    ];
  });

/**
 * One connection: multiplexing makes two calls per read (the wait, then recvfrom) where blocking
 * IO makes one, so with a single client it should be slower. Compared with the blocking server of
 * the same lab: syscalls per round trip (traced run) and throughput (median of measured runs).
 */
export const oneConnection: ClaimRule = (_results, figures) => {
  const blocking = figures.models.find((row) => row.description?.concurrency === 'one');
  if (!blocking) return [];
  return figures.models
    .filter((row) => row !== blocking)
    .map((row) => {
      const calls = ratio(row.trace?.syscallsPerRoundTrip ?? null, blocking.trace?.syscallsPerRoundTrip ?? null);
      const speed = ratio(row.measure?.throughput?.median ?? null, blocking.measure?.throughput?.median ?? null);
      return {
        subject: `${row.model} vs ${blocking.model}`,
        verdict: verdictOf(calls === null || speed === null ? null : calls > 1 && speed < 1),
        measurement: `${(row.trace?.syscallsPerRoundTrip ?? NaN).toFixed(1)} syscalls per round trip against ${(blocking.trace?.syscallsPerRoundTrip ?? NaN).toFixed(1)}; ${formatCount(row.measure?.throughput?.median ?? 0)} round trips/s against ${formatCount(blocking.measure?.throughput?.median ?? 0)} (${times(speed)}); p50 ${micro(row.measure?.latency?.p50Us ?? null)} against ${micro(blocking.measure?.latency?.p50Us ?? null)}`,
        figures: { callsRatio: calls, throughputRatio: speed },
      };
    });
};

/** A thread per connection: at least this share of the connections must show up as threads. */
const THREADS_PER_CONNECTION_SHARE = 0.9;

/**
 * Threads against events: a thread per connection adds a thread (a stack, a scheduling entity)
 * per connection, a pool adds a fixed K and serves only K at once, an event loop or coroutines add
 * none. Figures: threads and RSS beyond the idle server, per connection; voluntary context switches
 * and CPU per round trip.
 */
export const threadsVsEvents: ClaimRule = (_results, figures) =>
  figures.models.flatMap((row) => {
    const runs = row.measureRuns;
    if (!runs.length || !row.description) return [];
    const connections = medianOver(runs, (run) => run.clients.reduce((sum, c) => sum + (c.result?.connected ?? 0), 0)) ?? 0;
    const threads = medianOver(runs, (run) => grown(run, 'threadsPeak'));
    const rssPerConnectionKb = medianOver(runs, (run) => (connections ? (grown(run, 'peakRssKb') ?? NaN) / connections : null));
    const switches = medianOver(runs, (run) => (run.proc && echoRoundTrips(run) ? run.proc.voluntaryContextSwitches / echoRoundTrips(run) : null));
    const cpu = medianOver(runs, cpuPerRoundTrip);
    const answered = medianOver(runs, (run) => run.clients.reduce((sum, c) => sum + (c.result?.mode === 'echo' ? c.result.connected - c.result.unanswered : 0), 0));
    const kind = row.description.concurrency;
    const perConnection = threads !== null && connections > 0 ? threads / connections : null;
    let verdict: boolean | null;
    let expectation: string;
    if (kind === 'threads') {
      expectation = 'a fixed pool: a few threads, only as many clients served at once';
      verdict = threads === null || answered === null ? null : threads < connections * 0.1 && answered < connections;
    } else if (row.description.fingerprint.required.flat().some((n) => n === 'clone' || n === 'clone3')) {
      expectation = 'a thread per connection';
      verdict = perConnection === null ? null : perConnection >= THREADS_PER_CONNECTION_SHARE;
    } else {
      expectation = 'no thread per connection';
      verdict = threads === null ? null : threads < Math.max(4, connections * 0.01);
    }
    return [
      {
        subject: `${row.model}: ${expectation}`,
        verdict: verdictOf(verdict),
        measurement: `${formatCount(connections)} connections: +${formatCount(threads ?? 0)} threads, ${rssPerConnectionKb === null ? '?' : `${rssPerConnectionKb.toFixed(1)} KiB`} RSS per connection, ${switches === null ? '?' : switches.toFixed(2)} voluntary context switches and ${micro(cpu)} CPU per round trip; ${formatCount(answered ?? 0)} connections answered`,
        figures: { connections, threadsAdded: threads, rssPerConnectionKb, switchesPerRoundTrip: switches, cpuPerRoundTripUs: cpu, answered },
      },
    ];
  });

/**
 * Level- against edge-triggered epoll: level-triggered reports an fd again while unread data
 * remains; edge-triggered reports a change once, so a reader that does not drain strands the rest
 * until the next event. Figures: epoll_wait calls per round trip (traced), and the round trips
 * and unanswered requests of each variant.
 */
export const levelVsEdge: ClaimRule = (_results, figures) => {
  const wakeups = (row: ModelFigures) =>
    row.trace?.syscalls.find((s) => s.syscall === 'epoll_wait' || s.syscall === 'epoll_pwait')?.callsPerRoundTrip ?? null;
  const level = figures.models.find((row) => row.description?.name === 'epoll');
  const edge = figures.models.find((row) => row.description?.name === 'epoll-et' && !/nodrain/.test(row.variant));
  const comparison: ClaimVerdict[] =
    level && edge
      ? [
          {
            subject: `${level.model} wakes more often per message than ${edge.model}`,
            verdict: verdictOf(wakeups(level) === null || wakeups(edge) === null ? null : wakeups(level)! > wakeups(edge)!),
            measurement: `${wakeups(level)?.toFixed(2) ?? '?'} against ${wakeups(edge)?.toFixed(2) ?? '?'} epoll_wait calls per round trip (traced runs)`,
            figures: { levelTriggered: wakeups(level), edgeTriggered: wakeups(edge) },
          },
        ]
      : [];
  return [...comparison, ...figures.models.flatMap((row) => {
    if (!row.measure) return [];
    const waits = wakeups(row);
    const runs = row.measureRuns;
    const roundTrips = medianOver(runs, echoRoundTrips) ?? 0;
    const unanswered = row.measure.errors.unanswered;
    const drains = !/nodrain|no-drain/.test(row.variant);
    const stranded = unanswered > 0 && roundTrips < 10;
    return [
      {
        subject: drains ? `${row.model}: every message answered` : `${row.model}: a reader that does not drain strands data`,
        verdict: verdictOf(drains ? !stranded && roundTrips > 0 : stranded),
        measurement: `${formatCount(roundTrips)} round trips per run, ${formatCount(unanswered)} requests left unanswered; ${waits === null ? 'no traced round trip' : `${waits.toFixed(2)} epoll_wait calls per round trip under strace`}`,
        figures: { roundTrips, unanswered, epollWaitPerRoundTrip: waits },
      },
    ];
  })];
};

/**
 * Busy polling must keep at least this much of a core busy even when every client is idle. On a
 * quiet machine it takes all of one (~100%); on a shared one the scheduler hands part of that core
 * to others, so the line sits well below 100 and far above what a sleeping server uses.
 */
const BUSY_CPU_PERCENT = 60;
/** A readiness API with only idle clients should leave the core this idle. */
const IDLE_CPU_PERCENT = 20;

/**
 * Busy polling: with only idle clients, the non-blocking loop still spins at ~100% of a core, and
 * the time to answer the one client that asks grows with the sockets swept on each turn; epoll
 * sleeps. Figures per crowd size: server CPU, the probe's p50 latency, failed calls per second
 * (EAGAIN; traced run, so slowed by strace).
 */
export const busyPoll: ClaimRule = (_results, figures) =>
  [...rowsByVariant(figures)].flatMap(([variant, rows]) => {
    const measured = rows.filter((row) => row.measure?.cpuPercent != null);
    if (!measured.length) return [];
    const cpus = measured.map((row) => row.measure!.cpuPercent!);
    const probeLatency = (row: ModelFigures) =>
      medianOver(row.measureRuns, (run) => {
        const probes = run.clients.flatMap((c) => (c.result?.probe && c.result.probe.latency.count ? [c.result.probe.latency.p50Us] : []));
        return probes.length ? median(probes) : null;
      });
    const failedPerSecond = (row: ModelFigures) =>
      row.trace && row.trace.durationSeconds > 0 ? row.trace.totalErrors / row.trace.durationSeconds : null;
    const busy = rows[0].description?.fingerprint.required.flat().every((n) => !['select', 'pselect6', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait'].includes(n)) ?? false;
    const sizes = measured.map((row) => `${formatCount(row.sweepValue ?? 0)} idle: CPU ${formatPercent(row.measure!.cpuPercent!)}, probe p50 ${micro(probeLatency(row))}${failedPerSecond(row) === null ? '' : `, ${formatCount(failedPerSecond(row)!)} failed calls/s under strace`}`);
    return [
      {
        subject: busy ? `${variant}: spins with idle clients` : `${variant}: sleeps with idle clients`,
        verdict: verdictOf(busy ? Math.min(...cpus) >= BUSY_CPU_PERCENT : Math.max(...cpus) <= IDLE_CPU_PERCENT),
        measurement: sizes.join('; '),
        figures: { minCpuPercent: Math.min(...cpus), maxCpuPercent: Math.max(...cpus) },
      },
    ];
  });

/** A stalled coroutine makes the others wait at least this share of its blocking call (p99). */
const STALL_SHARE = 0.5;
/** ... and cuts their round trips to at most this share of the same server's without the call. */
const STALL_THROUGHPUT_SHARE = 0.5;

/**
 * Coroutines: many connections on one thread, switching where a handler would block; a handler
 * that makes a real blocking call (one the scheduler cannot see) stalls all the others. Figures:
 * the other clients' round trips (against the same model without the call) and p99 latency, and
 * threads beyond the idle server. p50 is no verdict here: between two stalls the scheduler may
 * serve the others several times, so how many of their requests wait depends on timing; that
 * some wait a whole blocking call (p99) and that their throughput collapses does not.
 */
export const coroutines: ClaimRule = (results, figures) => {
  const callOf = (row: ModelFigures) => Number(results.lab.variants.find((v) => v.label === row.variant)?.options.blockingCallMs ?? 0);
  const others = (row: ModelFigures) => ({
    roundTrips: medianOver(row.measureRuns, (run) => clientNamed(run, 'others')?.roundTrips ?? null),
    p99Us: medianOver(row.measureRuns, (run) => clientNamed(run, 'others')?.latency.p99Us ?? null),
  });
  return figures.models.flatMap((row): ClaimVerdict[] => {
    if (!row.measureRuns.length) return [];
    const blockingCallMs = callOf(row);
    const mine = others(row);
    const threads = medianOver(row.measureRuns, (run) => grown(run, 'threadsPeak'));
    const measurement = `the other clients made ${formatCount(mine.roundTrips ?? 0)} round trips, p99 latency ${micro(mine.p99Us)}; +${formatCount(threads ?? 0)} threads beyond the idle server`;
    if (blockingCallMs === 0) {
      return [
        {
          subject: `${row.model}: concurrency on one thread`,
          verdict: verdictOf(mine.roundTrips === null ? null : mine.roundTrips > 0 && (threads ?? 0) < 2),
          measurement,
          figures: { othersRoundTrips: mine.roundTrips, othersP99Us: mine.p99Us, threadsAdded: threads },
        },
      ];
    }
    const plain = figures.models.find((other) => other.description?.name === row.description?.name && callOf(other) === 0);
    const share = ratio(mine.roundTrips, plain ? others(plain).roundTrips : null);
    const stalled = share === null || mine.p99Us === null ? null : share <= STALL_THROUGHPUT_SHARE && mine.p99Us >= blockingCallMs * 1000 * STALL_SHARE;
    return [
      {
        subject: `${row.model}: one blocking call (${blockingCallMs} ms) stalls every connection`,
        verdict: verdictOf(stalled),
        measurement: `${measurement}${plain ? `; ${times(share)} the round trips of ${plain.model} without the call` : ''}`,
        figures: { othersRoundTrips: mine.roundTrips, othersP99Us: mine.p99Us, throughputShare: share, blockingCallMs },
      },
    ];
  });
};

export const claimRules: Record<string, ClaimRule> = {
  fingerprints,
  starvation,
  'fd-ceiling': fdCeiling,
  'idle-scan': idleScan,
  'one-connection': oneConnection,
  'threads-vs-events': threadsVsEvents,
  'lt-vs-et': levelVsEdge,
  'busy-poll': busyPoll,
  coroutines,
};

/** The verdicts of the lab's rule; none when the lab names no rule (or one this version lacks). */
export function judgeClaim(results: Results, figures: LabFigures): ClaimVerdict[] {
  const rule = results.lab.verdict ? claimRules[results.lab.verdict] : undefined;
  return rule ? rule(results, figures) : [];
}

export function describeVerdict(verdict: ClaimVerdict): string {
  return `${verdict.subject}: **${verdict.verdict}** (${verdict.measurement})`;
}

