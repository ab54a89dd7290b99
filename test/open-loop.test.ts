// Open-loop load and the latency-under-load lab: the paced client against real servers on
// loopback (its schedule's arithmetic, never its timings), the lab file's `rate`, the rule
// `latency-under-load` on hand-made measurements (holds, does not hold, inconclusive), and
// `iolab run latency-under-load` end to end with two servers.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyse } from '../src/analysis/index.js';
import { runClient } from '../src/clients/index.js';
import { UsageError } from '../src/errors.js';
import { resolveLab } from '../src/labs/load.js';
import { LabSchema } from '../src/labs/schema.js';
import { renderMarkdown } from '../src/report/index.js';
import { ClientResultSchema, ResultsSchema, type ClientResult, type Latency, type Results } from '../src/shared/results.js';
import { client, echoResult, measurement, run, variant } from './fixtures/measurements.js';
import { runIolab, startTestServer, type TestServer } from './helpers.js';

// ---- the client ------------------------------------------------------------------------------

describe('an open-loop echo client', () => {
  let epoll: TestServer;
  let silent: { target: string; stop(): void };
  beforeAll(async () => {
    epoll = await startTestServer('epoll');
    // Accepts every connection and never answers.
    silent = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', "const s = require('node:net').createServer(() => {}); s.listen(0, '127.0.0.1', () => console.log('port ' + s.address().port));"], { stdio: ['ignore', 'pipe', 'inherit'] });
      child.stdout!.on('data', (chunk: Buffer) => {
        const port = /port (\d+)/.exec(chunk.toString())?.[1];
        if (port) resolve({ target: `127.0.0.1:${port}`, stop: () => child.kill() });
      });
      child.once('error', reject);
    });
  });
  afterAll(async () => {
    silent?.stop();
    await epoll?.close();
  });

  it('sends each connection\'s requests on its schedule and times them from it, never earlier than the send', async () => {
    const [connections, rate, durationSeconds] = [4, 200, 1];
    const result = await runClient({ target: `127.0.0.1:${epoll.port}`, mode: 'echo', connections, durationSeconds, rate });
    expect(() => ClientResultSchema.parse(result)).not.toThrow();
    const open = result.openLoop!;
    expect(open).toMatchObject({ ratePerConnection: rate, offeredPerSecond: rate * connections });
    // The schedule: rate × window per connection, give or take the last slot of each.
    expect(open.scheduled).toBeGreaterThanOrEqual(rate * durationSeconds * connections - connections);
    expect(open.scheduled).toBeLessThanOrEqual(rate * durationSeconds * connections + connections);
    // Every scheduled request was sent or not sent; never more than the schedule asked.
    expect(result.requestsSent + open.notSent).toBe(open.scheduled);
    expect(result.requestsSent).toBeLessThanOrEqual(rate * durationSeconds * connections + connections);
    // A correct server answered them all, and every one of them was timed.
    expect(result.wrongReplies + result.closedByServer).toBe(0);
    expect(result.latency.count).toBe(open.scheduled);
    expect(result.roundTrips + result.answeredAfterWindow + open.lowerBounds).toBe(open.scheduled);
    // Each request's latency from its scheduled send time is at least its latency from the send.
    if (open.lowerBounds === 0) {
      for (const p of ['p50Us', 'p90Us', 'p99Us', 'maxUs'] as const) expect(result.latency[p], p).toBeGreaterThanOrEqual(open.serviceLatency[p]);
    }
    const l = result.latency as Required<Latency>;
    expect(l.p50Us).toBeLessThanOrEqual(l.p99Us);
    expect(l.p99Us).toBeLessThanOrEqual(l.p999Us);
    expect(l.p999Us).toBeLessThanOrEqual(l.maxUs);
  }, 20_000);

  it('keeps a connection the server never answers in the percentiles, at its wait so far', async () => {
    const [connections, rate] = [2, 100];
    const result = await runClient({ target: silent.target, mode: 'echo', connections, durationSeconds: 0.5, rate });
    const open = result.openLoop!;
    // Only the warm-up's requests went out; every later one waited behind them.
    expect(result.requestsSent).toBe(connections);
    expect(result.roundTrips).toBe(0);
    expect(open.notSent).toBe(open.scheduled - connections);
    expect(open.lowerBounds).toBe(open.scheduled);
    expect(result.latency.count).toBe(open.scheduled);
    // Each counts to the end of the drain, at least 250 ms after the window's last slot.
    expect(result.latency.p50Us).toBeGreaterThanOrEqual(250_000);
    expect(open.serviceLatency.count).toBe(0);
  }, 20_000);

  it('refuses a rate for a hold client, and one that is not a positive number', async () => {
    await expect(runClient({ target: '127.0.0.1:7000', mode: 'hold', connections: 1, durationSeconds: 1, rate: 10 })).rejects.toThrow(/a rate is for echo clients/);
    await expect(runClient({ target: '127.0.0.1:7000', mode: 'echo', connections: 1, durationSeconds: 1, rate: -5 })).rejects.toThrow(UsageError);
  });
});

// ---- the lab file ----------------------------------------------------------------------------

describe('a lab client\'s rate', () => {
  const lab = (clients: unknown[], verdict?: unknown) => ({ name: 'demo', title: 'Demo', claim: 'A claim.', models: ['epoll'], clients, ...(verdict ? { verdict } : {}) });
  const issues = (input: unknown) => {
    const parsed = LabSchema.safeParse(input);
    return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('is requests per second per connection of an echo client', () => {
    const parsed = LabSchema.parse(lab([{ name: 'load', mode: 'echo', connections: 16, rate: 400 }], { rule: 'latency-under-load', client: 'load' }));
    expect(parsed.clients[0].rate).toBe(400);
  });

  it('is refused on a hold client, at zero, and missing where the rule needs an open-loop client', () => {
    expect(issues(lab([{ mode: 'hold', connections: 1, rate: 10 }]))).toEqual(['clients.0.rate: a rate is for an echo client (open-loop requests); a hold client sends none']);
    expect(issues(lab([{ mode: 'echo', connections: 1, rate: 0 }]))).toEqual(['clients.0.rate: requests per second per connection, above 0']);
    expect(issues(lab([{ name: 'load', mode: 'echo', connections: 1 }], { rule: 'latency-under-load', client: 'load' }))).toEqual([
      'clients.0.rate: a rate (requests per second per connection): the rule latency-under-load judges latency under an open-loop load, and load is closed-loop without one',
    ]);
  });

  it('is set in labs/latency-under-load.yaml, whose rule measures that client', async () => {
    const { lab: loaded } = await resolveLab('latency-under-load');
    expect(loaded.clients).toEqual([{ name: 'load', mode: 'echo', connections: 16, messageSize: 64, rate: 200 }]);
    expect(loaded.verdict).toEqual([{ rule: 'latency-under-load', client: 'load' }]);
    expect(loaded.repetitions).toBeGreaterThanOrEqual(3);
    expect(loaded.default).toBe(false);
  });
});

// ---- the rule, on hand-made measurements -----------------------------------------------------

const RATE = 400;
const CONNECTIONS = 16;
/** An open-loop client's result over a 2 s window: `achieved` round trips per second, its p50 and p99 from the schedule (µs). */
function openResult(achieved: number, p50Us: number, p99Us: number, lowerBounds = 0, sendLagP99Us = 50): ClientResult {
  const scheduled = RATE * CONNECTIONS * 2;
  const latency = { count: scheduled, meanUs: p50Us, p50Us, p90Us: p50Us * 2, p99Us, p999Us: p99Us * 2, maxUs: p99Us * 3 };
  return echoResult(achieved * 2, p50Us, {
    connected: CONNECTIONS,
    latency,
    openLoop: {
      ratePerConnection: RATE,
      offeredPerSecond: RATE * CONNECTIONS,
      scheduled,
      sentLate: lowerBounds ? 10 : 0,
      notSent: lowerBounds,
      lowerBounds,
      serviceLatency: { ...latency, p99Us: p50Us * 3, p999Us: p50Us * 4, maxUs: p50Us * 5 },
      sendLag: { p99Us: sendLagP99Us, maxUs: sendLagP99Us * 4 },
    },
  });
}

const LOAD = [{ name: 'load', mode: 'echo' as const, connections: CONNECTIONS, messageSize: 64, rate: RATE }];
const servers = { blocking: variant('blocking'), epoll: variant('epoll'), threaded: variant('threaded') };

/** p99 per repetition for each server (blocking serves 1 of 16: it achieves 400/s of 6,400/s); the client's send lag p99, 50 µs unless given. */
function lab(p99: { blocking: number[]; epoll: number[]; threaded: number[] }, sendLagUs = 50): Results {
  const runs = Object.entries(p99).flatMap(([name, values]) =>
    values.map((p, repetition) => {
      const queues = name === 'blocking';
      return run(servers[name as keyof typeof servers], [{ ...client('load', openResult(queues ? RATE : RATE * CONNECTIONS, queues ? 900_000 : 90, p, queues ? 11_000 : 0, sendLagUs)), rate: RATE }], { repetition });
    }),
  );
  return analyse(measurement({ name: 'latency-under-load', variants: Object.values(servers), clients: LOAD, verdict: { rule: 'latency-under-load', client: 'load' }, repetitions: 4, traceRuns: 0 }, runs));
}

const verdictOf = (results: Results, start: string) => {
  const found = results.analysis.verdicts.filter((v) => v.subject.startsWith(start));
  expect(found, `one verdict about ${start}: ${results.analysis.verdicts.map((v) => v.subject).join('; ')}`).toHaveLength(1);
  return found[0];
};

describe('the rule latency-under-load', () => {
  const BLOCKING = [1_700_000, 1_650_000, 1_720_000, 1_690_000];

  it('holds: the servers that serve every connection stay below the 2.5 ms send interval and keep up; blocking queues, far above them', () => {
    const results = lab({ blocking: BLOCKING, epoll: [900, 1100, 1000, 1200], threaded: [1500, 1300, 1800, 1400] });
    expect(() => ResultsSchema.parse(results)).not.toThrow();
    expect(results.analysis.verdicts.map((v) => [v.subject, v.verdict])).toEqual([
      ['blocking: queues', 'holds'],
      ['epoll: keeps p99 below the send interval', 'holds'],
      ['threaded: keeps p99 below the send interval', 'holds'],
      ['blocking vs the servers that serve every connection', 'holds'],
    ]);
    expect(verdictOf(results, 'blocking: queues').measurement).toBe(
      'p99 from the scheduled send time [1.6 s–1.7 s] (a lower bound: at least 11,000 requests a run had no reply by the end and count at their wait so far); it could not keep up: achieved 400/s of 6,400/s offered',
    );
    expect(verdictOf(results, 'epoll').measurement).toBe(
      'p99 below the send interval, 2.5 ms (400 requests per second per connection): p99 from the scheduled send time [900 µs–1.2 ms]; it keeps up: achieved at least 95% of the offered rate: achieved 6,400/s of 6,400/s offered, a share of 100%',
    );
    expect(verdictOf(results, 'blocking vs').measurement).toMatch(/^blocking \[1\.6 s–1\.7 s\] p99 against the highest of epoll and threaded \[1\.3 ms–1\.8 ms\] p99 \(\d+×\): every repetition above/);
    // The figures behind them: finite numbers, one per repetition.
    expect(verdictOf(results, 'epoll').figures).toMatchObject({ p99Us: [900, 1100, 1000, 1200], sendIntervalUs: 2500, offeredPerSecond: 6400, achievedPerSecond: [6400, 6400, 6400, 6400] });
    for (const verdict of results.analysis.verdicts) expect(JSON.stringify(verdict)).not.toMatch(/NaN|undefined|Infinity/);
  });

  it('does not hold when a server that serves every connection has its p99 above the interval in every repetition (on a quiet machine)', () => {
    const threaded = verdictOf(lab({ blocking: BLOCKING, epoll: [900, 1100, 1000, 1200], threaded: [6000, 7000, 6500, 9000] }), 'threaded');
    expect(threaded.verdict).toBe('does not hold here');
    expect(threaded.parts[0].measurement).toBe('p99 from the scheduled send time [6.0 ms–9.0 ms], not below 2.5 ms');
  });

  it('is inconclusive when the client itself sent late by half the interval or more in every repetition', () => {
    const threaded = verdictOf(lab({ blocking: BLOCKING, epoll: [900, 1100, 1000, 1200], threaded: [6000, 7000, 6500, 9000] }, 1500), 'threaded');
    expect(threaded.verdict).toBe('inconclusive');
    expect(threaded.parts[0].measurement).toBe(
      "p99 from the scheduled send time [6.0 ms–9.0 ms], not below 2.5 ms; the client's own send lag p99 1.5 ms, at least 50% of the interval in 4 of 4 repetitions: the client sent late, so the p99 measures the load generator as much as the server",
    );
  });

  it('is inconclusive when the repetitions fall on both sides of the interval, or the servers\' ranges overlap, and says the spread', () => {
    const results = lab({ blocking: [2600, 9000, 3100, 12_000], epoll: [2000, 3000, 2200, 2800], threaded: [1500, 1300, 1800, 1400] });
    expect(verdictOf(results, 'epoll').verdict).toBe('inconclusive');
    expect(verdictOf(results, 'epoll').parts[0].measurement).toBe('p99 from the scheduled send time [2.0 ms–3.0 ms]: the repetitions fall on both sides of 2.5 ms');
    const versus = verdictOf(results, 'blocking vs');
    expect(versus.verdict).toBe('inconclusive');
    expect(versus.measurement).toMatch(/\[2\.6 ms–12 ms\] p99 against .* \[2\.0 ms–3\.0 ms\] p99 .*the ranges overlap; the difference of the medians, .* p99, is within the run-to-run spread/);
  });

  it('is inconclusive for a closed-loop client, which cannot show latency under load', () => {
    const closed = run(servers.epoll, [client('load', echoResult(6400, 90, { connected: CONNECTIONS }))]);
    const results = analyse(measurement({ variants: [servers.epoll], clients: [{ ...LOAD[0], rate: undefined }], verdict: { rule: 'latency-under-load', client: 'load' } }, [closed]));
    expect(results.analysis.verdicts).toMatchObject([{ subject: 'epoll', verdict: 'inconclusive', measurement: 'load ran closed-loop (no rate): latency under load needs an open-loop client' }]);
  });

  it('shows each server\'s p50, p99 and p99.9 and the offered against the achieved rate, in the observations and the report alike', () => {
    const results = lab({ blocking: BLOCKING, epoll: [900, 1100, 1000, 1200], threaded: [1500, 1300, 1800, 1400] });
    const said = (subject: string) => results.analysis.observations.find((o) => o.rule === 'open-loop' && o.subject === subject)!.text;
    expect(said('epoll')).toBe("epoll: load offered 6,400 requests/s (400/s on each of 16 connections), 6,400/s achieved; from the scheduled send time p50 90 µs, p99 1.1 ms, p99.9 2.1 ms (from the actual send, what a closed-loop client would report: p99 270 µs); the client's own send lag p99 50 µs");
    expect(said('blocking')).toMatch(/^blocking: load offered 6,400 requests\/s .*, and the server could not keep up: 400\/s achieved; .*44,000 requests without a reply at the end, counted at their wait so far$/);
    const markdown = renderMarkdown(results);
    expect(markdown).toContain('## Open-loop load');
    // offered, achieved (median [lowest–highest]), p50, p99, p99.9: the observation's numbers.
    expect(markdown).toMatch(/^\|\s*epoll\s*\|\s*load\s*\|\s*6,400\/s\s*\|\s*6,400\/s \[6,400\/s–6,400\/s\]\s*\|\s*90 µs\s*\|\s*1\.1 ms\s*\|\s*2\.1 ms\s*\|/m);
    expect(markdown).toContain('open-loop at 400 requests per second per connection (6,400/s in all)');
  });
});

// ---- end to end ------------------------------------------------------------------------------

describe('iolab run latency-under-load', () => {
  it('writes a report with the verdicts and the percentiles, for two servers', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-latency-'));
    const exit = await runIolab(['run', 'latency-under-load', '--runtime', 'local', '--duration', '1', '--repetitions', '2', '--models', 'blocking,epoll', '--out', out]);
    expect(exit.code, exit.stderr).toBe(0);
    const results = ResultsSchema.parse(JSON.parse(await readFile(join(out, 'latency-under-load', 'latest', 'results.json'), 'utf8')));
    expect(results.lab.clients).toEqual([{ name: 'load', mode: 'echo', connections: 16, messageSize: 64, rate: 200 }]);
    expect(results.runs.flatMap((r) => r.clients.map((c) => c.rate))).toEqual([200, 200, 200, 200]);
    expect(results.analysis.verdicts.map((v) => v.subject)).toEqual(['blocking: queues', 'epoll: keeps p99 below the send interval', 'blocking vs the servers that serve every connection']);
    // Blocking serves 1 of 16 connections: the other 15 have requests with no reply at the end.
    const blocking = results.analysis.subjects.find((s) => s.subject === 'blocking')!.measure!.clients[0].openLoop!;
    expect(blocking.lowerBounds).toBeGreaterThan(0);
    const report = await readFile(join(out, 'latency-under-load', 'latest', 'report.md'), 'utf8');
    for (const verdict of results.analysis.verdicts) expect(report).toContain(verdict.subject);
    expect(report).toMatch(/\|\s*server\s*\|\s*client\s*\|\s*offered\s*\|\s*achieved\s*\|\s*p50\s*\|\s*p99\s*\|\s*p99\.9\s*\|/);
    expect(report).toContain('open-loop at 200 requests per second per connection');
  }, 60_000);
});
