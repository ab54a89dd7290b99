// One figure over the repetitions of a lab: the median, the lowest and highest, and every value,
// and how it is made from the repetitions' values.
// Its own module: the results schema (results.ts) and the experiments' (experiments.ts, which
// results.ts imports) both use it.
import { z } from 'zod';

/** One figure over the repetitions of a server or an arm: the median, the lowest and highest, and every value. */
export const SpreadSchema = z.object({ median: z.number().finite(), min: z.number().finite(), max: z.number().finite(), values: z.array(z.number().finite()) });
export type Spread = z.infer<typeof SpreadSchema>;

/** The middle value; for an even count, the mean of the two middle values. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The values of a figure over repetitions, with their median, lowest and highest; null for none. */
export function spreadOf(values: readonly number[]): Spread | null {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return null;
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), values: [...finite] };
}

