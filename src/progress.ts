// What `iolab run` says while it works, on stderr: a line per run with its outcome, the time
// spent and an estimate of the time left, for the lab and for the whole suite; and the image
// build as one line. On a terminal the line of the run in progress is rewritten in place;
// elsewhere (a log, CI) only finished runs are printed.
//
// The estimate is the mean wall time of the runs finished so far times the runs left: in this
// lab from its own runs, for the labs after it from every run of the suite so far. A lab whose
// syscalls strace counts adds runs of its own (RunProgress.steps), and later labs are assumed
// to add as many in proportion.
import { clearLine, cursorTo } from 'node:readline';
import type { RunProgress } from './labs/runner.js';
import { formatElapsed } from './shared/format.js';

/** One rewritable status line on a terminal stream; plain lines elsewhere. */
export class StatusLine {
  private shown = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  /** Shows `text` in place of the previous status (terminal only; elsewhere nothing). */
  update(text: string): void {
    if (!this.stream.isTTY) return;
    this.clear();
    const width = this.stream.columns ?? 120;
    this.stream.write(text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text);
    this.shown = true;
  }

  /** Prints a line of its own (a terminal's status line is cleared first). */
  print(line: string): void {
    this.clear();
    this.stream.write(`${line}\n`);
  }

  private clear(): void {
    if (!this.shown) return;
    clearLine(this.stream, 0);
    cursorTo(this.stream, 0);
    this.shown = false;
  }
}

export interface SuiteLab {
  name: string;
  /** its measured runs (runner.ts measuredRunCount). */
  measuredRuns: number;
}

/**
 * The progress printer of a suite of labs, run in the order given: call it with each RunProgress
 * of runLab (before a run, and after with its outcome). `now` is in milliseconds (injectable
 * for tests; default performance.now).
 */
export function suiteProgress(labs: readonly SuiteLab[], status: StatusLine, now: () => number = () => performance.now()): (progress: RunProgress) => void {
  const suiteStart = now();
  let labIndex = -1;
  let labStart = suiteStart;
  let finishedBefore = 0;
  return (p) => {
    const index = labs.findIndex((lab, i) => i >= Math.max(labIndex, 0) && lab.name === p.lab);
    if (index !== labIndex && index >= 0) {
      if (labIndex >= 0) finishedBefore += labs[labIndex]!.measuredRuns;
      labIndex = index;
      labStart = now();
    }
    const at = now();
    const done = p.outcome ? p.step : p.step - 1;
    const finished = finishedBefore + done;
    const perRun = done > 0 ? (at - labStart) / done : finished > 0 ? (at - suiteStart) / finished : null;
    const suitePerRun = finished > 0 ? (at - suiteStart) / finished : perRun;
    const scale = labIndex >= 0 && labs[labIndex]!.measuredRuns > 0 ? p.steps / labs[labIndex]!.measuredRuns : 1;
    const labLeft = perRun === null ? null : perRun * (p.steps - done);
    const laterRuns = labs.slice(labIndex + 1).reduce((sum, lab) => sum + lab.measuredRuns * scale, 0);
    const suiteLeft = labLeft === null || suitePerRun === null ? null : labLeft + suitePerRun * laterRuns;
    const seconds = (ms: number) => formatElapsed(ms / 1000);
    const clock =
      ` · ${seconds(at - labStart)} in this lab` +
      (labLeft === null ? '' : `, about ${seconds(labLeft)} left`) +
      (labs.length > 1 ? `; suite ${seconds(at - suiteStart)}${suiteLeft === null ? '' : `, about ${seconds(suiteLeft)} left`}` : '');
    const head = `[${p.step}/${p.steps}] ${p.lab}: ${p.subject} ${p.phase}${p.phase === 'measure' ? ` #${p.repetition + 1}` : ' (strace attached)'}`;
    if (!p.outcome) {
      status.update(`${head} ...${clock}`);
      return;
    }
    status.print(`${head}${outcomeText(p)}${clock}`);
  };
}

/** " 13,402 round trips/s", " FAILED: ...", or an experiment's summary. */
function outcomeText(p: RunProgress): string {
  const outcome = p.outcome!;
  if (outcome.error) return ` FAILED: ${outcome.error}`;
  if (outcome.summary) return ` ${outcome.summary}`;
  if (outcome.roundTripsPerSecond === null) return '';
  // A traced run's pace says nothing about the model (strace stops it at every call): its count only.
  return p.phase === 'trace'
    ? ` ${outcome.answered.toLocaleString('en-US')} round trips counted`
    : ` ${Math.round(outcome.roundTripsPerSecond).toLocaleString('en-US')} round trips/s`;
}
