// Each lab of the course's claims, run in a short form on the real local runtime, judged by the
// one verdict engine. Where the physics is stable (a ceiling, a fingerprint, a stall, a spinning
// core, threads per connection) the verdict itself is checked; where the claim is about timings
// (one connection, idle scans, a probe's latency), that every server is judged, part by part, and
// that a verdict never claims more than its repetitions can show.
import { afterAll, describe, expect, it } from 'vitest';
import type { Lab } from '../src/labs/schema.js';
import { LocalRuntime } from '../src/runtime/local.js';
import type { Results } from '../src/shared/results.js';
import type { ClaimVerdict } from '../src/shared/verdicts.js';
import { expectHolds, labTimeoutMs, runShortLab, expectNotContradicted } from './helpers.js';

const runtime = new LocalRuntime();
afterAll(() => runtime.close());

/** The one verdict about a subject (of one rule, in a lab that names several). */
function verdictFor(results: Results, subjectStart: string, rule?: string): ClaimVerdict {
  const found = results.analysis.verdicts.filter((v) => v.subject.startsWith(subjectStart) && (rule === undefined || v.rule === rule));
  expect(found, `one verdict about ${subjectStart} among ${results.analysis.verdicts.map((v) => v.subject).join('; ')}`).toHaveLength(1);
  return found[0];
}

function partOf(verdict: ClaimVerdict, claimStart: string) {
  const found = verdict.parts.filter((p) => p.claim.startsWith(claimStart));
  expect(found, `one part "${claimStart}" of ${verdict.subject}: ${verdict.parts.map((p) => p.claim).join('; ')}`).toHaveLength(1);
  return found[0];
}

/** Runs of a short lab: servers × sweep values × (repetitions + traced runs). */
const runsOf = (servers: number, sweep: number, repetitions: number, traced: number) => servers * sweep * (repetitions + traced);

describe('claims, measured', () => {
  it('fd-ceiling: select stops at FD_SETSIZE, poll and epoll do not, epoll stops at RLIMIT_NOFILE', async () => {
    const results = await runShortLab('fd-ceiling', runtime, { duration: 0.5, repetitions: 1, sweep: { client: 'crowd', connections: [2048] } });
    for (const subject of ['select: stops at FD_SETSIZE', 'poll: no ceiling', 'epoll: no ceiling', 'epoll-nofile-1024: stops at RLIMIT_NOFILE']) {
      expectHolds(verdictFor(results, subject));
    }
  }, labTimeoutMs(runsOf(4, 1, 1, 0), 0.5));

  it('busy-poll: the non-blocking server spins and fails with EAGAIN with only idle clients, epoll sleeps; the probe latency is judged beyond the spread', async () => {
    const changes: Partial<Lab> = { duration: 0.5, repetitions: 4, sweep: { client: 'idle', connections: [0, 200] } };
    const results = await runShortLab('busy-poll', runtime, changes);
    const spins = verdictFor(results, 'nonblocking: spins');
    for (const claim of ['burns a core', 'its reads fail with EAGAIN']) expectHolds({ ...spins, parts: [partOf(spins, claim)] });
    const sleeps = verdictFor(results, 'epoll: sleeps');
    expectHolds({ ...sleeps, parts: [partOf(sleeps, 'sleeps')] });
    // A comparison of 4 repetitions against 4: a verdict either way, or inconclusive with the spread said.
    for (const part of [partOf(spins, 'the probe waits longer'), partOf(sleeps, "the probe's wait")]) {
      expect(part.measurement).toMatch(/\[.*–.*\] against .*\[.*–.*\]/);
      if (part.verdict === 'inconclusive') expect(part.measurement).toMatch(/overlap/);
    }
  }, labTimeoutMs(runsOf(2, 2, 4, 1), 0.5));

  it('lt-vs-et: an edge-triggered reader that does not drain strands the data; draining ones answer', async () => {
    const results = await runShortLab('lt-vs-et', runtime, { duration: 0.5 });
    for (const subject of ['epoll: every message', 'epoll-et: every message', 'epoll-et-nodrain: a reader that does not drain']) {
      expectHolds(verdictFor(results, subject));
    }
    // The lab's four runs each, counted by the eBPF observer as they are measured: enough for a
    // comparison of counts to be judged at all.
    expect(results.runs.filter((r) => r.trace?.tracer === 'bpf')).toHaveLength(12);
    const wakes = verdictFor(results, 'epoll wakes more often');
    expect(wakes.measurement).not.toMatch(/cannot tell a difference/);
  }, labTimeoutMs(runsOf(3, 1, 4, 0), 0.5));

  it('coroutines: one hidden blocking call stalls every other connection; without it, one thread serves all', async () => {
    const results = await runShortLab('coroutines', runtime, { duration: 1 });
    for (const subject of ['coroutine: coroutines: concurrency on one thread', 'coroutine-blocking-call: one blocking call', 'epoll: events: concurrency on one thread']) {
      expectHolds(verdictFor(results, subject));
    }
  }, labTimeoutMs(runsOf(3, 1, 4, 1), 1));

  it('models: every model shows its own syscall fingerprint under the same load, and busy polling burns a core', async () => {
    const results = await runShortLab('models', runtime, { duration: 0.5, repetitions: 1 });
    // Two rules judge the claim: each model's fingerprint, and where it waits.
    expect(results.analysis.verdicts.map((v) => v.rule)).toEqual([...Array(12).fill('fingerprints'), ...Array(12).fill('two-phases')]);
    for (const verdict of results.analysis.verdicts.filter((v) => v.rule === 'fingerprints')) expectHolds(verdict);
    for (const verdict of results.analysis.verdicts.filter((v) => v.rule === 'two-phases')) expectNotContradicted(verdict);
    expect(verdictFor(results, 'nonblocking', 'fingerprints').parts.map((p) => p.claim)).toEqual([
      'shows the nonblocking fingerprint',
      'its calls on idle sockets fail with EAGAIN',
      'it burns a core (at least 60% of one)',
    ]);
  }, labTimeoutMs(runsOf(12, 1, 1, 1), 0.5));

  it("python: the course's Python servers each show their model's fingerprint, and each waits where its model does", async () => {
    const results = await runShortLab('python', runtime, { duration: 1, repetitions: 1 });
    const names = results.lab.variants.map((v) => v.label);
    expect(names).toHaveLength(10);
    expect(results.analysis.verdicts.map((v) => v.rule)).toEqual([...Array(10).fill('fingerprints'), ...Array(10).fill('two-phases')]);
    for (const verdict of results.analysis.verdicts.filter((v) => v.rule === 'fingerprints')) expectHolds(verdict);
    for (const verdict of results.analysis.verdicts.filter((v) => v.rule === 'two-phases')) expectNotContradicted(verdict);
    // They announce the interpreter they ran on; the fork server's children were followed.
    expect(results.runs[0].serverRuntime).toMatch(/^python 3\./);
    const fork = results.runs.find((r) => r.variant === 'python-fork')!;
    expect(fork.proc?.processesPeak, 'the fork server and a child per connection').toBeGreaterThan(16);
  }, labTimeoutMs(runsOf(10, 1, 1, 1), 1));

  it('two-phases: every model waits for data asleep in the call it declares, and the busy loop never sleeps', async () => {
    const results = await runShortLab('two-phases', runtime, { duration: 1, repetitions: 1 });
    expect(results.analysis.verdicts.map((v) => v.subject)).toEqual(results.lab.variants.map((v) => v.label));
    for (const verdict of results.analysis.verdicts) expectHolds(verdict);
    const longest = Object.fromEntries(results.analysis.verdicts.map((v) => [v.subject, v.figures.longestWait]));
    expect(longest).toMatchObject({ blocking: 'recvfrom', threaded: 'recvfrom', select: expect.stringMatching(/^(select|pselect6)$/), epoll: 'epoll_wait', uring: 'io_uring_enter', sigio: 'read' });
  }, labTimeoutMs(runsOf(12, 1, 1, 0), 1));

  it('threads-vs-events: a thread per connection, a fixed pool, and one thread for events and coroutines', async () => {
    const results = await runShortLab('threads-vs-events', runtime, {
      duration: 2,
      clients: [{ name: 'crowd', mode: 'echo', connections: 100, messageSize: 64 }],
    });
    for (const subject of ['threaded: a thread per connection', 'pool: a fixed pool', 'epoll: no thread', 'coroutine: no thread', 'python-fork: a process per connection']) {
      expectHolds(verdictFor(results, subject));
    }
    // The process row: a process per connection, its memory as PSS, its set-up time.
    const fork = verdictFor(results, 'python-fork: a process per connection');
    expect(fork.figures.processesAdded).toBeGreaterThanOrEqual(90);
    expect(fork.figures.pssPerConnectionKb).toBeGreaterThan(0);
    expect(fork.measurement).toMatch(/set-up: [\d.]+ ms per connection/);
  }, labTimeoutMs(runsOf(5, 1, 1, 0), 2));

  it('idle-scan and one-connection judge every server, each comparison beyond the spread or inconclusive', async () => {
    const idle = await runShortLab('idle-scan', runtime, { duration: 0.5, sweep: { client: 'idle', connections: [0, 800] } });
    expect(idle.analysis.verdicts.map((v) => v.subject.split(':')[0])).toEqual(['select', 'poll', 'epoll']);
    const one = await runShortLab('one-connection', runtime, { duration: 0.5 });
    expect(one.analysis.verdicts.map((v) => v.subject)).toEqual(['select vs blocking', 'poll vs blocking', 'epoll vs blocking']);
    for (const verdict of [...idle.analysis.verdicts, ...one.analysis.verdicts]) {
      for (const part of verdict.parts) {
        // Never a verdict on too few repetitions; an overlap is said to be one.
        expect(part.measurement, verdict.subject).not.toMatch(/cannot tell a difference/);
        if (part.verdict === 'inconclusive') expect(part.measurement, verdict.subject).toMatch(/overlap/);
        else expect(part.measurement, verdict.subject).toMatch(/every repetition/);
      }
    }
    // With one connection, multiplexing makes more calls per round trip than blocking IO: counts, not timings.
    for (const verdict of one.analysis.verdicts) expect(partOf(verdict, 'more system calls').verdict, verdict.measurement).toBe('holds');
  }, labTimeoutMs(runsOf(3, 2, 4, 1) + runsOf(4, 1, 5, 4), 0.5));
});
