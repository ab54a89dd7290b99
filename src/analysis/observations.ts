// Sentences that point at what a student should notice in the tables. They describe; they never
// judge a claim (analysis/claims.ts does, once), and every number in them is a figure of
// analysis/figures.ts, the same one the tables show. The thresholds below only decide whether a
// fact is worth a sentence.
//
// Each rule is `(results, figures) => Observation[]`; to add one, write a function of that shape
// and append it to OBSERVATION_RULES.
import { formatCount, formatMicroseconds, formatPercent, formatQuantity, formatShare, joinWords, plural } from '../shared/format.js';
import type { ClientFigures, Measurement, Observation, SubjectFigures, SyscallFigures } from '../shared/results.js';
import { eventCount } from '../shared/server-events.js';

export type ObservationRule = (results: Measurement, figures: readonly SubjectFigures[]) => Observation[];

/** Failing calls become a sentence from this share of the calls on... */
const NOTABLE_FAILED_SHARE = 0.1;
/** ... when they are at least this many per round trip: a few futex EAGAINs of 25,000 round trips say nothing. */
const NOTABLE_FAILURES_PER_ROUND_TRIP = 0.01;
/** Near a full core, the load generator, not the server, may be what sets the throughput. */
const CLIENT_SATURATED_PERCENT = 90;
/** The runtime's threads are worth a sentence when they make at least this share of all calls of the window. */
const NOTABLE_RUNTIME_SHARE = 0.01;

function forEachSubject(figures: readonly SubjectFigures[], rule: string, describe: (subject: SubjectFigures) => string | null): Observation[] {
  return figures.flatMap((subject) => {
    const text = describe(subject);
    return text === null ? [] : [{ rule, subject: subject.subject, text: `${subject.subject}: ${text}` }];
  });
}

function declaredOf(results: Measurement, subject: SubjectFigures) {
  return results.lab.variants.find((v) => v.label === subject.variant)?.declared ?? null;
}

function clientSentence(client: ClientFigures): string {
  if (client.mode === 'echo') {
    const connections = `${formatCount(client.connectionsAnswered)} of ${plural(client.connections, 'connection')} answered`;
    const requests = `${formatCount(client.requests.answered)} of ${plural(client.requests.sent, 'request')} answered`;
    return `${client.name} had ${connections} and ${requests}`;
  }
  const closed = client.closedByServer === 0 ? 'none closed by the server' : `${formatCount(client.closedByServer)} closed by the server`;
  const probe = client.probe ? `, and its probe got ${formatCount(client.probe.answered)} of ${plural(client.probe.sent, 'request')} answered` : '';
  // Connected is the kernel's handshake, which comes before (and without) the server's accept4.
  return `${client.name} connected ${plural(client.connections, 'idle connection')}, ${closed}${probe}`;
}

/** What each client got from the server: connections and requests answered, one definition of each. */
export const clientOutcomes: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'clients', (subject) => {
    const measure = subject.measure;
    if (!measure || measure.clients.length === 0) return null;
    const over = measure.repetitions > 1 ? ` (${measure.repetitions} repetitions: connections are medians, requests sums)` : '';
    return `${measure.clients.map(clientSentence).join('; ')}${over}`;
  });

/** Connections the warm-up could not get answered: the window began with them waiting. */
export const warmup: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'warmup', (subject) => {
    const short = (subject.measure?.clients ?? []).filter((c) => c.warmup.answered < c.warmup.connections);
    if (short.length === 0) return null;
    const each = short.map((c) => `${c.name} ${formatCount(c.warmup.answered)} of ${formatCount(c.warmup.connections)}`);
    return `before the window, ${joinWords(each)} connections had their warm-up request answered; the others were still waiting when it began`;
  });

/** Calls that failed en masse: on a non-blocking socket, EAGAIN ("nothing there yet"). */
export const failedCalls: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'failed-calls', (subject) => {
    const trace = subject.trace;
    const notable = (s: SyscallFigures) =>
      s.calls > 0 && s.errors / s.calls >= NOTABLE_FAILED_SHARE && trace !== null && s.errors >= NOTABLE_FAILURES_PER_ROUND_TRIP * trace.roundTrips;
    const failing = (trace?.window.serving ?? []).filter(notable);
    if (failing.length === 0) return null;
    const each = failing.map((s) => {
      const errnos = Object.entries(s.errnos).sort((a, b) => b[1] - a[1]).map(([code, n]) => `${code} ${formatCount(n)}`);
      return `${formatShare(s.errors / s.calls)} of its ${formatCount(s.calls)} ${s.syscall} calls (${errnos.join(', ')})`;
    });
    const cpu = subject.measure?.cpuPercent ? `; untraced, the server used ${formatPercent(subject.measure.cpuPercent.median)} of a core` : '';
    return `${joinWords(each)} failed in the traced window${cpu}`;
  });

export const loadGeneratorBound: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'client-bound', (subject) => {
    const client = subject.measure?.clientCpuPercent;
    const server = subject.measure?.cpuPercent?.median;
    if (client == null || client < CLIENT_SATURATED_PERCENT || (server != null && server >= client)) return null;
    const serverText = server == null ? '' : ` while the server used ${formatPercent(server)}`;
    return `the busiest echo client used ${formatPercent(client)} of a core${serverText}: the load generator may have limited this throughput`;
  });

function perRoundTrip(s: SyscallFigures): string {
  return `${formatQuantity(s.perRoundTrip ?? 0)} ${s.syscall}`;
}

/** Where the model waits (the calls its fingerprint says it waits in), per round trip, and what follows. */
export const waitingCalls: ObservationRule = (results, figures) =>
  forEachSubject(figures, 'waiting-calls', (subject) => {
    const trace = subject.trace;
    const declared = declaredOf(results, subject);
    if (!trace || !declared || trace.roundTrips === 0) return null;
    const waiting = trace.window.serving.filter((s) => declared.fingerprint.waitsIn.includes(s.syscall));
    const others = trace.window.serving.filter((s) => !declared.fingerprint.waitsIn.includes(s.syscall) && (s.perRoundTrip ?? 0) >= 0.5);
    const waits = waiting.length
      ? `it waits in ${joinWords(waiting.map(perRoundTrip))} per round trip`
      : declared.fingerprint.waitsIn.length
        ? `it made no ${joinWords(declared.fingerprint.waitsIn, 'or')} call in the window`
        : 'it never waits in a call';
    return `${waits}${others.length ? `; its other calls: ${joinWords(others.map(perRoundTrip))} per round trip` : ''}`;
  });

/** What setting up each connection cost in calls (accept4, clone, epoll_ctl...), before the window. */
export const setupCalls: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'setup-calls', (subject) => {
    const trace = subject.trace;
    if (!trace || trace.connections === 0) return null;
    const everyConnection = trace.setup.serving.filter((s) => (s.perConnection ?? 0) >= 0.9 && (s.perConnection ?? 0) <= 5);
    if (everyConnection.length === 0) return null;
    const where = trace.runs > 1 ? `, in ${plural(trace.runs, 'traced run')}` : '';
    return `setting up its connections (${formatCount(trace.connections)}${where}; before the window, warm-up included), its threads called ${joinWords(everyConnection.map((s) => `${s.syscall} ${formatQuantity(s.perConnection!)}`))} per connection`;
  });

/** The language runtime's own threads: calls that are not the model's. */
export const runtimeCalls: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'runtime-calls', (subject) => {
    const trace = subject.trace;
    if (!trace) return null;
    const window = trace.window.servingCalls + trace.window.runtimeCalls;
    const share = window ? trace.window.runtimeCalls / window : 0;
    const setup = trace.setup.runtimeCalls;
    if (share < NOTABLE_RUNTIME_SHARE && setup < 1000) return null;
    const top = (rows: SyscallFigures[]) => joinWords(rows.slice(0, 4).map((s) => `${s.syscall} ${formatCount(s.calls)}`));
    const parts = [];
    if (trace.window.runtimeCalls > 0) parts.push(`${plural(trace.window.runtimeCalls, 'call')} in the window (${formatShare(share)} of all; ${top(trace.window.runtime)})`);
    if (setup > 0) parts.push(`${plural(setup, 'call')} while connections were set up (${top(trace.setup.runtime)})`);
    return `the runtime's own threads (${formatCount(trace.threads.runtime)} of them) made ${joinWords(parts)}: not the model's calls, left out of its per-round-trip figures`;
  });

/** Connections the server refused, and fd exhaustion: counted from the server's events, per run (median). */
export const serverEvents: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'server-events', (subject) => {
    const said: string[] = [];
    const perRun = (subject.measure?.repetitions ?? 0) > 1 ? ' (a run, median)' : '';
    const refused = eventCount(subject.events, 'refused');
    if (refused > 0) said.push(`refused ${plural(refused, 'connection')} ("${subject.events.first.refused}")`);
    const exhausted = eventCount(subject.events, 'fd-exhausted');
    if (exhausted > 0) said.push(`ran out of file descriptors ${plural(exhausted, 'time')} ("${subject.events.first['fd-exhausted']}")`);
    const failed = eventCount(subject.events, 'connection-failed');
    if (failed > 0) said.push(`lost ${plural(failed, 'connection')} to a failure ("${subject.events.first['connection-failed']}")`);
    const overflow = eventCount(subject.events, 'signal-queue-overflow');
    if (overflow > 0) said.push(`overflowed its signal queue ${plural(overflow, 'time')}`);
    return said.length ? `the server ${joinWords(said)}${perRun}` : null;
  });

/** Wrong replies, connections the server closed, failed connects: each is a problem to look at. */
export const clientErrors: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'client-errors', (subject) => {
    const problems = (subject.measure?.clients ?? []).flatMap((client) => {
      const found: string[] = [];
      if (client.requests.wrong > 0) found.push(`${plural(client.requests.wrong, 'wrong reply', 'wrong replies')} (bytes other than the echo)`);
      if (client.closedByServer > 0 && client.mode === 'echo') found.push(`${plural(client.closedByServer, 'connection')} closed by the server while in use`);
      const connects = Object.entries(client.connectErrors).filter(([, n]) => n > 0);
      if (connects.length) found.push(`connect failed ${plural(connects.reduce((s, [, n]) => s + n, 0), 'time')} (${connects.map(([code, n]) => `${code} ${formatCount(n)}`).join(', ')})`);
      return found.length ? [`${client.name}: ${found.join('; ')}`] : [];
    });
    return problems.length ? problems.join('; ') : null;
  });

/** Under an open-loop load, a server answering less than this share of the offered rate is said not to keep up (claims.ts judges with the same line). */
const KEPT_UP_SHARE = 0.95;

/**
 * An open-loop client: the rate it offered and the rate the server achieved, and its latency from
 * the scheduled send time (p50, p99, p99.9: the figures of the client's table, medians over runs)
 * beside the latency from the actual send; what could not be sent on time. A server that answered
 * less than KEPT_UP_SHARE of the offered rate did not keep up, and is said so.
 */
export const openLoad: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'open-loop', (subject) => {
    const said = (subject.measure?.clients ?? []).flatMap((client) => {
      const open = client.openLoop;
      if (!open || !client.latency) return [];
      const latency = client.latency;
      const achieved = open.achievedPerSecond?.median ?? 0;
      const kept = open.offeredPerSecond > 0 && achieved >= KEPT_UP_SHARE * open.offeredPerSecond;
      const p999 = latency.p999Us !== undefined ? `, p99.9 ${formatMicroseconds(latency.p999Us)}` : '';
      const service = open.serviceLatency ? ` (from the actual send, what a closed-loop client would report: p99 ${formatMicroseconds(open.serviceLatency.p99Us)})` : '';
      const lag = open.sendLagP99Us !== undefined ? `; the client's own send lag p99 ${formatMicroseconds(open.sendLagP99Us)}` : '';
      const late = [
        open.sentLate > 0 ? `${plural(open.sentLate, 'request')} sent late (the reply before had not come)` : '',
        open.notSent > 0 ? `${plural(open.notSent, 'request')} never sent` : '',
        open.lowerBounds > 0 ? `${plural(open.lowerBounds, 'request')} without a reply at the end, counted at their wait so far` : '',
      ].filter(Boolean);
      return [
        `${client.name} offered ${formatCount(open.offeredPerSecond)} requests/s (${formatCount(open.ratePerConnection)}/s on each of ${plural(client.connections, 'connection')}), ` +
          `${kept ? '' : 'and the server could not keep up: '}${formatCount(achieved)}/s achieved; ` +
          `from the scheduled send time p50 ${formatMicroseconds(latency.p50Us)}, p99 ${formatMicroseconds(latency.p99Us)}${p999}${service}${lag}` +
          `${late.length ? `; ${joinWords(late)}` : ''}`,
      ];
    });
    return said.length ? said.join('; ') : null;
  });

/** A server the lab names that no measure run completed (an interrupted lab, a failing server). */
export const notMeasured: ObservationRule = (_results, figures) =>
  forEachSubject(figures, 'not-measured', (subject) => (subject.measure ? null : 'not measured: no measure run completed'));

export const OBSERVATION_RULES: ObservationRule[] = [
  notMeasured,
  clientOutcomes,
  openLoad,
  warmup,
  loadGeneratorBound,
  waitingCalls,
  setupCalls,
  failedCalls,
  runtimeCalls,
  serverEvents,
  clientErrors,
];

/** Every rule's observations, grouped by row in the lab's order, each row's in rule order. */
export function observe(results: Measurement, figures: readonly SubjectFigures[]): Observation[] {
  const order = figures.map((f) => f.subject);
  const observations = OBSERVATION_RULES.flatMap((rule) => rule(results, figures));
  return observations.sort((a, b) => order.indexOf(a.subject ?? '') - order.indexOf(b.subject ?? ''));
}
