// Servers of one's own (`server: DIR` in a lab, `iolab run LAB --server DIR`): one that claims a
// model (`as: select`) is judged as that model; one that claims none is classified here, before
// any rule runs, by the calls the kernel saw it make: every model of the registry whose
// fingerprint (by job: Python's recv and C's read both read) its counted calls fit. The first of
// them, in the course's order, is the model every rule then judges it as; one that fits none is
// judged by no rule (src/analysis/claims.ts says why).
import { checkFingerprintByJob } from '../shared/model.js';
import { mergeCounts, type Measurement, type VariantRecord } from '../shared/results.js';
import { isFailed, runAnswered } from './figures.js';

/**
 * The measurement with each unclaimed server of one's own classified: `own.fits` the names of the
 * models its counted calls (set-up and window, every counted run) fit, and `declared` the first of
 * them, or null when none fits or no run was counted. Pure; every other variant is unchanged.
 */
export function classifyOwnServers(measurement: Measurement): Measurement {
  const variants = measurement.lab.variants.map((variant): VariantRecord => {
    if (!variant.own || variant.own.claims !== null) return variant;
    const runs = measurement.runs.filter((run) => run.variant === variant.label && run.trace !== null && !isFailed(run));
    if (runs.length === 0) return { ...variant, declared: null, own: { ...variant.own, fits: [] } };
    const counts = mergeCounts(...runs.flatMap((run) => [run.trace!.setup.serving, run.trace!.window.serving]));
    const roundTrips = runs.reduce((total, run) => total + runAnswered(run), 0);
    const fits = variant.own.candidates.filter((model) => checkFingerprintByJob(model.fingerprint, counts, roundTrips).verdict === 'matches');
    return { ...variant, declared: fits[0] ?? null, own: { ...variant.own, fits: fits.map((model) => model.name) } };
  });
  return { ...measurement, lab: { ...measurement.lab, variants } };
}
