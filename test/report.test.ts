// The report: figures derived from results.json, the sentences and verdicts computed from them,
// the Markdown, and the round trip through results.json. The fixtures are hand-made results of
// three labs (plausible numbers, not kernel measurements): these tests check arithmetic and
// wording, not what a kernel does.
//   results-models.json      4 models × 3 measure runs + 1 trace run each, complete
//   results-starvation.json  hold + echo clients, blocking vs epoll, 3 runs + trace
//   results-idle.json        1,100 idle connections, interrupted: one failed run, complete false
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveFigures, runLatency, type LabFigures, type ModelFigures } from '../src/report/derive.js';
import { formatLimit, formatMicroseconds, formatPercent, formatShare } from '../src/report/format.js';
import { readResults, ResultsFileError, writeReport } from '../src/report/index.js';
import { renderMarkdown } from '../src/report/markdown.js';
import { claimVerdicts, observe, type Observation } from '../src/report/observations.js';
import type { Results, RunRecord } from '../src/report/results.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/results-${name}.json`, import.meta.url));

function modelOf(figures: LabFigures, name: string): ModelFigures {
  const model = figures.models.find((m) => m.model === name);
  if (!model) throw new Error(`no figures for ${name}`);
  return model;
}

function textOf(observations: Observation[], rule: string, model: string): string {
  const found = observations.filter((o) => o.rule === rule && o.model === model);
  expect(found, `one ${rule} observation for ${model}`).toHaveLength(1);
  return found[0].text;
}

/** A table row of the rendered Markdown, whatever the column padding. */
function row(...cells: string[]): RegExp {
  const escaped = cells.map((cell) => cell.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^\\|\\s*${escaped.join('\\s*\\|\\s*')}\\s*\\|`, 'm');
}

let models: Results;
let starvation: Results;
let idle: Results;
beforeAll(async () => {
  // Through readResults: the fixtures must fit the schema like any results.json.
  [models, starvation, idle] = await Promise.all(['models', 'starvation', 'idle'].map((name) => readResults(fixture(name))));
});

describe('figures of a complete lab (models)', () => {
  it('quotes the median throughput over the repetitions, with the lowest and highest', () => {
    // blocking: 81,000, 84,600 and 78,200 round trips in 2 s each; the mean would be 40,633.
    const blocking = modelOf(deriveFigures(models), 'blocking');
    expect(blocking.measure?.repetitions).toBe(3);
    expect(blocking.measure?.throughput).toEqual({ median: 40_500, min: 39_100, max: 42_300 });
  });

  it('takes the median of each latency percentile and of CPU, and the peak of threads, fds and memory', () => {
    const figures = deriveFigures(models);
    const nonblocking = modelOf(figures, 'nonblocking');
    expect(nonblocking.measure?.latency).toEqual({ p50Us: 510, p90Us: 890, p99Us: 1500, maxUs: 9800 });
    expect(nonblocking.measure?.cpuPercent).toBe(99.6);
    const blocking = modelOf(figures, 'blocking');
    expect(blocking.measure?.threadsPeak).toBe(8);
    expect(blocking.measure?.peakRssKb).toBe(48_420);
    expect(blocking.measure?.errors).toEqual({ wrongReplies: 0, unanswered: 48, closedByServer: 0, connectErrors: {} });
  });

  it('weights the percentiles of several echo clients by their round trips and keeps the largest max', () => {
    const run = structuredClone(models.runs[0]);
    const base = run.clients[0];
    const client = (roundTrips: number, p50Us: number, maxUs: number) => ({
      ...base,
      result: { ...base.result!, roundTrips, latency: { ...base.result!.latency, count: roundTrips, p50Us, maxUs } },
    });
    run.clients = [client(3000, 100, 900), client(1000, 300, 5000)];
    expect(runLatency(run)).toMatchObject({ p50Us: 150, maxUs: 5000 });
  });

  it('counts syscalls per round trip of the traced run, and the share of calls that failed', () => {
    const nonblocking = modelOf(deriveFigures(models), 'nonblocking');
    const trace = nonblocking.trace!;
    expect(trace.roundTrips).toBe(2400);
    expect(trace.totalCalls).toBe(87_400);
    expect(trace.syscallsPerRoundTrip).toBeCloseTo(87_400 / 2400);
    expect(trace.roundTripsPerSecondUnderStrace).toBe(1200);
    expect(trace.syscalls.map((s) => s.syscall)).toEqual(['recvfrom', 'accept4', 'sendto']);
    const [recvfrom, accept4] = trace.syscalls;
    expect(recvfrom.callsPerRoundTrip).toBeCloseTo(80_000 / 2400);
    expect(recvfrom.failedShare).toBeCloseTo(0.97);
    expect(accept4.failedShare).toBeCloseTo(4984 / 5000);
  });

  it('finds each model fingerprint in its traced syscalls, with the counts as evidence', () => {
    const figures = deriveFigures(models);
    for (const model of figures.models) expect(model.trace?.fingerprint?.verdict, model.model).toBe('matches');
    const epoll = modelOf(figures, 'epoll').trace!.fingerprint!;
    expect(epoll.required[0]).toEqual({ anyOf: ['epoll_wait', 'epoll_pwait'], seen: [{ syscall: 'epoll_wait', calls: 2560 }] });
    expect(epoll.forbidden.every((f) => f.calls === 0)).toBe(true);
  });

  it('fails a fingerprint whose required call is missing or whose forbidden call is present', () => {
    const changed = structuredClone(models);
    const epollTrace = changed.runs.find((r) => r.model === 'epoll' && r.phase === 'trace')!;
    for (const s of epollTrace.syscalls!) if (s.syscall === 'epoll_wait') s.syscall = 'poll';
    const figures = deriveFigures(changed);
    expect(modelOf(figures, 'epoll').trace!.fingerprint!.verdict).toBe('does not match');
    const verdict = textOf(claimVerdicts(changed, figures), 'fingerprint', 'epoll');
    expect(verdict).toContain('epoll: does not match the epoll fingerprint');
    expect(verdict).toContain('expected epoll_wait or epoll_pwait, not seen');
    expect(verdict).toContain('poll seen 2,560 times, which epoll must not call');
  });

  it('warns when the echo client used more of a core than the server: the load generator may set the pace', () => {
    expect(observe(models, deriveFigures(models)).some((o) => o.rule === 'client-bound')).toBe(false);
    const saturated: Results = structuredClone(models);
    for (const run of saturated.runs.filter((r) => r.model === 'epoll')) {
      run.proc!.cpuPercent = 70;
      for (const client of run.clients) client.result!.cpuPercent = 99;
    }
    expect(textOf(observe(saturated, deriveFigures(saturated)), 'client-bound', 'epoll')).toBe(
      'epoll: the echo client used 99% of a core while the server used 70%: the load generator may have limited this throughput',
    );
  });

  it('says what each model shows in sentences computed from the numbers', () => {
    const observations = observe(models, deriveFigures(models));
    expect(textOf(observations, 'eagain', 'nonblocking')).toBe(
      'nonblocking: 97% of recvfrom calls and >99% of accept4 calls failed (EAGAIN: nothing there yet); server CPU >99% of a core',
    );
    expect(observations.some((o) => o.rule === 'eagain' && o.model !== 'nonblocking')).toBe(false);
    expect(textOf(observations, 'waiting-calls', 'select')).toBe('select: 0.80 select calls per round trip, then 1.0 recvfrom and 1.0 sendto');
    expect(textOf(observations, 'waiting-calls', 'epoll')).toContain('epoll_ctl 16 calls for 16 connections (about one per connection)');
    expect(textOf(observations, 'dominant-calls', 'blocking')).toBe(
      'blocking: recvfrom and sendto make up >99% of the 8,002 calls under strace (2.0 per round trip); the rest: accept4 1',
    );
  });

  it('renders the summary, the per-round-trip comparison and one strace table per model', () => {
    const markdown = renderMarkdown(models);
    expect(markdown).not.toContain('INCOMPLETE');
    expect(markdown).toMatch(row('blocking', '3', '40,500 [39,100–42,300]', '22 µs', '31 µs', '58 µs', '2.4 ms', '48 unanswered', '62%', '60%', '8', '12', '47 MiB'));
    expect(markdown).toMatch(row('nonblocking', '2,400', '36', '2.1 (>99% failed)', '33 (97% failed)', '1.0'));
    // accept4 once per connection: its count, not 0.0053 per round trip.
    expect(markdown).toMatch(row('select', '3,000', '2.8', '16 calls', '1.0', '1.0', '0.80'));
    expect(markdown).toMatch(row('recvfrom', '80,000', '77,600 (97%)', '11', '33'));
    expect(markdown).toMatch(row('total', '87,400', '82,584', '', '36'));
    expect(markdown).toContain('1,200/s under strace (untraced median: 30,200/s)');
    expect(markdown).toMatch(row('epoll', '4,096', '4,096', '1,024', '1,048,576', '2^63−1 (no limit)'));
    const order = ['## Claim', '## Environment', '## Method', '## Results', '## Limits', '## Observations', '## Syscalls per model'];
    const positions = order.map((heading) => markdown.indexOf(heading));
    expect(positions.every((p) => p > 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });
});

describe('figures of a starvation lab (hold + echo)', () => {
  it('takes medians where the median is not the mean', () => {
    // epoll: 26,155, 24,935 and 30,510 round trips/s (mean 27,200); p50 31, 36, 29 µs; CPU 71, 74.5, 90.1 %.
    const epoll = modelOf(deriveFigures(starvation), 'epoll').measure!;
    expect(epoll.throughput).toEqual({ median: 26_155, min: 24_935, max: 30_510 });
    expect(epoll.latency?.p50Us).toBe(31);
    expect(epoll.cpuPercent).toBe(74.5);
    expect(epoll.probe).toEqual({ sent: 60, answered: 60 });
  });

  it('has no latency for a model that answered nothing', () => {
    const blocking = modelOf(deriveFigures(starvation), 'blocking').measure!;
    expect(blocking.throughput).toEqual({ median: 0, min: 0, max: 0 });
    expect(blocking.latency).toBeNull();
    expect(blocking.probe).toEqual({ sent: 3, answered: 0 });
  });

  it('gives the starvation verdict: blocking starves the second client, epoll answers it', () => {
    const verdicts = claimVerdicts(starvation, deriveFigures(starvation));
    expect(textOf(verdicts, 'starvation', 'blocking')).toBe(
      'blocking: the echo client (asker) got 0 of 3 requests answered over 3 repetitions: starved while the hold client (holder) held 1 idle connection',
    );
    expect(textOf(verdicts, 'starvation', 'epoll')).toBe(
      'epoll: the echo client (asker) got all 163,200 requests answered over 3 repetitions while the hold client (holder) held 1 idle connection',
    );
  });

  it('calls a fingerprint inconclusive when the traced server completed no round trip', () => {
    const figures = deriveFigures(starvation);
    const blocking = modelOf(figures, 'blocking').trace!;
    expect(blocking.syscallsPerRoundTrip).toBeNull();
    expect(blocking.fingerprint?.verdict).toBe('inconclusive');
    expect(textOf(claimVerdicts(starvation, figures), 'fingerprint', 'blocking')).toContain('expected recvfrom, not seen');
  });

  it('shows the verdicts under the claim and the probe in the summary', () => {
    const markdown = renderMarkdown(starvation);
    const claim = markdown.slice(markdown.indexOf('## Claim'), markdown.indexOf('## Environment'));
    expect(claim).toContain('blocking: the echo client (asker) got 0 of 3 requests answered');
    expect(claim).toContain('epoll: the echo client (asker) got all 163,200 requests answered');
    expect(markdown).toMatch(row('blocking', '3', '0 [0–0]', '—', '—', '—', '—', '6 unanswered', '0.3%', '60%', '7', '12', '46 MiB', '0 of 3'));
  });
});

describe('an incomplete lab (interrupted, one failed run)', () => {
  it('leaves the failed run out of the figures and lists it', () => {
    const figures = deriveFigures(idle);
    expect(modelOf(figures, 'epoll').measure?.repetitions).toBe(1);
    expect(modelOf(figures, 'select').measure?.repetitions).toBe(2);
    expect(figures.failedRuns).toEqual([
      {
        model: 'epoll',
        phase: 'measure',
        repetition: 1,
        error: 'client crowd: killed by SIGTERM before it printed a result',
        clientErrors: [{ client: 'crowd', error: 'killed by SIGTERM before it printed a result' }],
      },
    ]);
  });

  it('opens the report with the INCOMPLETE banner and its reason, and lists the failed run with its error', () => {
    const markdown = renderMarkdown(idle);
    const [title, banner] = markdown.split('\n\n');
    expect(title).toBe('# A crowd of idle connections past FD_SETSIZE');
    expect(banner).toMatch(/^> \*\*INCOMPLETE\*\*: interrupted \(SIGINT\) during run 4 of 6\./);
    const failed = markdown.slice(markdown.indexOf('## Failed runs'));
    expect(failed).toContain('- epoll, measure run 2 of 2: client crowd: killed by SIGTERM before it printed a result');
  });

  it('reports refusals and fd exhaustion from the server log, and what each model held', () => {
    const figures = deriveFigures(idle);
    const observations = observe(idle, figures);
    expect(textOf(observations, 'refusals', 'select')).toContain('at least 100 log lines in 2 runs');
    expect(textOf(observations, 'fd-exhaustion', 'epoll')).toContain('EMFILE (no free fd: RLIMIT_NOFILE soft=1100 hard=1100)');
    const verdicts = claimVerdicts(idle, figures);
    expect(textOf(verdicts, 'held-connections', 'select')).toContain('the server closed 90 (median of 2 repetitions); peak 1,024 fds');
    expect(textOf(verdicts, 'held-connections', 'epoll')).toContain('peak 1,100 fds, its nofile limit');
    expect(textOf(verdicts, 'fingerprint', 'epoll')).toBe('epoll: no successful traced run, so no syscall evidence');
  });
});

describe('numbers for people', () => {
  it('never rounds a share or a busy core to 0% or 100% unless it is', () => {
    expect([0, 0.004, 0.5, 0.97, 0.996, 1].map(formatShare)).toEqual(['0%', '<1%', '50%', '97%', '>99%', '100%']);
    expect([0.3, 61.5, 99.6, 100, 187.2].map(formatPercent)).toEqual(['0.3%', '62%', '>99%', '100%', '187%']);
  });

  it('picks the unit of a latency and spells out an unlimited limit', () => {
    expect([850, 1234, 35_000, 2_100_000].map(formatMicroseconds)).toEqual(['850 µs', '1.2 ms', '35 ms', '2.1 s']);
    expect([null, 1_048_576, 9223372036854775807].map(formatLimit)).toEqual(['—', '1,048,576', '2^63−1 (no limit)']);
  });
});

describe('results.json and report.md on disk', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iolab-report-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('writes both files (creating the directory) and reads back the same results', async () => {
    const written = await writeReport(starvation, join(dir, 'reports', 'starvation'));
    expect(await readResults(written.resultsFile)).toEqual(starvation);
    expect(await readFile(written.reportFile, 'utf8')).toBe(renderMarkdown(starvation));
    expect((await readFile(written.resultsFile, 'utf8')).startsWith('{\n  "schemaVersion": 1,')).toBe(true);
  });

  it('refuses to write results that do not fit the schema, and writes nothing', async () => {
    const bad = structuredClone(models) as unknown as { runs: Record<string, unknown>[] };
    bad.runs[0].repetition = -1;
    const target = join(dir, 'bad');
    await expect(writeReport(bad as unknown as Results, target)).rejects.toThrow('runs[0].repetition');
    await expect(readdir(target)).rejects.toThrow();
  });

  it('names the file and the first bad field of a malformed results file', async () => {
    const json = JSON.parse(await readFile(fixture('models'), 'utf8')) as { runs: Partial<RunRecord>[] };
    (json.runs[1] as Record<string, unknown>).phase = 'warmup';
    const file = join(dir, 'malformed.json');
    await writeFile(file, JSON.stringify(json));
    const error = await readResults(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResultsFileError);
    expect((error as ResultsFileError).message).toMatch(new RegExp(`^${file}: runs\\[1\\]\\.phase: `));
    expect((error as ResultsFileError).field).toBe('runs[1].phase');
  });

  it('names the file when it is not JSON, and the version when it is another schema', async () => {
    const notJson = join(dir, 'truncated.json');
    await writeFile(notJson, '{"schemaVersion": 1, "lab": {');
    await expect(readResults(notJson)).rejects.toThrow(`${notJson}: not JSON`);
    const newer = join(dir, 'newer.json');
    await writeFile(newer, JSON.stringify({ ...models, schemaVersion: 2 }));
    await expect(readResults(newer)).rejects.toThrow(`${newer}: schemaVersion: written with results schema 2; this iolab reads schema 1`);
  });
});
