// A class batch and a lab on a real Docker swarm of one node (initialised on 127.0.0.1 here unless
// the engine is in a swarm already, and left at the end): the swarm's gradebook equals the one
// machine's for the same submissions; a grading whose job is killed is graded again, not lost;
// the lab image is carried to a node by save and load; a lab runs with its clients placed as swarm
// jobs and records where; nothing of a run is left behind.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gradeBatch } from '../src/grade/batch.js';
import { DockerSandbox } from '../src/grade/docker-sandbox.js';
import { gradeSubmission } from '../src/grade/grade.js';
import { EXERCISES_DIR, loadExercise } from '../src/grade/rubric.js';
import { RUN_LABEL, PARENT_LABEL, RunContainers, newRunId } from '../src/runtime/containers.js';
import { buildImage, engineAvailable, ensureImage } from '../src/runtime/docker-image.js';
import { ResultsSchema } from '../src/shared/results.js';
import { SwarmGrading } from '../src/swarm/grading.js';
import { SwarmJob } from '../src/swarm/job.js';
import { ExitCode } from '../src/errors.js';
import { runIolab } from './helpers.js';
import { writeMistake } from './mistakes.js';

const docker = new Docker();
const FIXTURES = join(import.meta.dirname, 'fixtures', 'submissions');
/** whether this file made the engine a swarm manager, and so leaves the swarm at the end. */
let initialised = false;

beforeAll(async () => {
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new Error(`these tests need a Docker engine: ${engine.reason}`);
  const info = (await docker.info()) as { Swarm: { LocalNodeState: string } };
  if (info.Swarm.LocalNodeState !== 'active') {
    await docker.swarmInit({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' });
    initialised = true;
  }
  await ensureImage(docker);
}, 900_000);

afterAll(async () => {
  if (initialised) await docker.swarmLeave({ force: true });
}, 120_000);

/** What a swarm run may leave: its services, configs and networks, and what its gradings started on the node. */
async function leftovers(runPrefix: string): Promise<string[]> {
  const mine = (labels: Record<string, string> | undefined) => labels?.[RUN_LABEL]?.startsWith(runPrefix) || labels?.[PARENT_LABEL] !== undefined;
  const services = ((await docker.listServices()) as Array<{ Spec: { Name: string; Labels?: Record<string, string> } }>).filter((s) => mine(s.Spec.Labels)).map((s) => `service ${s.Spec.Name}`);
  const configs = ((await docker.listConfigs()) as Array<{ Spec: { Name: string; Labels?: Record<string, string> } }>).filter((c) => mine(c.Spec.Labels)).map((c) => `config ${c.Spec.Name}`);
  const networks = (await docker.listNetworks()).filter((n) => mine(n.Labels)).map((n) => `network ${n.Name}`);
  const containers = (await docker.listContainers({ all: true })).filter((c) => mine(c.Labels) && !c.Labels['com.docker.swarm.task.id']).map((c) => `container ${c.Names[0]}`);
  const images = (await docker.listImages()).filter((i) => mine(i.Labels ?? undefined)).map((i) => `image ${i.RepoTags?.[0] ?? i.Id}`);
  return [...services, ...configs, ...networks, ...containers, ...images];
}

describe('--on swarm on the command line', () => {
  it('says what is wrong with the options it is given', async () => {
    const one = await runIolab(['grade', join(EXERCISES_DIR, 'epoll-echo', 'reference'), '--exercise', 'epoll-echo', '--on', 'swarm']);
    expect([one.code, one.stderr]).toEqual([ExitCode.usage, 'iolab: --on swarm grades a class: give --batch DIR\n']);
    const perNode = await runIolab(['grade', '--batch', FIXTURES, '--exercise', 'epoll-echo', '--jobs-per-node', '2']);
    expect([perNode.code, perNode.stderr]).toEqual([ExitCode.usage, 'iolab: --jobs-per-node is for --on swarm (on one machine: --jobs)\n']);
    const half = await runIolab(['grade', '--batch', FIXTURES, '--exercise', 'epoll-echo', '--on', 'swarm', '--jobs-per-node', '0.5']);
    expect([half.code, half.stderr]).toEqual([ExitCode.usage, 'iolab: --jobs-per-node must be a whole number of at least 1, got 0.5\n']);
    const local = await runIolab(['run', 'models', '--on', 'swarm', '--runtime', 'local']);
    expect([local.code, local.stderr]).toEqual([ExitCode.usage, "iolab: --on swarm runs the lab in Docker on the swarm's nodes: not with --runtime local\n"]);
  });
});

describe('a class batch on the swarm', () => {
  let classDir: string;

  beforeAll(async () => {
    classDir = await mkdtemp(join(tmpdir(), 'iolab-swarm-class-'));
    await cp(join(EXERCISES_DIR, 'epoll-echo', 'reference'), join(classDir, 'alice-good'), { recursive: true });
    await writeMistake('wrong-port', join(classDir, 'wrong-port'));
    await cp(join(FIXTURES, 'never-listens'), join(classDir, 'never-listens'), { recursive: true });
    await mkdir(join(classDir, 'unbuildable'));
    await writeFile(join(classDir, 'unbuildable', 'Dockerfile'), 'ARG IOLAB_IMAGE\nFROM ${IOLAB_IMAGE}\nRUN exit 3\n');
  });

  it('writes the same gradebook as a batch on this machine, and leaves nothing behind', async () => {
    const exercise = await loadExercise('epoll-echo');
    const localOut = await mkdtemp(join(tmpdir(), 'iolab-grades-local-'));
    await gradeBatch(classDir, exercise, { grade: (dir) => gradeSubmission(dir, exercise, { sandbox: new DockerSandbox() }), jobs: 2, out: localOut, settings: { exercise: exercise.id, checks: null, timeLimitSeconds: 600, submissions: classDir, runtime: 'docker' } });
    const swarmOut = await mkdtemp(join(tmpdir(), 'iolab-grades-swarm-'));
    const { code, stderr } = await runIolab(['grade', '--batch', classDir, '--exercise', 'epoll-echo', '--on', 'swarm', '--out', swarmOut]);
    // the unbuildable submission is not gradable
    expect(code, stderr).toBe(ExitCode.notGradable);
    const local = await readFile(join(localOut, 'gradebook.csv'), 'utf8');
    const swarm = await readFile(join(swarmOut, 'gradebook.csv'), 'utf8');
    expect(swarm).toBe(local);
    expect(swarm).toMatch(/^alice-good,graded,100,100,/m);
    // progress per node, and the node in each student's report
    expect(stderr).toMatch(/alice-good -> node \S+ \(\d of \d slots busy\)/);
    expect(stderr).toMatch(/node \S+: 4 submission\(s\) graded or found not gradable, 0 grading\(s\) lost, median [\d.]+ s per grading/);
    const alice = JSON.parse(await readFile(join(swarmOut, 'alice-good', 'grade.json'), 'utf8'));
    expect(alice.sandbox.description).toMatch(/; swarm node \S+$/);
    expect(alice.submission.path).toBe(join(classDir, 'alice-good'));
    expect(await leftovers('iolab-swarm-')).toEqual([]);
  }, 900_000);

  it('finds a submission that cannot be sent not gradable, with the reason, and grades the rest', async () => {
    const exercise = await loadExercise('epoll-echo');
    const odd = await mkdtemp(join(tmpdir(), 'iolab-swarm-odd-'));
    const fifo = join(odd, 'with-a-fifo');
    await cp(join(EXERCISES_DIR, 'epoll-echo', 'reference'), fifo, { recursive: true });
    execFileSync('mkfifo', [join(fifo, 'log.pipe')]);
    const big = join(odd, 'too-big');
    await cp(join(EXERCISES_DIR, 'epoll-echo', 'reference'), big, { recursive: true });
    // random bytes do not compress: 8 MB stay 8 MB
    await writeFile(join(big, 'data.bin'), randomBytes(8 * 1024 * 1024));
    await cp(join(EXERCISES_DIR, 'epoll-echo', 'reference'), join(odd, 'zoe-good'), { recursive: true });
    const out = await mkdtemp(join(tmpdir(), 'iolab-grades-odd-'));
    const grading = new SwarmGrading({ exercise, timeLimitSeconds: 300 });
    try {
      const jobs = await grading.prepare();
      const result = await gradeBatch(odd, exercise, { grade: (dir) => grading.grade(dir), jobs, out, settings: { exercise: exercise.id, checks: null, timeLimitSeconds: 300, submissions: odd, runtime: 'docker' } });
      const byName = new Map(result.reports.map((r) => [r.submission.name, r]));
      expect(byName.get('with-a-fifo')).toMatchObject({ status: 'not-gradable', notGradableReason: expect.stringMatching(/cannot be sent to a node: .*log\.pipe/) });
      expect(byName.get('too-big')).toMatchObject({ status: 'not-gradable', notGradableReason: expect.stringMatching(/is \d+ KB compressed; a swarm grading takes at most 7680 KB/) });
      expect(byName.get('zoe-good')).toMatchObject({ status: 'graded', score: 100 });
      expect(await readFile(join(out, 'gradebook.csv'), 'utf8')).toMatch(/^too-big,not-gradable,/m);
      // neither was sent to a node, nor counted as lost
      expect(grading.summary()[0]).toMatch(/: 1 submission\(s\) graded or found not gradable, 0 grading\(s\) lost/);
    } finally {
      await grading.close();
    }
    expect(await leftovers(grading.runId)).toEqual([]);
  }, 900_000);

  it('stops on Ctrl-C: no grading is queued again, and nothing is left behind', async () => {
    let interrupted = false;
    const { code, stderr } = await runIolab(['grade', '--batch', classDir, '--exercise', 'epoll-echo', '--on', 'swarm', '--out', await mkdtemp(join(tmpdir(), 'iolab-grades-int-'))], (text, kill) => {
      if (!interrupted && /-> node .*\n[\s\S]*-> node /.test(text)) {
        interrupted = true;
        // the jobs have started: stop while they run
        setTimeout(() => kill('SIGINT'), 3000);
      }
    });
    expect(interrupted).toBe(true);
    expect(code, stderr).toBe(ExitCode.interrupted);
    const after = stderr.slice(stderr.indexOf('SIGINT'));
    // no grading lost and queued again, none placed; the per-node summary says 0 lost
    expect(after).not.toMatch(/: lost \(|queued again|-> node/);
    expect(after).not.toMatch(/[1-9]\d* grading\(s\) lost/);
    expect(await leftovers('iolab-swarm-')).toEqual([]);
  }, 900_000);

  it('grades again a submission whose grading job was killed, and says so', async () => {
    const exercise = await loadExercise('epoll-echo');
    const lines: string[] = [];
    const grading = new SwarmGrading({ exercise, timeLimitSeconds: 300, onProgress: (line) => lines.push(line) });
    try {
      await grading.prepare();
      // kill the first grading's job container as soon as it runs: its report never comes
      let killed = '';
      const killer = (async () => {
        for (let i = 0; i < 600 && !killed; i++) {
          const [job] = await docker.listContainers({ filters: { label: [`${RUN_LABEL}=${grading.runId}`, 'iolab.student=alice-good'], status: ['running'] } });
          if (job) {
            await docker.getContainer(job.Id).kill();
            killed = job.Names[0];
          } else await new Promise((resolve) => setTimeout(resolve, 250));
        }
      })();
      const report = await grading.grade(join(classDir, 'alice-good'));
      await killer;
      expect(killed).not.toBe('');
      expect([report.status, report.score]).toEqual(['graded', 100]);
      expect(lines.join('\n')).toMatch(/alice-good: lost \(its job on node \S+ ended without a report, failed \(exit 137\).*\); queued again/);
      expect(lines.join('\n')).toMatch(/alice-good \(attempt 2\) -> node /);
      expect(grading.summary()[0]).toMatch(/1 submission\(s\) graded or found not gradable, 1 grading\(s\) lost/);
    } finally {
      await grading.close();
    }
    expect(await leftovers(grading.runId)).toEqual([]);
  }, 900_000);
});

describe('the lab image on the nodes', () => {
  it('is carried to a node that lacks it by save and load, through the overlay network', async () => {
    // a small image of its own, so that removing it takes nothing from the other tests
    const context = await mkdtemp(join(tmpdir(), 'iolab-swarm-image-'));
    await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
    await writeFile(join(context, 'hello.txt'), `carried ${Date.now()}\n`);
    const run = new RunContainers(docker, newRunId('iolab-swarm-image'));
    const tag = `iolab-swarm-image-test:${run.runId}`;
    const built = await buildImage(docker, { context, files: ['Dockerfile', 'hello.txt'], tag, dockerfile: 'Dockerfile', labels: run.labels });
    expect(built.ok).toBe(true);
    const id = ((await docker.getImage(tag).inspect()) as { Id: string }).Id;
    const lab = await ensureImage(docker);
    try {
      const network = await run.network({ internal: true, overlay: true });
      const { container, output } = await run.start('image-source', { Image: lab.id, Cmd: ['iolab', 'swarm-image', 'serve', '--image', tag], HostConfig: { NetworkMode: network, Binds: ['/var/run/docker.sock:/var/run/docker.sock'] } }, 'the image source');
      await output.waitForLine('stderr', (line) => line.startsWith('serving '), 'its serving line', 60_000);
      // the node no longer has it
      await docker.getImage(tag).remove({ force: true });
      const host = ((await container.inspect()) as { Name: string }).Name.slice(1);
      const job = await SwarmJob.start(docker, {
        name: `${run.runId}-load`,
        image: lab.tag,
        command: ['iolab', 'swarm-image', 'load', '--from', `http://${host}:7100/`, '--image', tag, '--id', id],
        everyNode: true,
        labels: run.labels,
        dockerSocket: true,
        networks: [network],
      });
      const [task] = await job.ended(300_000);
      const { stdout, stderr } = await job.logs();
      await job.remove();
      expect(task.state, stderr.join('\n')).toBe('complete');
      const report = JSON.parse(stdout.find((line) => line.startsWith('{'))!);
      expect(report).toMatchObject({ outcome: 'loaded', bytes: expect.any(Number) });
      expect(report.bytes).toBeGreaterThan(0);
      expect(((await docker.getImage(tag).inspect()) as { Id: string }).Id).toBe(id);
    } finally {
      await docker.getImage(tag).remove({ force: true }).catch(() => {});
      await run.close();
    }
  }, 600_000);
});

describe('a lab on the swarm', () => {
  it('runs its clients as swarm jobs, records which node ran what, and leaves nothing behind', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-swarm-reports-'));
    const { code, stderr } = await runIolab(['run', 'models', '--on', 'swarm', '--clients', '2', '--models', 'epoll,select', '--repetitions', '1', '--duration', '1', '--out', out]);
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/swarm: 1 node\(s\); servers on \S+, clients on \S+ too \(no other node\)/);
    const results = ResultsSchema.parse(JSON.parse(await readFile(join(out, 'models', 'latest', 'results.json'), 'utf8')));
    expect(results.complete).toBe(true);
    const node = results.environment.swarm!.nodes[0].hostname;
    const placed = Object.fromEntries(results.environment.swarm!.placement.map((p) => [p.role, p]));
    // every run's server on this node; every client container (a record each, 2 per client of the lab) a job
    const clientContainers = results.runs.reduce((sum, run) => sum + run.clients.length, 0);
    expect(clientContainers).toBe(results.runs.length * 2 * results.lab.clients.length);
    expect(placed.server).toEqual({ role: 'server', node, containers: results.runs.length });
    expect(placed.client).toEqual({ role: 'client', node, containers: clientContainers });
    for (const run of results.runs) expect(run.clients.every((c) => c.result !== null)).toBe(true);
    const report = await readFile(join(out, 'models', 'latest', 'report.md'), 'utf8');
    expect(report).toMatch(new RegExp(`\\| swarm +\\| 1 node: ${node} \\(manager, \\d+ CPUs\\); server containers on ${node} \\(${results.runs.length}\\); client containers on ${node} \\(${clientContainers}\\); one node, so the clients shared the server's node`));
    expect(await leftovers('iolab-')).toEqual([]);
  }, 900_000);
});
