// `iolab clean` on an engine that several controllers share, against a real Docker engine: every
// container and network a run creates names its controller (host, pid, the pid's start time), and
// clean removes only the runs whose controller is gone, leaving (and naming) those whose
// controller may be alive; `--run ID` removes one run whatever its state.
// No engine is a failure here, not a skip: .ci/run installs and starts one, and the base image.
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerSandbox } from '../src/grade/docker-sandbox.js';
import { newRunId, removeLabelled, RUN_LABEL, RunContainers } from '../src/runtime/containers.js';
import { CONTROLLER_LABELS, controllerLabels, processStartTime, thisController, type Controller } from '../src/runtime/controller.js';
import { BASE_IMAGE, engineAvailable } from '../src/runtime/docker-image.js';
import { runIolab } from './helpers.js';

const docker = new Docker();
/** Marks this file's helper containers (which carry no run label, so no clean touches them). */
const TEST_LABEL = 'iolab.test.clean';
const runIds: string[] = [];
const helpers: Docker.Container[] = [];

/** A run of a controller that `labels` name: a created (never started) container and a network. */
async function labelledRun(name: string, labels: Record<string, string>): Promise<string> {
  const runId = newRunId(`iolab-test-clean-${name}`);
  runIds.push(runId);
  const all = { [RUN_LABEL]: runId, ...labels };
  await docker.createNetwork({ Name: runId, Driver: 'bridge', Internal: true, Labels: all });
  await docker.createContainer({ name: `${runId}-server-1`, Image: BASE_IMAGE, Cmd: ['true'], Labels: all, HostConfig: { NetworkMode: runId } });
  return runId;
}

async function left(runId: string): Promise<{ containers: number; networks: number }> {
  const filters = { label: [`${RUN_LABEL}=${runId}`] };
  return { containers: (await docker.listContainers({ all: true, filters })).length, networks: (await docker.listNetworks({ filters })).length };
}

/** A process that ran on this host and has ended: its pid and the start time it had. */
async function endedProcess(): Promise<Controller> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  const started = processStartTime(child.pid!);
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  // Reaped: the pid names no process now (until the kernel hands it out again, with another start time).
  return { ...thisController(), pid: child.pid!, started };
}

beforeAll(async () => {
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new Error(`no Docker engine answers (${engine.reason}): .ci/run installs and starts one`);
  await docker.getImage(BASE_IMAGE).inspect().catch(() => {
    throw new Error(`${BASE_IMAGE} is not in the engine: .ci/run builds it (docker/bootstrap-base.sh)`);
  });
}, 60_000);

afterAll(async () => {
  for (const runId of runIds) await removeLabelled(docker, runId).catch(() => {});
  for (const container of helpers) await container.remove({ force: true }).catch(() => {});
});

describe('the controller of a run', () => {
  it('is this process: its host, pid, the start time of its pid (/proc/PID/stat field 22) and pid namespace', async () => {
    const me = thisController();
    expect(me.host).toBe(hostname());
    expect(me.pid).toBe(process.pid);
    expect(me.started).toMatch(/^\d+$/);
    expect(me.pidNamespace).toMatch(/^pid:\[\d+\]$/);
    const ended = await endedProcess();
    expect(ended.started).toMatch(/^\d+$/);
    expect(processStartTime(ended.pid)).toBeNull();
  });

  it('is named on every container and network a run creates, and on a grading\'s submission image', async () => {
    const run = new RunContainers(docker, newRunId('iolab-test-clean-labels'));
    runIds.push(run.runId);
    await run.network({ internal: true });
    const container = await run.create('idle', { Image: BASE_IMAGE, Cmd: ['true'] });
    const expected = { [RUN_LABEL]: run.runId, ...controllerLabels() };
    expect(((await container.inspect()) as { Config: { Labels: Record<string, string> } }).Config.Labels).toMatchObject({ ...expected, 'iolab.role': 'idle' });
    const [network] = await docker.listNetworks({ filters: { label: [`${RUN_LABEL}=${run.runId}`] } });
    expect(network?.Labels).toMatchObject(expected);
    expect(Object.keys(expected)).toEqual(expect.arrayContaining(Object.values(CONTROLLER_LABELS)));
    // The submission image is built with the sandbox run's labels (src/grade/docker-sandbox.ts).
    const sandbox = new DockerSandbox();
    expect(sandbox.run.labels).toMatchObject({ [RUN_LABEL]: sandbox.id, ...controllerLabels() });
    await run.close();
    expect(await left(run.runId)).toEqual({ containers: 0, networks: 0 });
  });
});

describe('iolab clean', () => {
  it('removes the runs whose controller is gone, leaves and names those whose controller may be alive; --run ID removes one', async () => {
    const ended = await endedProcess();
    const me = thisController();
    // A controller container of this engine that is not running (created, never started), and one that runs.
    const stopped = await docker.createContainer({ name: newRunId('iolab-test-clean-controller'), Image: BASE_IMAGE, Cmd: ['true'], Labels: { [TEST_LABEL]: '1' } });
    const running = await docker.createContainer({ name: newRunId('iolab-test-clean-controller'), Image: BASE_IMAGE, Cmd: ['sleep', '120'], Labels: { [TEST_LABEL]: '1' } });
    helpers.push(stopped, running);
    await running.start();
    const nameOf = async (container: Docker.Container) => ((await container.inspect()) as { Name: string }).Name.replace(/^\//, '');

    const gone = {
      ended: await labelledRun('ended', controllerLabels(ended)),
      // this very pid, but "started" at another time: the pid was reused
      reused: await labelledRun('reused', controllerLabels({ ...me, started: String(Number(me.started) + 1) })),
      older: await labelledRun('older', {}),
      stopped: await labelledRun('stopped', controllerLabels({ host: await nameOf(stopped), pid: 1, started: '1', pidNamespace: 'pid:[1]' })),
    };
    const alive = {
      mine: await labelledRun('mine', controllerLabels(me)),
      running: await labelledRun('running', controllerLabels({ host: await nameOf(running), pid: 1, started: '1', pidNamespace: 'pid:[1]' })),
      elsewhere: await labelledRun('elsewhere', controllerLabels({ host: `elsewhere-${newRunId('host')}`, pid: 4242, started: '99', pidNamespace: 'pid:[1]' })),
    };

    const clean = await runIolab(['clean']);
    expect(clean.code, clean.stderr).toBe(0);
    const lines = clean.stdout.trim().split('\n');
    const lineOf = (runId: string) => lines.find((line) => line.includes(runId)) ?? `(no line names ${runId}:\n${clean.stdout})`;
    // (or, should the kernel have given its pid to another process meanwhile: "that pid is now another process's")
    expect(lineOf(gone.ended)).toContain(`removed run ${gone.ended}: 1 container(s), 1 network(s) and 0 image(s) (its controller, pid ${ended.pid} on this host, has ended`);
    expect(lineOf(gone.reused)).toMatch(/^removed run \S+: 1 container\(s\), 1 network\(s\) and 0 image\(s\) \(its controller, pid \d+ on this host, has ended \(that pid is now another process's\)\)$/);
    expect(lineOf(gone.older)).toMatch(/^removed run \S+: .*\(it names no controller \(made by an older iolab\)\)$/);
    expect(lineOf(gone.stopped)).toMatch(/^removed run \S+: .*\(its controller ran in container \S+ of this engine, which is created\)$/);
    expect(lineOf(alive.mine)).toBe(`left run ${alive.mine}: 1 container(s), 1 network(s) and 0 image(s) (its controller, pid ${process.pid} on this host, is running)`);
    expect(lineOf(alive.running)).toMatch(/^left run \S+: .*\(its controller, pid 1 in container \S+ of this engine, may be running \(the container is\)\)$/);
    expect(lineOf(alive.elsewhere)).toMatch(/^left run \S+: .*\(its controller, pid 4242 on host elsewhere-\S+, which this engine does not know, may be alive\)$/);
    expect(lines.at(-2)).toMatch(/^removed \d+ container\(s\), \d+ network\(s\) and \d+ image\(s\) of \d+ run\(s\) whose controller is gone$/);
    expect(lines.at(-1)).toMatch(/^left \d+ container\(s\), \d+ network\(s\) and \d+ image\(s\) of \d+ run\(s\) whose controller may be alive: iolab clean --run ID removes one$/);
    for (const runId of Object.values(gone)) expect(await left(runId), runId).toEqual({ containers: 0, networks: 0 });
    for (const runId of Object.values(alive)) expect(await left(runId), runId).toEqual({ containers: 1, networks: 1 });

    const one = await runIolab(['clean', '--run', alive.mine]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toBe(`removed 1 container(s), 1 network(s) and 0 image(s) of run ${alive.mine}\n`);
    expect(await left(alive.mine)).toEqual({ containers: 0, networks: 0 });
    expect(await left(alive.elsewhere)).toEqual({ containers: 1, networks: 1 });
    const again = await runIolab(['clean', '--run', alive.mine]);
    expect(again.stdout).toBe(`nothing carries ${RUN_LABEL}=${alive.mine} on this engine: nothing removed\n`);
  }, 120_000);
});
