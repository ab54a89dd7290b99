// `iolab grade SUBMISSION --exercise ID` and `iolab grade --batch DIR --exercise ID`: the command's
// side (options, sandbox choice, output files, progress, Ctrl-C, exit codes). See README.md.
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { ExitCode, UsageError } from '../errors.js';
import { giveToOwnerOf } from '../shared/ownership.js';
import { writeWhole } from '../shared/write-whole.js';
import { FORMAT_FILES, render, type Format } from './formats.js';
import { gradeSubmission } from './grade.js';
import type { GradeReport } from './report.js';
import { CHECK_KINDS, loadExercise, type CheckKind, type Exercise } from './rubric.js';
import type { RemoteGrader } from './batch.js';
import type { GradeSandbox } from './sandbox.js';

export interface GradeArguments {
  submission?: string;
  batch?: string;
  exercise: string;
  format: Format;
  out?: string;
  runtime: 'docker' | 'local';
  /** --batch: on this machine, or each grading a job on a node of the Docker swarm this engine manages. */
  on: 'machine' | 'swarm';
  jobs: number;
  /** --on swarm: gradings at a time per node (default: its CPUs). */
  jobsPerNode?: number;
  checks?: string;
  /** seconds for one submission's grading. */
  timeLimit: number;
  /** --batch: continue the batch whose journal (batch.json) is in --out (src/grade/batch.ts). */
  resume?: boolean;
  verbose: boolean;
}

/** How long Ctrl-C waits, once the sandboxes are closed, for a batch to write its journal. */
const JOURNAL_AFTER_SIGNAL_MS = 10_000;

const LOCAL_WARNING = [
  '',
  '  !!! --runtime local: NOTHING IS ISOLATED. The submission runs as you, with your files, your',
  '  !!! network and no limits on memory, processes or CPU. Use it only for your own code while',
  '  !!! developing an exercise; grade students\' work with Docker (the default).',
  '',
].join('\n');

function summary(report: GradeReport): string {
  if (report.status === 'not-gradable') return `${report.submission.name}: NOT GRADABLE (${report.notGradableReason?.split('\n')[0]})`;
  const failed = report.checks.filter((c) => !c.passed).map((c) => c.check);
  return `${report.submission.name}: ${report.score} / ${report.maxScore}${failed.length ? ` (failed: ${failed.join(', ')})` : ''}`;
}

/**
 * Writes the grading in `format` and as grade.json into `out` (creating it), each whole or not at
 * all, grade.json last; returns their paths. Throws OutputWriteError naming a file that cannot be written.
 */
async function writeOutputs(report: GradeReport, out: string, format: Format): Promise<string[]> {
  const formats = new Set<Format>([format, 'json']);
  const written: string[] = [];
  for (const f of formats) {
    const file = join(out, FORMAT_FILES[f]);
    await writeWhole(file, render(report, f));
    written.push(file);
  }
  return written;
}

/**
 * Run as root (compose's `grade` service) into a directory of someone else's (./grades): gives what
 * was written to that directory's owner (src/shared/ownership.ts). A failure is said, not fatal.
 */
async function giveToOwnerOfOut(out: string, written: string[]): Promise<void> {
  await giveToOwnerOf(out, written).catch((error: Error) => process.stderr.write(`iolab: what was written under ${out} stays root's: ${error.message}\n`));
}

/**
 * `iolab grade`. `remote`: for --on swarm, makes the grader that runs each submission on the
 * swarm's nodes (src/swarm/grading.ts), given the exercise and the checks. Returns the exit code.
 */
export async function gradeCommand(
  argv: GradeArguments,
  remote?: (exercise: Exercise, only: CheckKind[] | undefined, onProgress: (line: string) => void) => Promise<RemoteGrader>,
): Promise<number> {
  if (!argv.submission === !argv.batch) throw new UsageError('grade one SUBMISSION directory, or a class with --batch DIR (one of the two)');
  const exercise = await loadExercise(argv.exercise);
  let only: CheckKind[] | undefined;
  if (argv.checks) {
    only = argv.checks.split(',').map((name) => name.trim()) as CheckKind[];
    const inRubric = exercise.rubric.checks.map((c) => c.check);
    const unknown = only.filter((name) => !CHECK_KINDS.includes(name) || !inRubric.includes(name));
    if (unknown.length) throw new UsageError(`--checks: ${unknown.join(', ')} not in the rubric of ${exercise.id} (${inRubric.join(', ')})`);
  }

  if (argv.on === 'swarm' && !argv.batch) throw new UsageError('--on swarm grades a class: give --batch DIR');
  if (argv.on === 'swarm' && argv.runtime === 'local') throw new UsageError('--on swarm runs every grading in Docker on the swarm\'s nodes: not with --runtime local');
  if (argv.resume && !argv.batch) throw new UsageError('--resume continues a class batch: give --batch DIR (and the --out of the batch to continue)');
  if (argv.jobsPerNode !== undefined && argv.on !== 'swarm') throw new UsageError('--jobs-per-node is for --on swarm (on one machine: --jobs)');
  if (argv.runtime === 'local') process.stderr.write(`${LOCAL_WARNING}\n`);
  const sandboxes = new Set<GradeSandbox>();
  const { DockerSandbox } = await import('./docker-sandbox.js');
  const { LocalSandbox } = await import('./local-sandbox.js');
  const newSandbox = (): GradeSandbox => {
    const sandbox =
      argv.runtime === 'local'
        ? new LocalSandbox()
        : new DockerSandbox({ onProgress: (line) => argv.verbose && process.stderr.write(`  ${line}\n`) });
    sandboxes.add(sandbox);
    return sandbox;
  };

  if (argv.on === 'swarm' && !remote) throw new UsageError('--on swarm: no swarm grader was given');
  const swarm = argv.on === 'swarm' ? await remote!(exercise, only, (line) => process.stderr.write(`${line}\n`)) : null;

  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++interrupts > 1) process.exit(ExitCode.interrupted);
    process.stderr.write(`\n${signal}: stopping every server, probe and container of the grading (again to quit at once)\n`);
    abort.abort(signal);
    // A batch writes its journal once its gradings have given up (batch.json: interrupted by the signal); a moment at most.
    void Promise.all([...[...sandboxes].map((s) => s.close()), swarm?.close()])
      .then(() => Promise.race([batch?.catch(() => {}), new Promise((resolve) => setTimeout(resolve, JOURNAL_AFTER_SIGNAL_MS))]))
      .then(() => process.exit(ExitCode.interrupted));
  };
  let batch: Promise<unknown> | null = null;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    if (argv.submission) {
      const report = await gradeSubmission(resolve(argv.submission), exercise, {
        sandbox: newSandbox(),
        only,
        timeLimitSeconds: argv.timeLimit,
        signal: abort.signal,
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      if (argv.out) {
        const written = await writeOutputs(report, resolve(argv.out), argv.format);
        await giveToOwnerOfOut(resolve(argv.out), written);
        process.stderr.write(`wrote ${written.join(', ')}\n`);
      } else {
        process.stdout.write(render(report, argv.format));
      }
      process.stderr.write(`${summary(report)}\n`);
      return report.status === 'graded' ? ExitCode.ok : ExitCode.notGradable;
    }

    const { gradeBatch } = await import('./batch.js');
    const out = resolve(argv.out ?? 'grades');
    // on a swarm, the progress is a line per placement (which node, how busy it is)
    const bar = process.stderr.isTTY && !swarm
      ? new cliProgress.SingleBar({ format: 'grading [{bar}] {value}/{total} submissions | {last}', hideCursor: true }, cliProgress.Presets.shades_classic)
      : null;
    const slots = swarm ? await swarm.prepare() : argv.jobs;
    const result = await (batch = gradeBatch(resolve(argv.batch!), exercise, {
      grade: swarm
        ? (dir) => swarm.grade(dir)
        : (dir) => gradeSubmission(dir, exercise, { sandbox: newSandbox(), only, timeLimitSeconds: argv.timeLimit, signal: abort.signal }),
      jobs: slots,
      out,
      signal: abort.signal,
      settings: { exercise: exercise.id, checks: only ?? null, timeLimitSeconds: argv.timeLimit, submissions: resolve(argv.batch!), runtime: argv.runtime },
      resume: argv.resume,
      onResumed: (kept, total) => process.stderr.write(`continuing the batch in ${out}: ${kept} of ${total} gradings kept, ${total - kept} to grade\n`),
      onStart: (total) => bar?.start(total, 0, { last: '' }),
      onGraded: (report, done, total) => {
        if (bar) bar.update(done, { last: summary(report).slice(0, 60) });
        else process.stderr.write(`[${done}/${total}] ${summary(report)}\n`);
      },
    }));
    bar?.stop();
    for (const line of swarm?.summary() ?? []) process.stderr.write(`${line}\n`);
    await giveToOwnerOfOut(out, result.written);
    const notGradable = result.reports.filter((r) => r.status === 'not-gradable').length;
    process.stderr.write(`graded ${result.reports.length - notGradable}, not gradable ${notGradable}; wrote ${result.gradebook} and the feedback under ${out}/\n`);
    return notGradable > 0 ? ExitCode.notGradable : ExitCode.ok;
  } catch (error) {
    // Ctrl-C: what was under way gave up (the swarm's gradings throw once stopping)
    if (abort.signal.aborted) return ExitCode.interrupted;
    throw error;
  } finally {
    await swarm?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
