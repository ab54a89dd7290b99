// What both Markdown reports (a lab's, markdown.ts; an experiment's, experiment-markdown.ts) write
// the same way: an empty cell, text from the outside world in a table, a figure with its spread,
// and the banner of incomplete results.
import type { Results } from '../shared/results.js';
import type { Spread } from '../shared/spread.js';

/** An empty cell: not measured, or nothing to show. */
export const NONE = '—';

/** A cell or a line of text from the outside world (error messages): one line, no table breaks. */
export function clean(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();
}

/** "1.2 s [1.1 s–1.4 s]": the median and, over several repetitions, the lowest and highest. */
export function spreadCell(spread: Spread | null, format: (n: number) => string): string {
  if (!spread) return NONE;
  return spread.values.length > 1 ? `${format(spread.median)} [${format(spread.min)}–${format(spread.max)}]` : format(spread.median);
}

/** The first lines of a report whose results are incomplete, with why; null when complete. */
export function incompleteBanner(results: Results): string | null {
  if (results.complete) return null;
  const reason = results.incompleteReason ? `: ${clean(results.incompleteReason).replace(/\.$/, '')}` : '';
  return `> **INCOMPLETE**${reason}. The figures below leave out every run that failed or never ran; failed runs are listed at the end.`;
}
