// A whole class: every subdirectory of DIR is one student's submission, named by the directory.
// Submissions are graded side by side (at most `jobs` at a time, each in its own sandbox and
// network); one that breaks anything is that student's grade or "not gradable", never the end of
// the batch. Out: OUT/gradebook.csv, and OUT/<student>/ with the feedback in every format.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import pLimit from 'p-limit';
import { UsageError } from '../errors.js';
import { FORMAT_FILES, FORMATS, render, uniqueHints } from './formats.js';
import type { GradeReport } from './report.js';
import type { Exercise } from './rubric.js';

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

export async function gradeBatch(dir: string, exercise: Exercise, options: BatchOptions): Promise<BatchResult> {
  const names = await listSubmissions(dir);
  options.onStart?.(names.length);
  await mkdir(options.out, { recursive: true });
  const reports: GradeReport[] = new Array(names.length);
  const written: string[] = [];
  let done = 0;
  const grade = async (name: string, index: number) => {
    if (options.signal?.aborted) return;
    const report = await options.grade(join(dir, name));
    reports[index] = report;
    const studentDir = join(options.out, name);
    await mkdir(studentDir, { recursive: true });
    written.push(studentDir);
    for (const format of FORMATS) await writeFile(join(studentDir, FORMAT_FILES[format]), render(report, format));
    options.onGraded?.(report, ++done, names.length);
  };
  const limit = pLimit(Math.max(1, options.jobs));
  await Promise.all(names.map((name, index) => limit(grade, name, index)));
  const graded = reports.filter(Boolean);
  const gradebook = join(options.out, 'gradebook.csv');
  await writeFile(gradebook, gradebookCsv(exercise, graded));
  return { reports: graded, gradebook, written: [...written, gradebook] };
}
