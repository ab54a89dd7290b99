// The lab report as Markdown: what was claimed, what was measured and how, the figures, and what
// they show. Sections in reading order: a student reads the claim and the verdicts first, the
// method before the numbers, and the raw strace tables last.
import { markdownTable } from 'markdown-table';
import { deriveFigures, INTERESTING_SYSCALLS, syscallOf, type LabFigures, type ModelFigures } from './derive.js';
import {
  formatCount,
  formatKibibytesAsMebibytes,
  formatLimit,
  formatMicroseconds,
  formatPercent,
  formatQuantity,
  formatSeconds,
  formatShare,
  plural,
} from './format.js';
import { judgeClaim } from './claims.js';
import { claimVerdicts, observe, type Observation } from './observations.js';
import type { Results } from './results.js';

const NONE = '—';
/** Below this many calls per round trip, a call is per connection, not per request. */
const RARE_PER_ROUND_TRIP = 0.01;

/** A cell or a line of text from the outside world (error messages): one line, no table breaks. */
function clean(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();
}

/** First column left, numbers right (or all left, for text). */
export function table(header: string[], rows: string[][], align: 'numbers' | 'text' = 'numbers'): string {
  return markdownTable([header, ...rows], { align: header.map((_, i) => (i === 0 || align === 'text' ? 'l' : 'r')) });
}

function bullets(observations: readonly Observation[]): string {
  return observations.map((o) => `- ${clean(o.text)}`).join('\n');
}

function incompleteBanner(results: Results): string | null {
  if (results.complete) return null;
  const reason = results.incompleteReason ? `: ${clean(results.incompleteReason).replace(/\.$/, '')}` : '';
  return `> **INCOMPLETE**${reason}. The figures below are what was measured before the lab stopped; failed runs are listed at the end.`;
}

function claimSection(results: Results, figures: LabFigures): string {
  const judged = judgeClaim(results, figures);
  const verdictTable = judged.length
    ? `${table(['subject', 'verdict', 'measurement'], judged.map((v) => [v.subject, v.verdict === 'holds' ? 'holds' : `**${v.verdict}**`, v.measurement]), 'text')}\n\nVerdicts by the rule \`${results.lab.verdict}\` (src/report/claims.ts), from the figures below.`
    : null;
  // With a verdict rule, the per-model sentences move to the observations.
  const verdicts = judged.length ? [] : claimVerdicts(results, figures);
  const shows = verdicts.length ? `What the measurement shows:\n\n${bullets(verdicts)}` : null;
  const body = [verdictTable, shows].filter((part) => part !== null).join('\n\n') || 'No verdict rule applies to this lab yet: read the figures below.';
  return `## Claim\n\n> ${clean(results.lab.claim)}\n\n${body}`;
}

function environmentSection(results: Results): string {
  const env = results.environment;
  const rows = [
    ['runtime', env.runtime],
    ['kernel', env.kernel],
    ['node', env.node],
    ['CPUs', String(env.cpus)],
    ['host', env.hostname],
    ['tracer', env.tracer ?? 'none (no syscall counts)'],
    ...(env.container ? [['image', `${env.container.image} (${env.container.imageId.slice(0, 19)})`], ['engine', env.container.engine]] : []),
    ...(env.clientReplicas > 1 ? [['client processes', `${env.clientReplicas} per client of the lab`]] : []),
    ['iolab', env.iolabVersion],
    ['started', results.startedAt],
    ['finished', results.finishedAt],
  ];
  return `## Environment\n\n${table(['', ''], rows.map(([k, v]) => [k, clean(v)]), 'text')}`;
}

function clientsLine(results: Results): string {
  const run = results.runs[0];
  if (!run) return '- No run started, so no client ran.';
  return `- Clients, started in this order: ${run.clients.map((c) => `${c.name} (${c.mode}, ${plural(c.connections, 'connection')})`).join(', ')}.`;
}

function methodSection(results: Results): string {
  const lab = results.lab;
  const lines = [
    clientsLine(results),
    `- The lab runs each model ${plural(lab.repetitions, 'time')} for ${formatSeconds(lab.durationSeconds)} with no tracer attached ("measure" runs, interleaved across models). The tables give the median over those runs, and for throughput also [lowest–highest].`,
    '- Throughput: echo round trips per second, all echo clients together. Latency: in each run, the echo clients\' percentiles weighted by their round trips (max: the largest client maximum), then the median over the runs.',
    results.environment.tracer
      ? `- Syscall counts come from a separate run of each model with ${results.environment.tracer} attached ("trace" run): strace stops the server at every system call, which slows a syscall-heavy server up to ~100×, so that run gives counts only, never timings. "Per round trip" divides by the round trips the clients completed while it was traced.`
      : '- No tracer was attached: no syscall counts.',
    `- The server's open-file limit (RLIMIT_NOFILE) was ${lab.nofile === null ? 'left as inherited' : `set to ${formatCount(lab.nofile)}`}.`,
    '- A run that failed is left out of every figure and listed at the end.',
  ];
  return `## Method\n\n${lines.join('\n')}`;
}

function errorsCell(model: ModelFigures): string {
  const errors = model.measure?.errors;
  if (!errors) return NONE;
  const connects = Object.values(errors.connectErrors).reduce((sum, n) => sum + n, 0);
  const parts = [
    [errors.unanswered, 'unanswered'],
    [errors.wrongReplies, 'wrong'],
    [errors.closedByServer, 'closed by server'],
    [connects, 'connect failed'],
  ]
    .filter(([n]) => (n as number) > 0)
    .map(([n, what]) => `${formatCount(n as number)} ${what}`);
  return parts.length ? parts.join(', ') : 'none';
}

function orNone<T>(value: T | null | undefined, format: (value: T) => string): string {
  return value === null || value === undefined ? NONE : format(value);
}

function summarySection(figures: LabFigures): string {
  const withProbe = figures.models.some((m) => m.measure?.probe);
  const header = ['model', 'runs', 'round trips/s', 'p50', 'p90', 'p99', 'max', 'errors', 'CPU', 'client CPU', 'threads', 'peak fds', 'peak RSS'];
  if (withProbe) header.push('hold probe answered');
  const rows = figures.models.map((model) => {
    const m = model.measure;
    const latency = m?.latency;
    const row = [
      model.model,
      String(m?.repetitions ?? 0),
      orNone(m?.throughput, (t) => `${formatCount(t.median)} [${formatCount(t.min)}–${formatCount(t.max)}]`),
      orNone(latency?.p50Us, formatMicroseconds),
      orNone(latency?.p90Us, formatMicroseconds),
      orNone(latency?.p99Us, formatMicroseconds),
      orNone(latency?.maxUs, formatMicroseconds),
      errorsCell(model),
      orNone(m?.cpuPercent, formatPercent),
      orNone(m?.clientCpuPercent, formatPercent),
      orNone(m?.threadsPeak, formatCount),
      orNone(m?.fdsPeak, formatCount),
      orNone(m?.peakRssKb, formatKibibytesAsMebibytes),
    ];
    if (withProbe) row.push(orNone(m?.probe, (p) => `${formatCount(p.answered)} of ${formatCount(p.sent)}`));
    return row;
  });
  const note =
    'Medians over the measure runs; CPU: the server\'s, in percent of one core (median); client CPU: the busiest echo client\'s own (near 100%, the load generator may be what limits throughput); threads, fds and RSS the peak of all runs; errors summed over all runs.';
  return `## Results\n\n${table(header, rows)}\n\n${note}`;
}

/** One row per model, one column per telling call: the models side by side. */
function perRoundTripSection(figures: LabFigures): string | null {
  const traced = figures.models.filter((m) => m.trace);
  if (traced.length === 0) return null;
  const columns = INTERESTING_SYSCALLS.filter((name) => traced.some((m) => syscallOf(m, name)));
  const header = ['model', 'round trips traced', 'all syscalls', ...columns];
  const rows = traced.map((model) => {
    const trace = model.trace!;
    return [
      model.model,
      formatCount(trace.roundTrips),
      orNone(trace.syscallsPerRoundTrip, formatQuantity),
      ...columns.map((name) => {
        const s = syscallOf(model, name);
        if (!s) return '';
        // A call made once per connection (accept4, epoll_ctl) is clearer as its count than as 0.0053.
        const rare = s.callsPerRoundTrip === null || s.callsPerRoundTrip < RARE_PER_ROUND_TRIP;
        const perRoundTrip = rare ? plural(s.calls, 'call') : formatQuantity(s.callsPerRoundTrip!);
        return s.errors > 0 ? `${perRoundTrip} (${formatShare(s.failedShare)} failed)` : perRoundTrip;
      }),
    ];
  });
  const note =
    'Calls per round trip in the traced run; a call made less than once per 100 round trips (or in a run without round trips) is shown as its count. "failed" is strace\'s errors column: on a non-blocking socket, EAGAIN.';
  return `## Calls per round trip (under strace)\n\n${table(header, rows)}\n\n${note}`;
}

function limitsSection(figures: LabFigures): string {
  const rows = figures.models.map((model) => {
    const l = model.limits;
    return [
      model.model,
      orNone(l, (x) => formatLimit(x.nofileSoft)),
      orNone(l, (x) => formatLimit(x.nofileHard)),
      orNone(l, (x) => formatLimit(x.fdSetSize)),
      orNone(l, (x) => formatLimit(x.nrOpen)),
      orNone(l, (x) => formatLimit(x.fileMax)),
    ];
  });
  const header = ['model', 'nofile soft', 'nofile hard', 'FD_SETSIZE', 'fs.nr_open', 'fs.file-max'];
  return `## Limits\n\n${table(header, rows)}\n\nnofile: the server's RLIMIT_NOFILE; FD_SETSIZE: the fds glibc's select can watch (below it); fs.nr_open: the largest nofile a process may get; fs.file-max: open files system-wide.`;
}

function observationsSection(results: Results, figures: LabFigures): string {
  const observations = [...(judgeClaim(results, figures).length ? claimVerdicts(results, figures) : []), ...observe(results, figures)];
  return `## Observations\n\n${observations.length ? bullets(observations) : 'Nothing stands out.'}`;
}

function straceTable(model: ModelFigures): string {
  const trace = model.trace!;
  const untraced = model.measure?.throughput?.median;
  const rate = trace.roundTripsPerSecondUnderStrace;
  const speed =
    rate === null
      ? ''
      : `: ${formatQuantity(rate)}/s under strace${untraced === undefined ? '' : ` (untraced median: ${formatQuantity(untraced)}/s)`}`;
  const intro = `Traced ${formatSeconds(trace.durationSeconds)}, ${plural(trace.roundTrips, 'round trip')}${speed}. Fingerprint: ${trace.fingerprint?.verdict ?? 'none known'}.`;
  const perRoundTrip = (n: number | null) => orNone(n, formatQuantity);
  const rows = trace.syscalls.map((s) => [
    s.syscall,
    formatCount(s.calls),
    s.errors > 0 ? `${formatCount(s.errors)} (${formatShare(s.failedShare)})` : '',
    formatCount(s.usecsPerCall),
    perRoundTrip(s.callsPerRoundTrip),
  ]);
  rows.push([
    'total',
    formatCount(trace.totalCalls),
    trace.totalErrors > 0 ? formatCount(trace.totalErrors) : '',
    '',
    perRoundTrip(trace.syscallsPerRoundTrip),
  ]);
  return `### ${model.model}\n\n${intro}\n\n${table(['syscall', 'calls', 'failed', 'usecs/call', 'per round trip'], rows)}`;
}

function syscallsSection(figures: LabFigures): string | null {
  const traced = figures.models.filter((m) => m.trace);
  if (traced.length === 0) return null;
  return `## Syscalls per model (strace -c)\n\n${traced.map(straceTable).join('\n\n')}`;
}

function failedRunsSection(results: Results, figures: LabFigures): string | null {
  if (figures.failedRuns.length === 0) return null;
  const lines = figures.failedRuns.map((run) => {
    // results.json counts repetitions from 0; people count from 1.
    const which = run.phase === 'trace' ? 'trace run' : `measure run ${run.repetition + 1} of ${results.lab.repetitions}`;
    // The runner copies a client's error into the run's; don't say it twice.
    const clients = run.clientErrors
      .filter((c) => !run.error?.includes(c.error))
      .map((c) => `\n  - client ${c.client}: ${clean(c.error)}`)
      .join('');
    return `- ${run.model}, ${which}: ${clean(run.error ?? 'a client has no result')}${clients}`;
  });
  return `## Failed runs\n\nLeft out of every figure above.\n\n${lines.join('\n')}`;
}

export function renderMarkdown(results: Results): string {
  const figures = deriveFigures(results);
  const sections = [
    `# ${clean(results.lab.title)}`,
    incompleteBanner(results),
    `Lab \`${results.lab.name}\` (${results.lab.file}): ${formatCount(results.runs.length)} runs, ${results.startedAt} to ${results.finishedAt}.`,
    claimSection(results, figures),
    environmentSection(results),
    methodSection(results),
    summarySection(figures),
    perRoundTripSection(figures),
    limitsSection(figures),
    observationsSection(results, figures),
    syscallsSection(figures),
    failedRunsSection(results, figures),
  ];
  return `${sections.filter((s): s is string => s !== null).join('\n\n')}\n`;
}
