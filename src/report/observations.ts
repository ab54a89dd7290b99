// Short sentences computed from the figures: what a student should notice in the tables. Every
// number in a sentence comes from the measurement; the thresholds below only decide whether a
// fact is worth a sentence.
//
// Two lists of rules, each rule `(results, figures) => Observation[]`:
// - claimRules: per model, what the measurement shows about the lab's claim. A rule decides from
//   the data whether it applies (a lab whose runs have a hold client and an echo client gets the
//   starvation verdict), so a new lab needs a new rule only when it measures something new.
// - observationRules: facts worth pointing at in the syscall counts, logs and errors.
// To add one: write a function of this shape and append it to its list.
import {
  median,
  syscallOf,
  WAITING_SYSCALLS,
  type LabFigures,
  type LogLines,
  type ModelFigures,
  type SyscallFigures,
} from './derive.js';
import { formatCount, formatPercent, formatQuantity, formatShare, joinWords, plural } from './format.js';
import type { ClientResult, Results, RunRecord } from './results.js';

export interface Observation {
  /** the rule that made it, so that a grader or a test can find it. */
  rule: string;
  /** null for an observation about the whole lab. */
  model: string | null;
  text: string;
}

export type ObservationRule = (results: Results, figures: LabFigures) => Observation[];

/** Failing calls become a sentence from this share on; below it the syscall table says enough. */
const NOTABLE_FAILED_SHARE = 0.1;
/** The calls that together make up this share of all calls are "what the server does". */
const DOMINANT_SHARE = 0.99;

function forEachModel(
  figures: LabFigures,
  describe: (model: ModelFigures) => string | null,
  rule: string,
): Observation[] {
  return figures.models.flatMap((model) => {
    const text = describe(model);
    return text === null ? [] : [{ rule, model: model.model, text }];
  });
}

// ---- claim rules -------------------------------------------------------------------------------

function clientsOf(run: RunRecord, mode: ClientResult['mode']) {
  return run.clients.filter((c) => c.mode === mode && c.result !== null);
}

/**
 * A lab that runs a hold client and an echo client together asks one question: does the echo
 * client get answers while the hold client keeps its connections open? Counted per repetition:
 * a repetition in which the echo clients sent requests and got none answered is starvation.
 */
export const starvation: ObservationRule = (_results, figures) =>
  forEachModel(
    figures,
    (model) => {
      const runs = model.measureRuns.filter((run) => clientsOf(run, 'hold').length > 0 && clientsOf(run, 'echo').length > 0);
      if (runs.length === 0) return null;
      const echoNames = joinWords([...new Set(runs.flatMap((run) => clientsOf(run, 'echo').map((c) => c.name)))]);
      const holdNames = joinWords([...new Set(runs.flatMap((run) => clientsOf(run, 'hold').map((c) => c.name)))]);
      const echo = runs.map((run) => {
        const results = clientsOf(run, 'echo').map((c) => c.result!);
        return {
          sent: results.reduce((sum, r) => sum + r.requestsSent, 0),
          answered: results.reduce((sum, r) => sum + r.roundTrips, 0),
        };
      });
      const held = median(runs.map((run) => clientsOf(run, 'hold').reduce((sum, c) => sum + c.result!.connected, 0)));
      const sent = echo.reduce((sum, e) => sum + e.sent, 0);
      const answered = echo.reduce((sum, e) => sum + e.answered, 0);
      const starvedRuns = echo.filter((e) => e.sent > 0 && e.answered === 0).length;
      const inRuns = runs.length === 1 ? '' : ` over ${runs.length} repetitions`;
      const holding = `the hold client (${holdNames}) held ${plural(held, 'idle connection')}`;
      const who = `${model.model}: the echo client (${echoNames})`;
      if (sent === 0) return `${who} sent no request${inRuns}: no verdict (see its errors)`;
      if (starvedRuns === runs.length) {
        return `${who} got 0 of ${plural(sent, 'request')} answered${inRuns}: starved while ${holding}`;
      }
      const got = answered === sent ? `all ${plural(sent, 'request')}` : `${formatCount(answered)} of ${plural(sent, 'request')}`;
      const partly = starvedRuns === 0 ? '' : `, but none in ${starvedRuns} of ${runs.length} repetitions (starved there)`;
      return `${who} got ${got} answered${inRuns} while ${holding}${partly}`;
    },
    'starvation',
  );

/**
 * A lab of idle connections only (hold clients, no echo client) asks how many connections the
 * server keeps: what the clients opened, what the server closed, how many fds it reached, and
 * whether the probe, connecting after the crowd, was answered.
 */
export const heldConnections: ObservationRule = (_results, figures) =>
  forEachModel(
    figures,
    (model) => {
      const runs = model.measureRuns.filter((run) => clientsOf(run, 'hold').length > 0 && clientsOf(run, 'echo').length === 0);
      if (runs.length === 0) return null;
      const names = joinWords([...new Set(runs.flatMap((run) => clientsOf(run, 'hold').map((c) => c.name)))]);
      const perRun = (pick: (result: ClientResult) => number) =>
        median(runs.map((run) => clientsOf(run, 'hold').reduce((sum, c) => sum + pick(c.result!), 0)));
      const opened = perRun((r) => r.connected);
      const closed = perRun((r) => r.closedByServer);
      const ofRuns = runs.length === 1 ? '' : ` (median of ${runs.length} repetitions)`;
      const parts = [
        `of ${plural(opened, 'idle connection')} the hold client (${names}) opened, the server closed ${closed === 0 ? 'none' : formatCount(closed)}${ofRuns}`,
      ];
      const fds = model.measure?.fdsPeak;
      if (fds != null) {
        const limit = model.limits?.nofileSoft;
        parts.push(`peak ${plural(fds, 'fd')}${limit != null && fds >= limit ? `, its nofile limit` : ''}`);
      }
      const probe = model.measure?.probe;
      if (probe) parts.push(`the probe connection got ${formatCount(probe.answered)} of ${plural(probe.sent, 'request')} answered`);
      return `${model.model}: ${parts.join('; ')}`;
    },
    'held-connections',
  );

function withCounts(entries: readonly { syscall: string; calls: number }[]): string {
  return entries.map((e) => `${e.syscall} ${formatCount(e.calls)}`).join(', ');
}

/** Does strace show what the model's fingerprint says it must (and must not) call? */
export const fingerprintVerdict: ObservationRule = (results, figures) =>
  forEachModel(
    figures,
    (model) => {
      if (!model.trace) {
        // Without a tracer the lab chose not to count; with one, a missing trace is worth saying.
        return results.environment.tracer && model.measure ? `${model.model}: no successful traced run, so no syscall evidence` : null;
      }
      const check = model.trace.fingerprint;
      if (!check) return `${model.model}: no fingerprint known for this model; see its syscall table`;
      const missing = check.required.filter((r) => r.seen.length === 0).map((r) => `expected ${r.anyOf.join(' or ')}, not seen`);
      const violations = check.forbidden
        .filter((f) => f.calls > 0)
        .map((f) => `${f.syscall} seen ${plural(f.calls, 'time')}, which ${model.model} must not call`);
      if (check.verdict === 'matches') {
        const seen = withCounts(check.required.map((r) => [...r.seen].sort((a, b) => b.calls - a.calls)[0]));
        const absent = check.forbidden.length ? `; none of ${check.forbidden.map((f) => f.syscall).join(', ')}` : '';
        return `${model.model}: strace shows the ${model.model} fingerprint: ${seen}${absent}`;
      }
      if (check.verdict === 'inconclusive') {
        return `${model.model}: fingerprint not shown: ${missing.join('; ')}; but the traced run completed no round trip (a server blocked in one call makes no calls to count)`;
      }
      return `${model.model}: does not match the ${model.model} fingerprint: ${[...missing, ...violations].join('; ')}`;
    },
    'fingerprint',
  );

export const claimRules: ObservationRule[] = [starvation, heldConnections, fingerprintVerdict];

// ---- observation rules -------------------------------------------------------------------------

/**
 * recvfrom and accept4 failing en masse: on a non-blocking socket that is EAGAIN, "nothing there
 * yet". strace -c counts failures, not their errno; a blocking socket's recvfrom fails only when a
 * peer resets, far below NOTABLE_FAILED_SHARE, so above it the EAGAIN reading is safe.
 */
export const eagainStorm: ObservationRule = (_results, figures) =>
  forEachModel(
    figures,
    (model) => {
      const failing = ['recvfrom', 'accept4']
        .map((name) => syscallOf(model, name))
        .filter((s): s is SyscallFigures => s !== null && s.failedShare >= NOTABLE_FAILED_SHARE);
      if (failing.length === 0) return null;
      const shares = joinWords(failing.map((s) => `${formatShare(s.failedShare)} of ${s.syscall} calls`));
      const cpu = model.measure?.cpuPercent != null ? `; server CPU ${formatPercent(model.measure.cpuPercent)} of a core` : '';
      return `${model.model}: ${shares} failed (EAGAIN: nothing there yet)${cpu}`;
    },
    'eagain',
  );

/** Near a full core, the load generator, not the server, may be what sets the throughput. */
const CLIENT_SATURATED_PERCENT = 90;

export const loadGeneratorBound: ObservationRule = (_results, figures) =>
  forEachModel(
    figures,
    (model) => {
      const client = model.measure?.clientCpuPercent;
      const server = model.measure?.cpuPercent;
      if (client == null || client < CLIENT_SATURATED_PERCENT || (server != null && server >= client)) return null;
      const serverText = server == null ? '' : ` while the server used ${formatPercent(server)}`;
      return `${model.model}: the echo client used ${formatPercent(client)} of a core${serverText}: the load generator may have limited this throughput`;
    },
    'client-bound',
  );

/** A multiplexing model waits in one call per loop turn; how many per round trip, and what follows. */
export const waitingCalls: ObservationRule = (_results, figures) =>
  forEachModel(
    figures,
    (model) => {
      const waiting = WAITING_SYSCALLS.map((name) => syscallOf(model, name)).filter(
        (s): s is SyscallFigures => s !== null && s.callsPerRoundTrip !== null,
      );
      if (waiting.length === 0) return null;
      const perRoundTrip = (s: SyscallFigures) => formatQuantity(s.callsPerRoundTrip!);
      const waits = waiting.map((s) => `${perRoundTrip(s)} ${s.syscall} call${perRoundTrip(s) === '1.0' ? '' : 's'}`).join(' and ');
      const then = ['recvfrom', 'sendto'].map((name) => syscallOf(model, name)).filter((s): s is SyscallFigures => s !== null);
      const thenText = then.length ? `, then ${joinWords(then.map((s) => `${perRoundTrip(s)} ${s.syscall}`))}` : '';
      let text = `${model.model}: ${waits} per round trip${thenText}`;
      const control = syscallOf(model, 'epoll_ctl');
      if (control && model.trace!.connections > 0) {
        const perConnection = control.calls / model.trace!.connections;
        const howOften = Math.round(perConnection) === 1 ? 'about one per connection' : `${formatQuantity(perConnection)} per connection`;
        text += `; epoll_ctl ${plural(control.calls, 'call')} for ${plural(model.trace!.connections, 'connection')} (${howOften})`;
      }
      return text;
    },
    'waiting-calls',
  );

/** The few calls that make up nearly all of a server's work in steady state. */
export const dominantCalls: ObservationRule = (_results, figures) =>
  forEachModel(
    figures,
    (model) => {
      const trace = model.trace;
      if (!trace || trace.totalCalls === 0) return null;
      if (trace.roundTrips === 0) {
        // No work to attribute calls to: just say what little (or how much) strace saw.
        const counted = trace.syscalls.slice(0, 5).map((s) => `${s.syscall} ${formatCount(s.calls)}`).join(', ');
        return `${model.model}: no round trip while traced; strace counted ${plural(trace.totalCalls, 'call')}: ${counted}`;
      }
      const dominant: SyscallFigures[] = [];
      let covered = 0;
      for (const s of trace.syscalls) {
        if (covered / trace.totalCalls >= DOMINANT_SHARE) break;
        dominant.push(s);
        covered += s.calls;
      }
      const rest = trace.syscalls.slice(dominant.length);
      const perRoundTrip = trace.syscallsPerRoundTrip === null ? '' : ` (${formatQuantity(trace.syscallsPerRoundTrip)} per round trip)`;
      const shown = rest.slice(0, 5).map((s) => `${s.syscall} ${formatCount(s.calls)}`);
      if (rest.length > 5) shown.push(`${rest.length - 5} more`);
      const restText = shown.length ? `; the rest: ${shown.join(', ')}` : '';
      const verb = dominant.length === 1 ? 'makes up' : 'make up';
      return `${model.model}: ${joinWords(dominant.map((s) => s.syscall))} ${verb} ${formatShare(covered / trace.totalCalls)} of the ${plural(trace.totalCalls, 'call')} under strace${perRoundTrip}${restText}`;
    },
    'dominant-calls',
  );

function describeLines(log: LogLines, truncated: boolean): string {
  const count = `${truncated ? 'at least ' : ''}${plural(log.lines.length, 'log line')} in ${plural(log.runs, 'run')}`;
  return `${count}, the first: "${log.lines[0]}"`;
}

/** A server that closed connections it accepted (select at fd >= FD_SETSIZE) says so in its log. */
export const refusals: ObservationRule = (_results, figures) =>
  forEachModel(
    figures,
    (model) => {
      const log = model.serverLog.refusals;
      if (log.lines.length === 0) return null;
      return `${model.model}: the server refused connections (${describeLines(log, model.serverLog.truncated)})`;
    },
    'refusals',
  );

export const fdExhaustion: ObservationRule = (_results, figures) =>
  forEachModel(
    figures,
    (model) => {
      const log = model.serverLog.fdExhaustion;
      if (log.lines.length === 0) return null;
      return `${model.model}: the server ran out of file descriptors (${describeLines(log, model.serverLog.truncated)})`;
    },
    'fd-exhaustion',
  );

/** Wrong replies, connections the server closed, failed connects: each is a problem to look at. */
export const clientErrors: ObservationRule = (_results, figures) =>
  forEachModel(
    figures,
    (model) => {
      const errors = model.measure?.errors;
      if (!errors) return null;
      const problems: string[] = [];
      if (errors.wrongReplies > 0) problems.push(`${plural(errors.wrongReplies, 'wrong reply', 'wrong replies')} (bytes other than the echo)`);
      if (errors.closedByServer > 0) problems.push(`the server closed ${plural(errors.closedByServer, 'connection')} while clients used them`);
      const connects = Object.entries(errors.connectErrors).filter(([, n]) => n > 0);
      if (connects.length > 0) {
        const total = connects.reduce((sum, [, n]) => sum + n, 0);
        problems.push(`connect failed ${plural(total, 'time')} (${connects.map(([code, n]) => `${code} ${formatCount(n)}`).join(', ')})`);
      }
      return problems.length ? `${model.model}: ${problems.join('; ')}` : null;
    },
    'client-errors',
  );

/** A model the lab names but never measured (an interrupted lab, a failed model). */
export const notMeasured: ObservationRule = (results, figures) =>
  forEachModel(
    figures,
    (model) =>
      results.lab.models.includes(model.model) && !model.measure
        ? `${model.model}: not measured: no measure run completed`
        : null,
    'not-measured',
  );

export const observationRules: ObservationRule[] = [
  loadGeneratorBound,
  notMeasured,
  eagainStorm,
  waitingCalls,
  dominantCalls,
  refusals,
  fdExhaustion,
  clientErrors,
];

function apply(rules: readonly ObservationRule[], results: Results, figures: LabFigures): Observation[] {
  const order = figures.models.map((m) => m.model);
  const observations = rules.flatMap((rule) => rule(results, figures));
  // Grouped by model in the lab's order; within a model, in rule order (sort is stable).
  return observations.sort((a, b) => order.indexOf(a.model ?? '') - order.indexOf(b.model ?? ''));
}

export function claimVerdicts(results: Results, figures: LabFigures): Observation[] {
  return apply(claimRules, results, figures);
}

export function observe(results: Results, figures: LabFigures): Observation[] {
  return apply(observationRules, results, figures);
}
