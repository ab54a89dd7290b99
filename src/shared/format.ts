// Numbers for people: thousands separators, units that fit the size, and no more digits than the
// measurement can carry. The machines are noisy: "99.4271%" would claim a precision we don't have.
// Shared by the analysis (sentences), the Markdown writer and the grader's feedback (tables).
import { markdownTable } from 'markdown-table';

const wholeNumber = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 1234567 → "1,234,567". */
export function formatCount(n: number): string {
  return wholeNumber.format(Math.round(n));
}

/** A rate or a ratio: integers from 10 up, one decimal from 1, two significant digits below. */
export function formatQuantity(n: number): string {
  if (n === 0) return '0';
  if (n >= 10) return formatCount(n);
  if (n >= 1) return n.toFixed(1);
  if (n < 0.001) return '<0.001';
  return n.toPrecision(2);
}

/**
 * A share (0..1) as a percentage. Whole percents, except that a share that is not exactly 0 or 1
 * never rounds to "0%" or "100%": "<1%" and ">99%" keep the difference visible.
 */
export function formatShare(share: number): string {
  if (share <= 0) return '0%';
  if (share >= 1) return '100%';
  if (share < 0.01) return '<1%';
  if (share > 0.99) return '>99%';
  return `${Math.round(share * 100)}%`;
}

/** A value already in percent (CPU: 100 = one core busy): whole percents, one decimal below 10. */
export function formatPercent(percent: number): string {
  if (percent < 10) return `${percent.toFixed(1)}%`;
  // A core at 99.6% is not at 100%: the difference is what a reader would look for.
  if (percent >= 99.5 && percent < 100) return '>99%';
  return `${formatCount(percent)}%`;
}

/** Microseconds in the unit that fits: "850 µs", "1.2 ms", "35 ms", "2.1 s". */
export function formatMicroseconds(us: number): string {
  if (us < 1000) return `${formatCount(us)} µs`;
  if (us < 1_000_000) return `${formatQuantity(us / 1000)} ms`;
  return `${formatQuantity(us / 1_000_000)} s`;
}

export function formatSeconds(seconds: number): string {
  return `${Number.isInteger(seconds) ? formatCount(seconds) : formatQuantity(seconds)} s`;
}

/** A wall-clock span for progress lines, whole seconds: 312.4 -> "5m12s", 42 -> "42s". */
export function formatElapsed(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  return whole >= 60 ? `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s` : `${whole}s`;
}

/** A size in KiB in the unit that fits: "12 KiB", "8.8 MiB". */
export function formatKibibytes(kb: number): string {
  return kb < 1024 ? `${formatQuantity(kb)} KiB` : formatKibibytesAsMebibytes(kb);
}

/** A growth in KiB that may be negative (memory freed meanwhile): "3.6 KiB", "−0.25 KiB", "0 KiB". */
export function formatKibibytesSigned(kb: number): string {
  return kb < 0 ? `−${formatKibibytes(-kb)}` : formatKibibytes(kb);
}

/** /proc reports kB (KiB): "47 MiB", "9.5 MiB". */
export function formatKibibytesAsMebibytes(kb: number): string {
  return `${formatQuantity(kb / 1024)} MiB`;
}

/**
 * A kernel limit. fs.file-max is LONG_MAX (2^63-1) on most kernels, which JSON numbers cannot even
 * hold exactly: show it as what it means.
 */
export function formatLimit(n: number | null): string {
  if (n === null) return '—';
  if (n >= 2 ** 62) return '2^63−1 (no limit)';
  return formatCount(n);
}

/** "a", "a and b", "a, b and c"; with conjunction 'or', "a, b or c". */
export function joinWords(words: readonly string[], conjunction: 'and' | 'or' = 'and'): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} ${conjunction} ${words[words.length - 1]}`;
}

/** "1 connection", "16 connections". */
export function plural(n: number, singular: string, pluralForm = `${singular}s`): string {
  return `${formatCount(n)} ${n === 1 ? singular : pluralForm}`;
}

/** A Markdown table: the first column left-aligned, the others right (numbers) or left (text). */
export function table(header: string[], rows: string[][], align: 'numbers' | 'text' = 'numbers'): string {
  return markdownTable([header, ...rows], { align: header.map((_, i) => (i === 0 || align === 'text' ? 'l' : 'r')) });
}
