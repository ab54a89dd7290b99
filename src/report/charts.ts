// The charts of a lab's HTML report, as Vega-Lite specifications (https://vega.github.io/vega-lite/):
// a chart is data plus a declaration of how to draw it, which the report's page hands to Vega to
// render. Every number a chart draws is read from results.json's analysis (the figures the verdicts
// and the Markdown tables print), so a chart and the table beside it never disagree.
//
// Each verdict rule has the chart that makes its claim (CLAIM_CHARTS): the syscall mix for the
// fingerprints, where the threads wait for the two phases, answered and unanswered requests for
// starvation, connections held against offered for the fd ceiling, and so on. Supporting charts
// (throughput, latency, CPU per round trip) follow for any lab that measured them.
import type { TopLevelSpec } from 'vega-lite';
import { armSubject } from '../shared/experiments.js';
import { grown, isFailed, resultsOf, verdictRulesOf, type ClientFigures, type Results, type RunRecord, type SubjectFigures } from '../shared/results.js';
import { spreadOf, type Spread } from '../shared/spread.js';
import { VERDICTS, type ClaimVerdict } from '../shared/verdicts.js';

/** One chart of the report. */
export interface Chart {
  /** unique in the page: letters, digits and dashes. */
  id: string;
  title: string;
  /** what the chart shows and how to read it, one or two sentences. */
  caption: string;
  /** the verdict rules whose claims it makes; none for a supporting chart. */
  rules: string[];
  /** which of those rules' verdicts it draws, when not all (the page shows them beside it). */
  shows?: (verdict: ClaimVerdict) => boolean;
  spec: TopLevelSpec;
}

type Row = Record<string, string | number | null>;

/** The colours of the three verdicts, as the page's badges show them. */
export const VERDICT_COLOURS: Record<(typeof VERDICTS)[number], string> = { holds: '#1a7f37', 'does not hold here': '#cf222e', inconclusive: '#9a6700' };

/** Syscalls drawn by name in the syscall mix; the rest are added up as "other calls". */
const MIX_TOP = 7;

/**
 * Colours of the parts of stacked bars, in the order parts first appear: Tableau 20
 * (https://vega.github.io/vega/docs/schemes/#tableau20) without its greens, which mean "running
 * one's own code" and "answered" here.
 */
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac', '#a0cbe8', '#ffbe7d', '#ff9d9a', '#86bcb6', '#f1ce63', '#d4a6c8', '#fabfd2', '#d7b5a6', '#79706e'];
/** Parts whose colour means the same in every chart: running one's own code is green, as in the timelines. */
const FIXED_COLOURS: Record<string, string> = {
  answered: '#2da44e',
  unanswered: '#cf222e',
  'in calls, on a CPU': '#afb8c1',
  'outside calls (own code, or waiting for a CPU)': '#2da44e',
  'other calls': '#d0d7de',
};

const WIDTH = 560;
const BAR_STEP = 22;

function sortedSubjects(rows: readonly Row[]): string[] {
  return [...new Set(rows.map((row) => String(row.subject)))];
}

/** A horizontal bar per subject at its median, a dot per repetition, and optionally a marked value. */
function spreadBars(rows: { subject: string; spread: Spread }[], axis: string, options: { marks?: { value: number; label: string }[] } = {}): TopLevelSpec | null {
  const kept = rows;
  if (kept.length === 0) return null;
  const order = kept.map((row) => row.subject);
  const x = { type: 'quantitative' as const, title: axis, scale: { zero: true } };
  const y = { field: 'subject', type: 'nominal' as const, title: null, sort: order };
  return {
    width: WIDTH,
    height: { step: BAR_STEP },
    layer: [
      {
        data: { values: kept.map((row) => ({ subject: row.subject, median: row.spread.median, min: row.spread.min, max: row.spread.max, runs: row.spread.values.length })) },
        mark: { type: 'bar', color: '#8fb8de' },
        encoding: { y, x: { ...x, field: 'median' }, tooltip: [{ field: 'subject' }, { field: 'median', format: ',.4~r' }, { field: 'min', format: ',.4~r' }, { field: 'max', format: ',.4~r' }, { field: 'runs' }] },
      },
      {
        data: { values: kept.flatMap((row) => row.spread.values.map((value, i) => ({ subject: row.subject, value, repetition: i + 1 }))) },
        mark: { type: 'point', filled: true, color: '#24292f', size: 30 },
        encoding: { y, x: { ...x, field: 'value' }, tooltip: [{ field: 'subject' }, { field: 'repetition' }, { field: 'value', format: ',.4~r' }] },
      },
      ...(options.marks ?? []).flatMap((mark) => markedValue(mark, 'x')),
    ],
  } as TopLevelSpec;
}

/** A dashed rule at a value with its label: FD_SETSIZE, the send interval. */
function markedValue(mark: { value: number; label: string } | undefined, axis: 'x' | 'y'): object[] {
  if (!mark) return [];
  const data = { values: [{ value: mark.value, label: mark.label }] };
  const position = { [axis]: { field: 'value', type: 'quantitative' } };
  return [
    { data, mark: { type: 'rule', color: '#cf222e', strokeDash: [6, 4] }, encoding: position },
    { data, mark: { type: 'text', color: '#cf222e', align: 'left', dx: 4, dy: axis === 'x' ? -6 : -6, baseline: 'bottom' }, encoding: { ...position, text: { field: 'label' }, ...(axis === 'x' ? { y: { value: 0 } } : { x: { value: 0 } }) } },
  ];
}

/** Bars stacked by `part` per subject. */
function stackedBars(rows: Row[], axis: string, options: { format?: string; domain?: [number, number]; normalize?: boolean } = {}): TopLevelSpec | null {
  if (rows.length === 0) return null;
  const parts = [...new Set(rows.map((row) => String(row.part)))];
  let next = 0;
  const colours = parts.map((part) => FIXED_COLOURS[part] ?? PALETTE[next++ % PALETTE.length]);
  return {
    width: WIDTH,
    height: { step: BAR_STEP },
    data: { values: rows },
    mark: { type: 'bar' },
    encoding: {
      y: { field: 'subject', type: 'nominal', title: null, sort: sortedSubjects(rows) },
      x: { field: 'value', type: 'quantitative', title: axis, stack: options.normalize ? 'normalize' : 'zero', ...((options.format || options.normalize) && { axis: { format: options.format ?? '.0%' } }), ...(options.domain && { scale: { domain: options.domain } }) },
      color: { field: 'part', type: 'nominal', title: null, sort: parts, scale: { domain: parts, range: colours }, legend: { orient: 'bottom', columns: 3 } },
      order: { field: 'order', type: 'quantitative' },
      tooltip: [{ field: 'subject' }, { field: 'part' }, { field: 'value', format: options.normalize ? ',' : (options.format ?? ',.4~r') }],
    },
  } as TopLevelSpec;
}

/** One line per series over a sweep: the median with a dot, and a band from the lowest to the highest repetition. */
function sweepLines(rows: { series: string; x: number; median: number; min: number; max: number }[], xTitle: string, yTitle: string, extra: object[] = []): TopLevelSpec | null {
  if (rows.length === 0) return null;
  const x = { field: 'x', type: 'quantitative', title: xTitle };
  const colour = { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 4 } };
  return {
    width: WIDTH,
    height: 280,
    data: { values: rows },
    layer: [
      { mark: { type: 'area', opacity: 0.18 }, encoding: { x, y: { field: 'min', type: 'quantitative', title: yTitle }, y2: { field: 'max' }, color: colour } },
      {
        mark: { type: 'line', point: true },
        encoding: { x, y: { field: 'median', type: 'quantitative', title: yTitle }, color: colour, tooltip: [{ field: 'series' }, { field: 'x', title: xTitle }, { field: 'median', format: ',.4~r' }, { field: 'min', format: ',.4~r' }, { field: 'max', format: ',.4~r' }] },
      },
      ...extra,
    ],
  } as TopLevelSpec;
}

function clientOf(subject: SubjectFigures, name: string | null): ClientFigures | null {
  return subject.measure?.clients.find((c) => name === null || c.name === name) ?? null;
}

function bySubject(subjects: readonly SubjectFigures[], pick: (s: SubjectFigures) => Spread | null | undefined): { subject: string; spread: Spread }[] {
  return subjects.flatMap((s) => {
    const spread = pick(s);
    return spread && spread.values.length > 0 ? [{ subject: s.subject, spread }] : [];
  });
}

function bySweep(subjects: readonly SubjectFigures[], pick: (s: SubjectFigures) => Spread | null | undefined) {
  return subjects.flatMap((s) => {
    const spread = pick(s);
    return spread && s.sweepValue !== null ? [{ series: s.variant, x: s.sweepValue, median: spread.median, min: spread.min, max: spread.max }] : [];
  });
}

/** Lines over the sweep, or, in a lab that does not sweep, a bar per server: the same figure either way. */
function sweepOrBars(subjects: readonly SubjectFigures[], pick: (s: SubjectFigures) => Spread | null | undefined, xTitle: string, yTitle: string, extra: object[] = []): TopLevelSpec | null {
  return subjects.some((s) => s.sweepValue !== null) ? sweepLines(bySweep(subjects, pick), xTitle, yTitle, extra) : spreadBars(bySubject(subjects, pick), yTitle);
}

/** The serving threads' calls per round trip, the MIX_TOP most frequent by name. */
function syscallMix(subjects: readonly SubjectFigures[]): TopLevelSpec | null {
  const rows = subjects.flatMap((s) => {
    const calls = (s.trace?.window.serving ?? []).filter((c) => c.perRoundTrip !== null && c.perRoundTrip > 0).sort((a, b) => b.perRoundTrip! - a.perRoundTrip!);
    const named = calls.slice(0, MIX_TOP).map((c, i) => ({ subject: s.subject, part: c.syscall, value: c.perRoundTrip!, order: i }));
    const rest = calls.slice(MIX_TOP).reduce((sum, c) => sum + c.perRoundTrip!, 0);
    return rest > 0 ? [...named, { subject: s.subject, part: 'other calls', value: rest, order: MIX_TOP }] : named;
  });
  return stackedBars(rows, 'calls per round trip (serving threads, measured window)');
}

/** Of the serving threads' time: asleep in each call, in calls on a CPU, outside any call. */
function waitShares(subjects: readonly SubjectFigures[]): TopLevelSpec | null {
  const rows = subjects.flatMap((s) => {
    const waits = s.trace?.waits;
    if (!waits || waits.rows.length === 0) return [];
    const asleep = waits.rows.filter((r) => r.blockedShare > 0).map((r, i) => ({ subject: s.subject, part: `asleep in ${r.syscall}`, value: r.blockedShare, order: i }));
    const inside = waits.rows.reduce((sum, r) => sum + r.insideShare, 0);
    const blocked = waits.rows.reduce((sum, r) => sum + r.blockedShare, 0);
    return [
      ...asleep,
      { subject: s.subject, part: 'in calls, on a CPU', value: Math.max(0, inside - blocked), order: 100 },
      { subject: s.subject, part: 'outside calls (own code, or waiting for a CPU)', value: Math.max(0, 1 - inside), order: 101 },
    ];
  });
  return stackedBars(rows, "share of the serving threads' time", { format: '.0%', domain: [0, 1] });
}

/** A client's requests: answered and unanswered, per subject. */
function requests(subjects: readonly SubjectFigures[], client: string | null): TopLevelSpec | null {
  const rows = subjects.flatMap((s) => {
    const c = clientOf(s, client);
    if (!c || c.mode !== 'echo') return [];
    return [
      { subject: s.subject, part: 'answered', value: c.requests.answered, order: 0 },
      { subject: s.subject, part: 'unanswered', value: c.requests.unanswered, order: 1 },
    ];
  });
  // As shares: a server that answered none beside one that answered thousands still shows its bar.
  return stackedBars(rows, `share of the requests of ${client ?? 'the echo clients'} (summed over runs; counts on hover)`, { normalize: true });
}

/** Latency percentiles per subject, log scale: one client's, or every echo client's together. */
function latency(subjects: readonly SubjectFigures[], client: string | null, mark?: { value: number; label: string }): TopLevelSpec | null {
  const rows = subjects.flatMap((s) => {
    const figures = client === null ? s.measure?.latency : clientOf(s, client)?.latency;
    if (!figures) return [];
    const percentiles: [string, number | undefined][] = [['p50', figures.p50Us], ['p99', figures.p99Us], ['p99.9', figures.p999Us]];
    return percentiles.filter(([, us]) => us !== undefined && us > 0).map(([percentile, us]) => ({ subject: s.subject, percentile, us: us! }));
  });
  if (rows.length === 0) return null;
  // Dots, not bars: a bar on a log scale has no zero to start from.
  return {
    width: WIDTH,
    height: { step: BAR_STEP },
    layer: [
      {
        data: { values: rows },
        mark: { type: 'point', filled: true, size: 70, opacity: 0.9 },
        encoding: {
          y: { field: 'subject', type: 'nominal', title: null, sort: sortedSubjects(rows) },
          x: { field: 'us', type: 'quantitative', scale: { type: 'log' }, title: `latency, µs (log scale)${client ? `: ${client}` : ''}` },
          color: { field: 'percentile', type: 'nominal', sort: ['p50', 'p99', 'p99.9'], title: null, scale: { range: ['#4e79a7', '#f28e2b', '#cf222e'] }, legend: { orient: 'bottom' } },
          shape: { field: 'percentile', type: 'nominal', sort: ['p50', 'p99', 'p99.9'], title: null },
          tooltip: [{ field: 'subject' }, { field: 'percentile' }, { field: 'us', title: 'µs', format: ',.4~r' }],
        },
      },
      ...markedValue(mark, 'x'),
    ],
  } as TopLevelSpec;
}

/**
 * The calls the fingerprint verdicts name, per server: each required call it made (set-up and
 * window together, as the verdict counts them), a required call it never made, and each
 * forbidden call it made, with the count.
 */
function fingerprintCalls(subjects: readonly SubjectFigures[]): TopLevelSpec | null {
  const rows = subjects.flatMap((s) => {
    const check = s.trace?.fingerprint;
    if (!check) return [];
    const required = check.required.flatMap(({ anyOf, seen }) => {
      const made = seen.filter((c) => c.calls > 0);
      return made.length ? made.map((c) => ({ subject: s.subject, syscall: c.syscall, calls: c.calls, kind: 'required, made' })) : [{ subject: s.subject, syscall: anyOf.join(' | '), calls: 0, kind: 'required, never made' }];
    });
    const forbidden = check.forbidden.filter((c) => c.calls > 0).map((c) => ({ subject: s.subject, syscall: c.syscall, calls: c.calls, kind: 'forbidden, made' }));
    return [...required, ...forbidden].map((row) => ({ ...row, label: row.calls.toLocaleString('en-US') }));
  });
  if (rows.length === 0) return null;
  const y = { field: 'subject', type: 'nominal', title: null, sort: sortedSubjects(rows) };
  const x = { field: 'syscall', type: 'nominal', title: null, axis: { orient: 'top', labelAngle: -40 } };
  return {
    height: { step: BAR_STEP },
    width: { step: 78 },
    data: { values: rows },
    layer: [
      {
        mark: { type: 'rect', stroke: '#ffffff' },
        encoding: {
          y,
          x,
          color: { field: 'kind', type: 'nominal', title: null, scale: { domain: ['required, made', 'required, never made', 'forbidden, made'], range: ['#a0cbe8', '#d0d7de', '#e15759'] }, legend: { orient: 'bottom' } },
          tooltip: [{ field: 'subject' }, { field: 'syscall' }, { field: 'calls', format: ',' }, { field: 'kind' }],
        },
      },
      { mark: { type: 'text', fontSize: 10 }, encoding: { y, x, text: { field: 'label' } } },
    ],
  } as TopLevelSpec;
}

/** A figure of each measured run of a subject that counts (as the verdicts take them), over its runs. */
function perRun(results: Results, subject: SubjectFigures, pick: (run: RunRecord) => number[]): Spread | null {
  const runs = results.runs.filter((run) => run.phase === 'measure' && run.variant === subject.variant && run.sweepValue === subject.sweepValue && !isFailed(run));
  return spreadOf(runs.flatMap(pick));
}

/** The verdicts of `rule` that carry figure `key`. */
function verdictsWith(results: Results, rule: string, key: string): ClaimVerdict[] {
  return results.analysis.verdicts.filter((v) => v.rule === rule && Object.hasOwn(v.figures, key));
}

/** A verdict's figure as a spread: a number, or its values over repetitions; null when it is neither. */
function figureSpread(verdict: ClaimVerdict, key: string): Spread | null {
  const figure = verdict.figures[key];
  if (typeof figure === 'number') return spreadOf([figure]);
  return Array.isArray(figure) ? spreadOf(figure) : null;
}

/** The subject (a server of the lab) a verdict of one server is about: its subject is "SUBJECT: what it claims". */
function subjectOfVerdict(subjects: readonly SubjectFigures[], verdict: ClaimVerdict): SubjectFigures | null {
  return subjects.find((s) => verdict.subject === s.subject || verdict.subject.startsWith(`${s.subject}: `)) ?? null;
}

const hasFigure = (key: string) => (verdict: ClaimVerdict) => Object.hasOwn(verdict.figures, key);

interface ClaimContext {
  results: Results;
  subjects: readonly SubjectFigures[];
  /** the client the rule judges, as the lab names it. */
  client: string | null;
}

type ChartMaker = (context: ClaimContext) => Omit<Chart, 'id' | 'rules'>[];

/** A chart beside only some of its rule's verdicts. */
const showing = (shows: (verdict: ClaimVerdict) => boolean) => (charts: Omit<Chart, 'id' | 'rules'>[]) => charts.map((c) => ({ ...c, shows }));

const chart = (title: string, caption: string, spec: TopLevelSpec | null): Omit<Chart, 'id' | 'rules'>[] => (spec ? [{ title, caption, spec }] : []);

/** The lab's FD_SETSIZE as measured with its limits (1024 on Linux, <sys/select.h>). */
function fdSetSize(subjects: readonly SubjectFigures[]): number {
  return subjects.find((s) => s.limits)?.limits?.fdSetSize ?? 1024;
}

/** The chart (or charts) that makes each rule's claim. */
export const CLAIM_CHARTS: Record<string, ChartMaker> = {
  fingerprints: ({ subjects }) =>
    chart(
      'The calls each fingerprint names',
      "Each server's calls that its model's fingerprint requires (blue; grey: never made) or forbids (red), counted in the traced runs' set-up and window together, as the verdict beside counts them.",
      fingerprintCalls(subjects),
    ),
  'two-phases': ({ subjects }) =>
    chart(
      'Where the serving threads wait',
      "Of the serving threads' time in the window: asleep in each call (waiting for the kernel to have something), in calls on a CPU, and outside any call. Measured by the eBPF observer.",
      waitShares(subjects),
    ),
  starvation: ({ subjects, client }) =>
    chart(`What ${client ?? 'the asker'} got`, `The requests ${client ?? 'the asking client'} sent while another client held its connection: answered, or left unanswered by a server that serves one connection at a time.`, requests(subjects, client)),
  'lt-vs-et': ({ results, subjects }) => {
    const each = verdictsWith(results, 'lt-vs-et', 'roundTrips').flatMap((v) => {
      const subject = subjectOfVerdict(subjects, v)?.subject ?? v.subject;
      const [trips, unanswered] = [v.figures.roundTrips, v.figures.unanswered];
      return typeof trips === 'number' && typeof unanswered === 'number'
        ? [{ subject, part: 'round trips', value: trips, order: 0 }, { subject, part: 'requests left unanswered', value: unanswered, order: 1 }]
        : [];
    });
    const wakes = verdictsWith(results, 'lt-vs-et', 'levelTriggered').flatMap((v) =>
      (['levelTriggered', 'edgeTriggered'] as const).flatMap((key) => {
        const spread = figureSpread(v, key);
        return spread ? [{ subject: key === 'levelTriggered' ? 'level-triggered' : 'edge-triggered', spread }] : [];
      }),
    );
    return [
      ...showing(hasFigure('roundTrips'))(chart('Round trips and stranded requests', 'Each server\'s round trips in the measured windows and the requests it left unanswered, summed over runs, as the verdicts count them.', stackedBars(each, 'requests, summed over runs'))),
      ...showing(hasFigure('levelTriggered'))(chart('Waits per round trip', 'Calls to the readiness wait per round trip in each traced run: level-triggered reports unread data again, edge-triggered once.', spreadBars(wakes, 'waits per round trip'))),
    ];
  },
  'fd-ceiling': ({ results, subjects, client }) => {
    // Held as the verdict counts it: the server's fds beyond its idle self, each run (a connection
    // the kernel completed but the server never accepted, or closed at once, holds none).
    const held = (s: SubjectFigures) => perRun(results, s, (run) => (grown(run, 'fdsPeak') === null ? [] : [grown(run, 'fdsPeak')!]));
    const rows = bySweep(subjects, held);
    const top = Math.max(0, ...rows.map((r) => r.x));
    const diagonal = { data: { values: [{ x: 0, y: 0 }, { x: top, y: top }] }, mark: { type: 'line', color: '#8c959f', strokeDash: [2, 3] }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } } };
    // Each server's ceiling as its verdict states it (FD_SETSIZE, or RLIMIT_NOFILE), one line per value.
    const ceilings = new Map<number, string[]>();
    for (const v of verdictsWith(results, 'fd-ceiling', 'ceiling')) {
      if (typeof v.figures.ceiling === 'number' && v.figures.ceiling <= top * 1.5) ceilings.set(v.figures.ceiling, [...(ceilings.get(v.figures.ceiling) ?? []), v.subject]);
    }
    const lines = [...ceilings].flatMap(([value, said]) => markedValue({ value, label: said.join('; ') }, 'y'));
    return chart(
      'Connections held against connections offered',
      `Each server's connections held as ${client ?? 'the crowd'} grows: its fds beyond the idle server's (the line: the median run; the band: the lowest and highest). The dotted line is every connection held; a dashed one is where a verdict says a server stops (FD_SETSIZE ${fdSetSize(subjects)} for select, else its RLIMIT_NOFILE).`,
      rows.length ? sweepLines(rows, 'connections offered', 'connections held (fds added)', [diagonal, ...lines]) : spreadBars(bySubject(subjects, held), 'connections held (fds added)'),
    );
  },
  'idle-scan': ({ subjects }) =>
    chart(
      'CPU per round trip as idle connections grow',
      'Server CPU time per round trip of the one busy connection, against the idle connections beside it: a model that scans every watched fd per call pays for each idle one.',
      sweepOrBars(subjects, (s) => s.measure?.cpuPerRoundTripUs, 'idle connections', 'server CPU per round trip, µs'),
    ),
  'busy-poll': ({ results, subjects, client }) => [
    ...chart('Server CPU with idle clients', 'The server\'s CPU, percent of one core, while its clients sit idle: a busy poller spins, a blocking or readiness server sleeps.', sweepOrBars(subjects, (s) => s.measure?.cpuPercent, 'idle connections', 'server CPU, % of one core')),
    ...chart(
      'The probe\'s latency',
      `The median round trip (p50) of ${client ?? 'the client'}'s probe connection beside the idle crowd: the line through each step's median run, the band from its lowest to its highest, as the verdict compares them.`,
      sweepOrBars(
        subjects,
        (s) => perRun(results, s, (run) => resultsOf(run, client ?? '').flatMap((r) => (r.probe && r.probe.latency.count > 0 ? [r.probe.latency.p50Us] : []))),
        'idle connections',
        'probe p50, µs',
      ),
    ),
  ],
  'one-connection': ({ results }) => {
    // Each verdict is "SERVER vs BLOCKING", with both sides' figures over their runs.
    const sides = (key: string, blockingKey: string) => {
      const rows = new Map<string, Spread>();
      for (const v of verdictsWith(results, 'one-connection', key)) {
        const [server, blocking] = v.subject.split(' vs ');
        const [mine, theirs] = [figureSpread(v, key), figureSpread(v, blockingKey)];
        if (blocking && theirs && !rows.has(blocking)) rows.set(blocking, theirs);
        if (mine) rows.set(server, mine);
      }
      return [...rows].map(([subject, spread]) => ({ subject, spread }));
    };
    return [
      ...chart('Calls per round trip on one connection', "All of the server's calls per round trip in each traced run: a readiness wait and then the read, against the blocking server's read alone.", spreadBars(sides('callsPerRoundTrip', 'blockingCallsPerRoundTrip'), 'system calls per round trip')),
      ...chart('Round trips per second on one connection', 'The client\'s round trips per second on its one connection in each measured run (each of its processes counted apart): the median bar, a dot per value.', spreadBars(sides('roundTripsPerSecond', 'blockingRoundTripsPerSecond'), 'round trips per second')),
    ];
  },
  'threads-vs-events': ({ results, subjects }) => {
    // Per connection, as each verdict judges its server: processes and the tree's PSS for a
    // process per connection, threads and the process's RSS otherwise.
    const rows = results.analysis.verdicts.filter((v) => v.rule === 'threads-vs-events').flatMap((v) => {
      const subject = subjectOfVerdict(subjects, v);
      const connections = v.figures.connections;
      if (!subject || typeof connections !== 'number' || connections <= 0) return [];
      const byProcess = results.lab.variants.find((variant) => variant.label === subject.variant)?.declared?.traits.perConnection === 'process';
      const tasks = v.figures[byProcess ? 'processesAdded' : 'threadsAdded'];
      const memory = v.figures[byProcess ? 'pssPerConnectionKb' : 'rssPerConnectionKb'];
      return [{ subject: `${subject.subject} (${byProcess ? 'processes, PSS' : 'threads, RSS'})`, tasks: typeof tasks === 'number' ? tasks / connections : null, memory: typeof memory === 'number' ? memory : null }];
    });
    const pick = (key: 'tasks' | 'memory') => rows.flatMap((r) => (r[key] === null ? [] : [{ subject: r.subject, spread: spreadOf([r[key]!])! }]));
    return [
      ...chart('Threads or processes per connection', 'Threads (or, for a process per connection, processes) the server added per connection of the crowd: about 1 for a thread or process per connection, near 0 for an event loop.', spreadBars(pick('tasks'), 'added per connection')),
      ...chart('Memory per connection', "Memory added per connection of the crowd, KiB: the process's resident memory for threads, the process tree's proportional set size (PSS) for processes, as the verdict beside judges it.", spreadBars(pick('memory'), 'KiB per connection')),
    ];
  },
  coroutines: ({ subjects, client }) =>
    chart('Latency of the other connections', `${client ?? 'The other clients'}' latency beside a handler that blocks: one blocking call in a coroutine stalls every connection of its thread.`, latency(subjects, client)),
  'observer-effect': ({ subjects }) =>
    chart('Throughput with and without an observer', 'Round trips per second of every echo client together, untraced and under each tracer: the median bar, a dot per repetition.', spreadBars(bySubject(subjects, (s) => s.measure?.throughput), 'round trips per second')),
  'latency-under-load': ({ results, subjects, client }) => {
    const rate = results.lab.clients.find((c) => c.name === client)?.rate;
    const mark = rate ? { value: 1_000_000 / rate, label: `send interval ${Math.round(1_000_000 / rate)} µs` } : undefined;
    return chart('Latency under the same offered load', `Latency from each request's scheduled send time (open loop), log scale; the dashed line is the interval between one connection's requests.`, latency(subjects, client, mark));
  },
  c10k: ({ results }) => {
    const costs = results.analysis.connectionCosts ?? [];
    const rows = (pick: (step: (typeof costs)[number]['steps'][number]) => Spread | null) =>
      costs.flatMap((c) => c.steps.flatMap((step) => {
        const spread = pick(step);
        return spread ? [{ series: c.variant, x: step.connections, median: spread.median, min: spread.min, max: spread.max }] : [];
      }));
    return [
      ...showing(hasFigure('pssPerConnectionKb'))(chart('The server\'s memory as idle connections grow', 'Proportional set size of the server\'s processes beyond its idle self, KiB, against the connections held.', sweepLines(rows((s) => s.pssAddedKb), 'connections held', 'PSS added, KiB'))),
      ...showing(hasFigure('kernelPerSocketKb'))(chart('The kernel\'s memory as idle connections grow', 'Slab memory the kernel gained with the connections held, KiB (both ends of each connection are on this kernel).', sweepLines(rows((s) => s.kernelAddedKb), 'connections held', 'kernel slab added, KiB'))),
      ...showing(hasFigure('probeP50SmallUs'))(chart('The probe\'s latency beside the crowd', "The probe connection's median (p50) round trip as the idle crowd grows, the figure the verdict compares.", sweepLines(rows((s) => s.probeP50Us), 'connections held', 'probe p50, µs'))),
    ];
  },
};

/**
 * Charts for an experiment lab: per part, each arm's wall time against the sum of the part's
 * waits and its longest chain of waits (the claims' yardsticks); then each arm's CPU.
 */
function experimentCharts(results: Results): Omit<Chart, 'id'>[] {
  const record = results.experiment;
  const arms = results.analysis.experiment?.arms ?? [];
  if (!record) return [];
  const rules = [...new Set(results.analysis.verdicts.map((v) => v.rule))];
  const named = (part: string | null, pick: (arm: (typeof arms)[number]) => Spread | null) =>
    arms.flatMap((arm) => (pick(arm) && (part === null || arm.part === part) ? [{ subject: armSubject(record, arm), spread: pick(arm)! }] : []));
  const wall = record.parts.flatMap((part) => {
    const marks = [
      ...(part.sumOfWaitsSeconds !== null ? [{ value: part.sumOfWaitsSeconds, label: `sum of waits ${part.sumOfWaitsIs ?? ''}`.trim() }] : []),
      ...(part.longestChainSeconds !== null ? [{ value: part.longestChainSeconds, label: `longest chain ${part.longestChainIs ?? ''}`.trim() }] : []),
    ];
    const lines = marks.length ? ' The dashed lines are the sum of every wait and the longest chain of waits one after the other.' : '';
    // Beside the verdicts on this part's own arms.
    const own = new Set(arms.filter((arm) => arm.part === part.part).map((arm) => armSubject(record, arm)));
    return chart(`Wall time: ${part.title}`, `${part.description.replace(/\.?$/, '.')} The measured section's wall time, seconds: the median bar, a dot per repetition.${lines}`, spreadBars(named(part.part, (a) => a.wallSeconds), 'wall time, s', { marks })).map((c) => ({
      ...c,
      rules,
      shows: (v: ClaimVerdict) => own.has(v.subject),
    }));
  });
  return [
    ...wall,
    ...chart('CPU of each arm', "The process's CPU time over its wall time, percent of one core.", spreadBars(named(null, (a) => a.cpuPercent), 'CPU, % of one core')).map((c) => ({ ...c, rules: [] })),
  ];
}

/** The supporting charts of a lab that measured echo load. */
function supportingCharts(subjects: readonly SubjectFigures[], shown: ReadonlySet<string>): Omit<Chart, 'id' | 'rules'>[] {
  const sweep = subjects.some((s) => s.sweepValue !== null);
  const charts = sweep
    ? [
        ...chart('Throughput over the sweep', 'Round trips per second of every echo client together.', sweepLines(bySweep(subjects, (s) => s.measure?.throughput), 'swept connections', 'round trips per second')),
        ...chart('Server CPU over the sweep', 'The server\'s CPU, percent of one core.', sweepLines(bySweep(subjects, (s) => s.measure?.cpuPercent), 'swept connections', 'server CPU, % of one core')),
      ]
    : [
        ...chart('Throughput', 'Round trips per second of every echo client together: the median bar, a dot per repetition.', spreadBars(bySubject(subjects, (s) => s.measure?.throughput), 'round trips per second')),
        ...chart('Latency', "Every echo client's round trips, log scale: p50, p99 and p99.9 (medians over runs).", latency(subjects, null)),
        ...chart('Server CPU per round trip', 'CPU time (user + system) per echo round trip, µs.', spreadBars(bySubject(subjects, (s) => s.measure?.cpuPerRoundTripUs), 'server CPU per round trip, µs')),
        ...chart('The syscall mix of each model', "The calls the serving threads made per echo round trip in the measured window, the most frequent by name.", syscallMix(subjects)),
        ...chart('Where the serving threads wait', "Of the serving threads' time in the window: asleep in each call, in calls on a CPU, and outside any call (eBPF observer).", waitShares(subjects)),
      ];
  return charts.filter((c) => !shown.has(c.title));
}

/**
 * Every chart of a lab's report: first the claim's (one or more per verdict rule of the lab, in
 * the lab's order), then supporting ones. A chart with nothing to draw is left out. Pure: reads
 * `results` only.
 */
export function chartsOf(results: Results): Chart[] {
  const charts: Omit<Chart, 'id'>[] = [];
  if (results.experiment) charts.push(...experimentCharts(results));
  else {
    const subjects = results.analysis.subjects;
    for (const { rule, client } of verdictRulesOf(results.lab)) {
      charts.push(...(CLAIM_CHARTS[rule]?.({ results, subjects, client }) ?? []).map((c) => ({ ...c, rules: [rule] })));
    }
    charts.push(...supportingCharts(subjects, new Set(charts.map((c) => c.title))).map((c) => ({ ...c, rules: [] })));
  }
  return charts.map((c, i) => ({ ...c, id: `chart-${i + 1}` }));
}
