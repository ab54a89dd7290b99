// What `iolab run` says while it works (src/progress.ts): each finished run with the time spent
// and an estimate of the time left, for the lab and the suite, from the runs finished so far.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StatusLine, suiteProgress } from '../src/progress.js';
import type { RunProgress } from '../src/labs/runner.js';

/** A stream that is not a terminal (a log, CI): only finished runs are printed. */
function captured(): { stream: NodeJS.WriteStream; lines: () => string[] } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { stream: stream as unknown as NodeJS.WriteStream, lines: () => text.split('\n').filter(Boolean) };
}

const progress = (lab: string, step: number, steps: number, done: boolean): RunProgress => ({
  lab,
  step,
  steps,
  subject: `model-${step}`,
  phase: 'measure',
  repetition: 0,
  ...(done ? { outcome: { error: null, roundTripsPerSecond: 1234.4, answered: 10 } } : {}),
});

describe('the progress of a suite', () => {
  it('estimates the time left from the mean time of the runs so far, in this lab and for the labs after it', () => {
    const out = captured();
    let now = 0;
    const report = suiteProgress([{ name: 'a', measuredRuns: 4 }, { name: 'b', measuredRuns: 6 }], new StatusLine(out.stream), () => now);
    report(progress('a', 1, 4, false));
    now = 3000;
    report(progress('a', 1, 4, true));
    now = 5000;
    report(progress('a', 2, 4, false));
    now = 6000;
    report(progress('a', 2, 4, true));
    expect(out.lines()).toEqual([
      // 3 s a run: 3 more in this lab (9 s), then 6 in the next (18 s).
      '[1/4] a: model-1 measure #1 1,234 round trips/s · 3s in this lab, about 9s left; suite 3s, about 27s left',
      '[2/4] a: model-2 measure #1 1,234 round trips/s · 6s in this lab, about 6s left; suite 6s, about 24s left',
    ]);
    now = 12_000;
    report(progress('a', 4, 4, true));
    now = 12_500;
    report(progress('b', 1, 6, false));
    now = 14_500;
    report(progress('b', 1, 6, true));
    // The next lab's own pace (2 s a run) once it has one run.
    expect(out.lines().at(-1)).toBe('[1/6] b: model-1 measure #1 1,234 round trips/s · 2s in this lab, about 10s left; suite 15s, about 10s left');
  });

  it('prints a failed run with its error, and one lab without a suite estimate', () => {
    const out = captured();
    let now = 0;
    const report = suiteProgress([{ name: 'a', measuredRuns: 2 }], new StatusLine(out.stream), () => now);
    report(progress('a', 1, 2, false));
    now = 61_000;
    report({ ...progress('a', 1, 2, true), outcome: { error: 'client load: connection refused', roundTripsPerSecond: null, answered: 0 } });
    expect(out.lines()).toEqual(['[1/2] a: model-1 measure #1 FAILED: client load: connection refused · 1m01s in this lab, about 1m01s left']);
  });
});
