// The journal of a lab run and how a run is continued (`iolab run LAB --resume DIR`).
//
// The journal is the run directory's results.json itself: after each finished run the controller
// writes it again, whole (written beside and renamed: src/shared/write-whole.ts), with report.md,
// marked incomplete "interrupted (controller killed) after N of M runs". A controller that ends
// normally writes the final results over it; one that is killed leaves exactly that: every finished
// run, and a report that says what happened. One file, one schema: what `iolab report` and
// `iolab compare` read, and what --resume continues.
//
// A run is continued only with what made it: the same lab file (its SHA-256), the same options
// that change what is measured, the same runtime. Its finished runs are kept in place (a failed
// one too: it finished, and says why); the others, the one in flight when it was killed among
// them, are made. The order of the runs is the plan's, so the results read as a full run's.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';
import type { ExperimentRun } from '../shared/experiments.js';
import type { Measurement, RunRecord } from '../shared/results.js';

/** The reason on the journal while a run is under way: what stays if its controller is killed. */
export function journalReason(done: number, total: number): string {
  return `interrupted (controller killed) after ${done} of ${total} runs`;
}

/**
 * Writes the journal after `done` of `total` runs: `onRecorded` (RunOptions) with what was measured
 * so far (`soFar`, given journalReason), awaited. Resolves with null, or with the lab's incomplete
 * reason when it could not be written ("stopped after run N of M: its record could not be written:
 * ..."): the lab stops there. With `done` 0 (before the first run) it rejects with the error
 * instead: there is nothing measured to keep.
 */
export async function recordSoFar(
  onRecorded: ((soFar: Measurement) => Promise<void>) | undefined,
  soFar: (reason: string) => Measurement,
  done: number,
  total: number,
): Promise<string | null> {
  if (!onRecorded) return null;
  const error = await onRecorded(soFar(journalReason(done, total))).then(() => null, (failure: unknown) => failure ?? new Error('the journal could not be written'));
  if (error === null) return null;
  if (done === 0) throw error;
  return `stopped after run ${done} of ${total}: its record could not be written: ${error instanceof Error ? error.message : String(error)}`;
}

/** What names a run of a model lab in its plan: its server, sweep value, phase and repetition. */
export function runKey(run: Pick<RunRecord, 'variant' | 'sweepValue' | 'phase' | 'repetition'>): string {
  return JSON.stringify([run.variant, run.sweepValue, run.phase, run.repetition]);
}

/** What names a run of an experiment lab: its part, arm and repetition. */
export function experimentRunKey(run: Pick<ExperimentRun, 'part' | 'arm' | 'repetition'>): string {
  return JSON.stringify([run.part, run.arm, run.repetition]);
}

/** results.json's `resumed`, with one more entry when `resume` is given: now, and `kept` runs. */
export function resumedOf(resume: Measurement | undefined, kept: number): Pick<Measurement, 'resumed'> {
  if (!resume) return {};
  return { resumed: [...(resume.resumed ?? []), { at: new Date().toISOString(), kept }] };
}

/** What `iolab run` was asked, as results.json's `settings` records it. */
export type LabSettings = NonNullable<Measurement['settings']>;

/**
 * The settings of a run of `file`: its content's SHA-256 and the options given (undefined: the
 * lab's own, recorded as null). Throws the fs error when the lab file cannot be read.
 */
export async function labSettings(file: string, options: Record<string, string | number | boolean | null | undefined>): Promise<LabSettings> {
  const labFile = createHash('sha256').update(await readFile(file)).digest('hex');
  return { labFile, ...Object.fromEntries(Object.entries(options).map(([key, value]) => [key, value ?? null])) };
}

/**
 * The settings (RunOptions.settings, a batch's BatchSettings) that differ between a journal's
 * (`then`) and these (`now`), each as "name: X now, Y <where>" ("in that run"), the values as
 * `shown` writes them (JSON unless told; a missing one is null). None: the same lab or batch.
 */
export function settingsDifferences(
  then: Record<string, unknown>,
  now: Record<string, unknown>,
  where: string,
  shown: (name: string, value: unknown) => string = (_name, value) => JSON.stringify(value),
): string[] {
  const names = [...new Set([...Object.keys(then), ...Object.keys(now)])];
  return names
    .filter((name) => JSON.stringify(then[name] ?? null) !== JSON.stringify(now[name] ?? null))
    .map((name) => `${name}: ${shown(name, now[name] ?? null)} now, ${shown(name, then[name] ?? null)} ${where}`);
}

/**
 * Checks that `previous` (the results.json of DIR) can be continued with `settings`: it was
 * written with settings, they are the same, and it is not complete. Throws UsageError naming DIR
 * and each setting that differs, with both values.
 */
export function checkResumable(dir: string, previous: Measurement, settings: LabSettings): void {
  if (!previous.settings) throw new UsageError(`--resume ${dir}: its results.json records no settings (written by an older iolab): it cannot be continued; run the lab again`);
  if (previous.complete) throw new UsageError(`--resume ${dir}: that run of ${previous.lab.name} is complete: there is nothing to continue`);
  const shown = (name: string, value: unknown) => (name === 'labFile' ? `SHA-256 ${String(value).slice(0, 12)}` : value === null ? "the lab's own" : JSON.stringify(value));
  const lines = settingsDifferences(previous.settings, settings, 'in that run', shown);
  if (lines.length === 0) return;
  const edited = lines.some((line) => line.startsWith('labFile: ')) ? ` (the lab file ${previous.lab.file} changed since)` : '';
  throw new UsageError(`--resume ${dir}: not the same lab and settings as that run${edited}, so its runs and the new ones would not compare: ${lines.join('; ')}`);
}
