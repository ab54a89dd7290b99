// Verdicts on the course's claims: the one place where a claim is judged. A lab names its rule and
// the client the rule measures (`verdict: { rule: starvation, client: asker }`); the rule reads
// what each server's model declared (its traits: how it waits, what a connection costs, how many
// clients it serves at once, its fd ceiling; its fingerprint) and the figures of analysis/figures.ts,
// never a model's name or a label. A claim of several parts (a fingerprint AND a busy core) holds
// only when every part holds; the verdict lists each part with its numbers.
//
// Numbers that vary from run to run are judged by analysis/compare.ts: a difference counts only
// beyond the spread of the repetitions, otherwise the part is inconclusive. A claim that does not
// hold on this kernel says so: that is a finding, not a failure of the lab. Every threshold below
// is a named constant with the reason for its value; none is a timing the tests assert.
import { formatCount, formatKibibytes, formatKibibytesSigned, formatMicroseconds, formatPercent, formatQuantity, formatShare, joinWords, plural } from '../shared/format.js';
import { servesAtOnce, type ModelDeclaration } from '../shared/model.js';
import { clientResults, runThroughput, verdictRulesOf, type Measurement, type RunRecord, type SubjectFigures } from '../shared/results.js';
import { eventCount } from '../shared/server-events.js';
import { combineVerdicts, type ClaimPart, type ClaimVerdict, type Verdict, type VerdictRuleName } from '../shared/verdicts.js';
import { againstLine, compare, formatRatio, type Judged } from './compare.js';
import { achievedRate, answeredOf, connectionsOf, countedRunsOf, cpuPerRoundTrip, grown, isFailed, median, offeredRate, resultsOf, runAnswered, runLatency, runRoundTrips, runsOf, sendLagOf, subjectsOf, type Subject } from './figures.js';
import { busyRuns, describeBusy } from './machine.js';
import { connectionCosts } from './connection-costs.js';

/** A row whose server declares a model (every model; a server of one's own that claims or fits one). */
export type DeclaredSubject = Subject & { variant: Subject['variant'] & { declared: ModelDeclaration } };

/** What a rule is given: the measurement, the figures of each row, and the client the lab names. */
export interface RuleContext {
  results: Measurement;
  /** the rows a rule judges by their model's declaration: a server of one's own that fits no model is not among them. */
  rows: DeclaredSubject[];
  figures: ReadonlyMap<string, SubjectFigures>;
  /** the client the lab's `verdict:` names; null for a rule that measures none. */
  client: string | null;
}

export type ClaimRule = (context: RuleContext) => ClaimVerdict[];

// ---- thresholds ----------------------------------------------------------------------------

/**
 * A core "burnt" by busy polling: at least this much of one. On a quiet machine the loop takes
 * all of it (~100%); a shared machine takes part of it away, so the line sits well below 100 and
 * far above a server that sleeps in a call.
 */
const BUSY_CPU_PERCENT = 60;
/** A server that sleeps in a readiness call with only idle clients stays below this much of a core. */
const IDLE_CPU_PERCENT = 20;
/**
 * The EAGAIN storm: at least this share of a busy-polling server's reads (the calls its
 * fingerprint requires) fail with EAGAIN. In the models lab half the connections are idle, and
 * under strace every busy one has a request waiting, so about half of them fail; a blocking or
 * readiness-driven server fails almost none (an edge-triggered one: one per drained event, but
 * this part is asked of busy-polling models only).
 */
const EAGAIN_SHARE = 0.25;
/** "Grows": the cost at the largest size at least this many times that at the smallest; "does not grow": below it. */
const GROWTH = 1.5;
/** A thread per connection: at least this share of the connections show up as threads. */
const THREADS_PER_CONNECTION_SHARE = 0.9;
/**
 * A thread per connection costs memory per connection: at least this much resident memory each,
 * beyond the idle server. A Node worker (an OS thread and a V8 isolate) costs about 8 MB here
 * (src/servers/threaded.ts); an event loop needs a few KiB of buffers per connection.
 */
const THREAD_MEMORY_KIB = 64;
/** A pool: fewer new threads than this share of the connections. */
const FIXED_THREADS_SHARE = 0.1;
/** Beyond the idle server, a server with no thread per connection may add this many threads (Node's own helpers start lazily)... */
const FEW_THREADS = 4;
/** ... or this share of its connections, whichever is more. */
const NO_THREADS_SHARE = 0.01;
/** A reader that does not drain strands the rest of a message: fewer round trips than this in a whole run. */
const STRANDED_ROUND_TRIPS = 10;
/** A stalled coroutine cuts the others' round trips to at most this share of the same server's without the call. */
const STALL_THROUGHPUT_SHARE = 0.5;
/** ... and makes some of their requests (p99) wait at least this share of the blocking call. */
const STALL_SHARE = 0.5;

/**
 * "Never waits": a busy-polling thread sleeps in calls less than this share of its time. A thread
 * that waits for data sleeps most of an echo window under a light load (its client needs the
 * round trip to send again); one that spins sleeps only when the scheduler takes its core for a
 * moment (a page fault, a futex of its runtime).
 */
const NEVER_WAITS_SHARE = 0.05;
/** Below this share of their time asleep in any call, a model's threads hardly waited: too little to say where. */
const HARDLY_WAITS_SHARE = 0.02;
/** "Returns at once": a readiness model's threads sleep in their data reads less than this share of their time. */
const AT_ONCE_SHARE = 0.01;
/**
 * strace distorts: the traced server keeps less than this share of its untraced round trips.
 * Measured here (bench/observer.md): strace keeps 3-16% of an epoll server's round trips, the
 * eBPF observer 55-90%; a tracer within 30% of untraced is not the lesson's distortion.
 */
const DISTORTS_SHARE = 0.7;
/**
 * Under an open-loop load, a server "keeps up" when it answers at least this share of the offered
 * requests per second in its window. Not 100%: the requests scheduled in the window's last
 * interval are answered in the drain after it, which the window's rate does not count.
 */
const KEPT_UP_SHARE = 0.95;
/**
 * An open-loop client whose own send lag (p99: how late it sent the requests it could send on
 * time) reaches this share of the send interval has used that much of those requests' interval
 * before the server saw them: a p99 above the interval then measures the load generator as much
 * as the server. Measured here on a busy 2-CPU machine: 1.3-3 ms of lag at 400 requests/s per
 * connection, with the server idle (blocking) or not.
 */
const CLIENT_LAG_SHARE = 0.5;

// ---- building verdicts -----------------------------------------------------------------------

function part(claim: string, judged: Judged): ClaimPart {
  return { claim, verdict: judged.verdict, measurement: judged.text };
}

function verdict(rule: VerdictRuleName, subject: string, parts: ClaimPart[], figures: ClaimVerdict['figures']): ClaimVerdict {
  return {
    rule,
    subject,
    verdict: combineVerdicts(parts.map((p) => p.verdict)),
    measurement: parts.map((p) => (parts.length > 1 ? `${p.claim}: ${p.measurement}` : p.measurement)).join('; '),
    parts,
    figures,
  };
}

/** A count that must hold in every repetition: holds when it does, does not hold when it never does. */
function everyRun(flags: readonly boolean[], text: string): Judged {
  if (flags.length === 0) return { verdict: 'inconclusive', text: 'not measured' };
  if (flags.every(Boolean)) return { verdict: 'holds', text };
  if (!flags.some(Boolean)) return { verdict: 'does not hold here', text };
  return { verdict: 'inconclusive', text: `${text}: in ${flags.filter(Boolean).length} of ${flags.length} repetitions` };
}

/**
 * A part judged on CPU: when it fails in every repetition and every one of them ran on a machine
 * busy with something else, it is inconclusive, not a finding. (It failed in every repetition:
 * that is what 'does not hold here' means; one quiet repetition that failed too decides.)
 */
function mindTheMachine(judged: Judged, runs: readonly RunRecord[]): Judged {
  if (judged.verdict !== 'does not hold here') return judged;
  const busy = busyRuns(runs);
  if (busy.length === 0) return judged;
  const said = `${judged.text}; ${describeBusy(busy, runs.length)}`;
  if (busy.length < runs.length) return { verdict: judged.verdict, text: `${said}, but it fell short on a quiet machine too` };
  return { verdict: 'inconclusive', text: `${said}: a busy machine takes CPU from the server` };
}

/** "3.0 ms" when the repetitions agree, "[2.4 ms–7.7 ms]" when they do not. */
function span(values: readonly number[], unit: (n: number) => string): string {
  const [low, high] = [unit(Math.min(...values)), unit(Math.max(...values))];
  return low === high ? low : `[${low}–${high}]`;
}

/**
 * A latency part judged under an open-loop load: when it fails in every repetition and the client
 * sent late by at least CLIENT_LAG_SHARE of the interval in every one of them, it is inconclusive,
 * not a finding about the server; the lag is said whenever it reached that share.
 */
function mindTheClient(judged: Judged, lagP99s: readonly number[], intervalUs: number): Judged {
  if (judged.verdict === 'holds' || lagP99s.length === 0) return judged;
  const late = lagP99s.filter((lag) => lag >= CLIENT_LAG_SHARE * intervalUs).length;
  if (late === 0) return judged;
  const said = `${judged.text}; the client's own send lag p99 ${span(lagP99s, formatMicroseconds)}, at least ${formatShare(CLIENT_LAG_SHARE)} of the interval in ${late} of ${plural(lagP99s.length, 'repetition')}`;
  if (judged.verdict === 'does not hold here' && late === lagP99s.length) return { verdict: 'inconclusive', text: `${said}: the client sent late, so the p99 measures the load generator as much as the server` };
  return { verdict: judged.verdict, text: said };
}

/** The rows of one server across the sweep, in sweep order (one row when the lab does not sweep). */
function byVariant(context: RuleContext): DeclaredSubject[][] {
  const rows = new Map<string, DeclaredSubject[]>();
  for (const row of context.rows) rows.set(row.variant.label, [...(rows.get(row.variant.label) ?? []), row]);
  return [...rows.values()].map((list) => [...list].sort((a, b) => (a.sweepValue ?? 0) - (b.sweepValue ?? 0)));
}

function figuresOf(context: RuleContext, row: Subject): SubjectFigures {
  const figures = context.figures.get(row.subject);
  if (!figures) throw new Error(`no figures for ${row.subject}`);
  return figures;
}

function measured(context: RuleContext, row: Subject): RunRecord[] {
  return runsOf(context.results, row, 'measure');
}

function requireClient(context: RuleContext): string {
  if (context.client === null) throw new Error('this rule measures a client, and the lab names none');
  return context.client;
}

const sum = (values: readonly number[]) => values.reduce((total, v) => total + v, 0);
const perCent = (n: number) => formatPercent(n);
const micro = (us: number) => formatMicroseconds(us);
const rate = (n: number) => `${formatCount(n)}/s`;

/** The calls a model's fingerprint requires that read (its reads and accepts), failing with EAGAIN in the traced window. */
function eagainStorm(figures: SubjectFigures, required: readonly string[]): Judged & { share: number | null } {
  const reads = (figures.trace?.window.serving ?? []).filter((s) => required.includes(s.syscall));
  const calls = sum(reads.map((s) => s.calls));
  const failed = sum(reads.map((s) => s.errnos.EAGAIN ?? 0));
  if (!figures.trace) return { verdict: 'inconclusive', text: 'no traced run', share: null };
  if (calls === 0) return { verdict: 'inconclusive', text: `no ${joinWords(required, 'or')} call in the traced window`, share: null };
  const share = failed / calls;
  const shown = `in the traced window, ${formatShare(share)} of its ${formatCount(calls)} ${joinWords(reads.map((s) => s.syscall))} calls failed with EAGAIN`;
  return { verdict: share >= EAGAIN_SHARE ? 'holds' : 'does not hold here', text: share >= EAGAIN_SHARE ? shown : `${shown}, not ${formatShare(EAGAIN_SHARE)}`, share };
}

// ---- the rules, one per lab claim -----------------------------------------------------------

/**
 * The models side by side: each shows its own fingerprint in its own threads' calls. A model
 * that busy-polls (waits: spin) must also show the EAGAIN storm and keep a core busy.
 */
export const fingerprints: ClaimRule = (context) =>
  context.rows.map((row) => {
    const figures = figuresOf(context, row);
    const declared = row.variant.declared;
    const parts: ClaimPart[] = [];
    const check = figures.trace?.fingerprint ?? null;
    const own = row.variant.own;
    // A server of one's own: the model it claims (as:), or the first its calls fit.
    const claim = !own
      ? `shows the ${declared.name} fingerprint`
      : own.claims !== null
        ? `shows the fingerprint of ${declared.name}, the model it claims to be (by job: any read call reads)`
        : `fits a model's fingerprint: ${joinWords(own.fits ?? [declared.name])} (judged as ${declared.name})`;
    if (!check) parts.push({ claim, verdict: 'inconclusive', measurement: 'no traced run' });
    else {
      const seen = check.required.flatMap((r) => r.seen.map((s) => `${s.syscall} ${formatCount(s.calls)}`));
      const missing = check.required.filter((r) => r.seen.length === 0).map((r) => joinWords(r.anyOf, 'or'));
      const forbidden = check.forbidden.filter((f) => f.calls > 0).map((f) => `${f.syscall} ${formatCount(f.calls)}`);
      const clauses = [
        seen.length ? `set-up and window together, its threads called ${joinWords(seen)}` : 'its threads called none of its required calls',
        ...(missing.length ? [`never ${joinWords(missing, 'or')}`] : []),
        forbidden.length ? `but also ${joinWords(forbidden)}, which ${declared.name} never calls` : `none of ${joinWords(check.forbidden.map((f) => f.syscall), 'or')}`,
      ];
      const verdictOfCheck: Verdict = check.verdict === 'matches' ? 'holds' : check.verdict === 'inconclusive' ? 'inconclusive' : 'does not hold here';
      const why = check.verdict === 'inconclusive' ? ' (no round trip while traced: a server blocked in one call makes no calls to count)' : '';
      parts.push({ claim, verdict: verdictOfCheck, measurement: `${clauses.join('; ')}${why}` });
    }
    if (declared.traits.waits === 'spin') {
      parts.push(part('its calls on idle sockets fail with EAGAIN', eagainStorm(figures, declared.fingerprint.required.flat())));
      const runs = measured(context, row);
      const cpu = againstLine(runs.flatMap((r) => (r.proc ? [r.proc.cpuPercent] : [])), 'at least', BUSY_CPU_PERCENT, perCent, 'server CPU');
      parts.push(part(`it burns a core (at least ${perCent(BUSY_CPU_PERCENT)} of one)`, mindTheMachine(cpu, runs)));
    }
    return verdict('fingerprints', row.subject, parts, {
      servingCallsPerRoundTrip: figures.trace?.servingPerRoundTrip?.median ?? null,
      cpuPercent: figures.measure?.cpuPercent?.values ?? null,
    });
  });

/**
 * Starvation: some clients hold connections, then the named echo client asks. A server that serves
 * K clients at once (1 for blocking, its threads for a pool) must leave the asker unanswered when
 * K connections or more are open ahead of it, and answer it otherwise.
 */
export const starvation: ClaimRule = (context) => {
  const asker = requireClient(context);
  const ahead = context.results.lab.clients.slice(0, context.results.lab.clients.findIndex((c) => c.name === asker));
  return context.rows.flatMap((row) => {
    const runs = measured(context, row);
    if (runs.length === 0) return [];
    const capacity = servesAtOnce(row.variant.declared.traits, row.variant.options.threads);
    const openAhead = (run: RunRecord) => sum(ahead.flatMap((c) => resultsOf(run, c.name).map(connectionsOf)));
    const heldAhead = Math.min(...runs.map(openAhead));
    const starves = heldAhead >= capacity;
    const answered = runs.map((run) => sum(resultsOf(run, asker).map(answeredOf)));
    const sent = sum(runs.map((run) => sum(resultsOf(run, asker).map((r) => r.requestsSent))));
    const capacityText = capacity === Infinity ? 'it serves every connection at once' : `it serves ${plural(capacity, 'client')} at a time`;
    const replicas = context.results.environment.clientReplicas;
    const whose = ahead.map((c) =>
      c.mode === 'hold'
        ? `${plural(c.connections * replicas, 'idle connection')} of ${c.name} and ${replicas === 1 ? 'its probe' : `its ${replicas} probes`}`
        : `${plural(c.connections * replicas, 'connection')} of ${c.name}`,
    );
    const aheadText = `${plural(heldAhead, 'connection')} open ahead of it (${joinWords(whose)}); ${capacityText}`;
    const got = `${asker} got ${formatCount(sum(answered))} of ${plural(sent, 'request')} answered`;
    let judged: Judged;
    if (sent === 0) judged = { verdict: 'inconclusive', text: `${asker} sent no request` };
    else if (starves) {
      judged = answered.every((n) => n === 0)
        ? { verdict: 'holds', text: `${got}, with ${aheadText}` }
        : answered.every((n) => n > 0)
          ? { verdict: 'does not hold here', text: `${got}, with ${aheadText}: it should have got none` }
          : { verdict: 'inconclusive', text: `${got}, in ${answered.filter((n) => n > 0).length} of ${runs.length} repetitions, with ${aheadText}` };
    } else {
      judged = answered.every((n) => n > 0)
        ? { verdict: 'holds', text: `${got}, with ${aheadText}` }
        : answered.every((n) => n === 0)
          ? { verdict: 'does not hold here', text: `${got}, with ${aheadText}: it should have been answered` }
          : { verdict: 'inconclusive', text: `${got}, none in ${answered.filter((n) => n === 0).length} of ${runs.length} repetitions, with ${aheadText}` };
    }
    const claim = starves ? `${asker} starves behind ${plural(heldAhead, 'open connection')}` : `${asker} is answered`;
    return [verdict('starvation', row.subject, [part(claim, judged)], { sent, answered, heldAhead, servesAtOnce: capacity === Infinity ? null : capacity })];
  });
};

/**
 * The fd ceiling: a model whose ceiling is FD_SETSIZE (select) stops there whatever RLIMIT_NOFILE
 * allows; the others stop only at RLIMIT_NOFILE. For each server: where it should stop (the smaller
 * of the two for select), and whether it held connections up to there, not beyond, and refused
 * the rest (refused events, or EMFILE).
 */
export const fdCeiling: ClaimRule = (context) => {
  const crowd = requireClient(context);
  return byVariant(context).flatMap((rows) => {
    const runs = rows.flatMap((row) => measured(context, row));
    if (runs.length === 0) return [];
    const all = rows.map((row) => figuresOf(context, row));
    const limits = all.find((f) => f.limits)?.limits ?? null;
    const nofile = limits?.nofileSoft ?? null;
    const fdSetSize = limits?.fdSetSize ?? 1024;
    const bySelect = rows[0].variant.declared.traits.fdCeiling === 'FD_SETSIZE';
    const ceiling = Math.min(nofile ?? Infinity, bySelect ? fdSetSize : Infinity);
    const fdsPeak = Math.max(...runs.map((run) => run.proc?.fdsPeak ?? 0));
    const mostAsked = Math.max(...rows.map((row) => row.sweepValue ?? context.results.lab.clients.find((c) => c.name === crowd)?.connections ?? 0));
    const held = Math.max(...runs.map((run) => grown(run, 'fdsPeak') ?? 0));
    // At the largest crowd: refused connections (median per run), and whether accept4 ran out of fds at any size.
    const atLargest = all[all.length - 1];
    // A server of one's own reports no events: the connections it closed on the crowd are its refusals.
    const closedOnCrowd = atLargest.measure?.clients.find((c) => c.name === crowd)?.closedByServer ?? 0;
    const refusals = rows[0].variant.own ? closedOnCrowd : eventCount(atLargest.events, 'refused');
    const exhaustion = Math.max(...all.map((f) => eventCount(f.events, 'fd-exhausted')));
    const baseline = runs[0].baseline?.fdsPeak ?? 0;
    const reachesCeiling = mostAsked + baseline >= ceiling;
    const how = refusals
      ? `at ${formatCount(mostAsked)} it refused ${plural(refusals, 'connection')} a run past fd ${formatCount(fdSetSize - 1)} (FD_SETSIZE)`
      : exhaustion
        ? 'accept4 failed with EMFILE (RLIMIT_NOFILE)'
        : 'refused nothing';
    const limitsText = `nofile ${nofile === null ? 'unlimited' : formatCount(nofile)}${bySelect ? `, FD_SETSIZE ${formatCount(fdSetSize)}` : ''}`;
    const measurement = `${crowd} asked for up to ${plural(mostAsked, 'connection')} and a probe: the server held at most ${formatCount(held)} (fds beyond its idle self; its fds peaked at ${formatCount(fdsPeak)}; ${limitsText}); ${how}`;
    // At the ceiling: a few fds below it are Node's own (stdio, its event loop, the listener), and
    // select's refused connection holds fd 1024 for the moment between accept4 and close.
    const stoppedAtCeiling = fdsPeak <= ceiling + 1 && fdsPeak >= ceiling - 8 && (refusals > 0 || exhaustion > 0);
    const heldAll = held >= mostAsked && refusals === 0 && exhaustion === 0;
    const which = bySelect && ceiling === fdSetSize ? 'FD_SETSIZE' : 'RLIMIT_NOFILE';
    const claim = reachesCeiling ? `stops at ${which} (${formatCount(ceiling)})` : 'no ceiling below its nofile';
    // A run that failed (a server that crashed when its fds grew: Python's select raises ValueError
    // past FD_SETSIZE) leaves a hole in the sweep: where it stopped is not judged from the rest.
    const failed = context.results.runs.filter((run) => run.variant === rows[0].variant.label && run.phase === 'measure' && isFailed(run));
    const judged: Judged = failed.length
      ? {
          verdict: 'inconclusive',
          text: `${measurement}; but ${plural(failed.length, 'run')} of it failed (${failed[0].sweepValue !== null ? `${crowd}=${formatCount(failed[0].sweepValue)}: ` : ''}${failed[0].error}), so where it stops is not judged`,
        }
      : { verdict: (reachesCeiling ? stoppedAtCeiling : heldAll) ? 'holds' : 'does not hold here', text: measurement };
    return [
      verdict('fd-ceiling', `${rows[0].variant.label}: ${claim}`, [part(claim, judged)], {
        asked: mostAsked,
        held,
        fdsPeak,
        ceiling: Number.isFinite(ceiling) ? ceiling : null,
        refusals,
        exhaustion,
      }),
    ];
  });
};

/**
 * Idle connections: a model that scans every watched fd on each call (select, poll) costs more per
 * round trip as idle connections grow; one that keeps a ready list (epoll) does not. Cost: the
 * server's CPU time per round trip of the named busy client, at the smallest and the largest crowd,
 * compared over the repetitions.
 */
export const idleScan: ClaimRule = (context) => {
  const active = requireClient(context);
  return byVariant(context).flatMap((rows) => {
    const waits = rows[0].variant.declared.traits.waits;
    if (rows.length < 2 || (waits !== 'scan-all-fds' && waits !== 'ready-list')) return [];
    const [smallest, largest] = [rows[0], rows[rows.length - 1]];
    const costs = (row: Subject) => measured(context, row).flatMap((run) => cpuPerRoundTrip(run, active) ?? []);
    const grows = waits === 'scan-all-fds';
    const names = { a: `${formatCount(largest.sweepValue ?? 0)} idle`, b: `${formatCount(smallest.sweepValue ?? 0)} idle` };
    const judged = compare(costs(largest), costs(smallest), grows ? 'above' : 'below', GROWTH, names, micro);
    const refused = eventCount(figuresOf(context, largest).events, 'refused');
    const capped = refused > 0 ? `; past FD_SETSIZE it refused ${plural(refused, 'connection')} a run, so it watched fewer than asked` : '';
    const claim = `server CPU per round trip ${grows ? 'grows' : 'does not grow'} with idle connections (${grows ? 'at least' : 'below'} ${formatRatio(GROWTH)})`;
    return [
      verdict('idle-scan', `${rows[0].variant.label}: cost ${grows ? 'grows' : 'does not grow'} with idle connections`, [part(claim, { ...judged, text: `${judged.text}${capped}` })], {
        cpuPerRoundTripSmallUs: costs(smallest),
        cpuPerRoundTripLargeUs: costs(largest),
        growth: judged.ratio,
      }),
    ];
  });
};

/**
 * One connection: multiplexing makes two calls per read (the wait, then recvfrom) where blocking IO
 * makes one, so with a single client it makes more calls per round trip and is slower. Compared
 * with the lab's server that serves one client at a time and waits in a blocking call: the
 * serving threads' calls per round trip (traced runs) and the named client's round trips per
 * second (measured runs), each over the repetitions.
 */
export const oneConnection: ClaimRule = (context) => {
  const single = requireClient(context);
  const blocking = context.rows.find((row) => row.variant.declared.traits.concurrency === 'one' && row.variant.declared.traits.waits === 'blocking-call');
  if (!blocking) return [];
  // All the server's calls, over the requests of all echo clients (as the tables divide them).
  const callsPerRoundTrip = (row: Subject) =>
    countedRunsOf(context.results, row).flatMap((run) => {
      const roundTrips = runAnswered(run);
      return run.trace && roundTrips > 0 ? [sum(run.trace.window.serving.map((s) => s.calls)) / roundTrips] : [];
    });
  const throughput = (row: Subject) => measured(context, row).flatMap((run) => resultsOf(run, single).map((r) => (r.durationSeconds > 0 ? r.roundTrips / r.durationSeconds : 0)));
  return context.rows
    .filter((row) => row !== blocking && ['scan-all-fds', 'ready-list'].includes(row.variant.declared.traits.waits))
    .map((row) => {
      const names = { a: row.variant.label, b: blocking.variant.label };
      const calls = compare(callsPerRoundTrip(row), callsPerRoundTrip(blocking), 'above', 1, names, formatQuantity, 'calls per round trip');
      const speed = compare(throughput(row), throughput(blocking), 'below', 1, names, formatCount, 'round trips/s');
      return verdict(
        'one-connection',
        `${row.variant.label} vs ${blocking.variant.label}`,
        [part('more system calls per round trip', calls), part('fewer round trips per second', speed)],
        { callsPerRoundTrip: callsPerRoundTrip(row), blockingCallsPerRoundTrip: callsPerRoundTrip(blocking), roundTripsPerSecond: throughput(row), blockingRoundTripsPerSecond: throughput(blocking) },
      );
    });
};

/**
 * Threads against events: a thread per connection adds a thread per connection; a process per
 * connection (fork) adds a process per connection and its memory (PSS, so pages the children
 * share with their parent count once); a pool adds a fixed K and serves only K connections at
 * once; an event loop or coroutines add none and serve every connection. Figures: threads and
 * processes beyond the idle server, connections answered, of the named client; RSS and PSS per
 * connection, the warm-up's set-up time per connection (accept and a thread's or a process's
 * start), context switches and CPU per round trip.
 */
export const threadsVsEvents: ClaimRule = (context) => {
  const crowd = requireClient(context);
  return context.rows.flatMap((row) => {
    const runs = measured(context, row);
    if (runs.length === 0) return [];
    const traits = row.variant.declared.traits;
    const connections = (run: RunRecord) => sum(resultsOf(run, crowd).map((r) => r.connected));
    const answered = (run: RunRecord) => sum(resultsOf(run, crowd).map((r) => r.connectionsAnswered));
    const added = (run: RunRecord) => grown(run, 'threadsPeak') ?? NaN;
    const perConnection = runs.flatMap((run) => (connections(run) > 0 && Number.isFinite(added(run)) ? [added(run) / connections(run)] : []));
    const addedText = `${joinWords(runs.map((run) => formatCount(added(run))))} threads added for ${joinWords(runs.map((run) => formatCount(connections(run))))} connections`;
    const answeredText = `${joinWords(runs.map((run) => formatCount(answered(run))))} of ${joinWords(runs.map((run) => formatCount(connections(run))))} connections answered`;
    // Setting a connection up (accept, and a thread's or a process's start, the first reply): the warm-up's wall time per connection.
    const setUp = runs.flatMap((run) => resultsOf(run, crowd).flatMap((r) => (r.warmup.connections > 0 ? [(r.warmup.seconds * 1000) / r.warmup.connections] : [])));
    const setUpText = setUp.length ? ` (set-up: ${joinWords(setUp.map((ms) => `${ms.toFixed(2)} ms`))} per connection, the warm-up's wall time over its connections)` : '';
    const parts: ClaimPart[] = [];
    let expectation: string;
    if (traits.perConnection === 'thread' || traits.perConnection === 'process') {
      const unit = traits.perConnection;
      expectation = `a ${unit} per connection`;
      // Threads share one process's memory: its RSS. A fork shares its parent's pages until either
      // writes them: the tree's PSS, which counts a shared page once.
      const [tasks, memoryPick, memoryName] =
        unit === 'process' ? (['processesPeak', 'pssKb', 'proportional set size (PSS) of the process tree'] as const) : (['threadsPeak', 'peakRssKb', 'resident memory'] as const);
      const perConnectionOf = (pick: Parameters<typeof grown>[1]) =>
        runs.flatMap((run) => {
          const added = grown(run, pick);
          return added !== null && connections(run) > 0 ? [added / connections(run)] : [];
        });
      const tasksText = `${joinWords(runs.map((run) => formatCount(grown(run, tasks) ?? 0)))} ${unit}s added for ${joinWords(runs.map((run) => formatCount(connections(run))))} connections`;
      const judged = againstLine(perConnectionOf(tasks), 'at least', THREADS_PER_CONNECTION_SHARE, (n) => n.toFixed(2), `${tasksText}: ${unit}s per connection`);
      parts.push(part(expectation, { ...judged, text: `${judged.text}${setUpText}` }));
      parts.push(part(`memory per connection (at least ${formatCount(THREAD_MEMORY_KIB)} KiB)`, againstLine(perConnectionOf(memoryPick), 'at least', THREAD_MEMORY_KIB, formatKibibytes, `${memoryName} added per connection`)));
    } else if (traits.concurrency === 'pool') {
      expectation = 'a fixed pool: a few threads, only as many clients served at once';
      const threads = row.variant.options.threads;
      parts.push(part(`a few threads (fewer than ${formatShare(FIXED_THREADS_SHARE)} of the connections)`, againstLine(perConnection, 'below', FIXED_THREADS_SHARE, (n) => n.toFixed(2), `${addedText}: threads per connection`)));
      parts.push(part(`at most ${plural(threads, 'connection')} served at once`, everyRun(runs.map((run) => answered(run) <= threads), answeredText)));
    } else {
      expectation = 'no thread per connection';
      const allowed = (run: RunRecord) => Math.max(FEW_THREADS, Math.floor(NO_THREADS_SHARE * connections(run)));
      parts.push(part(`at most ${FEW_THREADS} threads added (or ${formatShare(NO_THREADS_SHARE)} of the connections)`, everyRun(runs.map((run) => added(run) <= allowed(run)), addedText)));
      parts.push(part('every connection answered', everyRun(runs.map((run) => answered(run) === connections(run)), answeredText)));
    }
    const figures = figuresOf(context, row).measure;
    const rss = figures?.rssAddedKb ?? null;
    const medianConnections = figures?.clients.find((c) => c.name === crowd)?.connections ?? 0;
    const perConnectionOf = (values: (number | null)[]) => {
      const known = values.flatMap((v, i) => (v !== null && connections(runs[i]) > 0 ? [v / connections(runs[i])] : []));
      return known.length ? median(known) : null;
    };
    return [
      verdict('threads-vs-events', `${row.subject}: ${expectation}`, parts, {
        connections: medianConnections,
        threadsAdded: figures?.threadsAdded ?? null,
        processesAdded: runs.some((run) => grown(run, 'processesPeak') !== null) ? median(runs.flatMap((run) => grown(run, 'processesPeak') ?? [])) : null,
        rssPerConnectionKb: rss !== null && medianConnections > 0 ? rss / medianConnections : null,
        pssPerConnectionKb: perConnectionOf(runs.map((run) => grown(run, 'pssKb'))),
        warmupMsPerConnection: setUp.length ? median(setUp) : null,
        switchesPerRoundTrip: figures?.switchesPerRoundTrip ?? null,
        cpuPerRoundTripUs: figures?.cpuPerRoundTripUs?.median ?? null,
      }),
    ];
  });
};

/**
 * Level- against edge-triggered readiness: level-triggered reports an fd again while unread data
 * remains, so it wakes more often per message than edge-triggered; edge-triggered reports a
 * change once, so a reader that does not drain (the `drain: false` option) strands the rest of a
 * message until the next event. Figures: the calls each model waits in, per round trip (traced
 * runs), and the named client's requests answered and round trips.
 */
export const levelVsEdge: ClaimRule = (context) => {
  const large = requireClient(context);
  const drains = (row: DeclaredSubject) => !(row.variant.declared.traits.triggering === 'edge' && row.variant.options.drain === false);
  const wakeups = (row: DeclaredSubject) =>
    countedRunsOf(context.results, row).flatMap((run) => {
      const roundTrips = runAnswered(run);
      const waits = row.variant.declared.fingerprint.waitsIn;
      return run.trace && roundTrips > 0 ? [sum(run.trace.window.serving.filter((s) => waits.includes(s.syscall)).map((s) => s.calls)) / roundTrips] : [];
    });
  const level = context.rows.find((row) => row.variant.declared.traits.triggering === 'level');
  const edge = context.rows.find((row) => row.variant.declared.traits.triggering === 'edge' && drains(row));
  const comparison =
    level && edge
      ? [
          verdict(
            'lt-vs-et',
            `${level.variant.label} wakes more often per message than ${edge.variant.label}`,
            [part('more waits per round trip', compare(wakeups(level), wakeups(edge), 'above', 1, { a: level.variant.label, b: edge.variant.label }, (n) => n.toFixed(2), 'waits per round trip'))],
            { levelTriggered: wakeups(level), edgeTriggered: wakeups(edge) },
          ),
        ]
      : [];
  const each = context.rows.flatMap((row) => {
    const runs = measured(context, row);
    if (runs.length === 0) return [];
    const roundTrips = runs.map((run) => runRoundTrips(run, large));
    const unanswered = runs.map((run) => sum(resultsOf(run, large).map((r) => r.unanswered)));
    const text = `${large}: ${joinWords(roundTrips.map(formatCount))} round trips and ${joinWords(unanswered.map(formatCount))} requests left unanswered per repetition`;
    const served = roundTrips.map((n, i) => n > 0 && unanswered[i] === 0);
    const stranded = roundTrips.map((n, i) => n < STRANDED_ROUND_TRIPS && unanswered[i] > 0);
    const outcome = (wanted: boolean[]): Verdict => (wanted.every(Boolean) ? 'holds' : wanted.some(Boolean) ? 'inconclusive' : 'does not hold here');
    return [
      drains(row)
        ? verdict('lt-vs-et', `${row.subject}: every message answered`, [{ claim: 'every message answered', verdict: outcome(served), measurement: text }], { roundTrips, unanswered })
        : verdict('lt-vs-et', `${row.subject}: a reader that does not drain strands data`, [{ claim: `fewer than ${STRANDED_ROUND_TRIPS} round trips, requests left waiting`, verdict: outcome(stranded), measurement: text }], { roundTrips, unanswered }),
    ];
  });
  return [...comparison, ...each];
};

/**
 * Busy polling: with only idle clients the non-blocking loop still keeps a core busy, its reads
 * fail with EAGAIN, and the named hold client's probe waits longer as the sockets swept grow. A
 * model that waits in a call sleeps instead, and its probe's latency does not grow.
 */
export const busyPoll: ClaimRule = (context) =>
  byVariant(context).flatMap((rows) => {
    const runs = rows.flatMap((row) => measured(context, row));
    if (runs.length === 0) return [];
    const declared = rows[0].variant.declared;
    const spins = declared.traits.waits === 'spin';
    const cpu = runs.flatMap((run) => (run.proc ? [run.proc.cpuPercent] : []));
    const probeP50 = (row: Subject) => measured(context, row).flatMap((run) => resultsOf(run, requireClient(context)).flatMap((r) => (r.probe && r.probe.latency.count > 0 ? [r.probe.latency.p50Us] : [])));
    const [smallest, largest] = [rows[0], rows[rows.length - 1]];
    const names = { a: `${formatCount(largest.sweepValue ?? 0)} idle`, b: `${formatCount(smallest.sweepValue ?? 0)} idle` };
    const parts: ClaimPart[] = [];
    if (spins) {
      parts.push(part(`burns a core with idle clients (at least ${perCent(BUSY_CPU_PERCENT)})`, mindTheMachine(againstLine(cpu, 'at least', BUSY_CPU_PERCENT, perCent, 'server CPU'), runs)));
      const storm = rows.map((row) => eagainStorm(figuresOf(context, row), declared.fingerprint.required.flat()));
      parts.push({ claim: 'its reads fail with EAGAIN', verdict: combineVerdicts(storm.map((s) => s.verdict)), measurement: storm.map((s, i) => `${formatCount(rows[i].sweepValue ?? 0)} idle: ${s.text}`).join('; ') });
      if (rows.length > 1) parts.push(part(`the probe waits longer as the sockets grow (at least ${formatRatio(GROWTH)})`, compare(probeP50(largest), probeP50(smallest), 'above', GROWTH, names, micro)));
    } else {
      parts.push(part(`sleeps with idle clients (at most ${perCent(IDLE_CPU_PERCENT)})`, againstLine(cpu, 'at most', IDLE_CPU_PERCENT, perCent, 'server CPU')));
      if (rows.length > 1) parts.push(part(`the probe's wait does not grow (below ${formatRatio(GROWTH)})`, compare(probeP50(largest), probeP50(smallest), 'below', GROWTH, names, micro)));
    }
    return [verdict('busy-poll', `${rows[0].variant.label}: ${spins ? 'spins' : 'sleeps'} with idle clients`, parts, { cpuPercent: cpu, probeP50SmallUs: probeP50(smallest), probeP50LargeUs: probeP50(largest) })];
  });

/**
 * Coroutines: many connections on one thread, switching where a handler would block; a handler
 * that makes a real blocking call (one the scheduler cannot see: the `blockingCallMs` option)
 * stalls all the others. Figures: the named client's round trips, against the same model without
 * the call, and its p99 latency; threads beyond the idle server. p50 is no verdict here: between
 * two stalls the scheduler may serve the others several times.
 */
export const coroutines: ClaimRule = (context) => {
  const others = requireClient(context);
  const throughput = (row: Subject) => measured(context, row).flatMap((run) => resultsOf(run, others).map((r) => (r.durationSeconds > 0 ? r.roundTrips / r.durationSeconds : 0)));
  const p99 = (row: Subject) => measured(context, row).flatMap((run) => resultsOf(run, others).flatMap((r) => (r.latency.count > 0 ? [r.latency.p99Us] : [])));
  return context.rows.flatMap((row): ClaimVerdict[] => {
    const runs = measured(context, row);
    if (runs.length === 0) return [];
    const blockingCallMs = row.variant.options.blockingCallMs;
    const threads = runs.map((run) => grown(run, 'threadsPeak') ?? NaN).filter(Number.isFinite);
    const figures = { othersRoundTripsPerSecond: throughput(row), othersP99Us: p99(row), threadsAdded: threads, blockingCallMs };
    const oneThread = row.variant.declared.traits.coroutines ? 'coroutines: concurrency on one thread' : 'events: concurrency on one thread';
    if (blockingCallMs === 0) {
      return [
        verdict('coroutines', `${row.subject}: ${oneThread}`, [
          part(`${others} answered`, againstLine(throughput(row), 'at least', 1, rate, `round trips per second of ${others}`)),
          part('no thread added', againstLine(threads, 'below', 2, formatCount, 'threads added')),
        ], figures),
      ];
    }
    const plain = context.rows.find((other) => other.variant.model === row.variant.model && other.variant.options.blockingCallMs === 0);
    const parts = [
      plain
        ? part(
            `the round trips of ${others} fall to at most ${formatShare(STALL_THROUGHPUT_SHARE)} of what ${plain.variant.label} gives them`,
            compare(throughput(row), throughput(plain), 'below', STALL_THROUGHPUT_SHARE, { a: row.variant.label, b: plain.variant.label }, formatCount, 'round trips/s'),
          )
        : { claim: `the round trips of ${others} fall`, verdict: 'inconclusive' as const, measurement: `no ${row.variant.model} server without the blocking call in this lab to compare with` },
      part(
        `some requests of ${others} wait a whole blocking call (p99 at least ${micro(blockingCallMs * 1000 * STALL_SHARE)})`,
        againstLine(p99(row), 'at least', blockingCallMs * 1000 * STALL_SHARE, micro, 'p99'),
      ),
    ];
    return [verdict('coroutines', `${row.subject}: one blocking call (${blockingCallMs} ms) stalls every connection`, parts, figures)];
  });
};

/** The calls that read a connection's data: a model whose wait is elsewhere must find them ready. */
const DATA_READS = ['recvfrom', 'read', 'recvmsg', 'readv'];

/**
 * The two phases of a read: phase 1 waits for data to arrive, phase 2 copies it. Each model
 * spends phase 1 asleep in its own call, which its fingerprint declares (waitsIn): blocking in
 * accept4 or recvfrom, each thread of a thread-per-connection server in its own recvfrom, a
 * readiness model in select/poll/epoll_wait (its recvfrom then returns at once), sigio in its
 * signalfd read, uring in io_uring_enter; the busy loop never sleeps (it burns the CPU instead).
 * Figures from the eBPF observer: the share of the model's threads' time asleep in each call.
 */
export const twoPhases: ClaimRule = (context) =>
  context.rows.map((row) => {
    const figures = figuresOf(context, row);
    const declared = row.variant.declared;
    const waits = figures.trace?.waits ?? null;
    const parts: ClaimPart[] = [];
    const waitsIn = declared.fingerprint.waitsIn;
    const claim = waitsIn.length ? `it waits in ${joinWords(waitsIn, 'or')}` : 'it never waits in a call';
    if (!waits) {
      parts.push({ claim, verdict: 'inconclusive', measurement: 'no run timed its calls (the eBPF observer times them; strace does not: run with --tracer bpf)' });
      return verdict('two-phases', row.subject, parts, { blockedShare: null, longestWait: null });
    }
    const blocked = (names: readonly string[]) => sum(waits.rows.filter((r) => names.includes(r.syscall)).map((r) => r.blockedShare));
    const total = sum(waits.rows.map((r) => r.blockedShare));
    const longest = [...waits.rows].sort((a, b) => b.blockedShare - a.blockedShare)[0] ?? null;
    const slept = waits.threads === 1 ? `its thread slept ${formatShare(total)} of its time in calls` : `its ${formatCount(waits.threads)} threads slept ${formatShare(total)} of their time in calls`;
    const where = longest && longest.blockedShare > 0 ? `, most in ${longest.syscall} (${formatShare(longest.blockedShare)})` : '';
    if (waitsIn.length === 0) {
      const cpu = figures.measure?.cpuPercent?.median ?? null;
      const burns = cpu === null ? '' : `; its CPU ${perCent(cpu)} of a core`;
      parts.push({ claim, verdict: total < NEVER_WAITS_SHARE ? 'holds' : 'does not hold here', measurement: `${slept}${where}${total < NEVER_WAITS_SHARE ? `, under ${formatShare(NEVER_WAITS_SHARE)}` : `, not under ${formatShare(NEVER_WAITS_SHARE)}`}${burns}` });
    } else if (total < HARDLY_WAITS_SHARE) {
      parts.push({ claim, verdict: 'inconclusive', measurement: `${slept}${where}: under ${formatShare(HARDLY_WAITS_SHARE)}, too little to tell where (the load kept them busy)` });
    } else {
      const inDeclared = blocked(waitsIn);
      const holds = longest !== null && waitsIn.includes(longest.syscall);
      parts.push({ claim, verdict: holds ? 'holds' : 'does not hold here', measurement: `${slept}${where}${holds ? '' : `; in ${joinWords(waitsIn, 'or')} ${formatShare(inDeclared)}`}` });
      const dataReads = DATA_READS.filter((call) => !waitsIn.includes(call) && waits.rows.some((r) => r.syscall === call));
      if (!waitsIn.some((call) => DATA_READS.includes(call)) && dataReads.length) {
        const inReads = blocked(dataReads);
        // A read with its data there sleeps only when something else holds the CPU or the socket:
        // on a machine busy with other work, a read that slept is no finding about the model.
        const judged: Judged = { verdict: inReads < AT_ONCE_SHARE ? 'holds' : 'does not hold here', text: `asleep in ${joinWords(dataReads, 'and')} ${formatShare(inReads)} of the time` };
        parts.push(part(`its reads (${joinWords(dataReads, 'and')}) return at once (asleep in them under ${formatShare(AT_ONCE_SHARE)} of the time)`, mindTheMachine(judged, countedRunsOf(context.results, row))));
      }
      if (declared.traits.perConnection === 'thread') {
        const echo = context.results.lab.clients.filter((c) => c.mode === 'echo');
        const connections = sum(echo.map((c) => c.connections)) * context.results.environment.clientReplicas;
        const readers = Math.max(0, ...waits.rows.filter((r) => DATA_READS.includes(r.syscall)).map((r) => r.mainWaitOf));
        // A connection unanswered in its warm-up has a thread still starting when the window begins.
        const warmups = countedRunsOf(context.results, row).flatMap((run) => echo.flatMap((c) => resultsOf(run, c.name).map((r) => r.warmup)));
        const unanswered = Math.max(0, ...warmups.map((w) => w.connections - w.answered));
        const judged: Judged =
          readers >= connections
            ? { verdict: 'holds', text: `${plural(readers, 'thread')} slept longest in a read` }
            : unanswered > 0
              ? { verdict: 'inconclusive', text: `${plural(readers, 'thread')} slept longest in a read, and the window began with threads still starting: up to ${plural(unanswered, 'connection')} of a client unanswered in its warm-up` }
              : { verdict: 'does not hold here', text: `${plural(readers, 'thread')} slept longest in a read` };
        parts.push({ claim: `each connection's thread waits in its own read (${plural(connections, 'echo connection')})`, verdict: judged.verdict, measurement: judged.text });
      }
    }
    return verdict('two-phases', row.subject, parts, {
      blockedShare: total,
      longestWait: longest?.syscall ?? null,
      longestWaitShare: longest?.blockedShare ?? null,
      threads: waits.threads,
    });
  });

/**
 * The observer effect: a tracer that stops the server at every call (strace, ptrace) slows it
 * so much that its timings describe the tracer, not the model; the eBPF observer, which stops
 * no thread, keeps most of the pace. Rows: each model untraced and under each tracer (variants
 * with their own `tracer`). Figures: round trips per second of each run, and p50 latency.
 */
export const observerEffect: ClaimRule = (context) => {
  const byModel = new Map<string, Subject[]>();
  for (const row of context.rows) byModel.set(row.variant.model, [...(byModel.get(row.variant.model) ?? []), row]);
  const throughput = (row: Subject) => measured(context, row).flatMap((run) => {
    const value = runThroughput(run);
    return value === null ? [] : [value];
  });
  const p50 = (row: Subject) => figuresOf(context, row).measure?.latency?.p50Us ?? null;
  return [...byModel.values()].flatMap((rows) => {
    const untraced = rows.find((row) => row.variant.tracer === 'none');
    const strace = rows.find((row) => row.variant.tracer === 'strace');
    const bpf = rows.find((row) => row.variant.tracer === 'bpf');
    if (!untraced || !strace) return [];
    const names = (row: Subject) => ({ a: row.variant.label, b: untraced.variant.label });
    const parts = [
      part(`strace keeps under ${formatRatio(DISTORTS_SHARE)} of the untraced round trips`, compare(throughput(strace), throughput(untraced), 'below', DISTORTS_SHARE, names(strace), formatCount, 'round trips/s')),
    ];
    if (bpf) parts.push(part('the eBPF observer keeps more of them than strace', compare(throughput(bpf), throughput(strace), 'above', 1, { a: bpf.variant.label, b: strace.variant.label }, formatCount, 'round trips/s')));
    return [
      verdict('observer-effect', `${untraced.variant.model}: untraced, ${bpf ? 'bpf, ' : ''}strace`, parts, {
        untracedRoundTripsPerSecond: throughput(untraced),
        straceRoundTripsPerSecond: throughput(strace),
        bpfRoundTripsPerSecond: bpf ? throughput(bpf) : null,
        untracedP50Us: p50(untraced),
        straceP50Us: p50(strace),
        bpfP50Us: bpf ? p50(bpf) : null,
      }),
    ];
  });
};

/**
 * Latency under load: every server is offered the same open-loop load (the named client's `rate`
 * on each of its connections) and each request is timed from its scheduled send time
 * (src/clients/rate.ts), so a request that waited behind another counts its wait. The line is the
 * send interval, 1/rate: a request answered within it is answered before its connection's next one
 * is due, so no queue builds; one answered later delayed the next.
 * - A server that serves every connection at once (readiness, completion, coroutines, an event
 *   loop, a thread per connection; a pool with a thread for each connection) keeps its p99 below
 *   the interval and achieves the offered rate (at least KEPT_UP_SHARE of it).
 * - One that serves fewer connections at once than the client opened (blocking: one; a pool of
 *   fewer threads) leaves the others' requests queued: its p99 is at least the interval; and, beyond
 *   the run-to-run spread, above the highest p99 of the servers that serve every connection.
 * A p99 above the interval on a busy machine (mindTheMachine), or with a client that itself sent
 * late by CLIENT_LAG_SHARE of the interval (mindTheClient), in every repetition, is inconclusive.
 * Figures per server (per repetition, the client's replicas together as runLatency merges them):
 * p50, p99 and p99.9 from the scheduled send time, the offered and achieved rates, the client's
 * send lag.
 */
export const latencyUnderLoad: ClaimRule = (context) => {
  const name = requireClient(context);
  const perRun = (row: Subject) =>
    measured(context, row).flatMap((run) => {
      const results = resultsOf(run, name);
      const latency = runLatency(results);
      const offered = offeredRate(results);
      const rate = results.find((r) => r.openLoop)?.openLoop?.ratePerConnection ?? null;
      if (latency === null || offered === null || rate === null) return [];
      const lowerBounds = sum(results.map((r) => r.openLoop?.lowerBounds ?? 0));
      return [{ latency, offered, rate, lowerBounds, sendLagUs: sendLagOf(results), achieved: achievedRate(results), connections: sum(results.map((r) => r.connected)) }];
    });
  const judged = context.rows.flatMap((row) => {
    const runs = perRun(row);
    if (runs.length === 0) {
      const closed = measured(context, row).some((run) => resultsOf(run, name).some((r) => r.latency.count > 0 && !r.openLoop));
      const why = closed ? `${name} ran closed-loop (no rate): latency under load needs an open-loop client` : `${name} measured no latency in a run that counts`;
      return [{ row, runs, queues: false, verdict: verdict('latency-under-load', row.subject, [{ claim: 'p99 from the scheduled send time', verdict: 'inconclusive', measurement: why }], { p99Us: null }) }];
    }
    const perConnection = runs[0].rate;
    const intervalUs = 1e6 / perConnection;
    const connections = Math.min(...runs.map((r) => r.connections));
    const capacity = servesAtOnce(row.variant.declared.traits, row.variant.options.threads);
    const queues = capacity < connections;
    const p99 = runs.map((r) => r.latency.p99Us);
    const offered = median(runs.map((r) => r.offered));
    const achievedShares = runs.map((r) => (r.offered > 0 ? r.achieved / r.offered : 0));
    const achievedText = `achieved ${span(runs.map((r) => r.achieved), rate)} of ${rate(offered)} offered`;
    const interval = `the send interval, ${micro(intervalUs)} (${formatCount(perConnection)} requests per second per connection)`;
    const parts: ClaimPart[] = [];
    const serves = capacity === Infinity ? 'it serves every connection at once' : `it serves ${plural(capacity, 'connection')} at a time of ${formatCount(connections)}`;
    const machineRuns = measured(context, row);
    if (queues) {
      const p99Part = againstLine(p99, 'at least', intervalUs, micro, 'p99 from the scheduled send time');
      const unanswered = Math.min(...runs.map((r) => r.lowerBounds));
      const bound = unanswered > 0 ? ` (a lower bound: at least ${plural(unanswered, 'request')} a run had no reply by the end and count at their wait so far)` : '';
      const behind = achievedShares.every((share) => share < KEPT_UP_SHARE) ? `; it could not keep up: ${achievedText}` : `; ${achievedText}`;
      parts.push(part(`requests queue (${serves}): p99 at least ${interval}`, { ...p99Part, text: `${p99Part.text}${bound}${behind}` }));
    } else {
      const below = againstLine(p99, 'below', intervalUs, micro, 'p99 from the scheduled send time');
      parts.push(part(`p99 below ${interval}`, mindTheMachine(mindTheClient(below, runs.map((r) => r.sendLagUs), intervalUs), machineRuns)));
      const kept = againstLine(achievedShares, 'at least', KEPT_UP_SHARE, formatShare, `${achievedText}, a share of`);
      parts.push(part(`it keeps up: achieved at least ${formatShare(KEPT_UP_SHARE)} of the offered rate`, mindTheMachine(kept, machineRuns)));
    }
    const figures = {
      p50Us: runs.map((r) => r.latency.p50Us),
      p99Us: p99,
      p999Us: runs.every((r) => r.latency.p999Us !== undefined) ? runs.map((r) => r.latency.p999Us!) : null,
      sendIntervalUs: intervalUs,
      offeredPerSecond: offered,
      achievedPerSecond: runs.map((r) => r.achieved),
      sendLagP99Us: runs.map((r) => r.sendLagUs),
      connections,
      servesAtOnce: capacity === Infinity ? null : capacity,
    };
    const subject = `${row.subject}: ${queues ? 'queues' : 'keeps p99 below the send interval'}`;
    return [{ row, runs, queues, verdict: verdict('latency-under-load', subject, parts, figures) }];
  });
  // Each server that queues against the highest p99 of those that serve every connection, repetition by repetition.
  const keepers = judged.filter((j) => !j.queues && j.runs.length > 0);
  const comparisons = judged
    .filter((j) => j.queues && keepers.length > 0)
    .map((j) => {
      // The i-th run that counts of each (a failed run leaves a server one short): every value is in some maximum.
      const repetitions = Math.max(...keepers.map((k) => k.runs.length));
      const highest = Array.from({ length: repetitions }, (_, i) => Math.max(...keepers.flatMap((k) => (i < k.runs.length ? [k.runs[i].latency.p99Us] : []))));
      const others = `the highest of ${joinWords(keepers.map((k) => k.row.variant.label))}`;
      const compared = compare(j.runs.map((r) => r.latency.p99Us), highest, 'above', 1, { a: j.row.variant.label, b: others }, micro, 'p99');
      return verdict('latency-under-load', `${j.row.variant.label} vs the servers that serve every connection`, [part('p99 above every one of theirs, beyond the spread', compared)], {
        p99Us: j.runs.map((r) => r.latency.p99Us),
        highestOtherP99Us: highest,
        ratio: compared.ratio,
      });
    });
  return [...judged.map((j) => j.verdict), ...comparisons];
};

// ---- C10K: idle connections by the ten thousand -------------------------------------------------

/** "C10K": ten thousand clients at once (Dan Kegel, "The C10K problem", 1999, http://www.kegel.com/c10k.html). */
export const C10K = 10_000;
/**
 * "A few KiB" of user-space memory per idle connection: at most this much. An event loop keeps a
 * few objects per connection (an entry in its table, a closure or a coroutine's frame, maybe a
 * small buffer); a thread per connection costs at least THREAD_MEMORY_KIB (64 KiB, its stack's
 * touched pages), a Node worker about 8 MB.
 */
export const FEW_KIB_PER_CONNECTION = 16;
/**
 * The published figure: about 2-3 KB of kernel memory per idle TCP socket. It is about the size
 * of the kernel's struct tcp_sock (2-2.4 KB on x86-64 5.x and 6.x kernels, `pahole -C tcp_sock`;
 * the TCP slab's object size, which /proc/slabinfo shows and the report quotes), the figure
 * C10K write-ups give for an idle connection; approximate: it leaves out the socket's inode,
 * dentry, struct file and epoll item, and data waiting in its buffers (see the discussion in
 * https://stackoverflow.com/questions/8646190). The write-ups do not tell KB from KiB, which is
 * well inside the approximation: taken here as KiB.
 */
export const PUBLISHED_KERNEL_KIB_PER_SOCKET = { low: 2, high: 3 } as const;
/**
 * "About" the published figure: within this factor of its range, either way (1-6 KiB). Published
 * figures are rounded, for other kernels, and count more or fewer of a socket's parts: a
 * measurement within a factor 2 is the same order of magnitude; beyond it, the figure misleads.
 */
export const ABOUT_FACTOR = 2;

/** Readiness or completion reported by the kernel for many connections to one thread: the servers the C10K claim is about. */
function isEventDriven(declared: ModelDeclaration): boolean {
  const traits = declared.traits;
  return traits.perConnection === 'none' && traits.concurrency === 'all' && traits.fdCeiling === 'RLIMIT_NOFILE' && ['ready-list', 'completion', 'runtime-loop', 'signal'].includes(traits.waits);
}

/** Every value of `values` inside [low, high]: holds; none: does not hold; some: inconclusive. */
function withinBand(values: readonly number[], low: number, high: number, unit: (n: number) => string, what: string): Judged {
  if (values.length === 0) return { verdict: 'inconclusive', text: `${what}: not measured` };
  const shown = `${what} ${values.length > 1 ? `[${unit(Math.min(...values))}–${unit(Math.max(...values))}]` : unit(values[0])}`;
  const inside = values.map((v) => v >= low && v <= high);
  if (inside.every(Boolean)) return { verdict: 'holds', text: `${shown}, within ${unit(low)}–${unit(high)}` };
  if (!inside.some(Boolean)) return { verdict: 'does not hold here', text: `${shown}, outside ${unit(low)}–${unit(high)}` };
  return { verdict: 'inconclusive', text: `${shown}: the repetitions fall on both sides of the band ${unit(low)}–${unit(high)}` };
}

/**
 * C10K and beyond: an event-driven server holds ten thousand idle connections and more (up to
 * RLIMIT_NOFILE) at a few KiB of user-space memory each, the kernel's memory is about the
 * published 2-3 KiB per socket, and a probe's wait barely grows with the idle crowd. Figures:
 * analysis/connection-costs.ts, for the named hold client, whose crowd the lab sweeps; per
 * connection from the smallest step to the largest, each run at the largest. Two verdicts per
 * server: its memory (with the connections held), and the probe's latency (compared beyond the
 * spread: it needs MIN_REPETITIONS runs a step for a verdict).
 */
export const c10k: ClaimRule = (context) => {
  const crowd = requireClient(context);
  const costs = connectionCosts(context.results) ?? [];
  const kib = formatKibibytesSigned;
  return byVariant(context).flatMap((rows): ClaimVerdict[] => {
    const variant = rows[0].variant;
    if (!isEventDriven(variant.declared)) {
      const traits = variant.declared.traits;
      const why = `${variant.declared.name} waits by ${traits.waits}, with ${traits.perConnection === 'none' ? 'no thread' : `a ${traits.perConnection}`} per connection, serving ${traits.concurrency === 'all' ? 'every connection' : traits.concurrency === 'one' ? 'one client' : 'a pool'} at a time, its ceiling ${traits.fdCeiling}: the claim is about one thread that the kernel tells which of many connections are ready (see the idle-scan, fd-ceiling and threads-vs-events labs)`;
      return [verdict('c10k', `${variant.label}: not an event-driven server`, [{ claim: 'an event-driven server', verdict: 'inconclusive', measurement: why }], { eventDriven: 0 })];
    }
    const cost = costs.find((c) => c.variant === variant.label && c.client === crowd);
    if (!cost) {
      const why = `the lab must sweep ${crowd}'s idle crowd (sweep: { client: ${crowd}, connections: [0, ...] }): per-connection figures come from its steps`;
      return [verdict('c10k', `${variant.label}: idle connections at a few KiB each`, [{ claim: 'memory per idle connection', verdict: 'inconclusive', measurement: why }], { steps: 0 })];
    }
    const largest = rows[rows.length - 1];
    const runs = measured(context, largest);
    const asked = largest.sweepValue ?? context.results.lab.clients.find((c) => c.name === crowd)?.connections ?? 0;
    const connected = (run: RunRecord) => sum(resultsOf(run, crowd).map((r) => r.connected));
    const closedIn = (run: RunRecord) => sum(resultsOf(run, crowd).map((r) => r.closedByServer));
    const probes = runs.map((run) => resultsOf(run, crowd).flatMap((r) => (r.probe ? [r.probe] : [])));
    const answered = probes.map((list) => sum(list.map((p) => p.answered)));
    const sent = sum(probes.flat().map((p) => p.sent));
    const errors = new Map<string, number>();
    for (const run of runs) for (const r of resultsOf(run, crowd)) for (const [code, n] of Object.entries(r.connectErrors)) errors.set(code, (errors.get(code) ?? 0) + n);
    const needed = asked >= C10K ? C10K : asked;
    const hard = figuresOf(context, largest).limits?.nofileHard ?? null;
    const fds = runs.flatMap((run) => (run.proc ? [run.proc.fdsPeak] : []));
    const heldText =
      `${joinWords(runs.map((run) => formatCount(connected(run))))} of ${plural(asked, 'idle connection')} connected (${plural(runs.length, 'repetition')})` +
      (errors.size ? `, ${joinWords([...errors].map(([code, n]) => `${code} ${formatCount(n)}`))} failed to connect` : '') +
      `; ${formatCount(sum(runs.map(closedIn)))} closed by the server; the probe answered ${formatCount(sum(answered))} of ${plural(sent, 'request')}` +
      (fds.length ? `; the server's fds peaked at ${formatCount(Math.max(...fds))}` : '') +
      (hard !== null ? ` (its hard RLIMIT_NOFILE ${formatCount(hard)})` : '');
    const holds = everyRun(runs.map((run, i) => connected(run) >= needed && answered[i] > 0 && closedIn(run) === 0), heldText);
    const per = cost.perConnection;
    const span = per ? ` per connection, ${formatCount(per.from)} to ${formatCount(per.to)} idle` : '';
    const user = per?.pssKb
      ? againstLine(per.pssKb.values, 'at most', FEW_KIB_PER_CONNECTION, kib, "the server's PSS added")
      : { verdict: 'inconclusive' as const, text: per ? "the server's PSS: not measured" : 'one sweep step: per-connection figures need two' };
    const rss = per?.rssKb ? `; peak RSS ${kib(per.rssKb.median)}` : '';
    const [low, high] = [PUBLISHED_KERNEL_KIB_PER_SOCKET.low / ABOUT_FACTOR, PUBLISHED_KERNEL_KIB_PER_SOCKET.high * ABOUT_FACTOR];
    const source = cost.kernelFrom === 'slabinfo' ? 'slab objects gained, /proc/slabinfo, TIME_WAIT sockets and /proc inodes left out' : 'Slab gained, /proc/meminfo (slabinfo unreadable)';
    const kernel = per?.kernelPerSocketKb
      ? withinBand(per.kernelPerSocketKb.values, low, high, kib, `kernel memory per socket`)
      : { verdict: 'inconclusive' as const, text: per ? "the kernel's memory: not measured" : 'one sweep step: per-connection figures need two' };
    const tcp = cost.caches.find((c) => c.name === 'TCP');
    const tcpText = tcp ? `; of it, ${formatQuantity(tcp.objectsPerConnection)} TCP objects per connection of ${formatCount(tcp.objectBytes)} bytes (struct tcp_sock)` : '';
    const kernelText = per?.kernelKb
      ? ` (${kib(per.kernelKb.median)} per connection over its ${cost.socketsPerConnection} sockets, client's and server's, both on this kernel; ${source}${tcpText}); published: about ${PUBLISHED_KERNEL_KIB_PER_SOCKET.low}–${PUBLISHED_KERNEL_KIB_PER_SOCKET.high} KiB`
      : '';
    const memory = verdict(
      'c10k',
      `${variant.label}: ${asked >= C10K ? `${formatCount(asked)} idle connections` : `idle connections (${formatCount(asked)})`} at a few KiB each`,
      [
        part(asked >= C10K ? `holds ${formatCount(C10K)} idle connections or more` : `holds every idle connection asked for (${formatCount(asked)})`, holds),
        part(`user space: a few KiB per connection (at most ${formatCount(FEW_KIB_PER_CONNECTION)} KiB)`, { ...user, text: `${user.text}${span}${rss}` }),
        part(`kernel: about ${PUBLISHED_KERNEL_KIB_PER_SOCKET.low}–${PUBLISHED_KERNEL_KIB_PER_SOCKET.high} KiB per socket, as published (within ${formatRatio(ABOUT_FACTOR)})`, { ...kernel, text: `${kernel.text}${kernelText}` }),
      ],
      {
        connectionsHeld: runs.map(connected),
        pssPerConnectionKb: per?.pssKb?.values ?? null,
        rssPerConnectionKb: per?.rssKb?.values ?? null,
        kernelPerConnectionKb: per?.kernelKb?.values ?? null,
        kernelPerSocketKb: per?.kernelPerSocketKb?.values ?? null,
        slabPerConnectionKb: per?.slabKb?.values ?? null,
        tcpObjectsPerConnection: tcp?.objectsPerConnection ?? null,
      },
    );
    if (rows.length < 2) return [memory];
    const [first, last] = [cost.steps[0], cost.steps[cost.steps.length - 1]];
    const names = { a: `${formatCount(last.asked)} idle`, b: `${formatCount(first.asked)} idle` };
    const grows = compare(last.probeP50Us?.values ?? [], first.probeP50Us?.values ?? [], 'below', GROWTH, names, micro, 'p50');
    const p99 = last.probeP99Us && first.probeP99Us ? `; p99 ${micro(last.probeP99Us.median)} against ${micro(first.probeP99Us.median)} (medians)` : '';
    const latency = verdict(
      'c10k',
      `${variant.label}: the probe's wait as idle connections grow`,
      [part(`the probe's p50 does not grow with idle connections (below ${formatRatio(GROWTH)} that at ${formatCount(first.asked)})`, { ...grows, text: `${grows.text}${p99}` })],
      {
        probeP50SmallUs: first.probeP50Us?.values ?? null,
        probeP50LargeUs: last.probeP50Us?.values ?? null,
        probeP99SmallUs: first.probeP99Us?.values ?? null,
        probeP99LargeUs: last.probeP99Us?.values ?? null,
        growth: grows.ratio,
      },
    );
    return [memory, latency];
  });
};

export const CLAIM_RULES: Record<VerdictRuleName, ClaimRule> = {
  'two-phases': twoPhases,
  'observer-effect': observerEffect,
  fingerprints,
  starvation,
  'fd-ceiling': fdCeiling,
  'idle-scan': idleScan,
  'one-connection': oneConnection,
  'threads-vs-events': threadsVsEvents,
  'lt-vs-et': levelVsEdge,
  'busy-poll': busyPoll,
  coroutines,
  'latency-under-load': latencyUnderLoad,
  c10k,
};

/**
 * What a lab says of a server of one's own before its rules judge it: that it speaks the echo
 * protocol (a wrong reply: does not hold here, whatever its calls), and, when it claims no model
 * and fits none, why no rule judges it: every run of it failed, the lab counts no syscalls, or its
 * calls and traits fit no model.
 */
function ownServerVerdicts(results: Measurement, figures: readonly SubjectFigures[], rule: VerdictRuleName): ClaimVerdict[] {
  return results.lab.variants.flatMap((variant) => {
    if (!variant.own) return [];
    const verdicts: ClaimVerdict[] = [];
    const all = results.runs.filter((run) => run.variant === variant.label);
    const counted = all.filter((run) => !isFailed(run));
    const wrong = sum(counted.flatMap((run) => clientResults(run).map((r) => r.wrongReplies)));
    if (wrong > 0) {
      const judged: Judged = { verdict: 'does not hold here', text: `${plural(wrong, 'reply was', 'replies were')} wrong in ${plural(counted.length, 'run')}: the echo protocol sends every byte back, a-z upper-cased, in order` };
      verdicts.push(verdict(rule, `${variant.label}: speaks the echo protocol`, [part('every reply is the request, a-z upper-cased', judged)], { wrongReplies: wrong }));
    }
    if (variant.declared !== null) return verdicts;
    const claim = "fits a model's fingerprint";
    const trace = figures.find((f) => f.variant === variant.label && f.trace)?.trace ?? null;
    const failed = all.find((run) => isFailed(run) && run.error);
    const judged: Judged =
      all.length > 0 && counted.length === 0
        ? { verdict: 'inconclusive', text: `every run of it failed (the first: ${failed?.error ?? 'no reason recorded'}): nothing to classify it by` }
        : !trace
          ? { verdict: 'inconclusive', text: 'this lab counts no syscalls (trace: false), so nothing classifies it: give the model it claims to be (as: MODEL, --as MODEL)' }
          : {
              verdict: 'does not hold here',
              text: `its calls and traits fit none of ${plural(variant.own.candidates.length, 'model')}: ${joinWords(trace.window.serving.slice(0, 6).map((s) => `${s.syscall} ${formatCount(s.calls)}`))}${variant.own.evidence ? `; ${variant.own.evidence}` : ''}; not judged by the lab's claim`,
            };
    verdicts.push(verdict(rule, variant.label, [part(claim, judged)], { fits: 0 }));
    return verdicts;
  });
}

/** The verdicts of the lab's rules on its figures, rule after rule; none when the lab names no rule. */
export function judgeClaim(results: Measurement, figures: readonly SubjectFigures[]): ClaimVerdict[] {
  const rules = verdictRulesOf(results.lab);
  const own = rules.length ? ownServerVerdicts(results, figures, rules[0].rule as VerdictRuleName) : [];
  return [...own, ...judgeRules(results, figures, rules)];
}

function judgeRules(results: Measurement, figures: readonly SubjectFigures[], rules: ReturnType<typeof verdictRulesOf>): ClaimVerdict[] {
  return rules.flatMap((named) => {
    const rule = CLAIM_RULES[named.rule as VerdictRuleName];
    if (!rule) throw new Error(`results name the verdict rule ${JSON.stringify(named.rule)}, which this iolab does not have`);
    return rule({
      results,
      rows: subjectsOf(results).filter((row): row is DeclaredSubject => row.variant.declared !== null),
      figures: new Map(figures.map((f) => [f.subject, f])),
      client: named.client,
    });
  });
}
