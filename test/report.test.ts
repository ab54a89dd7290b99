// The analysis and the report: figures derived from the runs, the one verdict engine and its rule
// for comparisons, the sentences, the Markdown rendered from results.json alone, and the file on
// disk. The measurements are hand-made (test/fixtures/measurements.ts): these tests check
// arithmetic, judgement and wording, not what a kernel does.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chanceApart, compare, repetitionsNeeded } from '../src/analysis/compare.js';
import { analyse } from '../src/analysis/index.js';
import { readResults, renderMarkdown, ResultsFileError, writeReport } from '../src/report/index.js';
import { formatLimit, formatMicroseconds, formatPercent, formatShare } from '../src/shared/format.js';
import type { Measurement, Results, SubjectFigures } from '../src/shared/results.js';
import { calls, client, echoResult, holdResult, measurement, run, variant } from './fixtures/measurements.js';

const subject = (results: Results, name: string): SubjectFigures => {
  const found = results.analysis.subjects.find((s) => s.subject === name);
  if (!found) throw new Error(`no row ${name}`);
  return found;
};
const verdictOf = (results: Results, start: string) => {
  const found = results.analysis.verdicts.filter((v) => v.subject.startsWith(start));
  expect(found, `one verdict about ${start}`).toHaveLength(1);
  return found[0];
};
const observation = (results: Results, rule: string, row: string) => {
  const found = results.analysis.observations.filter((o) => o.rule === rule && o.subject === row);
  expect(found, `one ${rule} observation about ${row}`).toHaveLength(1);
  return found[0].text;
};

/** A table row of the rendered Markdown, whatever the column padding. */
function row(...cells: string[]): RegExp {
  const escaped = cells.map((cell) => cell.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^\\|\\s*${escaped.join('\\s*\\|\\s*')}\\s*\\|`, 'm');
}

// ---- a models lab: blocking, epoll, nonblocking; 3 measured runs and 1 traced run each ----------

const blocking = variant('blocking');
const epoll = variant('epoll');
const nonblocking = variant('nonblocking');
const MODELS_CLIENTS = [
  { name: 'load', mode: 'echo' as const, connections: 16, messageSize: 64 },
  { name: 'idle', mode: 'hold' as const, connections: 16, messageSize: 64 },
];

function modelsLab(nonblockingCpu: number[], hostBusy?: number): Measurement {
  // blocking serves 1 of its 16 connections: 81,000, 84,600 and 78,200 round trips in 2 s.
  const blockingRuns = [81_000, 84_600, 78_200].map((roundTrips, repetition) =>
    run(blocking, [client('load', echoResult(roundTrips, 22, { connectionsAnswered: 1, unanswered: 15, answeredAfterWindow: 1 })), client('idle', holdResult(16, 1, 0))], { repetition, cpuPercent: 31 }),
  );
  const epollRuns = [170_000, 180_000, 176_000].map((roundTrips, repetition) =>
    run(epoll, [client('load', echoResult(roundTrips, 90)), client('idle', holdResult(16, 20, 20))], { repetition, cpuPercent: 88 }),
  );
  const nonblockingRuns = nonblockingCpu.map((cpuPercent, repetition) =>
    run(nonblocking, [client('load', echoResult(150_000, 100)), client('idle', holdResult(16, 20, 20))], { repetition, cpuPercent, hostBusyPercent: hostBusy }),
  );
  const traced = [
    run(blocking, [client('load', echoResult(4000, 50, { connectionsAnswered: 1, unanswered: 15 })), client('idle', holdResult(16, 1, 0))], {
      phase: 'trace',
      trace: { setup: calls([['accept4', 1], ['recvfrom', 1], ['sendto', 1]]), window: calls([['recvfrom', 4001], ['sendto', 4000], ['futex', 20]]), runtime: calls([['futex', 400, { EAGAIN: 100 }], ['mprotect', 120]]) },
    }),
    run(epoll, [client('load', echoResult(3000, 300)), client('idle', holdResult(16, 20, 20))], {
      phase: 'trace',
      trace: {
        setup: calls([['accept4', 33], ['epoll_ctl', 33], ['epoll_wait', 40], ['recvfrom', 33], ['sendto', 33]]),
        window: calls([['epoll_wait', 200], ['recvfrom', 3000], ['sendto', 3000]]),
      },
    }),
    run(nonblocking, [client('load', echoResult(2400, 400)), client('idle', holdResult(16, 20, 20))], {
      phase: 'trace',
      trace: { setup: calls([['accept4', 500, { EAGAIN: 467 }]]), window: calls([['recvfrom', 80_000, { EAGAIN: 77_600 }], ['accept4', 5000, { EAGAIN: 5000 }], ['sendto', 2400]]) },
    }),
  ];
  return measurement({ name: 'models', variants: [blocking, epoll, nonblocking], clients: MODELS_CLIENTS, verdict: { rule: 'fingerprints', client: null } }, [...blockingRuns, ...epollRuns, ...nonblockingRuns, ...traced]);
}

describe('figures', () => {
  const results = analyse(modelsLab([99.6, 98, 99]));

  it('quotes the median throughput over the repetitions, with the lowest and highest', () => {
    expect(subject(results, 'blocking').measure?.throughput).toMatchObject({ median: 40_500, min: 39_100, max: 42_300 });
  });

  it('counts "answered" one way everywhere: the window\'s round trips and the drain\'s replies', () => {
    const load = subject(results, 'blocking').measure!.clients.find((c) => c.name === 'load')!;
    // 243,800 round trips in the windows and 3 replies of the drains.
    expect(load.requests).toEqual({ sent: 243_848, answered: 243_803, unanswered: 45, wrong: 0 });
    expect(load.connectionsAnswered).toBe(1);
    expect(observation(results, 'clients', 'blocking')).toBe(
      'blocking: load had 1 of 16 connections answered and 243,803 of 243,848 requests answered; idle connected 16 idle connections, none closed by the server, and its probe got 0 of 3 requests answered (3 repetitions: connections are medians, requests sums)',
    );
    expect(renderMarkdown(results)).toMatch(row('blocking', 'load', '16', '1', '243,848', '243,803', '45'));
  });

  it("divides the model's own calls of the traced window by the requests it answered; the runtime's threads apart", () => {
    const trace = subject(results, 'blocking').trace!;
    expect(trace.roundTrips).toBe(4000);
    expect(trace.window.serving.map((s) => [s.syscall, s.perRoundTrip])).toEqual([
      ['recvfrom', 4001 / 4000],
      ['sendto', 1],
      ['futex', 20 / 4000],
    ]);
    expect(trace.window.runtimeCalls).toBe(520);
    expect(observation(results, 'runtime-calls', 'blocking')).toBe(
      "blocking: the runtime's own threads (10 of them) made 520 calls in the window (6% of all; futex 400 and mprotect 120): not the model's calls, left out of its per-round-trip figures",
    );
  });

  it("checks each model's declared fingerprint against its own threads' calls", () => {
    expect(subject(results, 'epoll').trace!.fingerprint?.verdict).toBe('matches');
    const wrong = modelsLab([99, 99, 99]);
    const epollTrace = wrong.runs.find((r) => r.model === 'epoll' && r.phase === 'trace')!.trace!;
    for (const s of epollTrace.window.serving) if (s.syscall === 'epoll_wait') s.syscall = 'poll';
    for (const s of epollTrace.setup.serving) if (s.syscall === 'epoll_wait') s.syscall = 'poll';
    const verdict = verdictOf(analyse(wrong), 'epoll');
    expect(verdict.verdict).toBe('does not hold here');
    expect(verdict.measurement).toContain('never epoll_wait or epoll_pwait');
    expect(verdict.measurement).toContain('but also poll 240, which epoll never calls');
  });

  it('says where each model waits, from what its fingerprint declares', () => {
    expect(observation(results, 'waiting-calls', 'epoll')).toBe('epoll: it waits in 0.067 epoll_wait per round trip; its other calls: 1.0 recvfrom and 1.0 sendto per round trip');
    expect(observation(results, 'waiting-calls', 'nonblocking')).toBe('nonblocking: it never waits in a call; its other calls: 33 recvfrom, 2.1 accept4 and 1.0 sendto per round trip');
  });
});

describe('one verdict engine: every number a claim names', () => {
  it('holds for busy polling only with its fingerprint, its EAGAIN storm and a busy core', () => {
    const verdict = verdictOf(analyse(modelsLab([99.6, 98, 99])), 'nonblocking');
    expect(verdict.verdict).toBe('holds');
    expect(verdict.parts.map((p) => p.verdict)).toEqual(['holds', 'holds', 'holds']);
    expect(verdict.measurement).toContain('97% of its 85,000 recvfrom and accept4 calls failed with EAGAIN');
  });

  it('does not hold for a busy-polling server at a third of a core on a quiet machine', () => {
    const verdict = verdictOf(analyse(modelsLab([31, 47, 35])), 'nonblocking');
    expect(verdict.verdict).toBe('does not hold here');
    expect(verdict.parts[2]).toMatchObject({ verdict: 'does not hold here', measurement: 'server CPU [31%–47%], not at least 60%' });
  });

  it('is inconclusive, and says why, when that CPU was measured on a machine busy with something else', () => {
    const results = analyse(modelsLab([31, 47, 35], 250));
    const verdict = verdictOf(results, 'nonblocking');
    expect(verdict.verdict).toBe('inconclusive');
    expect(verdict.parts[2].measurement).toMatch(/^server CPU \[31%–47%\], not at least 60%; in 3 of 3 repetitions other processes used up to .* of a core .*: a busy machine takes CPU from the server$/);
    expect(results.analysis.machine.busyRuns).toBe(3);
    expect(renderMarkdown(results)).toContain('> **A BUSY MACHINE**: in 3 of 9 measured runs');
  });

  it('does not excuse a core that fell short on a quiet machine too', () => {
    const partly = modelsLab([31, 47, 35], 250);
    const quiet = partly.runs.find((r) => r.model === 'nonblocking' && r.repetition === 2)!;
    quiet.host!.busyPercent = quiet.proc!.cpuPercent + 61;
    const verdict = verdictOf(analyse(partly), 'nonblocking');
    expect(verdict.verdict).toBe('does not hold here');
    expect(verdict.parts[2].measurement).toMatch(/in 2 of 3 repetitions other processes .*, but it fell short on a quiet machine too$/);
  });

  it('judges starvation by what each model declares it serves at once, for the client the lab names', () => {
    const pool = variant('pool');
    const clients = [
      { name: 'holder', mode: 'hold' as const, connections: 1, messageSize: 64 },
      { name: 'asker', mode: 'echo' as const, connections: 1, messageSize: 64 },
    ];
    const runs = [
      run(blocking, [client('holder', holdResult(1, 1, 0)), client('asker', echoResult(0, 0, { connected: 1, connectionsAnswered: 0, unanswered: 1 }))]),
      run(pool, [client('holder', holdResult(1, 20, 20)), client('asker', echoResult(9000, 50, { connected: 1 }))]),
    ];
    const results = analyse(measurement({ variants: [blocking, pool], clients, verdict: { rule: 'starvation', client: 'asker' }, repetitions: 1 }, runs));
    expect(verdictOf(results, 'blocking')).toMatchObject({
      verdict: 'holds',
      measurement: 'asker got 0 of 1 request answered, with 2 connections open ahead of it (1 idle connection of holder and its probe); it serves 1 client at a time',
    });
    expect(verdictOf(results, 'pool')).toMatchObject({ verdict: 'holds', measurement: expect.stringContaining('it serves 4 clients at a time') });
  });

  it("reads a variant's options, not its label: a reader labelled nodrain that drains is a draining reader", () => {
    const et = variant('epoll-et', 'epoll-et-nodrain');
    const clients = [{ name: 'large', mode: 'echo' as const, connections: 4, messageSize: 200_000 }];
    const runs = [run(et, [client('large', echoResult(60, 9000, { connected: 4 }))])];
    const results = analyse(measurement({ variants: [et], clients, verdict: { rule: 'lt-vs-et', client: 'large' }, repetitions: 1, traceRuns: 0 }, runs));
    expect(verdictOf(results, 'epoll-et-nodrain').subject).toBe('epoll-et-nodrain: every message answered');
  });
});

describe('comparisons beyond the run-to-run spread', () => {
  it('knows the chance that ranges of equal servers fall apart: 2 / C(n+m, n)', () => {
    expect(chanceApart(3, 3)).toBeCloseTo(0.1);
    expect(chanceApart(4, 4)).toBeCloseTo(2 / 70);
    expect(chanceApart(5, 5)).toBeCloseTo(2 / 252);
    expect(repetitionsNeeded()).toBe(4);
  });

  it('calls overlapping ranges inconclusive, with the difference and the spread', () => {
    // The case of the course's one-connection lab: 18,372 against 17,176 with overlapping ranges.
    const epollRates = [14_993, 17_000, 18_372, 19_100, 19_493];
    const blockingRates = [15_342, 16_500, 17_176, 18_900, 20_112];
    const judged = compare(epollRates, blockingRates, 'below', 1, { a: 'epoll', b: 'blocking' });
    expect(judged.verdict).toBe('inconclusive');
    expect(judged.text).toBe('epoll [14,993–19,493] against blocking [15,342–20,112] (1.1×): the ranges overlap; the difference of the medians, 1,196, is within the run-to-run spread');
  });

  it('holds only when every repetition is on the claimed side, and says how unlikely that is by chance', () => {
    const judged = compare([3, 3.01, 2.99, 3, 3], [2, 2.01, 2, 1.99, 2], 'above', 1, { a: 'select', b: 'blocking' });
    expect(judged.verdict).toBe('holds');
    expect(judged.text).toContain('every repetition above blocking (chance 0.8%)');
    expect(compare([1, 1.1, 1.2, 1.1], [3, 3.2, 3.1, 3], 'above', 1, { a: 'a', b: 'b' }).verdict).toBe('does not hold here');
  });

  it('refuses a verdict on fewer than 4 repetitions a side, however far apart they are', () => {
    const judged = compare([10, 11, 12], [1, 1.1, 1.2], 'above', 1.5, { a: 'select', b: 'epoll' });
    expect(judged.verdict).toBe('inconclusive');
    expect(judged.text).toContain('3 repetitions against 3 repetitions cannot tell a difference from the run-to-run spread (with 3 a side, ranges fall apart by chance 10% of the time; a verdict needs 4 repetitions each)');
    expect(compare([10, 11, 12], [1, 2, 3, 4, 5], 'above', 1, { a: 'a', b: 'b' }).verdict).toBe('inconclusive');
  });

  it('says, against a factor, the range it overlaps and the ratio of the medians', () => {
    const judged = compare([237, 300, 432, 498], [143, 150, 157, 197], 'above', 1.5, { a: '1,000 idle', b: '0 idle' });
    expect(judged.verdict).toBe('inconclusive');
    expect(judged.text).toBe(
      '1,000 idle [237–498] against 0 idle [143–197] (2.4×): the range of 1,000 idle overlaps 1.5× 0 idle ([215–296]): the ratio of the medians, 2.4×, is within the run-to-run spread of the claimed 1.5×',
    );
  });
});

describe('the report', () => {
  const results = analyse(modelsLab([99.6, 98, 99]));
  const markdown = renderMarkdown(results);

  it('has its sections in reading order, the claim and its verdicts first', () => {
    const order = ['## Claim', '## Method', '## Environment', '## Results', '## Clients', '## Calls per round trip', '## Calls per connection', '## Limits', '## Observations', '## Syscalls per server'];
    const positions = order.map((heading) => markdown.indexOf(heading));
    expect(positions.every((p) => p > 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });

  it('defines a round trip and lists every connection of a run, the probe included, and each server\'s nofile', () => {
    expect(markdown).toContain('- A round trip is one request of 64 bytes and its whole reply, checked byte for byte');
    expect(markdown).toContain('`load`: 16 echo connections, each sending 64-byte requests one at a time; `idle`: 16 idle connections, then 1 probe connection that sends a 64-byte request every 100 ms.');
    expect(markdown).toContain("- Each server's open-file limit (RLIMIT_NOFILE, soft = hard): blocking 4,096, epoll 4,096, nonblocking 4,096.");
  });

  it('gives one unit per column: calls per round trip in one table, the failed share in its own column', () => {
    // columns: accept4, recvfrom, sendto, epoll_wait, futex; then the failed share.
    expect(markdown).toMatch(row('nonblocking', '2,400', '36', '2.1', '33', '1.0', '—', '—', 'recvfrom 97%, accept4 100%'));
    expect(markdown).toMatch(row('blocking', '4,000', '2.0', '—', '1.0', '1.0', '—', '0.0050', '—'));
    // set-up, per connection: accept4, recvfrom, sendto, epoll_wait, epoll_ctl
    expect(markdown).toMatch(row('epoll', '33', '1.0', '1.0', '1.0', '1.2', '1.0'));
  });

  it('never prints NaN, undefined or "(?)", even for an interrupted lab with servers never measured', () => {
    const interrupted = modelsLab([99, 99, 99]);
    interrupted.runs = interrupted.runs.slice(0, 2);
    interrupted.runs[1] = { ...interrupted.runs[1], error: 'client load: killed by SIGTERM before it printed a result', clients: [client('load', null, 'killed by SIGTERM before it printed a result')] };
    interrupted.complete = false;
    interrupted.incompleteReason = 'interrupted (SIGINT) during run 2 of 12';
    const text = renderMarkdown(analyse(interrupted));
    expect(text).not.toMatch(/NaN|undefined|\(\?\)|Infinity/);
    expect(text).toMatch(/^> \*\*INCOMPLETE\*\*: interrupted \(SIGINT\) during run 2 of 12\./m);
    expect(text).toContain('- blocking, measure run 2 of 3: client load: killed by SIGTERM before it printed a result');
    expect(text).toContain('- nonblocking: not measured: no measure run completed');
    for (const rule of ['one-connection', 'idle-scan', 'starvation', 'coroutines', 'busy-poll', 'threads-vs-events', 'lt-vs-et', 'fd-ceiling']) {
      const other = analyse({ ...interrupted, lab: { ...interrupted.lab, verdict: { rule, client: rule === 'busy-poll' || rule === 'fd-ceiling' ? 'idle' : 'load' } } });
      expect(renderMarkdown(other), rule).not.toMatch(/NaN|undefined|\(\?\)|Infinity/);
    }
  });

  it('renders the verdicts results.json holds, not verdicts judged again', () => {
    const kept = structuredClone(results);
    kept.analysis.verdicts[0] = { ...kept.analysis.verdicts[0], verdict: 'does not hold here', measurement: 'as an older iolab judged it' };
    expect(renderMarkdown(kept)).toMatch(row('blocking', '**does not hold here**', 'as an older iolab judged it'));
  });
});

describe('results.json and report.md on disk', () => {
  let dir: string;
  const results = analyse(modelsLab([99, 99, 99]));
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iolab-report-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('writes both files, and the report renders again from the file alone, byte for byte', async () => {
    const written = await writeReport(results, join(dir, 'reports', 'models'));
    const read = await readResults(written.resultsFile);
    expect(read).toEqual(results);
    expect(renderMarkdown(read)).toBe(await readFile(written.reportFile, 'utf8'));
    expect((await readFile(written.resultsFile, 'utf8')).startsWith('{\n  "schemaVersion": 2,')).toBe(true);
  });

  it('refuses to write results that do not fit the schema, and writes nothing', async () => {
    const bad = structuredClone(results) as unknown as { runs: Record<string, unknown>[] };
    bad.runs[0].repetition = -1;
    const target = join(dir, 'bad');
    await expect(writeReport(bad as unknown as Results, target)).rejects.toThrow('runs[0].repetition');
    await expect(readdir(target)).rejects.toThrow();
  });

  it('names the file and the first bad field of a malformed results file', async () => {
    const json = JSON.parse(JSON.stringify(results)) as { runs: Record<string, unknown>[] };
    json.runs[1].phase = 'warmup';
    const file = join(dir, 'malformed.json');
    await writeFile(file, JSON.stringify(json));
    const error = await readResults(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResultsFileError);
    expect((error as ResultsFileError).message).toMatch(new RegExp(`^${file}: runs\\[1\\]\\.phase: `));
  });

  it('names the file when it is not JSON, and says what an older or newer schema means', async () => {
    const notJson = join(dir, 'truncated.json');
    await writeFile(notJson, '{"schemaVersion": 2, "lab": {');
    await expect(readResults(notJson)).rejects.toThrow(`${notJson}: not JSON`);
    const older = join(dir, 'older.json');
    await writeFile(older, JSON.stringify({ ...results, schemaVersion: 1 }));
    await expect(readResults(older)).rejects.toThrow(`${older}: schemaVersion: written with results schema 1, which kept no verdicts (they were judged anew at each rendering); this iolab reads schema 2: run the lab again`);
    const newer = join(dir, 'newer.json');
    await writeFile(newer, JSON.stringify({ ...results, schemaVersion: 3 }));
    await expect(readResults(newer)).rejects.toThrow(`${newer}: schemaVersion: written with results schema 3 by a newer iolab; this iolab reads schema 2`);
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
