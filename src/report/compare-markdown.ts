// Two runs of one lab side by side, as Markdown (`iolab compare A B`), rendered from the
// comparison the analysis made of them (analysis/run-comparison.ts), which judged every
// difference; nothing here computes a figure or judges. Plain Markdown a standard renderer turns
// into HTML as it is: headings, paragraphs, lists and GFM tables, one unit per row. Sections in
// reading order: the two runs and what differs between them, the verdicts, the main figure of
// every subject at a glance, each subject's figures, the subjects of one run only.
import { markdownTable } from 'markdown-table';
import { formatCount, formatSeconds, joinWords, table } from '../shared/format.js';
import { FORMATS, type Difference, type FigureComparison, type RunComparison, type SubjectComparison, type VerdictComparison } from '../shared/run-comparison.js';
import type { Results, Spread } from '../shared/results.js';
import type { ClaimVerdict } from '../shared/verdicts.js';
import { clean, NONE, spreadCell } from './markdown-parts.js';

const SUPERSCRIPT_DIGITS = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

/** 12 → "¹²": the mark of a note under a table. */
function noteMark(n: number): string {
  return [...String(n)].map((digit) => SUPERSCRIPT_DIGITS[Number(digit)]).join('');
}

/**
 * B/A as written: "1.00×", "0.25×", "137×"; two decimals where a ratio is near 1, and as many more
 * as it takes not to read 1.00× when `differs` (a difference beyond the spread): "1.001×".
 */
export function formatComparisonRatio(ratio: number, differs = false): string {
  if (ratio >= 100) return `${formatCount(ratio)}×`;
  if (differs && ratio !== 1 && ratio.toFixed(2) === '1.00') {
    for (let digits = 3; digits <= 6; digits++) if (ratio.toFixed(digits) !== (1).toFixed(digits)) return `${ratio.toFixed(digits)}×`;
  }
  if (ratio >= 0.1 || ratio === 0) return `${ratio.toFixed(2)}×`;
  if (ratio < 0.001) return '<0.001×';
  return `${ratio.toPrecision(2)}×`;
}

/** What the runs are called in headings and sentences: the kind of subject. */
function subjectNoun(comparison: RunComparison): { one: string; many: string } {
  return comparison.kind === 'experiment' ? { one: 'arm', many: 'arms' } : { one: 'server', many: 'servers' };
}

function completeCell(results: Results): string {
  return results.complete ? 'yes' : `**INCOMPLETE**${results.incompleteReason ? `: ${results.incompleteReason}` : ''}`;
}

function runsSection(comparison: RunComparison): string {
  const { a, b, names } = comparison;
  const both = (pick: (r: Results, name: string) => string): [string, string] => [pick(a, names.a), pick(b, names.b)];
  // Cells are made safe for the table (clean) once, below.
  const rows: [string, ...[string, string]][] = [
    ['results', ...both((_, name) => `\`${name}\``)],
    ['started', ...both((r) => r.startedAt)],
    ['finished', ...both((r) => r.finishedAt)],
    ['complete', ...both(completeCell)],
    ['runtime', ...both((r) => (r.environment.container ? `${r.environment.runtime} (${r.environment.container.image})` : r.environment.runtime))],
    ['host', ...both((r) => r.environment.hostname)],
    ['kernel', ...both((r) => r.environment.kernel)],
    ['CPUs', ...both((r) => String(r.environment.cpus))],
    ...(comparison.kind === 'experiment'
      ? [
          ['Python', ...both((r) => r.experiment?.python ?? 'not announced')] as [string, string, string],
          ['parameters', ...both((r) => Object.entries(r.experiment?.parameters ?? {}).map(([name, value]) => `${name} ${value}`).join(', ') || NONE)] as [string, string, string],
        ]
      : [
          ['tracer', ...both((r) => r.environment.tracer ?? 'none (no syscall counts)')] as [string, string, string],
          ['duration of a run', ...both((r) => formatSeconds(r.lab.durationSeconds))] as [string, string, string],
        ]),
    ['repetitions', ...both((r) => String(r.lab.repetitions))],
    ['iolab', ...both((r) => r.environment.iolabVersion)],
  ];
  const header = table(['', 'A', 'B'], rows.map(([what, inA, inB]) => [what, clean(inA), clean(inB)]), 'text');
  return `## The two runs\n\n${header}\n\n${differencesParagraph(comparison)}`;
}

/** "the kernel (A: 6.1; B: 6.18) and the tracer (A: strace; B: bpf)". */
function differenceList(differences: readonly Difference[]): string {
  return joinWords(differences.map((d) => `the ${d.what} (A: ${clean(d.a)}; B: ${clean(d.b)})`));
}

function differencesParagraph(comparison: RunComparison): string {
  const environment = comparison.environment.length
    ? `**What differs in the environment:** ${differenceList(comparison.environment)}. A difference in the figures may come from this as much as from the ${subjectNoun(comparison).many}.`
    : `**The environment is the same** in both runs: runtime, kernel, CPUs, host, ${comparison.kind === 'experiment' ? 'Python' : 'tracer'} and iolab version.`;
  const settings = comparison.settings.length
    ? `**What differs in the lab's settings:** ${differenceList(comparison.settings)}.`
    : "**The lab's settings are the same** in both runs.";
  const incomplete = [comparison.a, comparison.b].flatMap((results, i) =>
    results.complete ? [] : [`> **Run ${i === 0 ? 'A' : 'B'} is INCOMPLETE**: its figures leave out every run that failed or never ran.`],
  );
  return [environment, settings, ...incomplete].join('\n\n');
}

function verdictCell(verdict: ClaimVerdict | null): string {
  if (verdict === null) return 'not judged';
  return verdict.verdict === 'holds' ? 'holds' : `**${verdict.verdict}**`;
}

const CHANGE_CELLS: Record<VerdictComparison['change'], string> = {
  unchanged: 'unchanged',
  changed: '**changed**',
  'only in A': 'judged in A only',
  'only in B': 'judged in B only',
};

function verdictsSection(comparison: RunComparison): string {
  const verdicts = comparison.verdicts;
  if (verdicts.length === 0) return '## Verdicts\n\nNeither run judged a verdict (the lab names no rule): compare the figures below.';
  const rows = verdicts.map((v) => [`\`${clean(v.rule)}\``, clean(v.subject), verdictCell(v.a), verdictCell(v.b), CHANGE_CELLS[v.change]]);
  const count = (change: VerdictComparison['change']) => verdicts.filter((v) => v.change === change).length;
  const oneRun = count('only in A') + count('only in B');
  const changed = verdicts.filter((v) => v.change === 'changed');
  const summary =
    `${formatCount(count('unchanged'))} of ${formatCount(verdicts.length)} verdicts are the same in both runs` +
    (changed.length ? `; ${formatCount(changed.length)} changed` : '') +
    (oneRun ? `; ${formatCount(oneRun)} ${oneRun === 1 ? 'was' : 'were'} judged in one run only` : '') +
    (changed.length ? '. What was measured, where a verdict changed:' : '.');
  const details = changed.map((v) => [
    `- \`${clean(v.rule)}\`, ${clean(v.subject)}: ${v.a!.verdict} in A, ${v.b!.verdict} in B.`,
    `  - A: ${clean(v.a!.measurement)}`,
    `  - B: ${clean(v.b!.measurement)}`,
  ].join('\n'));
  return `## Verdicts\n\n${table(['rule', 'subject', 'A', 'B', 'change'], rows, 'text')}\n\n${summary}${details.length ? `\n\n${details.join('\n')}` : ''}`;
}

/** A figure over a run's repetitions: its median and, where they differ as written, [lowest–highest]. */
function figureCell(spread: Spread | null, format: (n: number) => string): string {
  if (spread === null) return NONE;
  return format(spread.min) === format(spread.max) ? format(spread.median) : spreadCell(spread, format);
}

/** A row of a figure table: its first cell, the figure (null: measured in neither run), and how a note names it. */
interface FigureRow {
  label: string;
  figure: FigureComparison | null;
  /** "blocking's round trips/s": what a note about its ratio names. */
  named: string;
}

/** Rows of a figure table, and the notes that say why a ratio is missing (marked ¹, ², ...). */
function figureRows(figures: readonly FigureRow[]): { rows: string[][]; notes: string[] } {
  const notes: string[] = [];
  const rows = figures.map(({ label, figure, named }) => {
    if (figure === null) return [label, NONE, NONE, NONE, 'not measured in either run'];
    const format = FORMATS[figure.unit];
    let ratio: string;
    if (figure.ratio !== null) ratio = formatComparisonRatio(figure.ratio, figure.judgement.outcome === 'higher' || figure.judgement.outcome === 'lower');
    else {
      notes.push(`${noteMark(notes.length + 1)} ${named}: ${figure.noRatio ?? 'no ratio'}, so B/A has no value.`);
      ratio = `${NONE}${noteMark(notes.length)}`;
    }
    return [label, figureCell(figure.a, format), figureCell(figure.b, format), ratio, clean(figure.judgement.text)];
  });
  return { rows, notes };
}

const FIGURE_HEADER = ['A', 'B', 'B/A', 'beyond the run-to-run spread?'];

function figureTable(first: string, figures: readonly FigureRow[]): string {
  const { rows, notes } = figureRows(figures);
  // Numbers right-aligned, the judgement (words) left.
  const body = markdownTable([[first, ...FIGURE_HEADER], ...rows], { align: ['l', 'r', 'r', 'r', 'l'] });
  return `${body}${notes.length ? `\n\n${notes.join(' ')}` : ''}`;
}

/** The main figure of a lab, the first of these that any subject has: echo clients' pace, a hold client's probe, an experiment's time. */
const MAIN_FIGURES = ['round trips/s', 'probe latency p50', 'time'];

/** The main figure of every subject in one table; null when no subject has one. */
function glanceSection(comparison: RunComparison): string | null {
  const main = MAIN_FIGURES.find((name) => comparison.subjects.some((s) => s.figures.some((f) => f.figure === name)));
  if (main === undefined) return null;
  const noun = subjectNoun(comparison);
  const rows = comparison.subjects.map((s) => ({ label: clean(s.subject), figure: s.figures.find((f) => f.figure === main) ?? null, named: `${clean(s.subject)}'s ${main}` }));
  return `## At a glance: ${main}\n\n${figureTable(noun.one, rows)}`;
}

function subjectSection(subject: SubjectComparison): string {
  const body = figureTable('figure', subject.figures.map((f) => ({ label: clean(f.figure), figure: f, named: clean(f.figure) })));
  const unmeasured = subject.unmeasured.length ? `\n\nNot measured in either run: ${joinWords(subject.unmeasured)}.` : '';
  return `### ${clean(subject.subject)}\n\n${body}${unmeasured}`;
}

function subjectsSection(comparison: RunComparison): string {
  const noun = subjectNoun(comparison);
  const heading = `## Per ${noun.one}`;
  if (comparison.subjects.length === 0) return `${heading}\n\nNo ${noun.one} is in both runs.`;
  const intro =
    comparison.kind === 'experiment'
      ? "Each arm present in both runs, matched by name. Times are the script's own, around its jobs; CPU in percent of one core."
      : "Each server present in both runs, matched by name (in a sweep, with the swept value). Latency of every echo client's round trips, each repetition's percentile weighted by round trips; the probe's, of a hold client's probe connection (a request every 100 ms beside the idle ones); server CPU in percent of one core; the serving threads' syscalls per round trip of the counted windows; threads, fds and memory the server held beyond its idle self (RSS: its first process's peak; PSS: its whole process tree's at the window's end).";
  return `${heading}\n\n${intro}\n\n${comparison.subjects.map(subjectSection).join('\n\n')}`;
}

function oneRunOnlySection(comparison: RunComparison): string | null {
  const { onlyInA, onlyInB } = comparison;
  if (onlyInA.length === 0 && onlyInB.length === 0) return null;
  const noun = subjectNoun(comparison);
  const line = (run: string, names: readonly string[]) => `- Only in ${run}: ${names.length ? names.map((n) => clean(n)).join(', ') : 'none'}.`;
  return `## ${noun.many[0].toUpperCase()}${noun.many.slice(1)} of one run only\n\nNot compared: each ran in one of the two runs only.\n\n${line('A', onlyInA)}\n${line('B', onlyInB)}`;
}

/**
 * The comparison of two runs of one lab as Markdown (compare.md). Pure: the same comparison gives
 * the same text. Every number is finite; a missing one is a dash, with the reason beside it.
 */
export function renderComparisonMarkdown(comparison: RunComparison): string {
  const { a, names } = comparison;
  const intro =
    `Lab \`${clean(comparison.lab)}\`: run A (\`${clean(names.a)}\`) against run B (\`${clean(names.b)}\`). ` +
    "For each figure: its median in each run and, over several repetitions, [lowest–highest]; B/A, B's median over A's; and whether B differs from A beyond the run-to-run spread. " +
    `It does only when every repetition of one run is beyond every repetition of the other, with at least ${comparison.rule.minRepetitions} repetitions a side, so that two equal runs would fall apart like that by chance at most ${Math.round(comparison.rule.significance * 100)}% of the time (the rule every verdict compares by, src/analysis/compare.ts); otherwise the difference is within the spread, or there are too few repetitions to tell.`;
  const sections = [
    `# ${clean(a.lab.title)}: two runs compared`,
    intro,
    runsSection(comparison),
    verdictsSection(comparison),
    glanceSection(comparison),
    subjectsSection(comparison),
    oneRunOnlySection(comparison),
  ];
  return `${sections.filter((s): s is string => s !== null).join('\n\n')}\n`;
}
