// The timeline of one traced run: what each thread of the server did, event by event, during one
// short stretch of the measured window, as the eBPF program printed it (its "tl:" lines, see
// src/tracer/bpf-program.ts), turned into segments of state for a chart: a row per thread, time
// on the x-axis, coloured by running / in-call / blocked / runnable.
//
// The program prints each event as it happens, from the CPU it happens on; bpftrace reads its
// per-CPU buffers in turn, so lines of different CPUs interleave out of order. Sorted by their
// time (CLOCK_MONOTONIC, one clock for every CPU), a thread's events are in order: it cannot be
// switched in on one CPU before it was switched out of another.
//
// What the events do not say, the state of a thread before its first event in the stretch, is
// inferred, as simply as can be said:
//   - inside a call at the start: when a call covered the whole stretch (a "spanned" line, a call
//     still in progress at the window's end, or one in progress since before tracing began), or
//     when the thread's first call event is a return (it was inside that call);
//   - off its CPU at the start: when its first event is a switch-in; it was then asleep if inside
//     a call (a thread waits in a call asleep), runnable otherwise (off a CPU outside any call, a
//     thread was preempted). Otherwise it was on a CPU;
//   - a thread inside one call for the whole stretch with no event at all was asleep in it: on a
//     CPU it would have been switched out (preempted) or returned within 10 ms.
// A thread born in the stretch starts at its first return (from the clone that made it); one
// that ends, at its exit.
import { LabRunError } from '../errors.js';
import type { Timeline, TimelineState } from '../shared/results.js';
import { TIMELINE_LINE_PREFIX } from './bpf-program.js';
import { syscallName } from './syscall-names.js';

/** One line of the program's timeline; times are CLOCK_MONOTONIC nanoseconds, syscalls x86_64 numbers. */
export type TimelineEvent =
  | { kind: 'call' | 'return'; tid: number; syscall: number; ns: number }
  | { kind: 'born' | 'in' | 'gone'; tid: number; ns: number }
  | { kind: 'out'; tid: number; asleep: boolean; ns: number }
  | { kind: 'spanned'; tid: number; syscall: number; enterNs: number; exitNs: number };

/** How many numbers follow each kind of line. */
const FIELDS: Record<TimelineEvent['kind'], number> = { call: 3, return: 3, born: 2, in: 2, gone: 2, out: 3, spanned: 4 };

/**
 * The event of one line printed by the program ("tl:call 4242 45 123456789"), or null for a line
 * that is not the timeline's. Throws LabRunError on a timeline line it cannot read.
 */
export function parseTimelineLine(line: string): TimelineEvent | null {
  if (!line.startsWith(TIMELINE_LINE_PREFIX)) return null;
  const [kind, ...fields] = line.slice(TIMELINE_LINE_PREFIX.length).trim().split(/\s+/);
  const numbers = fields.map(Number);
  // Not Number.isSafeInteger: nanoseconds since boot pass 2^53 after 104 days of uptime, and a
  // double still holds them to a few nanoseconds, far finer than the chart's 0.1 µs.
  if (!(kind in FIELDS) || numbers.length !== FIELDS[kind as TimelineEvent['kind']] || !numbers.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new LabRunError(`the eBPF program printed a timeline line that cannot be read: ${JSON.stringify(line.slice(0, 200))}`);
  }
  const [tid, a, b, c] = numbers;
  switch (kind as TimelineEvent['kind']) {
    case 'call':
    case 'return':
      return { kind: kind as 'call' | 'return', tid, syscall: a, ns: b };
    case 'out':
      return { kind: 'out', tid, asleep: a !== 0, ns: b };
    case 'spanned':
      return { kind: 'spanned', tid, syscall: a, enterNs: b, exitNs: c };
    default:
      return { kind: kind as 'born' | 'in' | 'gone', tid, ns: a };
  }
}

/** A thread as the timeline names it. */
export interface TimelineThread {
  name: string;
  group: 'serving' | 'runtime';
}

export interface TimelineInput {
  /** the measured window's start and end, CLOCK_MONOTONIC nanoseconds. */
  windowStartNs: number;
  windowEndNs: number;
  /** the program's stretch (TimelineOptions): its start after the window's, its length, its cap of lines; nanoseconds. */
  offsetNs: number;
  spanNs: number;
  eventsMax: number;
  /** the program's timeline lines, in any order. */
  events: readonly TimelineEvent[];
  /** calls in progress at the window's end by tid (@enter, @sysid). */
  inCallAtEnd: ReadonlyMap<number, { syscall: number; enterNs: number }>;
  /** threads inside one call since before tracing began, by tid (seen in /proc at the end; no call of theirs was seen). */
  inCallSinceAttach: ReadonlyMap<number, { syscall: number }>;
  /** the name and group of a thread. */
  threadOf(tid: number): TimelineThread;
  /** events the program counted but did not print, past its cap (@timelineDropped). */
  dropped: number;
  /** events bpftrace lost, its buffers full ("lost_events" lines). */
  lost: number;
  /** rows kept at most (the busiest); the default, THREADS_MAX. */
  threadsMax?: number;
  /** segments kept at most (the earliest); the default, SEGMENTS_MAX. */
  segmentsMax?: number;
}

/** Rows kept at most: more would not be read on a chart, and a lab of 10,000 idle threads would write them all. */
export const THREADS_MAX = 128;
/**
 * Segments kept at most: about 35 bytes each in results.json written compactly, 80 pretty-printed
 * with two spaces as writeReport does (measured), so a run's timeline stays under about 150 KB
 * (330 KB). A busy server's 10 ms made 100-1,100 segments here.
 */
export const SEGMENTS_MAX = 4000;

type Segment = [thread: number, fromNs: number, toNs: number, state: TimelineState, syscall: number | null];

/** A thread's state as it goes: inside which call (or none), and on its CPU, asleep or runnable. */
interface ThreadState {
  inCall: number | null;
  cpu: 'on' | 'asleep' | 'runnable';
}

function stateOf({ inCall, cpu }: ThreadState): [TimelineState, number | null] {
  if (cpu === 'asleep') return ['blocked', inCall];
  if (cpu === 'runnable') return ['runnable', inCall];
  return inCall === null ? ['running', null] : ['in-call', inCall];
}

/**
 * The timeline of one window (TimelineSchema), or null when the window ended before the stretch
 * began. Segments are in µs from the stretch's start, rounded to 0.1 µs, clipped to where the
 * data ends (the stretch's end, the window's if earlier, the last event printed if the program's
 * cap was reached) and then to the segment cap; `truncated` says which cut applied, and any
 * events bpftrace lost.
 */
export function buildTimeline(input: TimelineInput): Timeline | null {
  const { windowStartNs, windowEndNs, offsetNs, spanNs } = input;
  const startNs = windowStartNs + offsetNs;
  const stretchEndNs = startNs + spanNs;
  if (windowEndNs <= startNs) return null;
  const reasons: string[] = [];
  const us = (ns: number) => Math.round((ns - startNs) / 100) / 10;
  let cutNs = stretchEndNs;
  if (windowEndNs < stretchEndNs) {
    cutNs = windowEndNs;
    reasons.push(`the window ended ${us(windowEndNs)} µs into the stretch`);
  }
  const stretch = input.events.filter((event): event is Exclude<TimelineEvent, { kind: 'spanned' }> => event.kind !== 'spanned' && event.ns >= startNs && event.ns < stretchEndNs);
  stretch.sort((a, b) => a.ns - b.ns);
  if (input.dropped > 0) {
    const lastNs = stretch.length ? stretch[stretch.length - 1].ns : startNs;
    cutNs = Math.min(cutNs, lastNs);
    reasons.push(`the program printed at most ${input.eventsMax} events and left out ${input.dropped}: the timeline ends at ${us(lastNs)} µs`);
  }
  if (input.lost > 0) reasons.push(`bpftrace lost ${input.lost} events (its buffers were full): some segments are wrong`);

  // Threads inside one call across the whole stretch.
  const covering = new Map<number, number>();
  for (const event of input.events) if (event.kind === 'spanned' && event.enterNs < startNs && event.exitNs >= stretchEndNs) covering.set(event.tid, event.syscall);
  for (const [tid, call] of input.inCallAtEnd) if (call.enterNs < startNs) covering.set(tid, call.syscall);
  for (const [tid, call] of input.inCallSinceAttach) if (!covering.has(tid)) covering.set(tid, call.syscall);

  const byThread = new Map<number, typeof stretch>();
  for (const event of stretch) {
    let events = byThread.get(event.tid);
    if (!events) byThread.set(event.tid, (events = []));
    events.push(event);
  }
  for (const tid of covering.keys()) if (!byThread.has(tid)) byThread.set(tid, []);

  const segmentsOf = new Map<number, Segment[]>();
  for (const [tid, events] of byThread) {
    const segments: Segment[] = [];
    segmentsOf.set(tid, segments);
    const firstCall = events.find((event) => event.kind === 'call' || event.kind === 'return' || event.kind === 'born');
    const state: ThreadState = {
      inCall: covering.get(tid) ?? (firstCall?.kind === 'return' ? firstCall.syscall : null),
      cpu: 'on',
    };
    if (events.length === 0) state.cpu = 'asleep';
    else if (events[0].kind === 'in') state.cpu = state.inCall === null ? 'runnable' : 'asleep';
    // A thread born in the stretch has no state before its birth.
    let sinceNs: number | null = events[0]?.kind === 'born' ? null : startNs;
    const close = (atNs: number) => {
      if (sinceNs === null) return;
      const [stateName, call] = stateOf(state);
      const last = segments[segments.length - 1];
      if (last && last[2] === sinceNs && last[3] === stateName && last[4] === call) last[2] = Math.min(atNs, cutNs);
      else if (Math.min(atNs, cutNs) > sinceNs) segments.push([0, sinceNs, Math.min(atNs, cutNs), stateName, call]);
      sinceNs = atNs;
    };
    for (const event of events) {
      if (event.ns >= cutNs) break;
      close(event.ns);
      switch (event.kind) {
        case 'call':
          state.inCall = event.syscall;
          state.cpu = 'on';
          break;
        case 'return':
          state.inCall = null;
          state.cpu = 'on';
          break;
        case 'born':
          sinceNs = event.ns;
          state.inCall = null;
          state.cpu = 'on';
          break;
        case 'out':
          state.cpu = event.asleep ? 'asleep' : 'runnable';
          break;
        case 'in':
          state.cpu = 'on';
          break;
        case 'gone':
          sinceNs = null;
          break;
      }
    }
    close(cutNs);
  }

  // Rounded to 0.1 µs at each boundary (so a thread's segments stay contiguous); those that round to nothing dropped.
  const rounded = new Map<number, [number, number, number, TimelineState, number | null][]>();
  for (const [tid, segments] of segmentsOf) {
    const kept = segments.map(([, from, to, state, call]): [number, number, number, TimelineState, number | null] => [0, us(from), us(to), state, call]).filter(([, from, to]) => to > from);
    if (kept.length) rounded.set(tid, kept);
  }

  // Rows: the busiest THREADS_MAX, then the model's first, each group by tid (the order threads are made in).
  const threadsMax = input.threadsMax ?? THREADS_MAX;
  let tids = [...rounded.keys()];
  if (tids.length > threadsMax) {
    reasons.push(`${tids.length} threads in the stretch: the ${threadsMax} with the most segments shown`);
    tids = tids.sort((a, b) => rounded.get(b)!.length - rounded.get(a)!.length || a - b).slice(0, threadsMax);
  }
  const threads = tids.map((tid) => ({ tid, ...input.threadOf(tid) })).sort((a, b) => (a.group === b.group ? a.tid - b.tid : a.group === 'serving' ? -1 : 1));

  // Segments: the earliest SEGMENTS_MAX, every row cut at the same time.
  let segments = threads.flatMap((thread, index) => rounded.get(thread.tid)!.map(([, from, to, state, call]): [number, number, number, TimelineState, number | null] => [index, from, to, state, call]));
  const segmentsMax = input.segmentsMax ?? SEGMENTS_MAX;
  if (segments.length > segmentsMax) {
    const cutUs = segments.map(([, from]) => from).sort((a, b) => a - b)[segmentsMax];
    segments = segments.filter(([, from]) => from < cutUs).map(([thread, from, to, state, call]) => [thread, from, Math.min(to, cutUs), state, call]);
    reasons.push(`more than ${segmentsMax} segments: the timeline ends at ${cutUs} µs`);
  }
  return {
    startUs: offsetNs / 1000,
    spanUs: spanNs / 1000,
    threads,
    segments: segments.map(([thread, from, to, state, call]) => [thread, from, to, state, call === null ? null : syscallName(call)]),
    events: stretch.length,
    truncated: reasons.length ? reasons.join('; ') : null,
  };
}
