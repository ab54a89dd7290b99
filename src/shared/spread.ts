// One figure over the repetitions of a lab: the median, the lowest and highest, and every value.
// Its own module: the results schema (results.ts) and the experiments' (experiments.ts, which
// results.ts imports) both use it.
import { z } from 'zod';

/** One figure over the repetitions of a server or an arm: the median, the lowest and highest, and every value. */
export const SpreadSchema = z.object({ median: z.number().finite(), min: z.number().finite(), max: z.number().finite(), values: z.array(z.number().finite()) });
export type Spread = z.infer<typeof SpreadSchema>;
