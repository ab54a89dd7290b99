// The Docker runtime against a real engine: labs run with a server container, an observer sidecar
// and client containers, show the same fingerprints and verdicts as on the local runtime, apply
// the lab's nofile inside the server container, and leave nothing behind, not even after Ctrl-C.
// No engine is a failure here, not a skip: .ci/run installs and starts one.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveLab } from '../src/labs/load.js';
import { runLab } from '../src/labs/runner.js';
import type { Lab } from '../src/labs/schema.js';
import { judgeClaim } from '../src/report/claims.js';
import { deriveFigures } from '../src/report/derive.js';
import { ResultsSchema, type Results } from '../src/report/results.js';
import { ensureImage, engineAvailable } from '../src/runtime/docker-image.js';
import { DockerRuntime, RUN_LABEL } from '../src/runtime/docker.js';
import { interruptAfter, runIolab } from './helpers.js';

const docker = new Docker();

async function labelled(runId: string | null): Promise<{ containers: number; networks: number }> {
  const label = runId === null ? RUN_LABEL : `${RUN_LABEL}=${runId}`;
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
  const networks = await docker.listNetworks({ filters: { label: [label] } });
  return { containers: containers.length, networks: networks.length };
}

async function runInDocker(name: string, changes: Partial<Lab>, clients = 1): Promise<{ results: Results; runId: string }> {
  const loaded = await resolveLab(name);
  const lab: Lab = { ...loaded.lab, duration: 0.5, repetitions: 1, ...changes };
  const runtime = new DockerRuntime();
  try {
    const results = await runLab({ ...loaded, lab }, runtime, { clients });
    expect(results.runs.filter((run) => run.error).map((run) => `${run.variant}: ${run.error}`)).toEqual([]);
    return { results, runId: runtime.runId };
  } finally {
    await runtime.close();
  }
}

beforeAll(async () => {
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new Error(`no Docker engine answers (${engine.reason}): .ci/run installs and starts one`);
  await ensureImage(docker, {});
}, 900_000);

describe('the Docker runtime', () => {
  it('runs models with 3 client containers per client: every model shows its fingerprint', async () => {
    const { results, runId } = await runInDocker('models', {}, 3);
    expect(results.environment.runtime).toBe('docker');
    expect(results.environment.container?.image).toMatch(/^iolab:/);
    expect(results.environment.clientReplicas).toBe(3);
    expect(results.runs[0].clients.map((c) => c.name)).toEqual(['load-1', 'load-2', 'load-3', 'idle-1', 'idle-2', 'idle-3']);
    const verdicts = judgeClaim(results, deriveFigures(results));
    expect(verdicts).toHaveLength(12);
    for (const verdict of verdicts) expect(verdict.verdict, `${verdict.subject}: ${verdict.measurement}`).toBe('holds');
    const nonblocking = results.runs.find((r) => r.model === 'nonblocking' && r.phase === 'trace')!;
    const accept = nonblocking.syscalls!.find((s) => s.syscall === 'accept4')!;
    expect(accept.errors / accept.calls).toBeGreaterThan(0.5);
    expect(await labelled(runId)).toEqual({ containers: 0, networks: 0 });
  }, 600_000);

  it('runs starvation: the blocking server starves the second client, every other model answers it', async () => {
    // One model of each kind keeps the suite short: one at a time, threads, readiness, completion.
    const { results } = await runInDocker('starvation', { models: ['blocking', 'threaded', 'epoll', 'uring'] });
    const verdicts = judgeClaim(results, deriveFigures(results));
    expect(verdicts).toHaveLength(4);
    for (const verdict of verdicts) expect(verdict.verdict, `${verdict.subject}: ${verdict.measurement}`).toBe('holds');
  }, 600_000);

  it("applies the lab's nofile in the server container: select refuses past FD_SETSIZE, epoll meets EMFILE", async () => {
    const { results } = await runInDocker('fd-ceiling', {
      models: [
        { model: 'select', nofile: 2048, options: {} },
        { model: 'epoll', label: 'epoll-nofile-1024', nofile: 1024, options: {} },
      ],
      sweep: { client: 'crowd', connections: [1500] },
    });
    const select = results.runs.find((r) => r.variant === 'select')!;
    expect(select.limits).toMatchObject({ nofileSoft: 2048, nofileHard: 2048, fdSetSize: 1024 });
    expect(select.serverLog.some((line) => /refused connection on fd 1024/.test(line))).toBe(true);
    const epoll = results.runs.find((r) => r.variant === 'epoll-nofile-1024')!;
    expect(epoll.limits).toMatchObject({ nofileSoft: 1024, nofileHard: 1024 });
    expect(epoll.serverLog.some((line) => /EMFILE/.test(line))).toBe(true);
    for (const verdict of judgeClaim(results, deriveFigures(results))) expect(verdict.verdict, verdict.measurement).toBe('holds');
  }, 600_000);

  it('on Ctrl-C removes every container and network it started, writes the report marked incomplete, exits 130', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-docker-sigint-'));
    // In the middle of the second run: server, observer and clients are up.
    const interrupt = interruptAfter(/\[1\/\d+\] starvation: blocking measure #1 .*round trips/, 1500);
    const exit = await runIolab(['run', 'starvation', '--runtime', 'docker', '--duration', '2', '--out', out], interrupt.watch);
    expect(exit.code, exit.stderr).toBe(130);
    const results = ResultsSchema.parse(JSON.parse(await readFile(join(out, 'starvation', 'results.json'), 'utf8')));
    expect(results.complete).toBe(false);
    expect(results.incompleteReason).toMatch(/^interrupted \(SIGINT\)/);
    expect(results.runs[0].error).toBeNull();
    expect(await labelled(null)).toEqual({ containers: 0, networks: 0 });
  }, 600_000);
});

afterAll(async () => {
  // Whatever a failed test left: the next run of the suite starts clean.
  const { removeLabelled } = await import('../src/runtime/docker.js');
  await removeLabelled(docker, null);
});
