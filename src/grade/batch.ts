// A whole class: every subdirectory of DIR is one student's submission, named by the directory.
// Submissions are graded side by side (at most `jobs` at a time, each in its own sandbox and
// network); one that breaks anything is that student's grade or "not gradable", never the end of
// the batch. Out: OUT/gradebook.csv, and OUT/<student>/ with the feedback in every format.
//
// The batch keeps a journal, so that a controller killed at any moment loses only the gradings
// under way: as each grading ends, its student's files are written whole (each beside, then
// renamed; grade.json last, the mark of a finished grading), then OUT/gradebook.csv (every
// grading finished so far) and OUT/batch.json (what the batch is, how far it got) are written
// again, whole. Until the batch ends, batch.json says "interrupted (controller killed) after N of
// M gradings": what stays if it is killed. `--resume` reads it, checks the batch is the same
// (exercise, checks, time limit, submissions, runtime), keeps each student whose grade.json is
// there and grades the others.
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import pLimit from 'p-limit';
import { z } from 'zod';
import { UsageError } from '../errors.js';
import { settingsDifferences } from '../labs/journal.js';
import { writeWhole } from '../shared/write-whole.js';
import { FORMAT_FILES, FORMATS, render, uniqueHints } from './formats.js';
import { GradeReportSchema, type GradeReport } from './report.js';
import type { Exercise } from './rubric.js';

/** What makes two batches the same batch: `--resume` continues one only with the same. */
export const BatchSettingsSchema = z.object({
  exercise: z.string(),
  /** the checks asked for (--checks), or null: the whole rubric. */
  checks: z.array(z.string()).nullable(),
  timeLimitSeconds: z.number(),
  /** the class's directory, absolute. */
  submissions: z.string(),
  /** where the submissions run: docker or local, on this machine or a swarm. */
  runtime: z.string(),
});
export type BatchSettings = z.infer<typeof BatchSettingsSchema>;

/** OUT/batch.json: the batch's journal. */
export const BatchJournalSchema = z.object({
  settings: BatchSettingsSchema,
  startedAt: z.string(),
  finishedAt: z.string(),
  students: z.number().int().nonnegative(),
  /** gradings finished (graded or not gradable), kept ones included. */
  finished: z.number().int().nonnegative(),
  complete: z.boolean(),
  incompleteReason: z.string().nullable(),
  /** each time the batch was continued (--resume): when, and how many gradings were kept. */
  resumed: z.array(z.object({ at: z.string(), kept: z.number().int().nonnegative() })),
});
export type BatchJournal = z.infer<typeof BatchJournalSchema>;

export const BATCH_JOURNAL = 'batch.json';

/**
 * Gradings that run elsewhere than in a sandbox of this machine: on the nodes of a swarm
 * (src/swarm/grading.ts), handed to gradeCommand by the command line.
 */
export interface RemoteGrader {
  /** readies the nodes (the lab image on each); resolves to the gradings that may run at a time. */
  prepare(): Promise<number>;
  /** grades one submission's directory: its report, graded or not gradable. */
  grade(submissionDir: string): Promise<GradeReport>;
  /** lines for the end of the batch: the work of each node. */
  summary(): string[];
  /** removes everything the gradings started. Idempotent. */
  close(): Promise<void>;
}

export interface BatchOptions {
  /**
   * grades one submission (its directory): gradeSubmission in a fresh sandbox on this machine, or a
   * job on a swarm node (src/swarm/grading.ts). Resolves to its report, graded or not gradable.
   */
  grade: (submissionDir: string) => Promise<GradeReport>;
  /** submissions graded at a time. */
  jobs: number;
  signal?: AbortSignal;
  out: string;
  /** once the submissions are listed: for the progress bar. */
  onStart?: (total: number) => void;
  /** after each submission: for the progress bar. */
  onGraded?: (report: GradeReport, done: number, total: number) => void;
  /** recorded in OUT/batch.json; a resumed batch must have the same. */
  settings: BatchSettings;
  /** continue the batch whose journal is in OUT: keep every student graded there. */
  resume?: boolean;
  /** once the kept gradings are known (resume): how many of how many. */
  onResumed?: (kept: number, total: number) => void;
}

export interface BatchResult {
  reports: GradeReport[];
  gradebook: string;
  /** what was written under OUT: the gradebook and each student's directory. */
  written: string[];
}

async function listSubmissions(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`--batch ${dir}: cannot read it (${error.code ?? error.message})`);
  });
  const names = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  if (names.length === 0) throw new UsageError(`--batch ${dir}: no submission directories in it (one directory per student)`);
  return names;
}

/** The gradebook: one row per student, a column per check with its points. */
export function gradebookCsv(exercise: Exercise, reports: GradeReport[]): string {
  const checks = exercise.rubric.checks.map((c) => c.check);
  const header = ['student', 'status', 'score', 'max_score', ...checks, 'hints', 'not_gradable_reason'];
  const rows = reports.map((report) => {
    const byCheck = new Map(report.checks.map((c) => [c.check, c.points]));
    return [
      report.submission.name,
      report.status,
      report.status === 'graded' ? report.score : '',
      report.maxScore,
      ...checks.map((check) => (report.status === 'graded' ? (byCheck.get(check) ?? '') : '')),
      uniqueHints(report).map((h) => h.id).join(' '),
      // the first line: the whole reason is in the student's feedback files
      report.notGradableReason?.split('\n')[0] ?? '',
    ];
  });
  return stringify([header, ...rows]);
}

/** The reason in batch.json while the batch is under way: what stays if its controller is killed. */
export function batchJournalReason(finished: number, total: number): string {
  return `interrupted (controller killed) after ${finished} of ${total} gradings`;
}

/** Reads OUT/batch.json. Throws UsageError naming the file when it is missing or does not fit. */
export async function readBatchJournal(out: string): Promise<BatchJournal> {
  const file = join(out, BATCH_JOURNAL);
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`--resume: ${file}: ${error.code === 'ENOENT' ? 'no batch was started in this directory (--out)' : error.message}`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--resume: ${file}: not JSON (${(error as Error).message})`);
  }
  const parsed = BatchJournalSchema.safeParse(json);
  if (!parsed.success) throw new UsageError(`--resume: ${file}: not a batch journal: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** A student's finished grading in OUT (its grade.json), or null: none, or one that does not read. */
async function finishedGrading(studentDir: string): Promise<GradeReport | null> {
  const text = await readFile(join(studentDir, FORMAT_FILES.json), 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const parsed = GradeReportSchema.safeParse(JSON.parse(text));
    return parsed.success ? (parsed.data as GradeReport) : null;
  } catch {
    return null;
  }
}

/**
 * Grades every submission in `dir` (options.jobs at a time), keeping the journal in options.out
 * (see the top of this file). Resolves to the reports (kept ones included), the gradebook's path
 * and what was written. Throws UsageError when `dir` holds no submission or, on resume, when
 * OUT's journal is missing or of another batch; OutputWriteError when a file cannot be written.
 */
export async function gradeBatch(dir: string, exercise: Exercise, options: BatchOptions): Promise<BatchResult> {
  const names = await listSubmissions(dir);
  const reports: (GradeReport | undefined)[] = new Array(names.length);
  const journal: BatchJournal = {
    settings: options.settings,
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    students: names.length,
    finished: 0,
    complete: false,
    incompleteReason: batchJournalReason(0, names.length),
    resumed: [],
  };
  if (options.resume) {
    const previous = await readBatchJournal(options.out);
    const differ = settingsDifferences(previous.settings, options.settings, 'in that batch');
    if (differ.length) throw new UsageError(`--resume: ${join(options.out, BATCH_JOURNAL)} is of another batch: ${differ.join('; ')}`);
    if (previous.complete) throw new UsageError(`--resume: the batch in ${options.out} is complete: there is nothing to continue`);
    await Promise.all(names.map(async (name, index) => (reports[index] = (await finishedGrading(join(options.out, name))) ?? undefined)));
    const kept = reports.filter(Boolean).length;
    Object.assign(journal, { startedAt: previous.startedAt, resumed: [...previous.resumed, { at: new Date().toISOString(), kept }] });
    options.onResumed?.(kept, names.length);
  }
  options.onStart?.(names.length);
  await mkdir(options.out, { recursive: true });
  const written: string[] = [];
  const gradebook = join(options.out, 'gradebook.csv');
  const journalFile = join(options.out, BATCH_JOURNAL);
  // One write of the gradebook and the journal at a time, in the order the gradings finish.
  // `end`: the batch's end (null: complete); none while it is under way (batchJournalReason).
  let writing: Promise<void> = Promise.resolve();
  const writeJournal = (end?: string | null) => {
    writing = writing.then(async () => {
      const finished = reports.filter((r): r is GradeReport => r !== undefined);
      await writeWhole(gradebook, gradebookCsv(exercise, finished));
      const reason = end === undefined ? batchJournalReason(finished.length, names.length) : end;
      Object.assign(journal, { finished: finished.length, finishedAt: new Date().toISOString(), complete: reason === null, incompleteReason: reason });
      await writeWhole(journalFile, `${JSON.stringify(journal, null, 2)}\n`);
    });
    return writing;
  };
  await writeJournal();
  let done = journal.finished;
  const grade = async (name: string, index: number) => {
    if (options.signal?.aborted || reports[index]) return;
    const report = await options.grade(join(dir, name));
    // A grading cut short by Ctrl-C is not finished: not recorded, graded again on --resume.
    if (options.signal?.aborted) return;
    const studentDir = join(options.out, name);
    await mkdir(studentDir, { recursive: true });
    written.push(studentDir);
    // grade.json last: it marks the grading finished
    for (const format of [...FORMATS.filter((f) => f !== 'json'), 'json' as const]) await writeWhole(join(studentDir, FORMAT_FILES[format]), render(report, format));
    reports[index] = report;
    await writeJournal();
    options.onGraded?.(report, ++done, names.length);
  };
  const limit = pLimit(Math.max(1, options.jobs));
  const outcomes = await Promise.allSettled(names.map((name, index) => limit(grade, name, index)));
  const graded = reports.filter((r): r is GradeReport => r !== undefined);
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  const reason =
    graded.length === names.length ? null
    : options.signal?.aborted ? `interrupted (${String(options.signal.reason ?? 'aborted')}) after ${graded.length} of ${names.length} gradings`
    : `stopped after ${graded.length} of ${names.length} gradings: ${failed ? (failed.reason as Error).message ?? String(failed.reason) : 'unknown'}`;
  await writeJournal(reason);
  if (failed && !options.signal?.aborted) throw failed.reason;
  return { reports: graded, gradebook, written: [...written, gradebook, journalFile] };
}
