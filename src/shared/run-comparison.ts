// Two runs of one lab side by side (`iolab compare A B`): the shape the analysis builds
// (analysis/run-comparison.ts judges whether each difference is beyond the run-to-run spread) and
// the report renders (report/compare-markdown.ts). Not stored: a comparison is made from two
// results.json files whenever it is asked for, so it needs no schema of its own.
import {
  formatCount,
  formatKibibytesSigned,
  formatMicroseconds,
  formatPercent,
  formatQuantity,
} from './format.js';
import { formatNanoseconds, formatTimes, formatWallTime } from './experiments.js';
import type { Results, Spread } from './results.js';
import type { ClaimVerdict } from './verdicts.js';

/** How a compared figure is written; every one has a formatter in FORMATS. */
export type ComparedUnit = 'count' | 'whole' | 'quantity' | 'percent' | 'microseconds' | 'kibibytes' | 'wallSeconds' | 'times' | 'nanoseconds';

/** A value that may be negative (a growth below the idle server's): "−3.0". */
function signed(format: (n: number) => string): (n: number) => string {
  return (n) => (n < 0 ? `−${format(-n)}` : format(n));
}

/** The formatter of each unit: the lab report's for the same figure, with a sign for a negative value (a growth below the idle server's, a difference). */
export const FORMATS: Record<ComparedUnit, (n: number) => string> = {
  count: signed(formatCount),
  /** a median of whole numbers (threads, fds): "3", or "2.5" between two. */
  whole: signed((n) => (Number.isInteger(n) ? formatCount(n) : formatQuantity(n))),
  quantity: signed(formatQuantity),
  percent: signed(formatPercent),
  microseconds: signed(formatMicroseconds),
  kibibytes: formatKibibytesSigned,
  wallSeconds: signed(formatWallTime),
  times: signed(formatTimes),
  nanoseconds: formatNanoseconds,
};

/**
 * Whether B differs from A beyond the run-to-run spread (analysis/compare.ts: every repetition of
 * one run beyond every repetition of the other, with at least MIN_REPETITIONS a side):
 *   higher, lower   B's every repetition above (below) A's every repetition; `chance`: how often
 *                   ranges this far apart come from two equal runs (2 / C(n+m, n))
 *   within          the ranges overlap; `difference`: B's median minus A's, in the figure's unit
 *   too few         fewer repetitions than a comparison needs, on one side at least
 *   not measured    no value in A, in B, or in either
 *   not judged      a figure with one value per run that stands for several repetitions (a ratio
 *                   of medians): its runs' own figures are compared instead
 * `text` says it in one clause, with the numbers, for a table cell.
 */
export type SpreadJudgement =
  | { outcome: 'higher' | 'lower'; chance: number; text: string }
  | { outcome: 'within'; difference: number; text: string }
  | { outcome: 'too few'; repetitions: { a: number; b: number }; needed: number; text: string }
  | { outcome: 'not measured'; missing: 'A' | 'B' | 'both'; text: string }
  | { outcome: 'not judged'; text: string };

/** One figure of a subject in both runs. */
export interface FigureComparison {
  /** what it is, as a row header: "round trips/s", "latency p99". */
  figure: string;
  unit: ComparedUnit;
  /** the figure over A's (B's) repetitions; null: not measured in that run. */
  a: Spread | null;
  b: Spread | null;
  /** B's median over A's: a finite number, or null with the reason in `noRatio`. */
  ratio: number | null;
  /** why there is no ratio ("0 in A", "0 in both runs", "not measured in B", "below 0 in A"), or null when there is one. */
  noRatio: string | null;
  judgement: SpreadJudgement;
}

/** A subject (a server, a server at one sweep value, or an experiment's arm) present in both runs. */
export interface SubjectComparison {
  subject: string;
  /** its figures in a fixed order; figures measured in neither run are left out (see `unmeasured`). */
  figures: FigureComparison[];
  /** the figures measured in neither run, by name. */
  unmeasured: string[];
}

/**
 * One verdict (rule and subject) in either run. change: unchanged (the same verdict in both),
 * changed (another verdict), only in A / only in B (judged in one run only).
 */
export interface VerdictComparison {
  rule: string;
  subject: string;
  a: ClaimVerdict | null;
  b: ClaimVerdict | null;
  change: 'unchanged' | 'changed' | 'only in A' | 'only in B';
}

/** Something that differs between the runs: what it is, and its value in each. */
export interface Difference {
  what: string;
  a: string;
  b: string;
}

/** Two runs of one lab compared: what analysis/run-comparison.ts returns. */
export interface RunComparison {
  /** the lab's name, the same in both. */
  lab: string;
  /** 'experiment': an experiment lab, whose subjects are its arms; 'servers': a lab of servers under load. */
  kind: 'servers' | 'experiment';
  /** how the runs are named in the text: their results.json files, as given. */
  names: { a: string; b: string };
  a: Results;
  b: Results;
  /** what differs in the environment: runtime, kernel, CPUs, host, tracer, iolab, Node, image, Python. */
  environment: Difference[];
  /** what differs in the lab's settings as they ran: duration, repetitions, clients, sweep, parameters. */
  settings: Difference[];
  /** subjects present in both runs, in A's order. */
  subjects: SubjectComparison[];
  /** subjects of one run only, in that run's order. */
  onlyInA: string[];
  onlyInB: string[];
  /** every (rule, subject) judged in either run: A's order, then B's own. */
  verdicts: VerdictComparison[];
  /** the rule the judgements follow: repetitions a side a comparison needs, and the largest chance of ranges apart by luck it accepts (0.05). */
  rule: { minRepetitions: number; significance: number };
}
