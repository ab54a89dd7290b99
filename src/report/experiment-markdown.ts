// The report of an experiment lab (switching, concurrent-client) as Markdown, rendered from
// results.json alone, like a model lab's (markdown.ts): the claim and its verdicts first, the
// method before the numbers, one table per part of the experiment, the observations and the
// failed runs. Nothing here computes a figure or judges: the same results.json always renders the
// same text, byte for byte.
import { formatCount, formatPercent, formatQuantity, joinWords, plural, table } from '../shared/format.js';
import { formatNanoseconds, formatTimes, formatWallTime, type ArmFigures, type ExperimentRecord } from '../shared/experiments.js';
import type { Results } from '../shared/results.js';
import { clean, incompleteBanner, NONE, spreadCell } from './markdown-parts.js';

function busyBanner(results: Results): string | null {
  const machine = results.analysis.machine;
  if (machine.busyRuns === 0 || !machine.worst) return null;
  const worst = machine.worst;
  return (
    `> **A BUSY MACHINE**: in ${machine.busyRuns} of ${plural(machine.runs, 'run')} other processes used a large part of the CPUs beside the script ` +
    `(the most: ${formatPercent(worst.otherPercent)} of a core, steal ${formatPercent(worst.stealPercent)}, load average ${formatQuantity(worst.loadAverage)} on ${plural(worst.cpus, 'CPU')}, during ${clean(worst.subject)} repetition ${worst.repetition + 1}). ` +
    'Times of CPU-only jobs may be distorted (a wait hardly: a thread asleep needs no CPU until its data comes); a verdict on CPU-only jobs that fails on such runs only is inconclusive.'
  );
}

/** How each rule that judged here decides, in one sentence each. */
const RULE_NOTES: Record<string, string> = {
  'sum-of-waits':
    '"Pays the sum of the waits" holds when every repetition took at least that sum (1% less, for the clocks): each round trip lasts at least its server\'s delay, so one at a time they cannot take less.',
  'longest-wait':
    '"Pays about the longest chain of waits" holds when every repetition took less than halfway from that chain to the sum of the waits, and the one-at-a-time arm took more than halfway to the ideal ratio as long, every repetition of one beyond every repetition of the other.',
  'adds-time':
    '"Switching adds time" holds when every repetition of the arm was slower than every repetition of serial; it does not hold when every one was faster; otherwise it is inconclusive, with the difference and the spread.',
};

function claimSection(results: Results): string {
  const head = `## Claim\n\n> ${clean(results.lab.claim)}`;
  const verdicts = results.analysis.verdicts;
  if (verdicts.length === 0) return `${head}\n\nNo arm was judged: read the figures below.`;
  const rows = verdicts.map((v) => [clean(v.subject), v.verdict === 'holds' ? 'holds' : `**${v.verdict}**`, clean(v.measurement)]);
  const rules = [...new Set(verdicts.map((v) => v.rule))];
  const notes = rules.map((rule) => RULE_NOTES[rule]).filter((note): note is string => note !== undefined);
  const note =
    `Verdicts by the rules ${joinWords(rules.map((r) => `\`${r}\``))} (src/analysis/experiments.ts), judged once when the lab ended and kept in results.json; each arm is judged on what the course claims of it. ` +
    `${notes.join(' ')} A comparison of repetitions needs 4 of each side: ranges that far apart happen by chance at most 5% of the time. A claim of several parts holds only when every part holds.`;
  return `${head}\n\n${table(['arm', 'verdict', 'measurement'], rows, 'text')}\n\n${note}`;
}

function methodSection(results: Results, record: ExperimentRecord): string {
  const lab = results.lab;
  const arms = table(
    ['arm', ...(record.parts.length > 1 ? ['jobs'] : []), 'script', 'how it works'],
    record.arms.map((arm) => [
      arm.label,
      ...(record.parts.length > 1 ? [record.parts.find((p) => p.part === arm.part)?.title ?? arm.part] : []),
      `\`${arm.script}\``,
      clean(arm.how),
    ]),
    'text',
  );
  const docker = results.environment.runtime === 'docker';
  const lines = [
    ...record.parts.map((part) => `- ${capitalized(record.parts.length > 1 ? `${part.title}: ${part.description}` : part.description)}.`),
    `- Every arm runs its script in a fresh python3 process (${docker ? 'a container of the lab image, one per run' : 'one per run'}), ${plural(lab.repetitions, 'repetition')}, interleaved (every arm once, then again), so that a noisy moment of the machine does not fall on one arm only. A fresh process each time: gevent's monkey-patching changes the socket module for the rest of a process and cannot be undone. The tables give the median over the repetitions and, where there are several, [lowest–highest].`,
    `- Times are measured by the script itself around its jobs only (time.perf_counter; CPU: time.process_time over the same section): not the interpreter's start, its imports${docker ? ", or the container's start" : ''}.`,
    ...(record.slowServers
      ? [
          `- The slow ${record.slowServers.servers === 1 ? 'server' : 'servers'} (src/experiments/slow_servers.py): ${record.slowServers.servers === 1 ? 'one server' : `${record.slowServers.servers} servers, each on a port of its own`}, answering ${record.slowServers.delayMs} ms after a request arrives, with a thread per connection, so that a server answers any number of clients at once and what a client waits for is the delay, never another client. ${record.slowServers.servers === 1 ? 'It' : 'They'} ran as ${clean(record.slowServers.where)}, started once for the whole lab.`,
        ]
      : []),
    '- A round trip: connect, an HTTP/1.0 request, and the reply read until the server closes the connection; "added up" is every round trip\'s own time summed, as if they had been one after the other; "most at once" is the most round trips in flight at one moment of a run.',
    '- Each run also records how busy the machine was during its section (/proc/stat, read by the script before and after), to tell when other processes took CPU from it.',
    '- A run that failed is left out of every figure and listed at the end.',
  ];
  const description = lab.description ? `${clean(lab.description)}\n\n` : '';
  return `## Method\n\n${description}${arms}\n\n${lines.join('\n')}`;
}

function environmentSection(results: Results, record: ExperimentRecord): string {
  const env = results.environment;
  const machine = results.analysis.machine;
  const rows = [
    ['runtime', env.runtime],
    ['kernel', env.kernel],
    ['scripts ran on', record.python ?? 'not announced'],
    ['controller', `node ${env.node}`],
    ['CPUs', String(env.cpus)],
    ['host', env.hostname],
    ...(env.container ? [['image', `${env.container.image} (${env.container.imageId.slice(0, 19)})`], ['engine', env.container.engine]] : []),
    [
      'the machine',
      machine.worst
        ? `other processes used at most ${formatPercent(machine.worst.otherPercent)} of a core beside a script (${machine.busyRuns} of ${plural(machine.runs, 'run')} busy)`
        : 'not measured',
    ],
    ['iolab', env.iolabVersion],
    ['started', results.startedAt],
    ['finished', results.finishedAt],
  ];
  return `## Environment\n\n${table(['', ''], rows.map(([k, v]) => [k, clean(v)]), 'text')}`;
}

/** One column of a part's table: its header, a cell per arm, and whether it says anything for this part. */
interface Column {
  header: string;
  cell(f: ArmFigures): string;
}

const COLUMNS: Column[] = [
  { header: 'runs', cell: (f) => String(f.runs) },
  { header: 'time', cell: (f) => spreadCell(f.wallSeconds, formatWallTime) },
  { header: '× serial', cell: (f) => spreadCell(f.toBaseline, formatTimes) },
  { header: 'round trips added up', cell: (f) => spreadCell(f.waitedSeconds, formatWallTime) },
  { header: 'one round trip', cell: (f) => spreadCell(f.fetchSeconds, formatWallTime) },
  { header: 'most at once', cell: (f) => (f.mostAtOnce === null ? NONE : formatCount(f.mostAtOnce)) },
  { header: 'EINPROGRESS', cell: (f) => (f.einprogress === null ? NONE : formatQuantity(f.einprogress)) },
  { header: 'select calls', cell: (f) => (f.selectCalls === null || f.selectCalls === 0 ? NONE : formatQuantity(f.selectCalls)) },
  { header: 'switches', cell: (f) => (f.switches === null ? NONE : formatCount(f.switches)) },
  { header: 'per switch', cell: (f) => spreadCell(f.perSwitchNs, formatNanoseconds) },
  { header: 'CPU', cell: (f) => spreadCell(f.cpuPercent, formatPercent) },
];

/** What a column means, for the note under the tables (only for the columns shown). */
const COLUMN_NOTES: Record<string, string> = {
  time: "time: the jobs' wall time",
  '× serial': "× the baseline: the median time over the baseline's median time (the ratio the verdicts state)",
  'round trips added up': "round trips added up: each round trip's own time, summed",
  'one round trip': "one round trip: from its connect to the end of its reply (each run's median)",
  'most at once': 'most at once: the most round trips in flight at one moment',
  EINPROGRESS: 'EINPROGRESS: connects that returned it, per run',
  'select calls': 'select calls: per run',
  switches: "switches: from one job to another, per run, as the script counts them (none for gevent's jobs that wait on IO: those happen inside gevent's hub)",
  'per switch': "per switch: (the arm's time − the baseline's) / its switches",
  CPU: "CPU: the script's CPU time over its wall time, in percent of one core (a thread asleep in a wait uses none)",
};

function capitalized(text: string): string {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
}

function resultsSection(results: Results, record: ExperimentRecord): string {
  const figures = results.analysis.experiment?.arms ?? [];
  const baselineLabel = (part: string) => record.arms.find((a) => a.part === part && a.baseline)?.label ?? 'serial';
  const parts = record.parts.map((part) => {
    const rows = figures.filter((f) => f.part === part.part);
    const columns = COLUMNS.filter((c) => c.header === 'runs' || c.header === 'time' || rows.some((f) => c.cell(f) !== NONE));
    const header = ['arm', ...columns.map((c) => (c.header === '× serial' ? `× ${baselineLabel(part.part)}` : c.header))];
    const body = table(header, rows.map((f) => [f.label, ...columns.map((c) => c.cell(f))]));
    const waits =
      part.sumOfWaitsSeconds !== null && part.longestChainSeconds !== null
        ? ` The waits add up to ${part.sumOfWaitsIs} = ${formatWallTime(part.sumOfWaitsSeconds)}; the longest chain of them, one after the other, is ${part.longestChainIs} = ${formatWallTime(part.longestChainSeconds)}.`
        : '';
    const about = record.parts.length > 1 ? `${capitalized(part.description)}.${waits}` : waits.trim();
    return `${record.parts.length > 1 ? `### ${capitalized(part.title)}\n\n` : ''}${body}${about ? `\n\n${about}` : ''}`;
  });
  const shown = new Set(figures.flatMap((f) => COLUMNS.filter((c) => c.cell(f) !== NONE).map((c) => c.header)));
  const notes = Object.entries(COLUMN_NOTES).filter(([header]) => shown.has(header)).map(([, note]) => note);
  return `## Results\n\n${parts.join('\n\n')}\n\n${capitalized(notes.join('; '))}.`;
}

function observationsSection(results: Results): string {
  const observations = results.analysis.observations;
  return `## Observations\n\n${observations.length ? observations.map((o) => `- ${clean(o.text)}`).join('\n') : 'Nothing stands out.'}`;
}

function failedRunsSection(results: Results): string | null {
  const failed = results.analysis.failedRuns;
  if (failed.length === 0) return null;
  const lines = failed.map((run) => `- ${clean(run.subject)}, repetition ${run.repetition + 1} of ${results.lab.repetitions}: ${clean(run.error ?? 'no result')}`);
  return `## Failed runs\n\nLeft out of every figure above.\n\n${lines.join('\n')}`;
}

/**
 * report.md for the results of an experiment lab (results.experiment set). Pure: the same results
 * give the same text. Throws when the results are a model lab's.
 */
export function renderExperimentMarkdown(results: Results): string {
  const record = results.experiment;
  if (!record) throw new Error(`lab ${results.lab.name} is not an experiment lab`);
  const runs = record.runs.length;
  const sections = [
    `# ${clean(results.lab.title)}`,
    incompleteBanner(results),
    busyBanner(results),
    `Lab \`${results.lab.name}\` (${results.lab.file}), experiment \`${record.name}\`: ${plural(runs, 'run')}, ${results.startedAt} to ${results.finishedAt}.`,
    claimSection(results),
    methodSection(results, record),
    environmentSection(results, record),
    resultsSection(results, record),
    observationsSection(results),
    failedRunsSection(results),
  ];
  return `${sections.filter((s): s is string => s !== null).join('\n\n')}\n`;
}
