// The Docker engine restarted under a lab, for real: dockerd is stopped and started again while a
// run is under way (as `systemctl restart docker`, or an upgrade of the engine, would). The lab must
// not hang: the run in flight fails and says the engine stopped or restarted, the lab goes on once
// the engine answers again (a new reaper, the network and the observer anew), and nothing of it is
// left on the engine at its end. An engine that only looked troubled (a look at it timed out)
// keeps the run's reaper, which must not sweep the live run. No engine is a failure here, not a
// skip: .ci/run starts one.
import { execFileSync, spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/errors.js';
import { CONTROLLER_LABELS } from '../src/runtime/controller.js';
import { newRunId, RUN_LABEL, RunContainers } from '../src/runtime/containers.js';
import { engineAvailable, ensureImage } from '../src/runtime/docker-image.js';
import { runIolab } from './helpers.js';

const docker = new Docker();
/** How long dockerd may take to stop (it stops every container first) and to answer after a start. */
const ENGINE_STOP_MS = 60_000;
const ENGINE_START_MS = 90_000;

async function waitFor(what: string, ok: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function dockerdPid(): number | null {
  try {
    return Number(execFileSync('pgrep', ['-x', 'dockerd'], { encoding: 'utf8' }).trim().split('\n')[0]);
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Restarts the engine: through systemd where it manages docker, else as .ci/run started it: the
 * same command line again (from /proc/PID/cmdline), in the background, its output appended to
 * /var/log/dockerd.log. Resolves once the engine answers again.
 */
async function restartEngine(): Promise<void> {
  let systemd = false;
  try {
    systemd = execFileSync('systemctl', ['is-active', 'docker'], { encoding: 'utf8' }).trim() === 'active';
  } catch {
    // no systemd here, or it does not run docker
  }
  if (systemd) execFileSync('systemctl', ['restart', 'docker']);
  else {
    const pid = dockerdPid();
    if (pid === null) throw new Error('no dockerd process to restart (pgrep -x dockerd found none)');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    process.kill(pid, 'SIGTERM');
    await waitFor(`dockerd (pid ${pid}) to stop`, () => !alive(pid), ENGINE_STOP_MS);
    const log = openSync('/var/log/dockerd.log', 'a');
    spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log, log] }).unref();
  }
  await waitFor('the Docker engine to answer again', async () => (await engineAvailable(docker)).ok, ENGINE_START_MS);
}

beforeAll(async () => {
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new Error(`no Docker engine answers (${engine.reason}): .ci/run installs and starts one`);
}, 60_000);

afterAll(async () => {
  // Whatever happened above, the engine answers for the tests after this one.
  if (!(await engineAvailable(docker)).ok && dockerdPid() === null) await restartEngine().catch(() => {});
}, ENGINE_START_MS + 10_000);

describe('the Docker engine restarted during a lab', () => {
  it('fails the run in flight, says why, goes on once the engine answers, and leaves nothing', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-engine-restart-'));
    let restart: Promise<void> | null = null;
    // Restarted a second into the second run.
    const lab = await runIolab(['run', 'models', '--runtime', 'docker', '--models', 'epoll,select', '--repetitions', '2', '--duration', '3', '--out', out], (stderr) => {
      if (restart === null && /\[1\/4\]/.test(stderr)) restart = new Promise((resolve) => setTimeout(resolve, 1000)).then(restartEngine);
    });
    expect(restart, 'the engine was restarted during the lab').not.toBeNull();
    await restart;
    expect(lab.code, lab.stderr).toBe(ExitCode.incomplete);
    const results = JSON.parse(await readFile(join(out, 'models', 'latest', 'results.json'), 'utf8'));
    expect(results.runs).toHaveLength(4);
    const failed = results.runs.filter((run: { error: string | null }) => run.error !== null);
    expect(failed.length, 'the run in flight failed').toBeGreaterThanOrEqual(1);
    expect(failed[0].error).toMatch(/^the Docker engine stopped or restarted during this run/);
    expect(results.runs[0].error, 'the run before the restart').toBeNull();
    expect(results.runs.at(-1).error, 'the last run, after the engine came back').toBeNull();
    expect(results.incompleteReason).toMatch(/^run \d \((epoll|select), measure\) failed: the Docker engine stopped or restarted/);
    const filters = { label: [`${CONTROLLER_LABELS.pid}=${lab.pid}`, `${CONTROLLER_LABELS.host}=${hostname()}`] };
    expect((await docker.listContainers({ all: true, filters })).map((c) => c.Names[0])).toEqual([]);
    expect((await docker.listNetworks({ filters })).map((n) => n.Name)).toEqual([]);
  }, 600_000);
});

describe('an engine that only looked troubled (slow to answer, not restarted)', () => {
  it('keeps the run\'s reaper, which sweeps nothing of the live run', async () => {
    const image = await ensureImage(docker, {});
    const run = new RunContainers(docker, newRunId('iolab-slow-engine'));
    try {
      await run.guard(image.id);
      const server = await run.create('server', { Image: image.id, Cmd: ['sleep', '120'] });
      await server.start();
      // what recover() does when a look at the engine timed out: the reaper was running all along
      await run.afterEngineRestart();
      // a reaper let go sweeps at once: the server would be gone well within this
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      expect((await server.inspect()).State.Running, 'the live run\'s server').toBe(true);
      const reapers = await docker.listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${run.runId}`, 'iolab.role=reaper'] } });
      expect(reapers.map((c) => `${c.Names[0]} ${c.State}`)).toEqual([`/${run.runId}-reaper-1 running`]);
    } finally {
      await run.close();
    }
    expect(await docker.listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${run.runId}`] } })).toEqual([]);
  }, 300_000);
});
