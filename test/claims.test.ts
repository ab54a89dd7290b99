// Each lab of the course's claims, run in a short form on the real local runtime. Where the
// physics is stable (a ceiling, a fingerprint, a stall, a spinning core) the verdict itself is
// checked; where the claim is about timings, only that the lab runs and judges every server.
import { afterAll, describe, expect, it } from 'vitest';
import { resolveLab } from '../src/labs/load.js';
import { runLab } from '../src/labs/runner.js';
import type { Lab } from '../src/labs/schema.js';
import { judgeClaim, type ClaimVerdict } from '../src/report/claims.js';
import { deriveFigures } from '../src/report/derive.js';
import type { Results } from '../src/report/results.js';
import { LocalRuntime } from '../src/runtime/local.js';

const runtime = new LocalRuntime();
afterAll(() => runtime.close());

async function runShort(name: string, changes: Partial<Lab>): Promise<{ results: Results; verdicts: ClaimVerdict[] }> {
  const loaded = await resolveLab(name);
  const lab: Lab = { ...loaded.lab, duration: 0.5, repetitions: 1, ...changes };
  const results = await runLab({ ...loaded, lab }, runtime);
  expect(results.runs.filter((run) => run.error), 'runs that failed').toEqual([]);
  return { results, verdicts: judgeClaim(results, deriveFigures(results)) };
}

function verdictFor(verdicts: ClaimVerdict[], subjectStart: string): ClaimVerdict {
  const found = verdicts.filter((v) => v.subject.startsWith(subjectStart));
  expect(found, `one verdict about ${subjectStart} among ${verdicts.map((v) => v.subject).join('; ')}`).toHaveLength(1);
  return found[0];
}

describe('claims, measured', () => {
  it('fd-ceiling: select stops at FD_SETSIZE, poll and epoll do not, epoll stops at RLIMIT_NOFILE', async () => {
    const { verdicts } = await runShort('fd-ceiling', { sweep: { client: 'crowd', connections: [2048] } });
    for (const subject of ['select: stops at FD_SETSIZE', 'poll: no ceiling', 'epoll: no ceiling', 'epoll-nofile-1024: stops at RLIMIT_NOFILE']) {
      const verdict = verdictFor(verdicts, subject);
      expect(verdict.verdict, `${verdict.subject}: ${verdict.measurement}`).toBe('holds');
    }
  });

  it('busy-poll: the non-blocking server spins with only idle clients, epoll sleeps', async () => {
    const { verdicts } = await runShort('busy-poll', { sweep: { client: 'idle', connections: [0, 200] }, duration: 1 });
    for (const subject of ['nonblocking: spins', 'epoll: sleeps']) {
      const verdict = verdictFor(verdicts, subject);
      expect(verdict.verdict, verdict.measurement).toBe('holds');
    }
  });

  it('lt-vs-et: an edge-triggered reader that does not drain strands the data; draining ones answer', async () => {
    const { verdicts } = await runShort('lt-vs-et', {});
    for (const subject of ['epoll: every message', 'epoll-et: every message', 'epoll-et-nodrain: a reader that does not drain']) {
      const verdict = verdictFor(verdicts, subject);
      expect(verdict.verdict, verdict.measurement).toBe('holds');
    }
    expect(verdictFor(verdicts, 'epoll wakes more often').verdict).not.toBe('inconclusive');
  });

  it('coroutines: one hidden blocking call stalls every other connection; without it, one thread serves all', async () => {
    const { verdicts } = await runShort('coroutines', { duration: 1 });
    for (const subject of ['coroutine: concurrency on one thread', 'coroutine-blocking-call: one blocking call']) {
      const verdict = verdictFor(verdicts, subject);
      expect(verdict.verdict, verdict.measurement).toBe('holds');
    }
  });

  it('models: every model shows its own syscall fingerprint under the same load', async () => {
    const { verdicts } = await runShort('models', {});
    expect(verdicts).toHaveLength(12);
    for (const verdict of verdicts) expect(verdict.verdict, `${verdict.subject}: ${verdict.measurement}`).toBe('holds');
  });

  it('threads-vs-events: a thread per connection, a fixed pool, and one thread for events and coroutines', async () => {
    const { verdicts } = await runShort('threads-vs-events', {
      duration: 2,
      clients: [{ name: 'crowd', mode: 'echo', connections: 100, messageSize: 64 }],
    });
    for (const subject of ['threaded: a thread per connection', 'pool: a fixed pool', 'epoll: no thread', 'coroutine: no thread']) {
      const verdict = verdictFor(verdicts, subject);
      expect(verdict.verdict, verdict.measurement).toBe('holds');
    }
  });

  it('idle-scan and one-connection run and judge every server (timing claims: verdicts not asserted)', async () => {
    const idle = await runShort('idle-scan', { sweep: { client: 'idle', connections: [0, 800] } });
    expect(idle.verdicts.map((v) => v.subject.split(':')[0])).toEqual(['select', 'poll', 'epoll']);
    for (const verdict of idle.verdicts) expect(verdict.verdict).not.toBe('inconclusive');
    const one = await runShort('one-connection', {});
    expect(one.verdicts.map((v) => v.subject)).toEqual(['select vs blocking', 'poll vs blocking', 'epoll vs blocking']);
    for (const verdict of one.verdicts) expect(verdict.verdict).not.toBe('inconclusive');
  });
});
