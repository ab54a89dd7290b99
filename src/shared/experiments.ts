// Experiment labs in results.json: what an experiment's scripts print, what one lab run of an
// experiment records, and the figures its analysis stores. An experiment lab (labs/switching.yaml,
// labs/concurrent-client.yaml) runs short Python scripts in the course's style (src/experiments/),
// one process per arm and repetition, instead of a server under client load; the runner is
// src/labs/experiment-runner.ts, the judge src/analysis/experiments.ts.
//
// These fields are additive to results schema 2 (shared/results.ts): a model lab has none of them;
// an experiment lab has `experiment` beside empty `runs` and `variants`, and its analysis an
// `experiment` beside empty `subjects`. This file imports nothing of results.ts (which imports it):
// the two small shapes it shares with it (a spread, the machine's load) are declared here again.
import { z } from 'zod';
import { SpreadSchema } from './spread.js';

const count = () => z.number().finite().int().nonnegative();
const seconds = () => z.number().finite().nonnegative();

/** The experiments iolab can run, each a set of scripts in src/experiments/. */
export const EXPERIMENT_NAMES = ['concurrent-client', 'switching'] as const;
export type ExperimentName = (typeof EXPERIMENT_NAMES)[number];

/**
 * What the jobs of a part of an experiment do:
 *   fetch  one round trip to each of K slow servers (concurrent-client)
 *   cpu    CPU-only jobs: steps of arithmetic, no IO at all (switching)
 *   io     jobs that each make a few round trips to a slow server, one after the other (switching)
 */
export const EXPERIMENT_PARTS = ['fetch', 'cpu', 'io'] as const;
export type ExperimentPart = (typeof EXPERIMENT_PARTS)[number];

/**
 * What the course claims of an arm in its part, which the analysis judges (one rule each):
 *   sum-of-waits  it waits for one thing at a time: it takes at least the sum of the waits
 *   longest-wait  it overlaps the waits: it takes about the longest chain of waits, not their sum
 *   adds-time     it switches with nothing to overlap: it takes longer than the baseline
 * null: no claim of its own (the baseline of CPU-only jobs, the yardstick).
 */
export const ARM_CLAIMS = ['sum-of-waits', 'longest-wait', 'adds-time'] as const;
export type ArmClaim = (typeof ARM_CLAIMS)[number];

/** One round trip to a slow server, as a script timed it (time.perf_counter, in one process). */
export const FetchTimeSchema = z.object({
  /** from its connect to the end of its reply, seconds. */
  seconds: seconds(),
  /** from the start of the measured section to the end of its reply, seconds. */
  endSeconds: seconds(),
});
export type FetchTime = z.infer<typeof FetchTimeSchema>;

/**
 * The one JSON line an experiment script prints on stdout (src/experiments/experiment.py,
 * report()): the measured section only, never the interpreter's start or its imports.
 */
export const ArmOutputSchema = z.object({
  experiment: z.enum(EXPERIMENT_NAMES),
  arm: z.string(),
  part: z.enum(EXPERIMENT_PARTS),
  /** the section's wall time, seconds (time.perf_counter). */
  wallSeconds: seconds(),
  /** the process's CPU time in the section, seconds (time.process_time: user + system). */
  cpuSeconds: seconds(),
  /** every round trip to a slow server, in the order they ended (none for CPU-only jobs). */
  fetches: z.array(FetchTimeSchema),
  /** switching: jobs run. */
  jobs: count().optional(),
  /** switching: switches from one job to another the script made; null where they happen out of its sight (gevent's hub). */
  switches: count().nullable().optional(),
  /** switching, CPU-only jobs: the jobs' results folded into one number; every arm must give the same. */
  checksum: z.number().int().nullable().optional(),
  /** concurrent-client: connects that returned EINPROGRESS (the handshake went on in the kernel)... */
  einprogress: count().optional(),
  /** ... and connects that were complete when connect() returned (a blocking connect always is). */
  connectedAtOnce: count().optional(),
  /** concurrent-client: select() calls made. */
  selectCalls: count().optional(),
  /** the "cpu" lines of /proc/stat before and after the section, and /proc/loadavg after it (proc(5)). */
  procStat: z.object({ before: z.string(), after: z.string(), loadavg: z.string() }),
  /** the interpreter's version (sys.version). */
  python: z.string(),
});
export type ArmOutput = z.infer<typeof ArmOutputSchema>;

/** The machine during one measured section: the same shape as results.ts's HostLoadSchema. */
export const SectionHostSchema = z.object({
  cpus: count(),
  /** every CPU's busy time over the section, in percent of one core. */
  busyPercent: seconds(),
  /** time the hypervisor gave this machine's CPUs to others, in percent of one core. */
  stealPercent: seconds(),
  loadAverage: seconds(),
});
export type SectionHost = z.infer<typeof SectionHostSchema>;

/** What results.json keeps of a script's line: all of it but the raw /proc text, which became `host`. */
export const ArmResultSchema = ArmOutputSchema.omit({ procStat: true, experiment: true, arm: true, part: true });
export type ArmResult = z.infer<typeof ArmResultSchema>;

/** One arm of one part in one repetition: one run of one script. */
export const ExperimentRunSchema = z.object({
  part: z.enum(EXPERIMENT_PARTS),
  arm: z.string(),
  /** from 0. */
  repetition: count(),
  startedAt: z.string(),
  /** what the script printed; null when it failed before printing it. */
  result: ArmResultSchema.nullable(),
  /** the machine during the section; null when not measured. */
  host: SectionHostSchema.nullable(),
  /** why this run does not count; null when it does. */
  error: z.string().nullable(),
});
export type ExperimentRun = z.infer<typeof ExperimentRunSchema>;

/** An arm as the lab declares it, kept in results.json so that the analysis and the report need nothing else. */
export const ArmDeclarationSchema = z.object({
  part: z.enum(EXPERIMENT_PARTS),
  arm: z.string(),
  /** how the report names it: "one server at a time (blocking calls)". */
  label: z.string(),
  /** how it works, one sentence. */
  how: z.string(),
  /** the script it runs, relative to the package's root. */
  script: z.string(),
  /** the arm the others of its part are compared with (serial). */
  baseline: z.boolean(),
  claim: z.enum(ARM_CLAIMS).nullable(),
});
export type ArmDeclaration = z.infer<typeof ArmDeclarationSchema>;

/** A part of an experiment, with the waits its jobs make (known from the lab's parameters). */
export const PartDeclarationSchema = z.object({
  part: z.enum(EXPERIMENT_PARTS),
  /** "jobs that wait on IO". */
  title: z.string(),
  /** what its jobs do, one sentence with the numbers. */
  description: z.string(),
  /** every wait of the part added up (K × D; jobs × waits × W), seconds; null for CPU-only jobs. */
  sumOfWaitsSeconds: seconds().nullable(),
  /** the longest chain of waits one after the other (D; waits × W), seconds; null for CPU-only jobs. */
  longestChainSeconds: seconds().nullable(),
  /** how they are said in words, before " = VALUE": "K × D = 8 × 200 ms", "D", "waits × W = 3 × 100 ms". */
  sumOfWaitsIs: z.string().nullable(),
  longestChainIs: z.string().nullable(),
});
export type PartDeclaration = z.infer<typeof PartDeclarationSchema>;

/** What one lab run of an experiment recorded: results.json's `experiment`. */
export const ExperimentRecordSchema = z.object({
  name: z.enum(EXPERIMENT_NAMES),
  /** the lab's parameters as they ran (servers, delayMs; jobs, steps, waits, waitMs). */
  parameters: z.record(z.string(), z.number().finite()),
  parts: z.array(PartDeclarationSchema),
  /** in the order each repetition runs them. */
  arms: z.array(ArmDeclarationSchema),
  /** where the slow servers ran ("a local process", "container NAME"), or null when the experiment needs none. */
  slowServers: z.object({ where: z.string(), servers: count(), delayMs: count() }).nullable(),
  /** the interpreter the scripts ran on ("/usr/bin/python3 3.11.2"), once one printed its line. */
  python: z.string().nullable(),
  runs: z.array(ExperimentRunSchema),
});
export type ExperimentRecord = z.infer<typeof ExperimentRecordSchema>;

/** One figure over the repetitions: the same shape as results.ts's SpreadSchema. */

/** One arm of one part over its repetitions that count. */
export const ArmFiguresSchema = z.object({
  part: z.enum(EXPERIMENT_PARTS),
  arm: z.string(),
  label: z.string(),
  /** repetitions that count (without error). */
  runs: count(),
  /** the section's wall time, seconds. */
  wallSeconds: SpreadSchema.nullable(),
  /** its median wall time over the baseline's median wall time (one value: the ratio the verdicts state); null for the baseline itself. */
  toBaseline: SpreadSchema.nullable(),
  /** the process's CPU time over its wall time, percent of one core. */
  cpuPercent: SpreadSchema.nullable(),
  /** every round trip's own time added up, seconds: the waits, as if one after the other. */
  waitedSeconds: SpreadSchema.nullable(),
  /** one round trip's own time (the median of each run's, then over runs), seconds. */
  fetchSeconds: SpreadSchema.nullable(),
  /** the most round trips in flight at one moment, the most of any run. */
  mostAtOnce: count().nullable(),
  /** switches per run (the same in every run), or null: none counted. */
  switches: count().nullable(),
  /** (its wall time − the baseline's, same repetition) / its switches, nanoseconds. */
  perSwitchNs: SpreadSchema.nullable(),
  /** connects that returned EINPROGRESS, and that were complete at once, per run (medians). */
  einprogress: z.number().finite().nullable(),
  connectedAtOnce: z.number().finite().nullable(),
  /** select() calls per run (median). */
  selectCalls: z.number().finite().nullable(),
});
export type ArmFigures = z.infer<typeof ArmFiguresSchema>;

/** The analysis of an experiment lab: results.json's `analysis.experiment`. */
export const ExperimentFiguresSchema = z.object({
  arms: z.array(ArmFiguresSchema),
});
export type ExperimentFigures = z.infer<typeof ExperimentFiguresSchema>;

/** "generators, CPU-only jobs": how verdicts, failed runs and progress name an arm of a part (the part only when the experiment has several). */
export function armSubject(record: Pick<ExperimentRecord, 'parts'>, arm: Pick<ArmDeclaration, 'part' | 'label'>): string {
  if (record.parts.length < 2) return arm.label;
  const part = record.parts.find((p) => p.part === arm.part);
  return `${arm.label}, ${part?.title ?? arm.part}`;
}

/** A wall time with three significant digits, in the unit that fits: "1.61 s", "205 ms", "45.8 ms", "850 µs". */
export function formatWallTime(seconds: number): string {
  if (seconds >= 1) return `${Number(seconds.toPrecision(3))} s`;
  if (seconds >= 0.001) return `${Number((seconds * 1000).toPrecision(3))} ms`;
  return `${Number((seconds * 1_000_000).toPrecision(3))} µs`;
}

/** A time per switch: "317 ns", "1.7 µs". */
export function formatNanoseconds(ns: number): string {
  if (Math.abs(ns) < 1000) return `${Math.round(ns)} ns`;
  return `${Number((ns / 1000).toPrecision(2))} µs`;
}

/** A ratio of two times: "7.9×", "1.0×", "0.26×" (the same as the analysis's formatRatio). */
export function formatTimes(ratio: number): string {
  return `${ratio >= 10 ? Math.round(ratio) : ratio >= 1 ? ratio.toFixed(1) : ratio.toPrecision(2)}×`;
}
