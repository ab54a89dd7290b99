// The two-phases rule on hand-made results of a thread-per-connection server: each connection's
// thread must be seen waiting in its own read; a window that began while threads were still
// starting (connections unanswered in the warm-up) cannot tell, and says so.
import { describe, expect, it } from 'vitest';
import { analyse } from '../src/analysis/index.js';
import type { RunRecord, TraceRecord } from '../src/shared/results.js';
import { calls, client, echoResult, measurement, run, variant } from './fixtures/measurements.js';

/** A bpf-counted run of `threaded` whose `readers` threads slept longest in recvfrom; `answered` of 8 connections answered in the warm-up. */
function threadedRun(readers: number, answered: number, repetition: number): RunRecord {
  const server = variant('threaded');
  const result = echoResult(20_000, 150, { connected: 8 });
  const record = run(server, [client('load', { ...result, warmup: { connections: 8, answered, seconds: 0.4 } })], {
    repetition,
    trace: { setup: calls([['accept4', 8], ['clone3', 8]]), window: calls([['recvfrom', 20_000], ['sendto', 20_000]]) },
  });
  const trace: TraceRecord = {
    ...record.trace!,
    tracer: 'bpf',
    waits: {
      windowSeconds: 2,
      threads: readers + 1,
      serving: [
        { syscall: 'recvfrom', insideSeconds: 1.9 * readers, blockedSeconds: 1.8 * readers, threads: readers, mainWaitOf: readers },
        { syscall: 'accept4', insideSeconds: 2, blockedSeconds: 2, threads: 1, mainWaitOf: 1 },
      ],
    },
  };
  return { ...record, trace };
}

function judge(readers: number, answered: number) {
  const results = analyse(
    measurement(
      { variants: [variant('threaded')], clients: [{ name: 'load', mode: 'echo', connections: 8, messageSize: 64 }], verdict: { rule: 'two-phases', client: null }, repetitions: 1, traceRuns: 0 },
      [threadedRun(readers, answered, 0)],
    ),
  );
  const verdict = results.analysis.verdicts.find((v) => v.rule === 'two-phases')!;
  return verdict.parts.find((p) => p.claim.startsWith("each connection's thread"))!;
}

describe('two-phases, a thread per connection', () => {
  it('holds when every echo connection has a thread asleep in its read', () => {
    expect(judge(8, 8)).toMatchObject({ verdict: 'holds', measurement: '8 threads slept longest in a read' });
  });

  it('does not hold when threads are missing from a window that every connection was warmed up for', () => {
    expect(judge(3, 8)).toMatchObject({ verdict: 'does not hold here', measurement: '3 threads slept longest in a read' });
  });

  it('is inconclusive when the window began with threads still starting (connections unanswered in the warm-up)', () => {
    const part = judge(3, 2);
    expect(part.verdict).toBe('inconclusive');
    expect(part.measurement).toBe('3 threads slept longest in a read, and the window began with threads still starting: up to 6 connections of a client unanswered in its warm-up');
  });
});
