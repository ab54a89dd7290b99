// The timeline of a traced run: a stretch of the window in which the eBPF observer follows each
// thread of the server event by event. Real servers under load, traced by the real kernel and
// bpftrace, must show what their model says each thread does (an epoll server asleep in
// epoll_wait between requests, a thread per connection, a pool's idle threads asleep all along);
// and the parser must turn a hand-written list of events, out of order as per-CPU buffers hand
// them over, into the states the events mean.
import { afterEach, describe, expect, it } from 'vitest';
import { TimelineSchema, type Timeline, type TimelineState } from '../src/shared/results.js';
import { TIMELINE } from '../src/tracer/bpf-program.js';
import { parseTimelineLines } from '../src/tracer/bpf.js';
import { observeProcess } from '../src/tracer/observe.js';
import { buildTimeline, parseTimelineLine, type TimelineEvent, type TimelineInput } from '../src/tracer/timeline.js';
import { connect, echo, lowercaseBytes, Receiver, sleep, startTestServer, type TestServer } from './helpers.js';

const EPOLL_WAIT = 232;
const RECVFROM = 45;
const SENDTO = 44;
const FUTEX = 202;
const MESSAGE = lowercaseBytes(64);

describe('reading the timeline lines', () => {
  it('reads each kind of line, leaves other lines alone, and refuses a timeline line it cannot read', () => {
    expect(parseTimelineLine('tl:call 42 45 1000\n')).toEqual({ kind: 'call', tid: 42, syscall: 45, ns: 1000 });
    expect(parseTimelineLine('tl:return 42 45 2000')).toEqual({ kind: 'return', tid: 42, syscall: 45, ns: 2000 });
    expect(parseTimelineLine('tl:out 42 1 3000')).toEqual({ kind: 'out', tid: 42, asleep: true, ns: 3000 });
    expect(parseTimelineLine('tl:out 42 0 3000')).toEqual({ kind: 'out', tid: 42, asleep: false, ns: 3000 });
    expect(parseTimelineLine('tl:in 42 4000')).toEqual({ kind: 'in', tid: 42, ns: 4000 });
    expect(parseTimelineLine('tl:born 43 5000')).toEqual({ kind: 'born', tid: 43, ns: 5000 });
    expect(parseTimelineLine('tl:gone 43 6000')).toEqual({ kind: 'gone', tid: 43, ns: 6000 });
    expect(parseTimelineLine('tl:spanned 44 202 10 90000')).toEqual({ kind: 'spanned', tid: 44, syscall: 202, enterNs: 10, exitNs: 90000 });
    expect(parseTimelineLine('printed\n')).toBeNull();
    expect(() => parseTimelineLine('tl:call 42 45')).toThrow(/cannot be read: "tl:call 42 45"/);
    expect(() => parseTimelineLine('tl:nap 42 45 7')).toThrow(/cannot be read/);
    // Past 104 days of uptime, nanoseconds since boot exceed 2^53: still read, to a few ns.
    expect(parseTimelineLine('tl:call 4242 45 9072000000000000')).toEqual({ kind: 'call', tid: 4242, syscall: 45, ns: 9072000000000000 });
  });

  it('counts a timeline line it cannot read as an event lost, and keeps the rest', () => {
    const { events, lost } = parseTimelineLines(['{"type": "printf", "data": "tl:call 42 45\\n"}', '{"type": "printf", "data": "tl:in 42 4000\\n"}']);
    expect(events).toEqual([{ kind: 'in', tid: 42, ns: 4000 }]);
    expect(lost).toBe(1);
  });

  it("takes the timeline's printf lines out of bpftrace's JSON output and adds up the events it lost", () => {
    const { events, lost } = parseTimelineLines([
      '{"type": "printf", "data": "attached\\n"}',
      '{"type": "printf", "data": "tl:in 42 4000\\n"}',
      '{"type": "lost_events", "data": {"events": 18}}',
      '{"type": "map", "data": {"@windowStart": 1}}',
      '{"type": "lost_events", "data": {"events": 2}}',
      '{"type": "printf", "data": "tl:return 42 45 5000\\n"}',
    ]);
    expect(events).toEqual([
      { kind: 'in', tid: 42, ns: 4000 },
      { kind: 'return', tid: 42, syscall: 45, ns: 5000 },
    ]);
    expect(lost).toBe(20);
  });
});

describe('building the timeline from events', () => {
  // The window starts at 1 s; the stretch 100 ms later, for 10 ms: µs are (ns - 1.1e9) / 1000.
  const START = 1_100_000_000;
  const at = (us: number) => START + us * 1000;
  const names: Record<number, [string, 'serving' | 'runtime']> = {
    101: ['iolab:main', 'serving'],
    102: ['iolab:conn', 'serving'],
    103: ['node', 'runtime'],
    104: ['node', 'runtime'],
    105: ['iolab:conn', 'serving'],
  };
  const input = (events: TimelineEvent[], changes: Partial<TimelineInput> = {}): TimelineInput => ({
    windowStartNs: 1_000_000_000,
    windowEndNs: 2_000_000_000,
    offsetNs: 100_000_000,
    spanNs: 10_000_000,
    eventsMax: 20_000,
    events,
    inCallAtEnd: new Map(),
    inCallSinceAttach: new Map(),
    threadOf: (tid) => ({ name: names[tid]?.[0] ?? `thread ${tid}`, group: names[tid]?.[1] ?? 'runtime' }),
    dropped: 0,
    lost: 0,
    ...changes,
  });
  // The serving thread of an event loop: woken in epoll_wait, a read, preempted, a send that sleeps, back to epoll_wait.
  const loop: TimelineEvent[] = [
    { kind: 'in', tid: 101, ns: at(1) },
    { kind: 'return', tid: 101, syscall: EPOLL_WAIT, ns: at(2) },
    { kind: 'call', tid: 101, syscall: RECVFROM, ns: at(3) },
    { kind: 'return', tid: 101, syscall: RECVFROM, ns: at(4) },
    { kind: 'out', tid: 101, asleep: false, ns: at(5) },
    { kind: 'in', tid: 101, ns: at(7) },
    { kind: 'call', tid: 101, syscall: SENDTO, ns: at(8) },
    { kind: 'out', tid: 101, asleep: true, ns: at(9) },
    { kind: 'in', tid: 101, ns: at(11.04) },
    { kind: 'return', tid: 101, syscall: SENDTO, ns: at(12) },
    { kind: 'call', tid: 101, syscall: EPOLL_WAIT, ns: at(13) },
    { kind: 'out', tid: 101, asleep: true, ns: at(14) },
  ];
  const loopSegments: [number, number, number, TimelineState, string | null][] = [
    [0, 0, 1, 'blocked', 'epoll_wait'],
    [0, 1, 2, 'in-call', 'epoll_wait'],
    [0, 2, 3, 'running', null],
    [0, 3, 4, 'in-call', 'recvfrom'],
    [0, 4, 5, 'running', null],
    [0, 5, 7, 'runnable', null],
    [0, 7, 8, 'running', null],
    [0, 8, 9, 'in-call', 'sendto'],
    [0, 9, 11, 'blocked', 'sendto'],
    [0, 11, 12, 'in-call', 'sendto'],
    [0, 12, 13, 'running', null],
    [0, 13, 14, 'in-call', 'epoll_wait'],
    [0, 14, 10_000, 'blocked', 'epoll_wait'],
  ];
  // Per-CPU buffers hand lines over out of order: every other one first, then the rest backwards.
  const shuffled = <T>(list: T[]) => [...list.filter((_, i) => i % 2 === 0), ...list.filter((_, i) => i % 2 === 1).reverse()];

  it("gives each event its state, infers each thread's state before its first, and sorts out events of different CPUs", () => {
    const events: TimelineEvent[] = [
      ...loop,
      // A connection's thread asleep in recvfrom across the whole stretch, seen when it returned after it.
      { kind: 'spanned', tid: 102, syscall: RECVFROM, enterNs: at(-5000), exitNs: at(12_000) },
      // A thread born in the stretch: runs, reads, then ends.
      { kind: 'born', tid: 105, ns: at(500) },
      { kind: 'call', tid: 105, syscall: RECVFROM, ns: at(600) },
      { kind: 'return', tid: 105, syscall: RECVFROM, ns: at(650) },
      { kind: 'gone', tid: 105, ns: at(700) },
      // Before the stretch: not on the timeline.
      { kind: 'call', tid: 101, syscall: SENDTO, ns: at(-1) },
    ];
    const timeline = buildTimeline(
      input(shuffled(events), {
        // A runtime thread in futex since before the stretch and still at the window's end; another since before tracing.
        inCallAtEnd: new Map([[103, { syscall: FUTEX, enterNs: at(-20_000) }]]),
        inCallSinceAttach: new Map([[104, { syscall: FUTEX }]]),
      }),
    )!;
    expect(TimelineSchema.parse(timeline)).toEqual(timeline);
    expect(timeline.startUs).toBe(100_000);
    expect(timeline.spanUs).toBe(10_000);
    expect(timeline.threads).toEqual([
      { tid: 101, name: 'iolab:main', group: 'serving' },
      { tid: 102, name: 'iolab:conn', group: 'serving' },
      { tid: 105, name: 'iolab:conn', group: 'serving' },
      { tid: 103, name: 'node', group: 'runtime' },
      { tid: 104, name: 'node', group: 'runtime' },
    ]);
    expect(timeline.segments).toEqual([
      ...loopSegments,
      [1, 0, 10_000, 'blocked', 'recvfrom'],
      [2, 500, 600, 'running', null],
      [2, 600, 650, 'in-call', 'recvfrom'],
      [2, 650, 700, 'running', null],
      [3, 0, 10_000, 'blocked', 'futex'],
      [4, 0, 10_000, 'blocked', 'futex'],
    ]);
    expect(timeline.events).toBe(loop.length + 4);
    expect(timeline.truncated).toBeNull();
  });

  it('a thread first seen returning from a call was in it; first seen switched in outside a call, it was waiting for a CPU', () => {
    const timeline = buildTimeline(
      input([
        { kind: 'return', tid: 101, syscall: RECVFROM, ns: at(10) },
        { kind: 'in', tid: 102, ns: at(20) },
        { kind: 'call', tid: 102, syscall: SENDTO, ns: at(30) },
      ]),
    )!;
    expect(timeline.segments).toEqual([
      [0, 0, 10, 'in-call', 'recvfrom'],
      [0, 10, 10_000, 'running', null],
      [1, 0, 20, 'runnable', null],
      [1, 20, 30, 'running', null],
      [1, 30, 10_000, 'in-call', 'sendto'],
    ]);
  });

  it("ends at the last event printed when the program's cap was reached, and says so; says how many events bpftrace lost", () => {
    const capped = buildTimeline(input(shuffled(loop), { dropped: 500, eventsMax: loop.length }))!;
    expect(capped.segments.at(-1)).toEqual([0, 13, 14, 'in-call', 'epoll_wait']);
    expect(capped.truncated).toBe('the program printed at most 12 events and left out 500: the timeline ends at 14 µs');
    const lossy = buildTimeline(input(loop, { lost: 7 }))!;
    expect(lossy.segments).toEqual(loopSegments);
    expect(lossy.truncated).toMatch(/^bpftrace lost 7 events/);
  });

  it('is null when the window ended before the stretch began, and cut at its end when it ended inside', () => {
    expect(buildTimeline(input(loop, { windowEndNs: START - 1 }))).toBeNull();
    const cut = buildTimeline(input(loop, { windowEndNs: at(10.5) }))!;
    expect(cut.segments.at(-1)).toEqual([0, 9, 10.5, 'blocked', 'sendto']);
    expect(cut.spanUs).toBe(10_000);
    expect(cut.truncated).toBe('the window ended 10.5 µs into the stretch');
  });

  it('keeps the earliest segments and the busiest threads under their caps, and says so', () => {
    const events = [...loop, { kind: 'spanned', tid: 102, syscall: RECVFROM, enterNs: 0, exitNs: at(20_000) } as const];
    const fewer = buildTimeline(input(events, { segmentsMax: 5 }))!;
    expect(fewer.segments).toEqual([
      [0, 0, 1, 'blocked', 'epoll_wait'],
      [0, 1, 2, 'in-call', 'epoll_wait'],
      [0, 2, 3, 'running', null],
      [0, 3, 4, 'in-call', 'recvfrom'],
      [1, 0, 4, 'blocked', 'recvfrom'],
    ]);
    expect(fewer.truncated).toBe('more than 5 segments: the timeline ends at 4 µs');
    const oneRow = buildTimeline(input(events, { threadsMax: 1 }))!;
    expect(oneRow.threads.map((t) => t.tid)).toEqual([101]);
    expect(oneRow.truncated).toBe('2 threads in the stretch: the 1 with the most segments shown');
  });

  it('the schema refuses a segment outside the span or of a thread not listed', () => {
    const timeline: Timeline = { startUs: 0, spanUs: 10, threads: [{ tid: 1, name: 'x', group: 'serving' }], segments: [[0, 0, 10, 'running', null]], events: 1, truncated: null };
    expect(TimelineSchema.safeParse(timeline).success).toBe(true);
    expect(TimelineSchema.safeParse({ ...timeline, segments: [[0, 5, 11, 'running', null]] }).success).toBe(false);
    expect(TimelineSchema.safeParse({ ...timeline, segments: [[1, 0, 1, 'running', null]] }).success).toBe(false);
  });
});

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

/**
 * `model` under load, observed with the eBPF observer as a lab observes it: `connections`
 * connections opened before the window, then each doing round trips with a pause of `gapMs`
 * between them for `loadMs` after the window's start (well past the stretch, which ends 110 ms in).
 */
async function timelineUnderLoad(model: string, { connections, gapMs, loadMs = 400, options = {} }: { connections: number; gapMs: number; loadMs?: number; options?: Record<string, number> }): Promise<Timeline> {
  server = await startTestServer(model, null, options);
  const observer = await observeProcess(server.server.pid, { tracer: 'bpf' });
  const sockets = await Promise.all(Array.from({ length: connections }, () => connect(server!.port)));
  try {
    const receivers = sockets.map((socket) => new Receiver(socket));
    // One round trip each before the window: every connection is accepted and served once.
    await Promise.all(sockets.map((socket, i) => echo(socket, receivers[i], MESSAGE)));
    await observer.startWindow();
    const end = Date.now() + loadMs;
    await Promise.all(
      sockets.map(async (socket, i) => {
        while (Date.now() < end) {
          const reply = await echo(socket, receivers[i], MESSAGE);
          if (reply.toString() !== MESSAGE.toString().toUpperCase()) throw new Error(`connection ${i}: a wrong reply`);
          if (gapMs > 0) await sleep(gapMs);
        }
      }),
    );
    const { trace } = await observer.stop();
    expect(trace?.tracer).toBe('bpf');
    expect(trace!.timeline, 'the timeline').toBeTruthy();
    return TimelineSchema.parse(trace!.timeline);
  } catch (error) {
    observer.kill();
    throw error;
  } finally {
    for (const socket of sockets) socket.destroy();
  }
}

/** The timeline's own promises, whatever the model: its stretch as configured, and each thread's segments in order, within it, never overlapping. */
function expectWellFormed(timeline: Timeline): void {
  expect(timeline.startUs).toBe(TIMELINE.offsetNs / 1000);
  expect(timeline.spanUs).toBe(TIMELINE.spanNs / 1000);
  expect(timeline.events).toBeGreaterThan(0);
  expect(timeline.truncated, timeline.truncated ?? '').toBeNull();
  const groups = timeline.threads.map((t) => t.group);
  expect(groups, 'the serving threads first').toEqual([...groups].sort((a, b) => (a === b ? 0 : a === 'serving' ? -1 : 1)));
  const lastEnd = new Map<number, number>();
  for (const [thread, from, to] of timeline.segments) {
    expect(from).toBeGreaterThanOrEqual(0);
    expect(to).toBeLessThanOrEqual(timeline.spanUs);
    expect(to).toBeGreaterThan(from);
    expect(from, `thread ${thread}: a segment from ${from} µs overlaps the last`).toBeGreaterThanOrEqual(lastEnd.get(thread) ?? 0);
    lastEnd.set(thread, to);
  }
  expect(new Set(timeline.segments.map(([thread]) => thread)).size, 'every thread has a segment').toBe(timeline.threads.length);
}

/** The segments of the rows whose name starts with `prefix`, as "state syscall" strings with their total µs. */
function statesOf(timeline: Timeline, prefix: string): Map<string, number> {
  const totals = new Map<string, number>();
  for (const [thread, from, to, state, call] of timeline.segments) {
    if (!timeline.threads[thread].name.startsWith(prefix)) continue;
    const key = `${state} ${call ?? '-'}`;
    totals.set(key, (totals.get(key) ?? 0) + to - from);
  }
  return totals;
}

describe('the timeline of real servers under load (the eBPF observer)', () => {
  it('epoll: one serving thread, asleep in epoll_wait between requests, inside recvfrom and sendto for each', async () => {
    const timeline = await timelineUnderLoad('epoll', { connections: 4, gapMs: 1 });
    expectWellFormed(timeline);
    expect(timeline.threads.filter((t) => t.group === 'serving').map((t) => t.name)).toEqual(['iolab:main']);
    const states = statesOf(timeline, 'iolab:main');
    const described = JSON.stringify([...states]);
    expect([...states.keys()].some((key) => /^blocked epoll_p?wait$/.test(key)), described).toBe(true);
    expect([...states.keys()].some((key) => /^(in-call|blocked) (read|recvfrom)$/.test(key)), described).toBe(true);
    expect([...states.keys()].some((key) => /^(in-call|blocked) (write|sendto)$/.test(key)), described).toBe(true);
    // The Node runtime's own threads, waiting since before tracing began, have rows too.
    expect(timeline.threads.some((t) => t.group === 'runtime'), JSON.stringify(timeline.threads)).toBe(true);
  }, 60_000);

  it('threaded: a serving thread per connection, each asleep in its own recvfrom, and the main one in accept4 all along', async () => {
    const timeline = await timelineUnderLoad('threaded', { connections: 4, gapMs: 1 });
    expectWellFormed(timeline);
    const connectionThreads = timeline.threads.filter((t) => t.name === 'iolab:conn');
    expect(connectionThreads, JSON.stringify(timeline.threads)).toHaveLength(4);
    for (const thread of connectionThreads) {
      const index = timeline.threads.indexOf(thread);
      const calls = timeline.segments.filter(([t, , , state]) => t === index && state === 'blocked').map(([, , , , call]) => call);
      expect(calls, `thread ${thread.tid}`).toContain('recvfrom');
    }
    expect(statesOf(timeline, 'iolab:main').get('blocked accept4')).toBe(timeline.spanUs);
  }, 60_000);

  it("pool: an idle pool thread, asleep in futex since before tracing began, has a row asleep all along", async () => {
    // 4 threads, 1 connection: 3 threads never take a connection, so make no call at all while traced.
    const timeline = await timelineUnderLoad('pool', { connections: 1, gapMs: 1, options: { threads: 4 } });
    expectWellFormed(timeline);
    const poolThreads = timeline.threads.filter((t) => t.name === 'iolab:pool');
    expect(poolThreads, JSON.stringify(timeline.threads)).toHaveLength(4);
    const idle = poolThreads.filter((thread) => {
      const rows = timeline.segments.filter(([t]) => t === timeline.threads.indexOf(thread));
      return rows.length === 1 && rows[0][3] === 'blocked' && rows[0][4] === 'futex' && rows[0][2] - rows[0][1] === timeline.spanUs;
    });
    expect(idle, JSON.stringify(timeline.segments.slice(0, 40))).toHaveLength(3);
  }, 60_000);
});
