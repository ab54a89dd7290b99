// The timeline of each model: a few milliseconds of one measured run, each thread of the server a
// row, time along the x-axis, coloured by what the thread was doing — running its own code, in a
// call on a CPU, asleep in a call (waiting for the kernel), or waiting for a CPU. It is the picture
// of "where phase 1 waits" the course draws by hand, drawn from the eBPF observer's per-thread
// syscall and scheduler events (TimelineSchema, src/shared/results.ts; src/tracer/bpf-program.ts).
import type { TopLevelSpec } from 'vega-lite';
import type { Results, RunRecord, Timeline } from '../shared/results.js';
import type { Chart } from './charts.js';

/** The most threads drawn in one timeline (serving threads first); the rest are counted in the caption. */
export const TIMELINE_THREADS_SHOWN = 24;
/** The most timelines on a page: one per server (in a sweep: at its largest step). */
const TIMELINES_SHOWN = 16;

const RUNNING = 'running (own code)';
const RUNNABLE = 'waiting for a CPU';
/**
 * A hue per call, asleep in it; the same lighter on a CPU in it. Green and grey are running and
 * waiting; the calls past these (the page's least used) share OTHER_CALL's.
 */
const CALL_HUES = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#17becf', '#7f3c8d'];
const OTHER_CALL = 'another call';

function lighter(hex: string): string {
  const channel = (i: number) => Math.round((parseInt(hex.slice(i, i + 2), 16) + 255) / 2).toString(16).padStart(2, '0');
  return `#${channel(1)}${channel(3)}${channel(5)}`;
}

function label(state: Timeline['segments'][number][3], syscall: string | null, named: ReadonlySet<string>): string {
  if (state === 'running') return RUNNING;
  if (state === 'runnable') return RUNNABLE;
  const call = syscall !== null && named.has(syscall) ? syscall : OTHER_CALL;
  return `${state === 'blocked' ? 'asleep in' : 'in'} ${call}`;
}

/** Each call's total time in calls (asleep or on a CPU) over `timelines`, most first: the order calls get their hues in. */
function callsByTime(timelines: readonly Timeline[]): string[] {
  const time = new Map<string, number>();
  for (const timeline of timelines) {
    for (const [, from, to, state, syscall] of timeline.segments) if (syscall && (state === 'blocked' || state === 'in-call')) time.set(syscall, (time.get(syscall) ?? 0) + to - from);
  }
  return [...time.entries()].sort((a, b) => b[1] - a[1]).map(([call]) => call);
}

/** The colour of each state label: a call keeps its hue in every timeline of the page (`calls`, in hue order). */
function colours(calls: readonly string[]): Map<string, string> {
  const map = new Map<string, string>([[RUNNING, '#2da44e']]);
  calls.slice(0, CALL_HUES.length).forEach((call, i) => map.set(`asleep in ${call}`, CALL_HUES[i]).set(`in ${call}`, lighter(CALL_HUES[i])));
  return map.set(`asleep in ${OTHER_CALL}`, '#6e7781').set(`in ${OTHER_CALL}`, '#d0d7de').set(RUNNABLE, '#afb8c1');
}

/** The Vega-Lite spec of one timeline (`calls`: the page's calls in hue order); null when it has no segment. */
export function timelineSpec(timeline: Timeline, calls: readonly string[] = callsByTime([timeline])): TopLevelSpec | null {
  const shown = timeline.threads.slice(0, TIMELINE_THREADS_SHOWN);
  const named = new Set(calls.slice(0, CALL_HUES.length));
  const rowName = shown.map((t) => `${t.name} ${t.tid}${t.group === 'runtime' ? ' (runtime)' : ''}`);
  const rows = timeline.segments
    .filter(([thread]) => thread < shown.length)
    .map(([thread, from, to, state, syscall]) => ({ thread: rowName[thread], from, to, state: label(state, syscall, named), call: syscall ?? '', us: Math.round((to - from) * 10) / 10 }));
  if (rows.length === 0) return null;
  const present = new Set(rows.map((r) => r.state));
  const kept = [...colours(calls)].filter(([state]) => present.has(state));
  return {
    width: 900,
    height: { step: 18 },
    data: { values: rows },
    params: [{ name: 'zoom', select: { type: 'interval', encodings: ['x'] }, bind: 'scales' }],
    mark: { type: 'bar', height: { band: 0.8 } },
    encoding: {
      y: { field: 'thread', type: 'nominal', title: null, sort: rowName },
      x: { field: 'from', type: 'quantitative', title: 'µs from the start of the stretch (drag to pan, scroll to zoom)', scale: { domain: [0, timeline.spanUs] } },
      x2: { field: 'to' },
      color: { field: 'state', type: 'nominal', title: null, scale: { domain: kept.map(([d]) => d), range: kept.map(([, r]) => r) }, legend: { orient: 'bottom', columns: 4 } },
      tooltip: [{ field: 'thread' }, { field: 'state' }, { field: 'call' }, { field: 'from', title: 'from, µs', format: ',.1f' }, { field: 'to', title: 'to, µs', format: ',.1f' }, { field: 'us', title: 'µs' }],
    },
  } as TopLevelSpec;
}

/** The run whose timeline a subject shows: its first run with one. */
function timelineRun(runs: readonly RunRecord[], variant: string, sweepValue: number | null): RunRecord | null {
  return runs.find((r) => r.variant === variant && r.sweepValue === sweepValue && r.trace?.timeline) ?? null;
}

/**
 * The timelines of a lab's page, one per server (a sweep's at its largest step), with the sentence
 * that introduces them; when no run has one, no chart and the sentence says why.
 */
export function timelinesOf(results: Results): { intro: string; charts: Chart[] } {
  const steps = results.lab.sweep?.connections ?? [null];
  const largest = steps.length ? steps[steps.length - 1] : null;
  const found = results.lab.variants.flatMap((variant) => {
    const run = timelineRun(results.runs, variant.label, largest);
    return run?.trace?.timeline ? [{ variant, run, timeline: run.trace.timeline }] : [];
  }).slice(0, TIMELINES_SHOWN);
  const calls = callsByTime(found.map((f) => f.timeline));
  const charts: Chart[] = [];
  for (const { variant, run, timeline } of found) {
    const spec = timelineSpec(timeline, calls);
    if (!spec) continue;
    const hidden = timeline.threads.length - Math.min(timeline.threads.length, TIMELINE_THREADS_SHOWN);
    const caption = [
      `${variant.label}${largest !== null ? ` with ${results.lab.sweep!.client}=${largest}` : ''}, run ${run.phase} #${run.repetition + 1}: ${timeline.threads.length} thread(s)${hidden ? `, the first ${TIMELINE_THREADS_SHOWN} shown` : ''}.`,
      timeline.truncated ? `Incomplete: ${timeline.truncated}.` : '',
    ].filter(Boolean).join(' ');
    charts.push({ id: `timeline-${charts.length + 1}`, title: variant.label, caption, rules: [], spec });
  }
  const example = found[0]?.timeline;
  if (example) {
    return {
      intro: `${Math.round(example.spanUs / 100) / 10} ms of one measured run of each server, ${Math.round(example.startUs / 1000)} ms into its window, recorded by the eBPF observer from each thread's syscall entries and exits and the scheduler's switches. A row is a thread; green is the thread running its own code, a call's colour is the thread asleep in that call (waiting for the kernel), its lighter shade the thread in the call on a CPU, light grey a runnable thread waiting for a CPU; the least used calls share dark grey ("another call": hover for which).`,
      charts,
    };
  }
  // The lab's tracer; in older results (no tracerKind) or a lab whose servers each name theirs, the runs' own.
  const traced = results.runs.flatMap((r) => (r.trace ? [r.trace.tracer ?? 'strace'] : []));
  const tracer = traced.includes('bpf') ? 'bpf' : traced.length ? 'strace' : (results.environment.tracerKind ?? null);
  const why = tracer === 'strace' ? 'this lab was traced by strace' : tracer === null ? 'this lab ran without a tracer' : 'no run recorded one';
  return { intro: `No timeline: timelines come from the eBPF observer (bpftrace), and ${why}.`, charts };
}
