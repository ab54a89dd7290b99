// `iolab run` end to end on the local runtime: real servers, real clients, real strace; the
// report states what was measured, and `iolab report` renders it again from results.json alone,
// byte for byte. And Ctrl-C in the middle of a lab.
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { beforeAll, describe, expect, it } from 'vitest';
import { ResultsSchema, type Results, type RunRecord } from '../src/shared/results.js';
import { expectHolds, signalAfter, labTimeoutMs, runIolab as iolab } from './helpers.js';

async function readResults(dir: string): Promise<Results> {
  return ResultsSchema.parse(JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')));
}

const run = (results: Results, model: string, phase: RunRecord['phase']) => results.runs.find((r) => r.model === model && r.phase === phase)!;
/** The run of a model that carries syscall counts: a measured run under the eBPF observer. */
const counted = (results: Results, model: string) => results.runs.find((r) => r.model === model && r.trace !== null)!;
/** A call of the model's threads in a traced run's window. */
const count = (record: RunRecord, syscall: string) => record.trace?.window.serving.find((s) => s.syscall === syscall) ?? { calls: 0, errors: 0, errnos: {} as Record<string, number> };

/** Live processes of a process group (everything iolab started inherits its group). */
async function processesInGroup(group: number): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === group && fields[0] !== 'Z') found.push(`${pid}: ${stat.slice(0, stat.lastIndexOf(')') + 1)}`);
  }
  return found;
}

describe('iolab run starvation', () => {
  let out: string;
  let results: Results;
  let exit: { code: number | null; stderr: string };
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'iolab-e2e-'));
    exit = await iolab(['run', 'starvation', '--runtime', 'local', '--duration', '1', '--out', out]);
    results = await readResults(join(out, 'starvation', 'latest'));
  }, labTimeoutMs(12, 1));

  it('exits 0 with a complete results.json and a report', async () => {
    expect(exit.code, exit.stderr).toBe(0);
    expect(results.complete).toBe(true);
    // Counted by the eBPF observer in the measured runs: no trace runs of their own.
    expect(results.environment.tracerKind).toBe('bpf');
    expect(results.runs).toHaveLength(12);
    expect(results.runs.every((r) => r.phase === 'measure' && r.trace?.tracer === 'bpf')).toBe(true);
    expect(exit.stderr).toMatch(/\[12\/12\] starvation: eventloop measure/);
    const report = await readFile(join(out, 'starvation', 'latest', 'report.md'), 'utf8');
    expect(report).toContain(results.lab.title);
  });

  it('keeps its verdicts in results.json, and `iolab report` renders report.md again, byte for byte', async () => {
    expect(results.analysis.verdicts.map((v) => v.subject)).toEqual(results.lab.variants.map((v) => v.label));
    for (const verdict of results.analysis.verdicts) expectHolds(verdict);
    const again = await mkdtemp(join(tmpdir(), 'iolab-e2e-report-'));
    const rendered = await iolab(['report', join(out, 'starvation', 'latest', 'results.json'), '--out', again]);
    expect(rendered.code, rendered.stderr).toBe(0);
    expect(await readFile(join(again, 'report.md'), 'utf8')).toBe(await readFile(join(out, 'starvation', 'latest', 'report.md'), 'utf8'));
    const printed = await iolab(['report', join(out, 'starvation', 'latest', 'results.json'), '--stdout']);
    expect(printed.stdout).toBe(await readFile(join(out, 'starvation', 'latest', 'report.md'), 'utf8'));
  });

  it('`iolab report --csv` writes every table of the report as CSV, cell for cell', async () => {
    const again = await mkdtemp(join(tmpdir(), 'iolab-e2e-csv-'));
    const rendered = await iolab(['report', join(out, 'starvation', 'latest', 'results.json'), '--csv', '--out', again]);
    expect(rendered.code, rendered.stderr).toBe(0);
    const files = (await readdir(join(again, 'tables'))).sort();
    const report = await readFile(join(out, 'starvation', 'latest', 'report.md'), 'utf8');
    // One file per table of the report: a table is a row of cells, then its alignment row.
    expect(files).toHaveLength(report.split('\n').filter((line, i, lines) => line.startsWith('|') && /^\|(\s*:?-+:?\s*\|)+\s*$/.test(lines[i + 1] ?? '')).length);
    const resultsTable = files.find((f) => /^\d\d-results\.csv$/.test(f))!;
    const rows = parse(await readFile(join(again, 'tables', resultsTable), 'utf8')) as string[][];
    expect(rows[0].slice(0, 3)).toEqual(['server', 'runs', 'round trips/s']);
    expect(rows.slice(1).map((row) => row[0])).toEqual(results.lab.variants.map((v) => v.label));
    // The cells are the report's: each row of the CSV is a row of the Markdown table.
    for (const row of rows.slice(1)) expect(report).toContain(row[0]);
  });

  it('writes no NaN, undefined or "(?)" anywhere, in the report or the results', async () => {
    for (const file of ['report.md', 'results.json']) {
      const text = await readFile(join(out, 'starvation', 'latest', file), 'utf8');
      expect(text, file).not.toMatch(/NaN|undefined|\(\?\)|Infinity/);
    }
  });

  it('the blocking server starves the second client; every other model answers it', () => {
    const asker = (model: string) => run(results, model, 'measure').clients.find((c) => c.name === 'asker')!.result!;
    expect(asker('blocking').roundTrips).toBe(0);
    expect(asker('blocking').unanswered).toBe(1);
    for (const model of results.lab.variants.map((v) => v.model).filter((m) => m !== 'blocking')) {
      expect(asker(model).roundTrips, model).toBeGreaterThan(0);
      expect(asker(model).wrongReplies).toBe(0);
    }
  });

  it('the non-blocking server fails most recvfrom and accept4 calls (EAGAIN) and burns CPU', () => {
    const traced = counted(results, 'nonblocking');
    for (const name of ['recvfrom', 'accept4']) {
      const { calls, errnos } = count(traced, name);
      expect((errnos.EAGAIN ?? 0) / calls, name).toBeGreaterThan(0.5);
    }
    expect(run(results, 'nonblocking', 'measure').proc!.cpuPercent).toBeGreaterThan(50);
    expect(run(results, 'epoll', 'measure').proc!.cpuPercent).toBeLessThan(run(results, 'nonblocking', 'measure').proc!.cpuPercent);
  });

  it('select shows select or pselect6, epoll shows epoll_wait', () => {
    const select = counted(results, 'select');
    expect(count(select, 'select').calls + count(select, 'pselect6').calls).toBeGreaterThan(0);
    expect(count(counted(results, 'epoll'), 'epoll_wait').calls).toBeGreaterThan(0);
    expect(run(results, 'select', 'measure').limits).toMatchObject({ fdSetSize: 1024, nofileSoft: 1024, nofileHard: 1024 });
  });
});

describe('iolab run --models --repetitions --no-trace', () => {
  it('runs only those servers, that many times each, uncounted, and says so; the verdict needs no counts and holds', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-options-'));
    const exit = await iolab(['run', 'starvation', '--runtime', 'local', '--duration', '1', '--models', 'blocking,epoll', '--repetitions', '2', '--no-trace', '--out', out]);
    expect(exit.code, exit.stderr).toBe(0);
    const results = await readResults(join(out, 'starvation', 'latest'));
    expect(results.complete).toBe(true);
    expect(results.lab.repetitions).toBe(2);
    expect(results.runs.map((r) => `${r.model}#${r.repetition}`)).toEqual(['blocking#0', 'epoll#0', 'blocking#1', 'epoll#1']);
    expect(results.runs.every((r) => r.trace === null)).toBe(true);
    expect(results.environment.tracer).toMatch(/--no-trace/);
    expect(exit.stderr).toMatch(/syscalls not counted \(--no-trace\)/);
    // Progress: the time spent and an estimate of the time left.
    expect(exit.stderr).toMatch(/\[2\/4\] starvation: epoll measure #1 .* · \d+s in this lab, about \d+s left/);
    expect(results.analysis.verdicts.map((v) => v.subject)).toEqual(['blocking', 'epoll']);
    for (const verdict of results.analysis.verdicts) expectHolds(verdict);
    const report = await readFile(join(out, 'starvation', 'latest', 'report.md'), 'utf8');
    expect(report).toContain('none: not asked for (--no-trace)');
  }, labTimeoutMs(4, 1));

  it('--help wraps at words, within 100 columns, where stdout is not a terminal', async () => {
    const help = await iolab(['run', '--help']);
    expect(help.code).toBe(0);
    const lines = help.stdout.split('\n');
    expect(Math.max(...lines.map((line) => line.length))).toBeLessThanOrEqual(100);
    // Rejoined, the description reads whole: no word was cut at a line's end.
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('requests per second per connection of every echo client, sent open-loop and timed from their scheduled send time');
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('--no-trace: no counts (faster; the verdicts that need counts say so)');
  });

  it('refuses --no-trace beside --tracer, and --repetitions out of range, naming the option', async () => {
    const both = await iolab(['run', 'starvation', '--runtime', 'local', '--no-trace', '--tracer', 'bpf']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--no-trace takes no syscall counts: drop --tracer bpf/);
    const many = await iolab(['run', 'starvation', '--runtime', 'local', '--repetitions', '51']);
    expect(many.code).toBe(2);
    expect(many.stderr).toMatch(/--repetitions must be a whole number from 1 to 50, got 51/);
  });
});

describe('Ctrl-C during a lab', () => {
  it('stops every process, writes what was measured marked incomplete, and exits 130', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-sigint-'));
    // Interrupt in the middle of the second run, once the first one is recorded.
    const interrupt = signalAfter(/\[1\/\d+\] models: blocking measure #1 .*round trips/, 700);
    const exit = await iolab(['run', 'models', '--runtime', 'local', '--duration', '2', '--out', out], interrupt.watch);
    expect(interrupt.sent, exit.stderr).toBe(true);
    expect(exit.code, exit.stderr).toBe(130);
    const results = await readResults(join(out, 'models', 'latest'));
    expect(results.complete).toBe(false);
    expect(results.incompleteReason).toMatch(/^interrupted \(SIGINT\)/);
    expect(results.runs.length).toBeGreaterThanOrEqual(1);
    expect(results.runs[0].error).toBeNull();
    const report = await readFile(join(out, 'models', 'latest', 'report.md'), 'utf8');
    expect(report).toMatch(/INCOMPLETE/);
    expect(report).not.toMatch(/NaN|undefined|\(\?\)|Infinity/);
    expect(await processesInGroup(exit.pid)).toEqual([]);
  }, 120_000);
});
