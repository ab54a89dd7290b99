// How a verdict compares numbers that vary from run to run. The machines are shared and noisy:
// a difference counts only when it is larger than the run-to-run spread, and what is not
// established is said to be inconclusive, with the difference and the spread.
//
// Two servers (or one server at two sizes), several repetitions each: the claim "A is above
// (below) k times B" holds when every repetition of A is above (below) every repetition of k·B:
// their ranges do not overlap. It does not hold when they are apart the other way, and is
// inconclusive when they overlap. For two equally fast servers, ranges of n and m repetitions
// fall apart by chance in 2 of the C(n+m, n) equally likely orderings (the exact two-sided
// Mann-Whitney U test at its extreme, U = 0): a comparison needs at least MIN_REPETITIONS a side,
// the fewest for which that chance is at most 5% (4 and 4: 2.9%; 3 and 3 would be 10%).
//
// One series against a fixed line (at least 60% of a core): it holds when every repetition is on
// the claimed side, does not hold when every one is on the other, and is inconclusive otherwise.
import { formatQuantity, plural } from '../shared/format.js';
import type { Verdict } from '../shared/verdicts.js';

/** The largest chance of ranges apart by luck that a comparison accepts. */
export const SIGNIFICANCE = 0.05;

/** C(n, k), exactly for the sizes of a lab (at most 50 repetitions a side). */
function binomial(n: number, k: number): number {
  let result = 1;
  for (let i = 1; i <= k; i++) result = (result * (n - k + i)) / i;
  return result;
}

/** The chance that ranges of n and m repetitions of two equal servers do not overlap: 2 / C(n+m, n). */
export function chanceApart(n: number, m: number): number {
  return Math.min(1, 2 / binomial(n + m, n));
}

/** The fewest repetitions per side (the same on both) for which ranges apart mean something. */
export function repetitionsNeeded(): number {
  let n = 1;
  while (chanceApart(n, n) > SIGNIFICANCE) n++;
  return n;
}

/** Repetitions a side a comparison needs: 4 (see repetitionsNeeded). */
export const MIN_REPETITIONS = repetitionsNeeded();

export interface Judged {
  verdict: Verdict;
  /** one clause with the numbers, for the verdict's measurement. */
  text: string;
}

export interface Comparison extends Judged {
  /** median(A) / median(B), null when B's median is 0. */
  ratio: number | null;
  /** the chance of ranges this far apart for equal servers; null when there was nothing to compare. */
  chance: number | null;
}

/** The values of the repetitions: "3.0" when they agree, "[15,242–20,320]" when they do not. */
function range(values: readonly number[], unit: (n: number) => string): string {
  const [low, high] = [unit(Math.min(...values)), unit(Math.max(...values))];
  return low === high ? low : `[${low}–${high}]`;
}

function middle(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const half = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
}

/**
 * Is A above (or below) `factor` times B, beyond the spread? `a` and `b` are the values of each
 * repetition; `names` say what A and B are; `unit` formats a value. See the header for the rule.
 */
export function compare(
  a: readonly number[],
  b: readonly number[],
  claim: 'above' | 'below',
  factor: number,
  names: { a: string; b: string },
  unit: (n: number) => string = formatQuantity,
  /** what the values are, after them: "round trips/s". */
  suffix = '',
): Comparison {
  const after = suffix ? ` ${suffix}` : '';
  if (a.length === 0 || b.length === 0) {
    const missing = [a.length === 0 ? names.a : null, b.length === 0 ? names.b : null].filter((n) => n !== null).join(' and ');
    return { verdict: 'inconclusive', text: `not measured for ${missing}`, ratio: null, chance: null };
  }
  const ratio = middle(b) === 0 ? null : middle(a) / middle(b);
  const shown = `${names.a} ${range(a, unit)}${after} against ${names.b} ${range(b, unit)}${after}${ratio === null ? '' : ` (${formatRatio(ratio)})`}`;
  const chance = chanceApart(a.length, b.length);
  if (Math.min(a.length, b.length) < MIN_REPETITIONS) {
    const runs = `${plural(a.length, 'repetition')} against ${plural(b.length, 'repetition')}`;
    const equal = chanceApart(Math.min(a.length, b.length), Math.min(a.length, b.length));
    return {
      verdict: 'inconclusive',
      text: `${shown}: ${runs} cannot tell a difference from the run-to-run spread (with ${Math.min(a.length, b.length)} a side, ranges fall apart by chance ${formatChance(equal)} of the time; a verdict needs ${MIN_REPETITIONS} repetitions each)`,
      ratio,
      chance,
    };
  }
  const scaled = b.map((v) => v * factor);
  const aboveAll = Math.min(...a) > Math.max(...scaled);
  const belowAll = Math.max(...a) < Math.min(...scaled);
  const line = factor === 1 ? names.b : `${formatRatio(factor)} ${names.b}`;
  if ((claim === 'above' && aboveAll) || (claim === 'below' && belowAll)) {
    return { verdict: 'holds', text: `${shown}: every repetition ${claim} ${line} (chance ${formatChance(chance)})`, ratio, chance };
  }
  if ((claim === 'above' && belowAll) || (claim === 'below' && aboveAll)) {
    return { verdict: 'does not hold here', text: `${shown}: every repetition ${claim === 'above' ? 'below' : 'above'} ${line}`, ratio, chance };
  }
  if (factor === 1) {
    const difference = Math.abs(middle(a) - middle(b));
    return { verdict: 'inconclusive', text: `${shown}: the ranges overlap; the difference of the medians, ${unit(difference)}${after}, is within the run-to-run spread`, ratio, chance };
  }
  return {
    verdict: 'inconclusive',
    text: `${shown}: the range of ${names.a} overlaps ${line} (${range(scaled, unit)}${after}): ${ratio === null ? 'the difference' : `the ratio of the medians, ${formatRatio(ratio)},`} is within the run-to-run spread of the claimed ${formatRatio(factor)}`,
    ratio,
    chance,
  };
}

/** Is every repetition at least (or below) a fixed line? See the header. */
export function againstLine(
  values: readonly number[],
  claim: 'at least' | 'below' | 'at most',
  line: number,
  unit: (n: number) => string,
  what: string,
): Judged {
  if (values.length === 0) return { verdict: 'inconclusive', text: `${what}: not measured` };
  const onSide = (v: number) => (claim === 'at least' ? v >= line : claim === 'at most' ? v <= line : v < line);
  const shown = `${what} ${range(values, unit)}`;
  if (values.every(onSide)) return { verdict: 'holds', text: shown };
  if (!values.some(onSide)) return { verdict: 'does not hold here', text: `${shown}, not ${claim} ${unit(line)}` };
  return { verdict: 'inconclusive', text: `${shown}: the repetitions fall on both sides of ${unit(line)}` };
}

/** "2.3×", "0.85×". */
export function formatRatio(ratio: number): string {
  return `${ratio >= 10 ? Math.round(ratio) : ratio >= 1 ? ratio.toFixed(1) : ratio.toPrecision(2)}×`;
}

/** A chance as a percentage: "0.8%", "10%". */
export function formatChance(chance: number): string {
  const percent = chance * 100;
  return `${percent < 1 ? percent.toFixed(1) : percent < 10 ? percent.toFixed(1).replace(/\.0$/, '') : Math.round(percent)}%`;
}
