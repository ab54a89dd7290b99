// The analysis of an experiment lab (shared/experiments.ts): the figures of every arm, the verdicts
// on what the course claims of each arm, the observations, the failed runs and the machine's load.
// Like the model labs' rules (claims.ts) a rule reads what the arm declares (its claim, whether it
// is its part's baseline) and what the part's waits add up to, never an arm's name.
//
// The three claims, and how each is judged:
//   sum-of-waits  "it waits for one thing at a time": every repetition took at least the sum of
//                 the part's waits (K × D; jobs × waits × W). This is physics, not a comparison:
//                 each round trip lasts at least the server's delay, so one at a time they cannot
//                 take less than their sum (CLOCK_SLACK allows for the clocks' rounding).
//   longest-wait  "it overlaps the waits": (1) every repetition took less than halfway from the
//                 longest chain of waits (D; waits × W) to their sum, i.e. closer to the chain, and
//                 (2) the baseline (one at a time) took more than halfway to the ideal ratio
//                 (sum / chain) times as long, beyond the run-to-run spread (compare.ts).
//   adds-time     "switching with nothing to overlap only costs time": the arm took longer than the
//                 baseline, beyond the spread (compare.ts); faster beyond the spread does not hold;
//                 within it, inconclusive, with the difference and the spread. CPU-only timings are
//                 what a busy machine distorts: a failure on runs that were all busy is inconclusive.
import { formatPercent, joinWords, plural } from '../shared/format.js';
import {
  armSubject,
  formatNanoseconds,
  formatTimes,
  formatWallTime,
  type ArmDeclaration,
  type ArmFigures,
  type ExperimentRecord,
  type ExperimentRun,
  type PartDeclaration,
} from '../shared/experiments.js';
import type { FailedRun, MachineFigures, Measurement, Observation, Results } from '../shared/results.js';
import { combineVerdicts, type ClaimPart, type ClaimVerdict } from '../shared/verdicts.js';
import { againstLine, compare, type Judged } from './compare.js';
import { median, spreadOf } from './figures.js';
import { BUSY_OTHER_PERCENT, BUSY_STEAL_PERCENT } from './machine.js';

/**
 * "At least the sum of the waits" allows this share below it: each script's clock and the slow
 * server's sleep are the same CLOCK_MONOTONIC, but times are rounded in the JSON and the server's
 * sleep starts when its thread has read the request. 1% of a sum of waits of 10 ms or more is far
 * below anything an overlap would save (at least one whole wait).
 */
const CLOCK_SLACK = 0.01;

type Record_ = ExperimentRecord;

function counting(record: Record_, arm: Pick<ArmDeclaration, 'arm' | 'part'>): ExperimentRun[] {
  return record.runs.filter((run) => run.arm === arm.arm && run.part === arm.part && run.error === null && run.result !== null);
}

function baselineOf(record: Record_, arm: ArmDeclaration): ArmDeclaration | null {
  return record.arms.find((a) => a.part === arm.part && a.baseline) ?? null;
}

function partOf(record: Record_, arm: ArmDeclaration): PartDeclaration {
  const part = record.parts.find((p) => p.part === arm.part);
  if (!part) throw new Error(`results.json: arm ${arm.arm} is of part ${arm.part}, which the experiment does not declare`);
  return part;
}

/** The most round trips in flight at one moment of a run: intervals [end − seconds, end], swept in time order. */
function mostAtOnce(run: ExperimentRun): number {
  const events = (run.result?.fetches ?? []).flatMap((f) => [
    { at: f.endSeconds - f.seconds, change: 1 },
    { at: f.endSeconds, change: -1 },
  ]);
  events.sort((a, b) => a.at - b.at || a.change - b.change); // an end before a start at the same moment
  let now = 0;
  let most = 0;
  for (const event of events) {
    now += event.change;
    most = Math.max(most, now);
  }
  return most;
}

/** Per repetition that both counted: f(the arm's run, the baseline's run). */
function paired(record: Record_, arm: ArmDeclaration, f: (run: ExperimentRun, base: ExperimentRun) => number | null): number[] {
  const base = baselineOf(record, arm);
  if (!base) return [];
  const baseRuns = counting(record, base);
  return counting(record, arm).flatMap((run) => {
    const other = baseRuns.find((b) => b.repetition === run.repetition);
    const value = other ? f(run, other) : null;
    return value === null || !Number.isFinite(value) ? [] : [value];
  });
}

const medianOrNull = (values: readonly number[]) => (values.length ? median(values) : null);

/** The arm's median wall time over its baseline's, as a spread of one value; null without both. */
function ratioOfMedians(record: Record_, arm: ArmDeclaration): ArmFigures['toBaseline'] {
  const base = baselineOf(record, arm);
  const mine = counting(record, arm).map((run) => run.result!.wallSeconds);
  const theirs = base ? counting(record, base).map((run) => run.result!.wallSeconds) : [];
  if (mine.length === 0 || theirs.length === 0 || median(theirs) <= 0) return null;
  return spreadOf([median(mine) / median(theirs)]);
}

function armFigures(record: Record_, arm: ArmDeclaration): ArmFigures {
  const runs = counting(record, arm);
  const results = runs.map((run) => run.result!);
  const withFetches = results.filter((r) => r.fetches.length > 0);
  const switches = results.find((r) => r.switches !== undefined && r.switches !== null)?.switches ?? null;
  return {
    part: arm.part,
    arm: arm.arm,
    label: arm.label,
    runs: runs.length,
    wallSeconds: spreadOf(results.map((r) => r.wallSeconds)),
    // The ratio of the medians: the one the verdicts' comparisons (analysis/compare.ts) state too.
    toBaseline: arm.baseline ? null : ratioOfMedians(record, arm),
    cpuPercent: spreadOf(results.flatMap((r) => (r.wallSeconds > 0 ? [(r.cpuSeconds / r.wallSeconds) * 100] : []))),
    waitedSeconds: spreadOf(withFetches.map((r) => r.fetches.reduce((sum, f) => sum + f.seconds, 0))),
    fetchSeconds: spreadOf(withFetches.map((r) => median(r.fetches.map((f) => f.seconds)))),
    mostAtOnce: withFetches.length ? Math.max(...runs.filter((run) => run.result!.fetches.length > 0).map(mostAtOnce)) : null,
    switches,
    // Only where nothing but switches sets it apart from the baseline: not beside waits of 100 ms.
    perSwitchNs:
      switches && switches > 0 && !arm.baseline && partOf(record, arm).sumOfWaitsSeconds === null
        ? spreadOf(paired(record, arm, (run, base) => ((run.result!.wallSeconds - base.result!.wallSeconds) / switches) * 1e9))
        : null,
    einprogress: medianOrNull(results.flatMap((r) => (r.einprogress === undefined ? [] : [r.einprogress]))),
    connectedAtOnce: medianOrNull(results.flatMap((r) => (r.connectedAtOnce === undefined ? [] : [r.connectedAtOnce]))),
    selectCalls: medianOrNull(results.flatMap((r) => (r.selectCalls === undefined ? [] : [r.selectCalls]))),
  };
}

// ---- the machine ----------------------------------------------------------------------------

/**
 * /proc/stat counts in clock ticks of 1/USER_HZ s (10 ms: USER_HZ is 100 on Linux, proc(5)), and a
 * section starts and ends between ticks: its busy time may be off by about a tick at each end.
 * Over a section of 50 ms that alone would be 40% of a core.
 */
const TICK_SECONDS = 0.01;

/**
 * Busy time of the machine beyond the script's own CPU over its section, percent of one core, less
 * what the ticks' rounding can explain (two ticks over the section): what other processes used at
 * least. Null without figures.
 */
function otherPercent(run: ExperimentRun): number | null {
  if (!run.host || !run.result || run.result.wallSeconds <= 0) return null;
  const own = (run.result.cpuSeconds / run.result.wallSeconds) * 100;
  const rounding = ((2 * TICK_SECONDS) / run.result.wallSeconds) * 100;
  return Math.max(0, run.host.busyPercent - own - rounding);
}

function isBusy(run: ExperimentRun): boolean {
  const other = otherPercent(run);
  return (other !== null && other >= BUSY_OTHER_PERCENT) || (run.host !== null && run.host.stealPercent >= BUSY_STEAL_PERCENT);
}

function machine(record: Record_): MachineFigures {
  const runs = record.runs.filter((run) => run.error === null && otherPercent(run) !== null);
  const worst = [...runs].sort((a, b) => otherPercent(b)! - otherPercent(a)!)[0];
  const arm = worst ? record.arms.find((a) => a.arm === worst.arm && a.part === worst.part) : undefined;
  return {
    runs: runs.length,
    busyRuns: runs.filter(isBusy).length,
    worst:
      worst && arm
        ? { subject: armSubject(record, arm), repetition: worst.repetition, otherPercent: otherPercent(worst)!, stealPercent: worst.host!.stealPercent, loadAverage: worst.host!.loadAverage, cpus: worst.host!.cpus }
        : null,
  };
}

// ---- the verdicts -----------------------------------------------------------------------------

function part(claim: string, judged: Judged): ClaimPart {
  return { claim, verdict: judged.verdict, measurement: judged.text };
}

function verdictOf(rule: string, subject: string, parts: ClaimPart[], figures: ClaimVerdict['figures']): ClaimVerdict {
  return {
    rule,
    subject,
    verdict: combineVerdicts(parts.map((p) => p.verdict)),
    measurement: parts.map((p) => `${p.claim}: ${p.measurement}`).join('; '),
    parts,
    figures,
  };
}

const walls = (record: Record_, arm: ArmDeclaration) => counting(record, arm).map((run) => run.result!.wallSeconds);

/** A series against a fixed line (compare.ts), or, with no repetition that counted, inconclusive for that reason. */
function tookAgainst(values: readonly number[], claim: 'at least' | 'below', line: number): Judged {
  if (values.length === 0) return { verdict: 'inconclusive', text: 'not measured: no repetition counted' };
  return againstLine(values, claim, line, formatWallTime, 'took');
}

/** "154 ns" for one repetition, "259 ns [109 ns–435 ns]" for several. */
function spreadText(spread: { median: number; min: number; max: number; values: readonly number[] }, format: (n: number) => string): string {
  return spread.values.length > 1 ? `${format(spread.median)} [${format(spread.min)}–${format(spread.max)}]` : format(spread.median);
}

/** "; 8.0× the time of serial" for an arm that is not the baseline. */
function againstBaseline(figures: ArmFigures, baseline: ArmDeclaration | null, arm: ArmDeclaration): string {
  if (arm.baseline || !baseline || !figures.toBaseline) return '';
  return `; ${formatTimes(figures.toBaseline.median)} the time of ${baseline.label} (the ratio of the medians)`;
}

function sumOfWaits(record: Record_, arm: ArmDeclaration, figures: ArmFigures): ClaimVerdict {
  const declared = partOf(record, arm);
  const sum = declared.sumOfWaitsSeconds;
  const values = walls(record, arm);
  const baseline = baselineOf(record, arm);
  const claim = `pays the sum of the waits: at least ${declared.sumOfWaitsIs} = ${sum === null ? 'unknown' : formatWallTime(sum)}`;
  if (sum === null) return verdictOf('sum-of-waits', armSubject(record, arm), [{ claim, verdict: 'inconclusive', measurement: 'the part declares no waits' }], {});
  const judged = tookAgainst(values, 'at least', sum * (1 - CLOCK_SLACK));
  const waited = figures.waitedSeconds ? `; its round trips added up to ${formatWallTime(figures.waitedSeconds.median)}, never more than ${plural(figures.mostAtOnce ?? 0, 'round trip')} in flight at once` : '';
  const text = `${judged.text}${values.length ? ` in ${plural(values.length, 'repetition')}` : ''}${againstBaseline(figures, baseline, arm)}${waited}`;
  return verdictOf('sum-of-waits', armSubject(record, arm), [part(claim, { verdict: judged.verdict, text })], {
    wallSeconds: values,
    sumOfWaitsSeconds: sum,
    mostAtOnce: figures.mostAtOnce,
  });
}

function longestWait(record: Record_, arm: ArmDeclaration, figures: ArmFigures): ClaimVerdict {
  const declared = partOf(record, arm);
  const { sumOfWaitsSeconds: sum, longestChainSeconds: chain } = declared;
  const subject = armSubject(record, arm);
  if (sum === null || chain === null || chain <= 0) {
    return verdictOf('longest-wait', subject, [{ claim: 'pays about the longest wait', verdict: 'inconclusive', measurement: 'the part declares no waits' }], {});
  }
  const values = walls(record, arm);
  const halfway = (chain + sum) / 2;
  const overlap = figures.mostAtOnce !== null ? `, up to ${plural(figures.mostAtOnce, 'round trip')} in flight at once` : '';
  const first = tookAgainst(values, 'below', halfway);
  const parts = [
    part(`pays about the longest chain of waits (${declared.longestChainIs} = ${formatWallTime(chain)}), not their sum (${declared.sumOfWaitsIs} = ${formatWallTime(sum)}): less than ${formatWallTime(halfway)}, halfway between`, {
      verdict: first.verdict,
      text: `${first.text}${values.length ? ` in ${plural(values.length, 'repetition')}` : ''}${figures.waitedSeconds ? `, while its round trips added up to ${formatWallTime(figures.waitedSeconds.median)}` : ''}${overlap}`,
    }),
  ];
  const baseline = baselineOf(record, arm);
  const ideal = sum / chain;
  const factor = (ideal + 1) / 2;
  if (baseline) {
    const ratio = compare(walls(record, baseline), values, 'above', factor, { a: baseline.arm, b: arm.arm }, formatWallTime);
    const named = baseline.label === baseline.arm ? baseline.label : `${baseline.label} (${baseline.arm})`;
    parts.push(part(`${named} takes about ${formatTimes(ideal)} as long: more than ${formatTimes(factor)}, halfway there`, ratio));
  }
  return verdictOf('longest-wait', subject, parts, {
    wallSeconds: values,
    sumOfWaitsSeconds: sum,
    longestChainSeconds: chain,
    halfwaySeconds: halfway,
    baselineSeconds: baseline ? walls(record, baseline) : null,
    mostAtOnce: figures.mostAtOnce,
  });
}

function addsTime(record: Record_, arm: ArmDeclaration, figures: ArmFigures): ClaimVerdict {
  const baseline = baselineOf(record, arm);
  const subject = armSubject(record, arm);
  const claim = `switching adds time when there is no IO to overlap: slower than ${baseline?.label ?? 'the baseline'}`;
  if (!baseline) return verdictOf('adds-time', subject, [{ claim, verdict: 'inconclusive', measurement: 'the part has no baseline to compare with' }], {});
  const values = walls(record, arm);
  const judged = compare(values, walls(record, baseline), 'above', 1, { a: arm.arm, b: baseline.arm }, formatWallTime);
  const perSwitch = figures.perSwitchNs && figures.switches
    ? `; ${plural(figures.switches, 'switch', 'switches')}: ${spreadText(figures.perSwitchNs, formatNanoseconds)} more per switch than ${baseline.label}`
    : '';
  let outcome: Judged = { verdict: judged.verdict, text: `${judged.text}${perSwitch}` };
  const runs = counting(record, arm);
  const busy = runs.filter(isBusy);
  if (outcome.verdict === 'does not hold here' && busy.length > 0 && busy.length === runs.length) {
    const worst = Math.max(...busy.map((run) => otherPercent(run) ?? 0));
    outcome = { verdict: 'inconclusive', text: `${outcome.text}; in every repetition other processes used up to ${formatPercent(worst)} of a core: a busy machine distorts CPU-only timings` };
  }
  return verdictOf('adds-time', subject, [part(claim, outcome)], {
    wallSeconds: values,
    baselineSeconds: walls(record, baseline),
    switches: figures.switches,
    perSwitchNs: figures.perSwitchNs?.values ?? null,
  });
}

const RULES: Record<NonNullable<ArmDeclaration['claim']>, (record: Record_, arm: ArmDeclaration, figures: ArmFigures) => ClaimVerdict> = {
  'sum-of-waits': sumOfWaits,
  'longest-wait': longestWait,
  'adds-time': addsTime,
};

// ---- the observations ---------------------------------------------------------------------------

function observations(record: Record_, figures: readonly ArmFigures[]): Observation[] {
  const said: Observation[] = [];
  const figuresOf = (arm: ArmDeclaration) => figures.find((f) => f.arm === arm.arm && f.part === arm.part)!;
  for (const arm of record.arms) {
    const f = figuresOf(arm);
    const subject = armSubject(record, arm);
    if (f.einprogress !== null && f.selectCalls !== null && f.selectCalls > 0) {
      const atOnce = f.connectedAtOnce ? `, ${plural(f.connectedAtOnce, 'was', 'were')} connected when connect() returned` : '';
      const sockets = (f.einprogress ?? 0) + (f.connectedAtOnce ?? 0);
      said.push({
        rule: 'non-blocking-connect',
        subject,
        text: `${subject}: ${f.einprogress} of ${plural(sockets, 'non-blocking connect')} returned EINPROGRESS (the handshake went on in the kernel while the thread went on)${atOnce}; each select() call watched every socket still waiting: ${plural(f.selectCalls, 'call')} in a run (median) for ${plural(sockets, 'server')}.`,
      });
    }
    if (arm.claim === 'longest-wait' && f.waitedSeconds && f.wallSeconds) {
      said.push({
        rule: 'overlap',
        subject,
        text: `${subject}: the round trips took ${formatWallTime(f.waitedSeconds.median)} added up, but the wall clock saw ${formatWallTime(f.wallSeconds.median)}: up to ${plural(f.mostAtOnce ?? 0, 'round trip')} waited at the same time (medians of the repetitions).`,
      });
    }
    if (arm.claim === 'sum-of-waits' && !arm.baseline && f.mostAtOnce === 1) {
      said.push({
        rule: 'no-overlap',
        subject,
        text: `${subject}: never more than one round trip in flight, although it switches between jobs (${plural(f.switches ?? 0, 'switch', 'switches')} a run): a blocking recv holds the one thread, every coroutine with it.`,
      });
    }
  }
  const switching = figures.filter((f) => f.perSwitchNs !== null);
  if (switching.length) {
    said.push({
      rule: 'switch-cost',
      subject: null,
      text: `What one switch added to CPU-only jobs, over serial (the extra time divided by the switches, median of the repetitions): ${joinWords(switching.map((f) => `${f.label} ${formatNanoseconds(f.perSwitchNs!.median)}`))}.`,
    });
  }
  return said;
}

function failedRuns(record: Record_): FailedRun[] {
  return record.runs.flatMap((run) => {
    if (run.error === null) return [];
    const arm = record.arms.find((a) => a.arm === run.arm && a.part === run.part);
    return [{ subject: arm ? armSubject(record, arm) : `${run.arm}, ${run.part}`, phase: 'measure' as const, repetition: run.repetition, error: run.error, clientErrors: [] }];
  });
}

/**
 * Adds the analysis to an experiment lab's measurement (one with `experiment`): every arm's
 * figures, a verdict per arm that carries a claim, the observations, the failed runs and the
 * machine's load. Pure: the same measurement always gives the same results. Throws when the
 * measurement is not an experiment lab's, or names an arm of a part it does not declare.
 */
export function analyseExperiment(measurement: Measurement): Results {
  const record = measurement.experiment;
  if (!record) throw new Error(`lab ${measurement.lab.name} is not an experiment lab: analyse it with analyse()`);
  const figures = record.arms.map((arm) => armFigures(record, arm));
  const verdicts = record.arms.flatMap((arm, index) => (arm.claim ? [RULES[arm.claim](record, arm, figures[index])] : []));
  return {
    ...measurement,
    analysis: {
      subjects: [],
      verdicts,
      observations: observations(record, figures),
      failedRuns: failedRuns(record),
      machine: machine(record),
      experiment: { arms: figures },
    },
  };
}
