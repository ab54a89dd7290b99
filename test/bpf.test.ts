// The eBPF observer against the real kernel: bpftrace attached to real servers beside strace, on
// a fixed workload of known round trips, must count what strace counts; where a thread sleeps
// must be where its model says it waits; io_uring's requests are counted by opcode; and a lab
// takes its counts from its measured runs under bpf, from runs of their own under strace.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { models } from '../src/servers/index.js';
import { LocalRuntime } from '../src/runtime/local.js';
import { renderMarkdown } from '../src/report/index.js';
import { checkFingerprint, SERVING_THREAD_PREFIX } from '../src/shared/model.js';
import { mergeCounts, type SyscallCount, type TraceRecord } from '../src/shared/results.js';
import { BpfSession, checkBpf, LabBpf } from '../src/tracer/bpf.js';
import { bpfProgram } from '../src/tracer/bpf-program.js';
import { readThreadNames } from '../src/tracer/proc.js';
import { countStraceLog } from '../src/tracer/strace-log.js';
import { startStrace } from '../src/tracer/strace.js';
import { syscallName } from '../src/tracer/syscall-names.js';
import { connect, echo, labTimeoutMs, lowercaseBytes, Receiver, runShortLab, sleep, startTestServer, type TestServer } from './helpers.js';

/** Round trips of the fixed workload: enough that 1% is 20 calls of each steady-state call. */
const ROUND_TRIPS = 2000;
/** A call made at least this many times in the window is steady state (a call per round trip or so), not set-up. */
const STEADY_STATE_CALLS = ROUND_TRIPS / 4;
const MESSAGE = lowercaseBytes(64);

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

/** `count` round trips on one connection, one at a time, each checked. */
async function roundTrips(port: number, count: number, gapMs = 0): Promise<void> {
  const socket = await connect(port);
  const receiver = new Receiver(socket);
  try {
    for (let i = 0; i < count; i++) {
      const reply = await echo(socket, receiver, MESSAGE);
      if (reply.toString() !== MESSAGE.toString().toUpperCase()) throw new Error(`round trip ${i}: a wrong reply`);
      if (gapMs > 0) await sleep(gapMs);
    }
  } finally {
    socket.destroy();
  }
}

/** Both tracers on one server at once: strace's log and bpftrace's maps of the same calls. */
async function traceBoth(model: string, workload: (port: number) => Promise<void>): Promise<{ strace: ReturnType<typeof countStraceLog>; bpf: TraceRecord }> {
  server = await startTestServer(model);
  const pid = server.server.pid;
  const scratch = await mkdtemp(join(tmpdir(), 'iolab-bpf-test-'));
  try {
    const bpf = await BpfSession.start({ kind: 'pids', pids: [pid] }, SERVING_THREAD_PREFIX);
    const strace = await startStrace(pid, { outputFile: join(scratch, 'calls.log') });
    const namesAtAttach = await readThreadNames(pid);
    // A connection set up and answered before the window, as a lab's warm-up does.
    await roundTrips(server.port, 1);
    const windowStart = Date.now() / 1000;
    bpf.startWindow();
    await workload(server.port);
    // the server closes the finished connection: give it the moment it takes
    await sleep(200);
    const windowEnd = Date.now() / 1000;
    bpf.endWindow();
    const counted = await bpf.stop();
    const log = await strace.stop();
    return { strace: countStraceLog(log, { namesAtAttach, servingPrefix: SERVING_THREAD_PREFIX, windowStart, windowEnd }), bpf: counted };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

const calls = (rows: readonly SyscallCount[], name: string) => rows.find((s) => s.syscall === name)?.calls ?? 0;

describe('the eBPF observer on this machine', () => {
  it('can run here (root, bpftrace, tracefs): the labs count with it by default', async () => {
    const check = await checkBpf();
    expect(check, JSON.stringify(check)).toMatchObject({ available: true });
  });

  it('names syscalls by their x86_64 numbers as strace does', () => {
    expect([0, 1, 7, 23, 43, 44, 45, 232, 270, 271, 281, 288, 426, 435, 441].map(syscallName)).toEqual([
      'read', 'write', 'poll', 'select', 'accept', 'sendto', 'recvfrom', 'epoll_wait', 'pselect6', 'ppoll', 'epoll_pwait', 'accept4', 'io_uring_enter', 'clone3', 'epoll_pwait2',
    ]);
    expect(syscallName(400)).toBe('syscall_400');
  });

  it('refuses a window marker a process could have as its pid', () => {
    expect(() => bpfProgram({ filter: { kind: 'pids', pids: [1] }, marker: 4242, servingPrefix: 'iolab:' })).toThrow(/marker 4242/);
  });
});

describe("a lab's eBPF observer, attached once and armed for one server after another", () => {
  it('counts each server in its turn, and none of the last one: every map is cleared at each arm', async () => {
    const labBpf = new LabBpf(SERVING_THREAD_PREFIX);
    const first = await startTestServer('select');
    const second = await startTestServer('epoll');
    try {
      const countOf = async (target: TestServer, workload: number) => {
        const bpf = await labBpf.arm([target.server.pid]);
        bpf.startWindow();
        // Both servers busy at once: only the armed one's calls may be counted.
        await Promise.all([roundTrips(target.port, workload), roundTrips((target === first ? second : first).port, 300)]);
        await sleep(200);
        return bpf.stop();
      };
      const selectCounts = await countOf(first, 400);
      const epollCounts = await countOf(second, 600);
      const again = await countOf(first, 200);
      expect(calls(selectCounts.window.serving, 'pselect6')).toBeGreaterThanOrEqual(400);
      expect(calls(selectCounts.window.serving, 'epoll_wait')).toBe(0);
      expect(calls(epollCounts.window.serving, 'epoll_wait')).toBeGreaterThanOrEqual(600);
      expect(calls(epollCounts.window.serving, 'pselect6')).toBe(0);
      // recvfrom: one per round trip of the armed server's workload (the other's 300 not among them), plus the last read of the closed connection.
      expect(calls(epollCounts.window.serving, 'recvfrom')).toBeGreaterThanOrEqual(600);
      expect(calls(epollCounts.window.serving, 'recvfrom')).toBeLessThan(600 + 300);
      expect(calls(again.window.serving, 'pselect6')).toBeGreaterThanOrEqual(200);
      expect(calls(again.window.serving, 'pselect6')).toBeLessThan(400);
    } finally {
      labBpf.close();
      await Promise.all([first.close(), second.close()]);
    }
  });

  it('refuses to count a second server while one is armed', async () => {
    const labBpf = new LabBpf(SERVING_THREAD_PREFIX);
    try {
      const armed = await labBpf.arm([process.pid]);
      await expect(labBpf.arm([process.pid])).rejects.toThrow(/counting another server/);
      armed.kill();
      const again = await labBpf.arm([process.pid]);
      again.startWindow();
      await expect(again.stop()).resolves.toMatchObject({ tracer: 'bpf' });
    } finally {
      labBpf.close();
    }
  });
});

describe.each(models.map((model) => [model.name] as const))('the %s server under bpf and strace at once', (name) => {
  it(`counts each steady-state call of ${ROUND_TRIPS} round trips as strace does, within 1%, and shows the fingerprint`, async () => {
    // The coroutine server adds a socket to epoll the first time a read fails with EAGAIN: under
    // strace, slowed, it may find every request already there and never wait. A 1 ms pause
    // between round trips makes it wait, as a lab's load does.
    const gapMs = name === 'coroutine' ? 1 : 0;
    const { strace, bpf } = await traceBoth(name, (port) => roundTrips(port, ROUND_TRIPS, gapMs));
    const steady = strace.window.serving.filter((s) => s.calls >= STEADY_STATE_CALLS);
    expect(steady.length, JSON.stringify(strace.window.serving)).toBeGreaterThan(0);
    for (const row of steady) {
      const counted = calls(bpf.window.serving, row.syscall);
      expect(Math.abs(counted - row.calls), `${row.syscall}: bpf ${counted}, strace ${row.calls}`).toBeLessThanOrEqual(row.calls / 100);
    }
    // ... and nothing steady that strace did not see.
    for (const row of bpf.window.serving.filter((s) => s.calls >= STEADY_STATE_CALLS)) expect(calls(strace.window.serving, row.syscall), row.syscall).toBeGreaterThan(0);
    const model = models.find((m) => m.name === name)!;
    const check = checkFingerprint(model.fingerprint, mergeCounts(bpf.setup.serving, bpf.window.serving), ROUND_TRIPS);
    expect(check.verdict, JSON.stringify(check)).toBe('matches');
  }, 120_000);
});

describe('a process per connection under bpf and strace at once', () => {
  it("counts one clone per fork, as strace does: a new task's return from the clone that made it is not a call of its own", async () => {
    // The warm-up's connection, then two more one after the other, 10 round trips each: a fork each.
    const { strace, bpf } = await traceBoth('python-fork', async (port) => {
      await roundTrips(port, 10);
      await roundTrips(port, 10);
    });
    type Counted = Pick<TraceRecord, 'setup' | 'window'>;
    const forks = (trace: Counted) => calls(mergeCounts(trace.setup.serving, trace.window.serving), 'clone');
    const clones = (trace: Counted) => JSON.stringify([trace.setup, trace.window].map((t) => [...t.serving, ...t.runtime].filter((s) => s.syscall.startsWith('clone'))));
    expect(forks(strace), clones(strace)).toBe(3);
    expect(forks(bpf), clones(bpf)).toBe(3);
  }, 120_000);
});

describe('where the model waits (the eBPF observer times each call)', () => {
  // A client that pauses 20 ms between requests: every model has data to wait for most of the time.
  const slow = (port: number) => roundTrips(port, 40, 20);
  const asleepIn = (trace: TraceRecord) => [...trace.waits!.serving].sort((a, b) => b.blockedSeconds - a.blockedSeconds);

  it.each([
    ['blocking', 'recvfrom'],
    ['epoll', 'epoll_wait'],
    ['uring', 'io_uring_enter'],
  ])('%s sleeps longest in %s, and its thread is there most of the window', async (model, call) => {
    const { bpf } = await traceBoth(model, slow);
    const [longest] = asleepIn(bpf);
    expect(longest.syscall, JSON.stringify(bpf.waits)).toBe(call);
    expect(longest.blockedSeconds).toBeGreaterThan(bpf.waits!.windowSeconds / 2);
  }, 120_000);

  it('the busy loop never sleeps in a call', async () => {
    const { bpf } = await traceBoth('nonblocking', slow);
    const asleep = bpf.waits!.serving.reduce((total, r) => total + r.blockedSeconds, 0);
    expect(asleep, JSON.stringify(bpf.waits)).toBeLessThan(bpf.waits!.windowSeconds * 0.05);
  }, 120_000);

  it('counts the io_uring requests the kernel ran, by opcode: a receive and a send per round trip', async () => {
    const { bpf } = await traceBoth('uring', (port) => roundTrips(port, 500));
    const ops = Object.fromEntries(bpf.uring!.window.map((op) => [op.opcode, op.submitted]));
    expect(ops.RECV, JSON.stringify(bpf.uring)).toBeGreaterThanOrEqual(500);
    expect(ops.SEND).toBeGreaterThanOrEqual(500);
    // strace sees none of them: only the call that enters the ring.
    expect(calls(bpf.window.serving, 'recvfrom') + calls(bpf.window.serving, 'sendto')).toBe(0);
  }, 120_000);
});

describe('a lab counts with the tracer it was given', () => {
  const lab = { models: ['blocking', 'epoll'], repetitions: 1, duration: 0.5 };

  it('bpf: the measured runs carry the counts and where each model waits; no trace runs', async () => {
    const results = await runShortLab('two-phases', new LocalRuntime(), lab, { tracer: 'bpf' });
    expect(results.environment.tracerKind).toBe('bpf');
    expect(results.runs.map((r) => `${r.variant} ${r.phase} ${r.trace?.tracer}`)).toEqual(['blocking measure bpf', 'epoll measure bpf']);
    for (const verdict of results.analysis.verdicts) expect(verdict.verdict, verdict.measurement).toBe('holds');
    const report = renderMarkdown(results);
    expect(report).toContain('## Where each model waits');
    expect(report).toContain('## Syscalls per server (eBPF)');
  }, labTimeoutMs(2, 0.5));

  it('strace: counts from runs of their own after the measured ones, and no wait times (strace cannot tell them)', async () => {
    const results = await runShortLab('two-phases', new LocalRuntime(), lab, { tracer: 'strace' });
    expect(results.environment.tracerKind).toBe('strace');
    expect(results.runs.map((r) => `${r.variant} ${r.phase} ${r.trace?.tracer ?? 'none'}`)).toEqual(['blocking measure none', 'epoll measure none', 'blocking trace strace', 'epoll trace strace']);
    expect(results.analysis.verdicts.map((v) => v.verdict)).toEqual(['inconclusive', 'inconclusive']);
    expect(results.analysis.verdicts[0].measurement).toMatch(/--tracer bpf/);
    expect(renderMarkdown(results)).not.toContain('## Where each model waits');
  }, labTimeoutMs(4, 0.5));

  it('auto falls back to strace with one notice when the runtime cannot run bpf; --tracer bpf then refuses, naming why', async () => {
    const runtime = new LocalRuntime();
    const noBpf = Object.assign(Object.create(runtime) as LocalRuntime, {
      tracer: (kind: 'bpf' | 'strace') => (kind === 'bpf' ? Promise.resolve({ available: false as const, reason: 'bpftrace is not installed' }) : runtime.tracer(kind)),
    });
    const notices: string[] = [];
    const results = await runShortLab('two-phases', noBpf, { ...lab, models: ['epoll'] }, { onNotice: (line) => notices.push(line) });
    expect(results.environment.tracerKind).toBe('strace');
    expect(notices).toEqual([expect.stringMatching(/strace.*bpftrace is not installed/)]);
    await expect(runShortLab('two-phases', noBpf, { ...lab, models: ['epoll'] }, { tracer: 'bpf' })).rejects.toThrow(/--tracer bpf: bpftrace is not installed/);
    await runtime.close();
  }, labTimeoutMs(2, 0.5));
});
