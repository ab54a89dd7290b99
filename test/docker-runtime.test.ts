// The Docker runtime against a real engine: labs run with a server container, an observer sidecar
// and client containers, show the same fingerprints and verdicts as on the local runtime, apply
// the lab's nofile inside the server container, and leave nothing behind, not even after Ctrl-C.
// No engine is a failure here, not a skip: .ci/run installs and starts one.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../src/labs/schema.js';
import { ResultsSchema, TimelineSchema, type Results } from '../src/shared/results.js';
import { ensureImage, engineAvailable } from '../src/runtime/docker-image.js';
import { newRunId, RUN_LABEL, RunContainers } from '../src/runtime/containers.js';
import { DockerRuntime } from '../src/runtime/docker.js';
import { LocalRuntime } from '../src/runtime/local.js';
import { expectHolds, signalAfter, labTimeoutMs, runIolab, runShortLab, expectNotContradicted } from './helpers.js';

const docker = new Docker();
/** A run in containers: a server, an observer sidecar and the client containers to start and remove. */
const DOCKER_RUN_OVERHEAD_SECONDS = 20;

/** The containers and networks of one run (or of every run, null) by name: whose they are, when some are left. */
async function labelled(runId: string | null): Promise<{ containers: string[]; networks: string[] }> {
  const label = runId === null ? RUN_LABEL : `${RUN_LABEL}=${runId}`;
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
  const networks = await docker.listNetworks({ filters: { label: [label] } });
  return { containers: containers.map((c) => `${c.Names[0]} (${c.State})`), networks: networks.map((n) => n.Name) };
}
const NOTHING = { containers: [], networks: [] };


async function runInDocker(name: string, changes: Partial<Lab>, clients = 1): Promise<{ results: Results; runId: string; created: Map<string, number> }> {
  const runtime = new DockerRuntime();
  // The containers the runtime asks the engine for, by role (their iolab.role label).
  const created = new Map<string, number>();
  const createContainer = runtime.docker.createContainer.bind(runtime.docker);
  runtime.docker.createContainer = ((options: Docker.ContainerCreateOptions) => {
    const role = options.Labels?.['iolab.role'] ?? '?';
    created.set(role, (created.get(role) ?? 0) + 1);
    return createContainer(options);
  }) as typeof runtime.docker.createContainer;
  try {
    const results = await runShortLab(name, runtime, { duration: 0.5, repetitions: 1, ...changes }, { clients });
    return { results, runId: runtime.runId, created };
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
  it("runs the course's Python servers as the container's own program: fingerprints hold, the fork server's children counted", async () => {
    const { results } = await runInDocker('python', { models: ['python-select', 'python-fork', 'python-gevent', 'python-asyncio'] });
    expect(results.runs.every((r) => r.serverRuntime?.startsWith('python 3.'))).toBe(true);
    for (const verdict of results.analysis.verdicts.filter((v) => v.rule === 'fingerprints')) expectHolds(verdict);
    const fork = results.runs.find((r) => r.variant === 'python-fork')!;
    expect(fork.proc?.processesPeak).toBeGreaterThan(16);
    // The container's program is the Python server itself: no Node thread of `iolab server` counted.
    const calls = [...fork.trace!.window.serving, ...fork.trace!.setup.serving].map((s) => s.syscall);
    expect(calls).not.toContain('epoll_pwait');
  }, labTimeoutMs(4, 0.5, 20));

  it('runs models with 3 client containers per client: every model shows its fingerprint; one observer sidecar for the whole lab', async () => {
    const { results, runId, created } = await runInDocker('models', {}, 3);
    // Created in the lab: a server and 6 clients per run, and one observer for all of them.
    expect(created.get('observer')).toBe(1);
    expect(created.get('server')).toBe(results.runs.length);
    expect(created.get('client')).toBe(results.runs.length * 6);
    expect(results.environment.runtime).toBe('docker');
    expect(results.environment.container?.image).toMatch(/^iolab:/);
    expect(results.environment.clientReplicas).toBe(3);
    expect(results.runs[0].clients.map((c) => `${c.name}/${c.replica}`)).toEqual(['load/0', 'load/1', 'load/2', 'idle/0', 'idle/1', 'idle/2']);
    expect(results.runs[0].serverRuntime).toMatch(/^node v18\./);
    const verdicts = results.analysis.verdicts;
    expect(verdicts.map((v) => v.rule)).toEqual([...Array(12).fill('fingerprints'), ...Array(12).fill('two-phases')]);
    for (const verdict of verdicts.filter((v) => v.rule === 'fingerprints')) expectHolds(verdict);
    for (const verdict of verdicts.filter((v) => v.rule === 'two-phases')) expectNotContradicted(verdict);
    // The eBPF observer counted in the measured runs, from the lab's sidecar, by the server's process tree (its host pid).
    expect(results.environment.tracerKind).toBe('bpf');
    expect(results.runs.every((r) => r.phase === 'measure')).toBe(true);
    const nonblocking = results.runs.find((r) => r.model === 'nonblocking' && r.trace !== null)!;
    const accept = nonblocking.trace!.window.serving.find((s) => s.syscall === 'accept4')!;
    expect(accept.errnos.EAGAIN / accept.calls).toBeGreaterThan(0.5);
    // Only the server's processes are counted: no client's connect, no bpf(2) or perf_event_open of the sidecar.
    for (const run of results.runs) {
      const calls = [...run.trace!.setup.serving, ...run.trace!.window.serving, ...run.trace!.setup.runtime, ...run.trace!.window.runtime].map((s) => s.syscall);
      expect(calls, run.variant).not.toContain('connect');
      expect(calls, run.variant).not.toContain('bpf');
      expect(calls, run.variant).not.toContain('perf_event_open');
    }
    // The kernel's side of io_uring: a receive and a send per round trip, which strace never sees.
    const uring = results.analysis.subjects.find((s) => s.model === 'uring')!.trace!;
    const ops = Object.fromEntries(uring.uring!.map((op) => [op.opcode, op.submitted]));
    expect(ops.RECV).toBeGreaterThanOrEqual(uring.roundTrips);
    expect(ops.SEND).toBeGreaterThanOrEqual(uring.roundTrips);
    expect(await labelled(runId)).toEqual(NOTHING);
  }, labTimeoutMs(24, 0.5, DOCKER_RUN_OVERHEAD_SECONDS));

  it('runs starvation: the blocking server starves the second client, every other model answers it', async () => {
    // One model of each kind keeps the suite short: one at a time, threads, readiness, completion.
    const { results } = await runInDocker('starvation', { models: ['blocking', 'threaded', 'epoll', 'uring'] });
    const verdicts = results.analysis.verdicts;
    expect(verdicts).toHaveLength(4);
    for (const verdict of verdicts) expectHolds(verdict);
    // Each run's timeline comes back from the observer sidecar with the rest of its trace.
    for (const run of results.runs) expect(TimelineSchema.parse(run.trace?.timeline).threads.map((t) => t.name), run.variant).toContain('iolab:main');
  }, labTimeoutMs(8, 0.5, DOCKER_RUN_OVERHEAD_SECONDS));

  it('gives the models lab the same verdicts in both runtimes: threaded answers every probe in Docker too', async () => {
    // The pair of the course's point: a thread per connection and an event loop both serve
    // everyone. In Docker (Node 18 in the image) a thread's start-up once outlasted the window.
    const pair: Partial<Lab> = { models: ['threaded', 'epoll'], duration: 1, repetitions: 2 };
    const local = new LocalRuntime();
    const inLocal = await runShortLab('models', local, pair).finally(() => local.close());
    const { results: inDocker } = await runInDocker('models', pair);
    const fingerprints = (results: Results) => results.analysis.verdicts.filter((v) => v.rule === 'fingerprints');
    const verdicts = (results: Results) => fingerprints(results).map((v) => `${v.subject}: ${v.verdict}`);
    expect(verdicts(inDocker)).toEqual(verdicts(inLocal));
    for (const results of [inLocal, inDocker]) {
      for (const verdict of fingerprints(results)) expectHolds(verdict);
      for (const verdict of results.analysis.verdicts.filter((v) => v.rule === 'two-phases')) expectNotContradicted(verdict);
      const threaded = results.analysis.subjects.find((s) => s.subject === 'threaded')!.measure!;
      const idle = threaded.clients.find((c) => c.name === 'idle')!;
      expect(idle.probe!.answered, `${results.environment.runtime}: the hold probe`).toBe(idle.probe!.sent);
      expect(idle.probe!.sent).toBeGreaterThan(0);
      const load = threaded.clients.find((c) => c.name === 'load')!;
      expect(load.connectionsAnswered, `${results.environment.runtime}: echo connections answered`).toBe(load.connections);
    }
  }, labTimeoutMs(12, 1, DOCKER_RUN_OVERHEAD_SECONDS));

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
    expect(select.events.counts.refused).toBeGreaterThan(400);
    expect(select.events.first.refused).toMatch(/refused connection on fd 1024/);
    const epoll = results.runs.find((r) => r.variant === 'epoll-nofile-1024')!;
    expect(epoll.limits).toMatchObject({ nofileSoft: 1024, nofileHard: 1024 });
    expect(epoll.events.first['fd-exhausted']).toMatch(/EMFILE/);
    for (const verdict of results.analysis.verdicts) expectHolds(verdict);
  }, labTimeoutMs(2, 0.5, DOCKER_RUN_OVERHEAD_SECONDS));

  it('closing a run while it is creating a container and its network waits for them, removes them, and creates nothing after', async () => {
    const image = await ensureImage(docker, {});
    const run = new RunContainers(docker, newRunId('iolab-test'));
    // Requests in flight when close() is called: what they create appears after close() began.
    const network = run.network({ internal: true });
    const containers = [1, 2, 3].map(() => run.create('idle', { Image: image.id, Cmd: ['sleep', '60'] }));
    await run.close();
    expect(await labelled(run.runId)).toEqual(NOTHING);
    await Promise.allSettled([network, ...containers]);
    expect(await labelled(run.runId)).toEqual(NOTHING);
    await expect(run.create('late', { Image: image.id, Cmd: ['true'] })).rejects.toThrow(/not creating container .*-late-\d+: run iolab-test-\S+ is stopping/);
    await expect(run.network({ internal: true })).rejects.toThrow(/not creating network/);
  }, 60_000);

  it('on Ctrl-C removes every container and network it started, writes the report marked incomplete, exits 130', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-docker-sigint-'));
    // In the middle of the second run: server, observer and clients are up.
    const interrupt = signalAfter(/\[1\/\d+\] starvation: blocking measure #1 .*round trips/, 1500);
    const exit = await runIolab(['run', 'starvation', '--runtime', 'docker', '--duration', '2', '--out', out], interrupt.watch);
    expect(exit.code, exit.stderr).toBe(130);
    const results = ResultsSchema.parse(JSON.parse(await readFile(join(out, 'starvation', 'latest', 'results.json'), 'utf8')));
    expect(results.complete).toBe(false);
    expect(results.incompleteReason).toMatch(/^interrupted \(SIGINT\)/);
    expect(results.runs[0].error).toBeNull();
    expect(await labelled(null)).toEqual(NOTHING);
  }, labTimeoutMs(3, 2, DOCKER_RUN_OVERHEAD_SECONDS));
});

afterAll(async () => {
  // Whatever a failed test left (its runs, whose controller is this process, or an `iolab` it
  // started): the next run of the suite starts clean. Runs of other processes on the engine stay.
  const { cleanRuns, labelledRuns } = await import('../src/runtime/clean.js');
  const { removeLabelled } = await import('../src/runtime/containers.js');
  const { thisController } = await import('../src/runtime/controller.js');
  const me = thisController();
  for (const run of await labelledRuns(docker)) {
    if (run.controller?.host === me.host && run.controller.pid === me.pid) await removeLabelled(docker, run.runId);
  }
  await cleanRuns(docker);
});
