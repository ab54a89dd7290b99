// Servers of one's own (`server: DIR` in a lab, `iolab run LAB --server DIR`): one that claims a
// model (`as: select`) is judged as that model; one that claims none is classified here, before
// any rule runs, by what the kernel saw it do: the models whose fingerprint (by job: Python's recv
// and C's read both read) its counted calls fit, and whose traits its measurements show: what a
// connection cost it (a thread, a process, or neither: the tasks its process tree added per
// connection) and whether it spins (its reads failing with EAGAIN). The first of those, in the
// course's order, is the model every rule then judges it as; one that fits none is judged by no
// rule (src/analysis/claims.ts says why).
import { checkFingerprintByJob, jobOf, type ModelDeclaration, type ModelTraits } from '../shared/model.js';
import { clientResults, mergeCounts, type Measurement, type RunRecord, type VariantRecord } from '../shared/results.js';
import { formatShare, joinWords } from '../shared/format.js';
import { grown, isFailed, runAnswered } from './figures.js';

/** A thread or a process per connection: the tree added at least this many per open connection (as src/grade/model-evidence.ts). */
const PER_CONNECTION_SHARE = 0.8;
/** Busy polling: at least this share of its reads and accepts fail with EAGAIN (the models lab's EAGAIN storm line). */
const SPIN_EAGAIN_SHARE = 0.25;

interface Evidence {
  perConnection: ModelTraits['perConnection'] | null;
  spins: boolean | null;
  /** the measurements, in words, for the report. */
  said: string[];
}

/** What a connection cost the server, from its measured runs: null when too few connections were open to tell. */
function costOf(runs: readonly RunRecord[]): { cost: ModelTraits['perConnection'] | null; said: string | null } {
  const perConnection = (pick: 'processesPeak' | 'threadsPeak') =>
    runs.flatMap((run) => {
      const connections = clientResults(run).reduce((sum, result) => sum + result.connected, 0);
      const added = grown(run, pick);
      return connections >= 2 && added !== null ? [added / connections] : [];
    });
  const processes = perConnection('processesPeak');
  const threads = perConnection('threadsPeak');
  if (threads.length === 0) return { cost: null, said: null };
  const least = (values: number[]) => Math.min(...values);
  if (processes.length && least(processes) >= PER_CONNECTION_SHARE) return { cost: 'process', said: `it added ${least(processes).toFixed(2)} processes or more per open connection` };
  if (least(threads) >= PER_CONNECTION_SHARE) return { cost: 'thread', said: `it added ${least(threads).toFixed(2)} threads or more per open connection` };
  return { cost: 'none', said: `it added at most ${Math.max(...threads).toFixed(2)} threads per open connection` };
}

/** Whether its reads and accepts fail with EAGAIN as a busy loop's do, from its counted calls; null without any. */
function spinsOf(counts: ReturnType<typeof mergeCounts>): { spins: boolean | null; said: string | null } {
  const reads = counts.filter((count) => ['recvfrom', 'accept4'].includes(jobOf(count.syscall)));
  const calls = reads.reduce((sum, count) => sum + count.calls, 0);
  if (calls === 0) return { spins: null, said: null };
  const share = reads.reduce((sum, count) => sum + (count.errnos.EAGAIN ?? 0), 0) / calls;
  return { spins: share >= SPIN_EAGAIN_SHARE, said: `${formatShare(share)} of its reads and accepts failed with EAGAIN` };
}

function evidenceOf(measurement: Measurement, variant: VariantRecord, counts: ReturnType<typeof mergeCounts>): Evidence {
  const measured = measurement.runs.filter((run) => run.variant === variant.label && run.phase === 'measure' && !isFailed(run));
  const { cost, said: costSaid } = costOf(measured);
  const { spins, said: spinSaid } = spinsOf(counts);
  return { perConnection: cost, spins, said: [costSaid, spinSaid].filter((s): s is string => s !== null) };
}

/** A model the evidence does not contradict: its cost per connection and whether it spins, where measured. */
function traitsFit(model: ModelDeclaration, evidence: Evidence): boolean {
  if (evidence.perConnection !== null && model.traits.perConnection !== evidence.perConnection) return false;
  if (evidence.spins !== null && (model.traits.waits === 'spin') !== evidence.spins) return false;
  return true;
}

/**
 * The measurement with each unclaimed server of one's own classified: `own.fits` the names of the
 * models whose fingerprint its counted calls (set-up and window, every counted run) fit and whose
 * traits its measurements do not contradict, `own.evidence` those measurements in words, and
 * `declared` the first fitting model, or null when none fits or no run was counted. Pure; every
 * other variant is unchanged.
 */
export function classifyOwnServers(measurement: Measurement): Measurement {
  const variants = measurement.lab.variants.map((variant): VariantRecord => {
    if (!variant.own || variant.own.claims !== null) return variant;
    const runs = measurement.runs.filter((run) => run.variant === variant.label && run.trace !== null && !isFailed(run));
    if (runs.length === 0) return { ...variant, declared: null, own: { ...variant.own, fits: [] } };
    const counts = mergeCounts(...runs.flatMap((run) => [run.trace!.setup.serving, run.trace!.window.serving]));
    const roundTrips = runs.reduce((total, run) => total + runAnswered(run), 0);
    const evidence = evidenceOf(measurement, variant, counts);
    const fits = variant.own.candidates.filter((model) => checkFingerprintByJob(model.fingerprint, counts, roundTrips).verdict === 'matches' && traitsFit(model, evidence));
    return {
      ...variant,
      declared: fits[0] ?? null,
      own: { ...variant.own, fits: fits.map((model) => model.name), ...(evidence.said.length ? { evidence: joinWords(evidence.said) } : {}) },
    };
  });
  return { ...measurement, lab: { ...measurement.lab, variants } };
}
