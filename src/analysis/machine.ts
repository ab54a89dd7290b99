// The machine around the measurement: what else used the CPUs while a run's window was measured.
// Each run records the machine's busy time over its window (src/tracer/host.ts); what the server
// and its clients used themselves is known, so the rest was someone else's. A measure run where
// that rest is large, or where the hypervisor took time away (steal), may show figures of time or
// CPU distorted by the machine: the report warns, and a CPU verdict that fails there is
// inconclusive rather than a finding. Traced runs are left out: strace itself is that rest.
import { formatPercent, plural } from '../shared/format.js';
import type { MachineFigures, Measurement, RunRecord } from '../shared/results.js';
import { clientResults, isFailed, subjectName } from './figures.js';

/**
 * Other processes using this much of a core beside the server and its clients make a run "busy".
 * Measured on a quiet 2-core machine here (the models lab, 36 measured runs each): the rest (the
 * /proc probe, the engine's bookkeeping, what the clock ticks of a short window round away) was
 * at most 6% of a core locally, and at most 7% in Docker but for one run at 36%.
 */
export const BUSY_OTHER_PERCENT = 50;
/** Time taken by the hypervisor, in percent of one core, from which a run is "busy". */
export const BUSY_STEAL_PERCENT = 10;

/** Busy time of the machine not spent by the server or its clients, in percent of one core; null without figures. */
export function otherPercent(run: RunRecord): number | null {
  if (!run.host || !run.proc) return null;
  const clients = clientResults(run).reduce((sum, c) => sum + c.cpuPercent, 0);
  return Math.max(0, run.host.busyPercent - run.proc.cpuPercent - clients);
}

export function isBusy(run: RunRecord): boolean {
  const other = otherPercent(run);
  return (other !== null && other >= BUSY_OTHER_PERCENT) || (run.host !== null && run.host.stealPercent >= BUSY_STEAL_PERCENT);
}

/** The busy runs among these. */
export function busyRuns(runs: readonly RunRecord[]): RunRecord[] {
  return runs.filter(isBusy);
}

/** "in 2 of 3 repetitions other processes used up to 85% of a core (steal 0%)". */
export function describeBusy(busy: readonly RunRecord[], of: number): string {
  const worst = Math.max(...busy.map((run) => otherPercent(run) ?? 0));
  const steal = Math.max(...busy.map((run) => run.host?.stealPercent ?? 0));
  return `in ${busy.length} of ${plural(of, 'repetition')} other processes used up to ${formatPercent(worst)} of a core (steal ${formatPercent(steal)})`;
}

export function machineFigures(results: Measurement): MachineFigures {
  const runs = results.runs.filter((run) => run.phase === 'measure' && !isFailed(run) && otherPercent(run) !== null);
  const busy = busyRuns(runs);
  const worstRun = [...runs].sort((a, b) => (otherPercent(b) ?? 0) - (otherPercent(a) ?? 0))[0];
  return {
    runs: runs.length,
    busyRuns: busy.length,
    worst: worstRun
      ? {
          subject: subjectName(results, worstRun),
          repetition: worstRun.repetition,
          otherPercent: otherPercent(worstRun)!,
          stealPercent: worstRun.host!.stealPercent,
          loadAverage: worstRun.host!.loadAverage,
          cpus: worstRun.host!.cpus,
        }
      : null,
  };
}
