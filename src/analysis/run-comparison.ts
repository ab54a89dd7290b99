// Two runs of one lab side by side (`iolab compare A B`): for every subject present in both, each
// main figure in A and in B, B's median over A's, and whether the difference is beyond the
// run-to-run spread, judged as every comparison of the analysis is (compare.ts): B differs from A
// only when every repetition of B is beyond every repetition of A, with at least MIN_REPETITIONS a
// side; otherwise the difference is within the spread, or the runs have too few repetitions to
// tell. And every verdict of either run, changed or not, and what differs in the environment and
// the lab's settings, since that may explain a difference.
//
// The figures come from what each results.json stores (the analysis written when its lab ended).
// Where the stored figure is a median without its repetitions (latency percentiles, the probe's,
// threads, fds and memory added), each repetition's value is computed again from the file's runs
// by the same functions the analysis used (figures.ts), so that their median is the stored one.
import { UsageError } from '../errors.js';
import { armSubject, type ArmFigures, type ExperimentRecord } from '../shared/experiments.js';
import { formatCount, formatSeconds, plural } from '../shared/format.js';
import { clientResults, type Results, type RunRecord, type Spread, type SubjectFigures } from '../shared/results.js';
import {
  FORMATS,
  type ComparedUnit,
  type Difference,
  type FigureComparison,
  type RunComparison,
  type SpreadJudgement,
  type SubjectComparison,
  type VerdictComparison,
} from '../shared/run-comparison.js';
import { compare, formatChance, MIN_REPETITIONS, SIGNIFICANCE } from './compare.js';
import { grown, median, runLatency, runsOf, spreadOf, subjectsOf } from './figures.js';

/** "A's repetitions 1.61 s–1.62 s", "A's repetitions all 201 ms" (as written). */
function repetitionsText(run: 'A' | 'B', spread: Spread, format: (n: number) => string): string {
  const [low, high] = [format(spread.min), format(spread.max)];
  return low === high ? `${run}'s repetitions all ${low}` : `${run}'s repetitions ${low}–${high}`;
}

/** "+120", "−3.2 µs", or "0" (in any unit): a difference with its sign. */
function signedText(difference: number, format: (n: number) => string): string {
  if (difference === 0) return '0';
  const magnitude = format(Math.abs(difference));
  // A difference too small for the figure's format ("<0.001") is written with its own digits.
  const text = magnitude.startsWith('<') ? String(Number(Math.abs(difference).toPrecision(2))) : magnitude;
  return `${difference > 0 ? '+' : '−'}${text}`;
}

/**
 * Whether B's repetitions differ from A's beyond the run-to-run spread (see SpreadJudgement), by
 * compare.ts's rule: ranges apart, at least MIN_REPETITIONS a side. `a` and `b` are the figure
 * over each run's repetitions (null: not measured); `unit` formats the numbers of the text.
 */
export function judgeSpread(a: Spread | null, b: Spread | null, unit: ComparedUnit): SpreadJudgement {
  const format = FORMATS[unit];
  const measuredA = a !== null && a.values.length > 0;
  const measuredB = b !== null && b.values.length > 0;
  if (!measuredA || !measuredB) {
    const missing = !measuredA && !measuredB ? 'both' : !measuredA ? 'A' : 'B';
    return { outcome: 'not measured', missing, text: `not compared: not measured in ${missing === 'both' ? 'either run' : missing}` };
  }
  const repetitions = { a: a.values.length, b: b.values.length };
  if (Math.min(repetitions.a, repetitions.b) < MIN_REPETITIONS) {
    const counts =
      repetitions.a === repetitions.b
        ? `${plural(repetitions.a, 'repetition')} a side (a verdict needs ${MIN_REPETITIONS})`
        : `${plural(repetitions.a, 'repetition')} in A, ${formatCount(repetitions.b)} in B (a verdict needs ${MIN_REPETITIONS} a side)`;
    return { outcome: 'too few', repetitions, needed: MIN_REPETITIONS, text: `inconclusive: ${counts}` };
  }
  // Is B above A (factor 1)? Holds: every repetition of B above A's; does not hold: every one below.
  const judged = compare(b.values, a.values, 'above', 1, { a: 'B', b: 'A' }, format);
  if (judged.verdict !== 'inconclusive' && judged.chance !== null) {
    const outcome = judged.verdict === 'holds' ? 'higher' : 'lower';
    const side = outcome === 'higher' ? 'above' : 'below';
    return { outcome, chance: judged.chance, text: `${outcome} in B, beyond the spread: every repetition ${side} every one of A (${formatChance(judged.chance)} by chance)` };
  }
  const difference = b.median - a.median;
  return {
    outcome: 'within',
    difference,
    text: `within the spread: B − A is ${signedText(difference, format)}; ${repetitionsText('A', a, format)}, ${repetitionsText('B', b, format)}`,
  };
}

/** B's median over A's, or why there is none: a figure not measured, 0 in A, or negative. */
function ratioOf(a: Spread | null, b: Spread | null): Pick<FigureComparison, 'ratio' | 'noRatio'> {
  if (a === null || b === null) return { ratio: null, noRatio: `not measured in ${a === null && b === null ? 'either run' : a === null ? 'A' : 'B'}` };
  if (a.median === 0) return { ratio: null, noRatio: b.median === 0 ? '0 in both runs' : '0 in A' };
  if (a.median < 0 || b.median < 0) {
    // A growth below the idle server's (memory freed meanwhile): no ratio of the two means anything.
    return { ratio: null, noRatio: `below 0 in ${a.median < 0 && b.median < 0 ? 'both runs' : a.median < 0 ? 'A' : 'B'}` };
  }
  const ratio = b.median / a.median;
  return Number.isFinite(ratio) ? { ratio, noRatio: null } : { ratio: null, noRatio: 'too large a ratio to write' };
}

function figure(name: string, unit: ComparedUnit, a: Spread | null, b: Spread | null): FigureComparison {
  return { figure: name, unit, a, b, ...ratioOf(a, b), judgement: judgeSpread(a, b, unit) };
}

/** A figure that is one value per run standing for several repetitions (a ratio of medians): shown, not judged. */
function shownFigure(name: string, unit: ComparedUnit, a: Spread | null, b: Spread | null, reason: string): FigureComparison {
  return { figure: name, unit, a, b, ...ratioOf(a, b), judgement: { outcome: 'not judged', text: `not judged: ${reason}` } };
}

/** A figure of each measured run of a subject that counts, as a spread; null without any. */
function perRepetition(results: Results, subject: string, value: (run: RunRecord) => number | null | undefined): Spread | null {
  const row = subjectsOf(results).find((s) => s.subject === subject);
  if (!row) return null;
  const values = runsOf(results, row, 'measure').map(value);
  return spreadOf(values.filter((v): v is number => v !== null && v !== undefined));
}

/** The figures of a server (or a server at one sweep value) in both runs, in the lab report's order. */
function compareServer(a: Results, b: Results, sa: SubjectFigures, sb: SubjectFigures): SubjectComparison {
  const subject = sa.subject;
  const latency = (results: Results, pick: 'p50Us' | 'p99Us') => perRepetition(results, subject, (run) => runLatency(clientResults(run, 'echo'))?.[pick]);
  const added = (results: Results, pick: 'threadsPeak' | 'fdsPeak' | 'peakRssKb' | 'pssKb') => perRepetition(results, subject, (run) => grown(run, pick));
  // A hold client's probe: each run's p50 (the median of its probes', with several hold clients).
  const probe = (results: Results) =>
    perRepetition(results, subject, (run) => {
      const p50s = clientResults(run, 'hold').flatMap((c) => (c.probe && c.probe.latency.count > 0 ? [c.probe.latency.p50Us] : []));
      return p50s.length ? median(p50s) : null;
    });
  const all = [
    figure('round trips/s', 'count', sa.measure?.throughput ?? null, sb.measure?.throughput ?? null),
    figure('latency p50', 'microseconds', latency(a, 'p50Us'), latency(b, 'p50Us')),
    figure('latency p99', 'microseconds', latency(a, 'p99Us'), latency(b, 'p99Us')),
    figure('probe latency p50', 'microseconds', probe(a), probe(b)),
    figure('server CPU', 'percent', sa.measure?.cpuPercent ?? null, sb.measure?.cpuPercent ?? null),
    figure('server CPU per round trip', 'microseconds', sa.measure?.cpuPerRoundTripUs ?? null, sb.measure?.cpuPerRoundTripUs ?? null),
    figure('serving syscalls per round trip', 'quantity', sa.trace?.servingPerRoundTrip ?? null, sb.trace?.servingPerRoundTrip ?? null),
    figure('threads added', 'whole', added(a, 'threadsPeak'), added(b, 'threadsPeak')),
    figure('fds added', 'whole', added(a, 'fdsPeak'), added(b, 'fdsPeak')),
    figure('RSS added', 'kibibytes', added(a, 'peakRssKb'), added(b, 'peakRssKb')),
    figure('PSS added', 'kibibytes', added(a, 'pssKb'), added(b, 'pssKb')),
  ];
  const measured = (f: FigureComparison) => f.a !== null || f.b !== null;
  return { subject, figures: all.filter(measured), unmeasured: all.filter((f) => !measured(f)).map((f) => f.figure) };
}

/** An experiment's arm in both runs: its time, its ratio to the baseline, its CPU, its round trips, its switches (those that apply). */
function compareArm(record: ExperimentRecord, subject: string, fa: ArmFigures, fb: ArmFigures): SubjectComparison {
  const declared = record.arms.find((arm) => arm.part === fa.part && arm.arm === fa.arm);
  const baseline = record.arms.find((arm) => arm.part === fa.part && arm.baseline);
  const all = [
    figure('time', 'wallSeconds', fa.wallSeconds, fb.wallSeconds),
    ...(declared?.baseline
      ? []
      : [shownFigure(`× ${baseline?.label ?? 'the baseline'}`, 'times', fa.toBaseline, fb.toBaseline, 'a ratio of medians, one value per run (its times are compared above)')]),
    figure('CPU', 'percent', fa.cpuPercent, fb.cpuPercent),
    figure('one round trip', 'wallSeconds', fa.fetchSeconds, fb.fetchSeconds),
    figure('round trips added up', 'wallSeconds', fa.waitedSeconds, fb.waitedSeconds),
    figure('per switch', 'nanoseconds', fa.perSwitchNs, fb.perSwitchNs),
  ];
  // What does not apply to an arm (round trips of CPU-only jobs, switches of serial) is left out.
  return { subject, figures: all.filter((f) => f.a !== null || f.b !== null), unmeasured: [] };
}

/** The subjects of each run by name: its servers (and sweep values), or an experiment's arms. */
function serverSubjects(results: Results): Map<string, SubjectFigures> {
  return new Map(results.analysis.subjects.map((s) => [s.subject, s]));
}

function armSubjects(results: Results): Map<string, ArmFigures> {
  const record = results.experiment!;
  return new Map((results.analysis.experiment?.arms ?? []).map((f) => [armSubject(record, f), f]));
}

/** Every (rule, subject) judged in either run: A's order, then B's own. */
function compareVerdicts(a: Results, b: Results): VerdictComparison[] {
  const key = (v: { rule: string; subject: string }) => `${v.rule}\u0000${v.subject}`;
  const inB = new Map(b.analysis.verdicts.map((v) => [key(v), v]));
  const inA = new Map(a.analysis.verdicts.map((v) => [key(v), v]));
  const fromA = a.analysis.verdicts.map((va): VerdictComparison => {
    const vb = inB.get(key(va)) ?? null;
    return { rule: va.rule, subject: va.subject, a: va, b: vb, change: vb === null ? 'only in A' : vb.verdict === va.verdict ? 'unchanged' : 'changed' };
  });
  const onlyB = b.analysis.verdicts.filter((vb) => !inA.has(key(vb))).map((vb): VerdictComparison => ({ rule: vb.rule, subject: vb.subject, a: null, b: vb, change: 'only in B' }));
  return [...fromA, ...onlyB];
}

/** The rows of `rows` whose values differ between A and B. */
function differing(rows: readonly [string, string, string][]): Difference[] {
  return rows.filter(([, a, b]) => a !== b).map(([what, a, b]) => ({ what, a, b }));
}

function environmentDifferences(a: Results, b: Results): Difference[] {
  const ea = a.environment;
  const eb = b.environment;
  const image = (r: Results) => r.environment.container?.image ?? 'none (local processes)';
  return differing([
    ['runtime', ea.runtime, eb.runtime],
    ['kernel', ea.kernel, eb.kernel],
    ['CPUs', String(ea.cpus), String(eb.cpus)],
    ['host', ea.hostname, eb.hostname],
    ['tracer', ea.tracer ?? 'none', eb.tracer ?? 'none'],
    ['iolab', ea.iolabVersion, eb.iolabVersion],
    ['Node.js (the controller)', ea.node, eb.node],
    ['image', image(a), image(b)],
    ...(a.experiment || b.experiment ? [['Python', a.experiment?.python ?? 'not announced', b.experiment?.python ?? 'not announced'] as [string, string, string]] : []),
  ]);
}

function clientsText(results: Results): string {
  return results.lab.clients
    .map((c) => `${c.name}: ${c.mode}, ${plural(c.connections, 'connection')}${c.mode === 'echo' ? `, ${formatCount(c.messageSize)} B` : ''}${c.rate !== undefined ? `, ${formatCount(c.rate)}/s each` : ''}`)
    .join('; ');
}

function parametersText(record: ExperimentRecord | undefined): string {
  return record ? Object.entries(record.parameters).map(([name, value]) => `${name} ${value}`).join(', ') : 'none';
}

function settingDifferences(a: Results, b: Results): Difference[] {
  const la = a.lab;
  const lb = b.lab;
  if (a.experiment || b.experiment) {
    return differing([
      ['repetitions', String(la.repetitions), String(lb.repetitions)],
      ['parameters', parametersText(a.experiment), parametersText(b.experiment)],
    ]);
  }
  const sweep = (r: Results) => (r.lab.sweep ? `${r.lab.sweep.client}: ${r.lab.sweep.connections.map(formatCount).join(', ')}` : 'none');
  const nofile = (r: Results) => (r.lab.nofile === null ? 'as the runtime gives it' : formatCount(r.lab.nofile));
  return differing([
    ['duration of a run', formatSeconds(la.durationSeconds), formatSeconds(lb.durationSeconds)],
    ['repetitions', String(la.repetitions), String(lb.repetitions)],
    ['trace runs per server', String(la.traceRuns), String(lb.traceRuns)],
    ['clients', clientsText(a), clientsText(b)],
    ['client processes per client', String(a.environment.clientReplicas), String(b.environment.clientReplicas)],
    ['sweep', sweep(a), sweep(b)],
    ['nofile', nofile(a), nofile(b)],
    // Each server of both runs: its model's options, its own nofile and tracer.
    ...la.variants.flatMap((va): [string, string, string][] => {
      const vb = lb.variants.find((v) => v.label === va.label);
      return vb ? [[`settings of ${va.label}`, variantSettings(va), variantSettings(vb)]] : [];
    }),
  ]);
}

/** "threads 4, blocking call 0 ms, drain yes, nofile 1,024, tracer bpf": what a server ran with. */
function variantSettings(variant: Results['lab']['variants'][number]): string {
  const { threads, blockingCallMs, drain } = variant.options;
  return [`threads ${threads}`, `blocking call ${blockingCallMs} ms`, `drain ${drain ? 'yes' : 'no'}`, `nofile ${variant.nofile === null ? 'as the lab' : formatCount(variant.nofile)}`, `tracer ${variant.tracer ?? 'as the lab'}`].join(', ');
}

/**
 * Compares two runs of one lab. `names` say how the text names them (their files). Pure: the
 * same two results give the same comparison. Throws UsageError when the runs are of different
 * labs (naming both labs and both files), or when one is an experiment lab's and the other not.
 */
export function compareRuns(a: Results, b: Results, names: { a: string; b: string }): RunComparison {
  if (a.lab.name !== b.lab.name) {
    throw new UsageError(
      `cannot compare runs of two different labs: ${names.a} is a run of lab ${JSON.stringify(a.lab.name)}, ${names.b} of lab ${JSON.stringify(b.lab.name)}; compare two runs of one lab`,
    );
  }
  if (Boolean(a.experiment) !== Boolean(b.experiment)) {
    const [experiment, servers] = a.experiment ? [names.a, names.b] : [names.b, names.a];
    throw new UsageError(`cannot compare ${experiment}, a run of the experiment lab ${JSON.stringify(a.lab.name)}, with ${servers}, a run of a lab of servers by that name`);
  }
  const kind = a.experiment ? 'experiment' : 'servers';
  let subjects: SubjectComparison[];
  let onlyInA: string[];
  let onlyInB: string[];
  if (kind === 'experiment') {
    const [inA, inB] = [armSubjects(a), armSubjects(b)];
    subjects = [...inA].flatMap(([name, fa]) => (inB.has(name) ? [compareArm(a.experiment!, name, fa, inB.get(name)!)] : []));
    onlyInA = [...inA.keys()].filter((name) => !inB.has(name));
    onlyInB = [...inB.keys()].filter((name) => !inA.has(name));
  } else {
    const [inA, inB] = [serverSubjects(a), serverSubjects(b)];
    subjects = [...inA].flatMap(([name, sa]) => (inB.has(name) ? [compareServer(a, b, sa, inB.get(name)!)] : []));
    onlyInA = [...inA.keys()].filter((name) => !inB.has(name));
    onlyInB = [...inB.keys()].filter((name) => !inA.has(name));
  }
  return {
    lab: a.lab.name,
    kind,
    names,
    a,
    b,
    environment: environmentDifferences(a, b),
    settings: settingDifferences(a, b),
    subjects,
    onlyInA,
    onlyInB,
    verdicts: compareVerdicts(a, b),
    rule: { minRepetitions: MIN_REPETITIONS, significance: SIGNIFICANCE },
  };
}

