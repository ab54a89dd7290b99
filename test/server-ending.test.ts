// How a server's end reaches what a student reads, against a real engine (no engine is a failure
// here, not a skip): a lab's server container killed by a signal in the middle of its run is said
// to be killed by that signal in the run's record, and the lab goes on; a server that allocates
// past its memory limit is said to be killed by the kernel's OOM killer at that limit, in a lab's
// record (a server of its own) and in a grading's feedback.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import { beforeAll, describe, expect, it } from 'vitest';
import { SandboxOwnServers } from '../src/grade/own-server.js';
import { GradeReportSchema } from '../src/grade/report.js';
import { resolveLab } from '../src/labs/load.js';
import { runLab } from '../src/labs/runner.js';
import { ContainerOutput, newRunId, RUN_LABEL, RunContainers } from '../src/runtime/containers.js';
import { engineAvailable, ensureImage } from '../src/runtime/docker-image.js';
import { DockerRuntime } from '../src/runtime/docker.js';
import { CLIENT_START_SIGNAL } from '../src/runtime/runtime.js';
import { labTimeoutMs, runIolab, submissionDir } from './helpers.js';

const docker = new Docker();
let image: { tag: string; id: string };

/**
 * A server that, once a client connects, allocates 64 MiB blocks (each written, so that its pages
 * are really used) until the kernel stops it. `beforeMiB`: what it holds before it listens, below
 * its limit, so that a large limit is reached soon after the client connects, even on a busy
 * machine (a page of memory takes the kernel a while to give).
 */
const memoryHog = (beforeMiB: number) => `import os, socket
blocks = [b"x" * (64 << 20) for _ in range(${beforeMiB} // 64)]
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", int(os.environ.get("PORT", "7000"))))
listener.listen(128)
conn, _ = listener.accept()
while True:
    blocks.append(b"x" * (64 << 20))
`;

beforeAll(async () => {
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new Error(`no Docker engine answers (${engine.reason}): .ci/run installs and starts one`);
  image = await ensureImage(docker, {});
}, 900_000);

/**
 * Kills (SIGKILL) the first server container of run `runId` `delayMs` after its measured window
 * starts, which is when the run's client containers are sent CLIENT_START_SIGNAL (the engine's
 * kill events say so). Resolves with the killed container's name; stop() ends the watch.
 */
async function killFirstServerInWindow(runId: string, delayMs: number): Promise<{ killed: Promise<string>; stop: () => void }> {
  const events = (await docker.getEvents({ filters: { label: [`${RUN_LABEL}=${runId}`, 'iolab.role=client'], event: ['kill'] } })) as Readable;
  const startSignal = String(constants.signals[CLIENT_START_SIGNAL]);
  const killed = new Promise<string>((resolve, reject) => {
    let started = false;
    createInterface({ input: events }).on('line', (line) => {
      const signal = (JSON.parse(line) as { Actor?: { Attributes?: { signal?: string } } }).Actor?.Attributes?.signal;
      if (started || (signal !== startSignal && signal !== CLIENT_START_SIGNAL)) return;
      started = true;
      setTimeout(async () => {
        try {
          const [server] = await docker.listContainers({ filters: { label: [`${RUN_LABEL}=${runId}`, 'iolab.role=server'], status: ['running'] } });
          if (!server) throw new Error('no server container of the run was running in its window');
          await docker.getContainer(server.Id).kill({ signal: 'SIGKILL' });
          resolve(server.Names[0].replace(/^\//, ''));
        } catch (error) {
          reject(error);
        }
      }, delayMs);
    });
  });
  killed.catch(() => {});
  return { killed, stop: () => (events as Readable & { destroy: () => void }).destroy() };
}

describe("a server's end in a run's record", () => {
  it('a server container killed by SIGKILL in its window: its run says so, the next run is fine, the lab is incomplete naming the run', async () => {
    const runtime = new DockerRuntime();
    const killer = await killFirstServerInWindow(runtime.runId, 1000);
    let measured;
    try {
      const loaded = await resolveLab('one-connection');
      measured = await runLab({ ...loaded, lab: { ...loaded.lab, models: ['epoll', 'select'], repetitions: 1, duration: 3 } }, runtime, { tracer: 'none' });
    } finally {
      killer.stop();
      await runtime.close();
    }
    expect(await killer.killed).toMatch(/-server-/);
    expect(measured.runs.map((run) => run.variant)).toEqual(['epoll', 'select']);
    const [killedRun, nextRun] = measured.runs;
    expect(killedRun.error).toMatch(/^server epoll \(model=epoll\) ended during the run: killed by SIGKILL \(exit code 137\)/);
    expect(killedRun.error).not.toContain('exited with code');
    expect(nextRun.error).toBeNull();
    expect(nextRun.clients.every((client) => client.result !== null)).toBe(true);
    expect(measured.incompleteReason).toMatch(/^run 1 \(epoll\b.*\) failed: server epoll \(model=epoll\) ended during the run: killed by SIGKILL \(exit code 137\)/);
  }, labTimeoutMs(2, 3, 30));

  it("a server of its own that allocates past its memory limit: the run says the kernel's OOM killer ended it at that limit", async () => {
    const dir = await submissionDir({});
    await mkdir(join(dir, 'hog'));
    await writeFile(join(dir, 'hog', 'server.py'), memoryHog(1024));
    await writeFile(
      join(dir, 'hog.yaml'),
      ['name: hog', 'title: A server that allocates without end', 'claim: It is killed at its memory limit.', 'models: [{ server: ./hog, label: hog }]', 'duration: 4', 'trace: false', 'clients: [{ mode: echo, connections: 1 }]', ''].join('\n'),
    );
    const runtime = new DockerRuntime();
    let measured;
    try {
      measured = await runLab(await resolveLab(join(dir, 'hog.yaml')), runtime, { ownServers: new SandboxOwnServers(), tracer: 'none' });
    } finally {
      await runtime.close();
    }
    const [run] = measured.runs;
    // A lab's server of its own runs under the sandbox's limits for labs (src/grade/own-server.ts labLimits): 2048 MiB.
    expect(run.error).toMatch(/^server hog \(a server of its own\) ended during the run: it was killed by the kernel's OOM killer: it reached its memory limit \(2 GiB\)/);
    // What failed after it (its observer, which shared its PID namespace) comes after, as "(then: ...)".
    expect(run.error!.split(' (then: ')[0]).not.toMatch(/status 137|code 137|SIGKILL/);
    expect(measured.incompleteReason).toMatch(/^run 1 \(hog\b.*\) failed: server hog .*OOM killer/);
  }, labTimeoutMs(1, 4, 60) + 180_000);
});

describe("a container's end", () => {
  it('a container removed while it runs, by someone else: "its container was removed"', async () => {
    const run = new RunContainers(docker, newRunId('iolab-test'));
    try {
      const container = await run.create('server', { Image: image.id, Cmd: ['sh', '-c', 'echo up >&2; exec sleep 60'] });
      await container.start();
      const output = new ContainerOutput('server sleep', container, docker);
      await output.waitForLine('stderr', (line) => line === 'up', 'its first line', 30_000);
      expect(output.ending()).toBeNull();
      await docker.getContainer(container.id).remove({ force: true });
      expect(await output.exited).toBe('gone');
      expect(output.ending()).toBe('its container was removed; its stderr ends: up');
    } finally {
      await run.close();
    }
  }, 60_000);
});

describe("a server's end in a grading's feedback", () => {
  it("iolab grade: a submission that allocates past the sandbox's memory limit is told the OOM killer ended it at that limit", async () => {
    const submission = await submissionDir({ 'server.py': memoryHog(0) });
    const out = join(submission, 'grades');
    const graded = await runIolab(['grade', submission, '--exercise', 'select-echo', '--checks', 'echo', '--out', out]);
    expect(graded.code, graded.stderr).toBe(0);
    const report = GradeReportSchema.parse(JSON.parse(await readFile(join(out, 'grade.json'), 'utf8')));
    expect(report.status, report.notGradableReason ?? '').toBe('graded');
    const echo = report.checks.find((check) => check.check === 'echo')!;
    expect(echo.passed).toBe(false);
    // The sandbox's default limit (src/grade/sandbox.ts DEFAULT_LIMITS): 512 MiB.
    expect(echo.feedback).toMatch(/^your server was killed by the kernel's OOM killer: it reached its memory limit \(512 MiB\)/);
    expect(echo.feedback).not.toMatch(/status 137/);
    expect(echo.hints.map((hint) => hint.id)).toEqual(['memory-limit']);
    expect(echo.hints[0].text).toContain("the sandbox's limit (512 MiB)");
    // What the student reads.
    const feedback = await readFile(join(out, 'feedback.md'), 'utf8');
    expect(feedback).toContain("Your server was killed by the kernel's OOM killer: it reached its memory limit (512 MiB)");
  }, 300_000);
});
