// The experiment labs (concurrent-client, switching): their Python scripts run for real, on the
// local runtime and, for concurrent-client, in Docker. Asserted only what physics makes robust on
// a busy 2-CPU machine: one round trip at a time cannot take less than the sum of the servers'
// delays, and overlapped round trips take about the longest chain of them, far below the sum.
// The overhead of switching in CPU-only jobs is not asserted (a busy machine can hide it): only
// that it is judged with its numbers, never NaN. No engine is a failure here, not a skip.
//
// Sizes: the overlapping arm must take less than the baseline over (n + 1) / 2 (n waits overlapped,
// src/analysis/experiments.ts), i.e. less than 2n / (n + 1) times the longest chain of waits: with
// n = 4 and a chain of 200 ms (300 ms in Docker, whose round trips cross a bridge), 320 ms (480 ms),
// where it takes about 205 ms (305 ms): over 100 ms of slack for a busy machine.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyse } from '../src/analysis/index.js';
import { LabFileError } from '../src/errors.js';
import type { ExperimentLab } from '../src/labs/experiment-schema.js';
import { loadAllLabs, loadLabFile, resolveLab } from '../src/labs/load.js';
import { runLab, type RunOptions } from '../src/labs/runner.js';
import { readResults, renderMarkdown, writeReport } from '../src/report/index.js';
import { RUN_LABEL } from '../src/runtime/containers.js';
import { ensureImage, engineAvailable } from '../src/runtime/docker-image.js';
import { DockerRuntime } from '../src/runtime/docker.js';
import { LocalRuntime } from '../src/runtime/local.js';
import type { Runtime } from '../src/runtime/runtime.js';
import type { Results } from '../src/shared/results.js';
import type { ClaimVerdict } from '../src/shared/verdicts.js';

/** Runs an experiment lab of labs/ with other parameters and repetitions, analysed as `iolab run` would. */
async function runExperiment(
  name: string,
  runtime: Runtime,
  changes: { repetitions: number; parameters: Record<string, number> },
  options: RunOptions = {},
): Promise<Results> {
  const loaded = await resolveLab(name);
  if (!loaded.experiment) throw new Error(`${name} is not an experiment lab`);
  const experiment = { ...loaded.experiment, repetitions: changes.repetitions, parameters: { ...loaded.experiment.parameters, ...changes.parameters } } as ExperimentLab;
  return analyse(await runLab({ ...loaded, experiment }, runtime, options));
}

function verdictOf(results: Results, rule: string, subject: string): ClaimVerdict {
  const found = results.analysis.verdicts.find((v) => v.rule === rule && v.subject === subject);
  if (!found) throw new Error(`no ${rule} verdict on "${subject}"; the verdicts: ${results.analysis.verdicts.map((v) => `${v.rule} on ${v.subject}`).join('; ')}`);
  return found;
}

function expectHolds(verdict: ClaimVerdict): void {
  expect(verdict.verdict, `${verdict.subject}: ${verdict.measurement}`).toBe('holds');
}

/** The report as `iolab report` renders it again from results.json alone: the same text, and nothing unmeasured in it. */
async function expectReportFromFile(results: Results): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'iolab-experiment-'));
  const { resultsFile, reportFile } = await writeReport(results, dir);
  const written = await readFile(reportFile, 'utf8');
  expect(renderMarkdown(await readResults(resultsFile))).toBe(written);
  expect(written).not.toMatch(/NaN|undefined|Infinity|\[object/);
  return written;
}

/** What one at a time against all at once must show: K × D against about D. */
function expectSumAgainstLongest(results: Results): void {
  expect(results.complete, results.incompleteReason ?? '').toBe(true);
  expectHolds(verdictOf(results, 'sum-of-waits', 'one server at a time'));
  expectHolds(verdictOf(results, 'longest-wait', 'all at once (non-blocking connect + select)'));
  const select = results.analysis.experiment!.arms.find((arm) => arm.arm === 'select')!;
  expect(select.mostAtOnce).toBe(results.experiment!.parameters.servers);
}

describe('the experiment labs', () => {
  it('are listed, are not in the default suite, and name their experiment', async () => {
    const labs = await loadAllLabs();
    const experiments = labs.filter((l) => l.experiment);
    expect(experiments.map((l) => [l.lab.name, l.experiment!.experiment, l.lab.default])).toEqual([
      ['concurrent-client', 'concurrent-client', false],
      ['switching', 'switching', false],
    ]);
    // What `iolab list` and the default suite read of them: no servers, no clients.
    expect(experiments.every((l) => l.lab.models.length === 0 && l.lab.clients.length === 0)).toBe(true);
  });

  it('reject a bad lab file naming the file, the field and its line', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'iolab-experiment-lab-')), 'demo.yaml');
    const problems = async (text: string): Promise<string[]> => {
      await writeFile(file, text);
      const error = await loadLabFile(file).then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(LabFileError);
      expect((error as LabFileError).file).toBe(file);
      return (error as LabFileError).problems;
    };
    const good = 'name: demo\ntitle: Demo\nclaim: Something.\nexperiment: concurrent-client\nparameters:\n  servers: 4\n  delayMs: 200\n';
    await writeFile(file, good);
    expect((await loadLabFile(file)).experiment).toMatchObject({ experiment: 'concurrent-client', repetitions: 5, parameters: { servers: 4, delayMs: 200 } });
    expect(await problems(good.replace('servers: 4', 'servers: 1'))).toEqual([expect.stringMatching(/^parameters\.servers: .*greater than or equal to 2 \(line 6\)$/)]);
    expect(await problems(good.replace('delayMs: 200', 'delay: 200'))).toEqual([expect.stringMatching(/^parameters: unknown field\(s\) delay \(line 6\)$/)]);
    expect(await problems(good.replace('experiment: concurrent-client', 'experiment: threads'))).toEqual([
      'experiment: expected an experiment, one of: concurrent-client, switching (line 4)',
    ]);
    expect(await problems(good.replace('experiment: concurrent-client', 'experiment: switching'))).toEqual([
      expect.stringMatching(/^parameters: unknown field\(s\) servers, delayMs \(line 6\)$/),
    ]);
  });

  it('concurrent-client, locally: one server at a time pays K × D, non-blocking connect + select about D', async () => {
    const runtime = new LocalRuntime();
    try {
      const results = await runExperiment('concurrent-client', runtime, { repetitions: 4, parameters: { servers: 4, delayMs: 200 } });
      expectSumAgainstLongest(results);
      expect(results.experiment!.slowServers?.where).toMatch(/^a process on this machine/);
      expect(results.experiment!.python).toMatch(/^\/usr\/bin\/python3 3\./);
      const report = await expectReportFromFile(results);
      expect(report).toContain('EINPROGRESS');
      expect(report).toContain('K × D = 4 × 200 ms = 800 ms');
    } finally {
      await runtime.close();
    }
    // 4 × (800 ms + 200 ms) of waits and 8 interpreters started.
  }, 60_000);

  it('switching, locally: blocking waits add up however the jobs switch; gevent overlaps them; CPU-only switching is judged with its spread', async () => {
    const runtime = new LocalRuntime();
    try {
      const results = await runExperiment('switching', runtime, { repetitions: 4, parameters: { jobs: 4, steps: 20_000, waits: 2, waitMs: 100 } });
      expect(results.complete, results.incompleteReason ?? '').toBe(true);
      for (const arm of ['serial', 'generators (yield)', 'greenlets (greenlet.switch)']) {
        expectHolds(verdictOf(results, 'sum-of-waits', `${arm}, jobs that wait on IO`));
      }
      expectHolds(verdictOf(results, 'longest-wait', 'gevent (spawn + joinall), jobs that wait on IO'));
      const figures = results.analysis.experiment!.arms;
      expect(figures.find((f) => f.part === 'io' && f.arm === 'gevent')!.mostAtOnce).toBe(4);
      expect(figures.filter((f) => f.part === 'io' && f.arm !== 'gevent').map((f) => f.mostAtOnce)).toEqual([1, 1, 1]);
      // CPU-only jobs: every switching arm did the serial arm's work (same checksum, else its run
      // would have failed) and is judged against serial with numbers, whichever way it went.
      for (const arm of ['generators (yield)', 'greenlets (greenlet.switch)', 'gevent (spawn + joinall)']) {
        const verdict = verdictOf(results, 'adds-time', `${arm}, CPU-only jobs`);
        expect(verdict.measurement).toMatch(/80,000 switches: -?[\d.]+ (ns|µs) \[/);
        expect(figures.find((f) => f.part === 'cpu' && f.label === arm)!.perSwitchNs?.values).toHaveLength(4);
      }
      const report = await expectReportFromFile(results);
      expect(report).toContain('### CPU-only jobs');
      expect(report).toContain('### Jobs that wait on IO');
    } finally {
      await runtime.close();
    }
    // 4 × (3 × 800 ms + 200 ms) of waits, under 2 s of CPU-only jobs, 32 interpreters started.
  }, 90_000);

  it('an interrupted experiment lab keeps what it measured, marked incomplete', async () => {
    const runtime = new LocalRuntime();
    const abort = new AbortController();
    try {
      const results = await runExperiment(
        'concurrent-client',
        runtime,
        { repetitions: 4, parameters: { servers: 2, delayMs: 50 } },
        { signal: abort.signal, onProgress: (p) => p.outcome && p.step === 3 && abort.abort('SIGINT') },
      );
      expect(results.complete).toBe(false);
      expect(results.incompleteReason).toBe('interrupted (SIGINT) after 3 of 8 runs');
      expect(results.experiment!.runs).toHaveLength(3);
      const report = await expectReportFromFile(results);
      expect(report).toContain('> **INCOMPLETE**: interrupted (SIGINT) after 3 of 8 runs.');
      // Too few repetitions to compare: inconclusive, said with the numbers, never a verdict.
      const select = verdictOf(results, 'longest-wait', 'all at once (non-blocking connect + select)');
      expect(select.verdict).toBe('inconclusive');
      expect(select.measurement).toMatch(/a verdict needs 4 repetitions each/);
    } finally {
      await runtime.close();
    }
  }, 60_000);

  it('a script that fails midway is a failed run: the lab goes on and writes the rest, marked incomplete', async () => {
    const local = new LocalRuntime();
    let started = 0;
    // The real local runtime, but the third script it starts is one that dies before its line.
    const runtime: Runtime = Object.assign(Object.create(local) as LocalRuntime, {
      startProgram: (spec: Parameters<Runtime['startProgram']>[0]) =>
        local.startProgram(spec.role === 'experiment' && ++started === 3 ? { ...spec, command: ['/usr/bin/python3', '-c', 'import sys; sys.exit("no line today")'] } : spec),
    });
    try {
      const results = await runExperiment('concurrent-client', runtime, { repetitions: 2, parameters: { servers: 2, delayMs: 50 } });
      expect(results.complete).toBe(false);
      expect(results.incompleteReason).toMatch(/^run 3 \(one server at a time, repetition 2\) failed: .*exited \(1\) before its JSON line; its stderr ends: no line today$/);
      expect(results.experiment!.runs.map((run) => run.error === null)).toEqual([true, true, false, true]);
      expect(results.analysis.experiment!.arms.map((arm) => arm.runs)).toEqual([1, 2]);
      expect(results.analysis.failedRuns).toEqual([expect.objectContaining({ subject: 'one server at a time', repetition: 1 })]);
      const report = await expectReportFromFile(results);
      expect(report).toContain('## Failed runs');
      expect(report).toContain('- one server at a time, repetition 2 of 2: the concurrent-client script concurrent_client.py (serial, fetch) exited (1) before its JSON line');
    } finally {
      await local.close();
    }
  }, 60_000);
});

describe('the experiment labs in Docker', () => {
  const docker = new Docker();
  beforeAll(async () => {
    const engine = await engineAvailable(docker);
    if (!engine.ok) throw new Error(`no Docker engine answers (${engine.reason}): .ci/run installs and starts one`);
    await ensureImage(docker, {});
  }, 900_000);

  it('concurrent-client: the slow servers in a container of their own, each run in a container, nothing left behind', async () => {
    const runtime = new DockerRuntime();
    let results: Results;
    try {
      results = await runExperiment('concurrent-client', runtime, { repetitions: 4, parameters: { servers: 4, delayMs: 300 } });
    } finally {
      await runtime.close();
    }
    expect(results.environment.runtime).toBe('docker');
    expect(results.environment.container?.image).toMatch(/^iolab:/);
    expect(results.experiment!.slowServers?.where).toMatch(new RegExp(`^container ${runtime.runId}-slow-servers-\\d+`));
    expectSumAgainstLongest(results);
    // Across the bridge every non-blocking connect waits for a real handshake.
    expect(results.analysis.experiment!.arms.find((arm) => arm.arm === 'select')!.einprogress).toBe(4);
    await expectReportFromFile(results);
    const left = await docker.listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${runtime.runId}`] } });
    expect(left.map((c) => c.Names[0])).toEqual([]);
    // 4 × (1.2 s + 300 ms) of waits, 9 containers started and removed, on a busy engine.
  }, 120_000);
});
