// Grading in containers, against a real engine (no engine is a failure here, not a skip: .ci/run
// starts one): every reference solution scores full marks; a solution of another model fails the
// fingerprint check with feedback that names the calls; broken submissions get the verdicts and
// hints a student needs; the sandbox's limits hold inside the server's container; a class batch
// writes a gradebook and Gradescope files that fit Gradescope's documented format.
import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { parse as parseCsv } from 'csv-parse/sync';
import { beforeAll, describe, expect, it } from 'vitest';
import { gradeBatch } from '../src/grade/batch.js';
import { gradeSubmission } from '../src/grade/grade.js';
import { GradeReportSchema, type GradeReport } from '../src/grade/report.js';
import { EXERCISES_DIR, loadExercise } from '../src/grade/rubric.js';
import { prepareSubmission } from '../src/grade/submission.js';
import { engineAvailable, ensureImage } from '../src/runtime/docker-image.js';
import { DockerSandbox } from '../src/grade/docker-sandbox.js';
import { RUN_LABEL } from '../src/runtime/containers.js';
import { GradescopeResultsSchema } from './gradescope.js';
import { runIolab } from './helpers.js';
import { MISTAKES, writeMistake, type Mistake } from './mistakes.js';

const docker = new Docker();
const FIXTURES = join(import.meta.dirname, 'fixtures', 'submissions');
const reference = (id: string) => join(EXERCISES_DIR, id, 'reference');

beforeAll(async () => {
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new Error(`these tests need a Docker engine: ${engine.reason}`);
  await ensureImage(docker);
}, 900_000);

async function grade(source: string, exerciseId: string, only?: Parameters<typeof gradeSubmission>[2]['only']): Promise<GradeReport> {
  return gradeSubmission(source, await loadExercise(exerciseId), { sandbox: new DockerSandbox(), only });
}

function failures(report: GradeReport): string[] {
  return report.checks.filter((c) => !c.passed).map((c) => `${c.check}: ${c.feedback}`);
}

const hintIds = (report: GradeReport) => [...new Set(report.checks.flatMap((c) => c.hints.map((h) => h.id)))];

describe('every reference solution scores full marks in the sandbox', () => {
  it.each(['blocking-echo', 'threaded-echo', 'nonblocking-echo', 'select-echo', 'poll-echo', 'epoll-echo', 'selectors-echo', 'coroutine-echo'])(
    '%s',
    async (id) => {
      const report = await grade(reference(id), id);
      expect(report.status, report.notGradableReason ?? '').toBe('graded');
      expect(failures(report)).toEqual([]);
      expect(report.score).toBe(report.maxScore);
      expect(report.sandbox).toMatchObject({ runtime: 'docker', isolated: true });
      // The fingerprint's evidence is the strace count itself.
      expect(report.checks.find((c) => c.check === 'fingerprint')!.evidence[0]).toMatch(/^strace -f while .* round trips\): \w+ [\d,]+/);
    },
    240_000,
  );
});

describe('a solution of another model fails the fingerprint check, and the feedback names the calls', () => {
  it.each([
    ['blocking-echo', 'threaded-echo', /your server called clone3? (once|[\d,]+ times)(, clone3? (once|[\d,]+ times))?; this exercise asks for blocking, which never does\. These counts fit the model threaded$/],
    ['threaded-echo', 'blocking-echo', /it never called clone, clone3 or fork, which threaded must/],
    ['nonblocking-echo', 'epoll-echo', /your server called epoll_wait [\d,]+ times; this exercise asks for nonblocking/],
    ['select-echo', 'epoll-echo', /your server called epoll_wait [\d,]+ times; this exercise asks for select, .*never called select or pselect6/],
    ['poll-echo', 'select-echo', /your server called pselect6 [\d,]+ times; this exercise asks for poll/],
    ['epoll-echo', 'poll-echo', /your server called poll [\d,]+ times; this exercise asks for epoll/],
    ['selectors-echo', 'select-echo', /your server called pselect6 [\d,]+ times; this exercise asks for epoll/],
    ['coroutine-echo', 'threaded-echo', /it never called epoll_wait, epoll_pwait or epoll_pwait2, nor epoll_ctl, which coroutine must/],
  ] as const)('%s, handed the %s reference', async (exercise, other, feedback) => {
    const report = await grade(reference(other), exercise, ['fingerprint']);
    expect(report.checks).toHaveLength(1);
    expect(report.checks[0]).toMatchObject({ check: 'fingerprint', passed: false, points: 0, feedback: expect.stringMatching(feedback) });
    expect(report.score).toBe(0);
  }, 120_000);
});

describe('the sandbox', () => {
  it('runs the server as nobody, without capabilities or a way out, under its limits; close() leaves nothing', async () => {
    const sandbox = new DockerSandbox();
    const submission = await prepareSubmission(join(FIXTURES, 'sandbox-report'));
    try {
      await sandbox.prepare(submission);
      const server = await sandbox.start();
      const listening = await server.waitListening(20_000);
      expect(listening.listening).toMatchObject({ address: '0.0.0.0', port: sandbox.port });
      const line = (await server.state()).output.find((l) => l.startsWith('sandbox: '));
      const facts = JSON.parse(line!.slice('sandbox: '.length));
      expect(facts).toMatchObject({
        uid: 65534,
        capEff: '0000000000000000',
        noNewPrivs: '1',
        writeRoot: 'Read-only file system',
        writeTmp: 'ok',
        nofile: sandbox.limits.nofile,
        pidsMax: String(sandbox.limits.pids),
        memoryMax: String(sandbox.limits.memoryMb * 1024 * 1024),
      });
      // an internal network: no route to anything outside it
      expect(facts.outbound).not.toBe('ok');
    } finally {
      await sandbox.close();
      await submission.dispose();
    }
    const left = await docker.listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${sandbox.id}`] } });
    const networks = await docker.listNetworks({ filters: { label: [`${RUN_LABEL}=${sandbox.id}`] } });
    const images = await docker.listImages({ filters: { label: [`${RUN_LABEL}=${sandbox.id}`] } });
    expect([left.length, networks.length, images.length]).toEqual([0, 0, 0]);
  }, 180_000);
});

describe('Ctrl-C', () => {
  it('stops a grading midway, removing every container, network and image it started', async () => {
    let runId: string | null = null;
    let containersAtInterrupt: unknown[] = [];
    const exit = await runIolab(['grade', reference('select-echo'), '--exercise', 'select-echo'], (stderr, kill) => {
      // the server, a probe and an observer are up
      if (runId === null && stderr.includes(': churn')) {
        runId = /preparing the docker sandbox (iolab-grade-\S+)/.exec(stderr)![1];
        void docker.listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${runId}`] } }).then((found) => {
          containersAtInterrupt = found;
          kill('SIGINT');
        });
      }
    });
    expect(runId, `grade ended before its churn check: ${exit.stderr}`).not.toBeNull();
    expect(containersAtInterrupt).not.toEqual([]);
    expect(exit.code).toBe(130);
    expect(exit.stderr).toContain('SIGINT: stopping every server, probe and container of the grading');
    const label = { label: [`${RUN_LABEL}=${runId}`] };
    expect(await docker.listContainers({ all: true, filters: label })).toEqual([]);
    expect(await docker.listNetworks({ filters: label })).toEqual([]);
    expect(await docker.listImages({ filters: label })).toEqual([]);
  }, 180_000);
});

describe('every kind of submission', () => {
  it('a TypeScript server over koffi is transpiled and graded like any other', async () => {
    const report = await grade(join(FIXTURES, 'ts-blocking'), 'blocking-echo');
    expect(report.submission.description).toBe('server.ts (TypeScript)');
    expect(failures(report)).toEqual([]);
  }, 180_000);

  it('iolab.yaml names the command; a Dockerfile builds FROM the grading image; one that does not build is not gradable', async () => {
    const yamlDir = await mkdtemp(join(tmpdir(), 'iolab-yaml-'));
    await cp(join(reference('epoll-echo'), 'server.py'), join(yamlDir, 'main.py'));
    await writeFile(join(yamlDir, 'iolab.yaml'), 'command: [python3, main.py]\n');
    const byYaml = await grade(yamlDir, 'epoll-echo', ['echo', 'fingerprint']);
    expect([byYaml.submission.description, failures(byYaml)]).toEqual(['iolab.yaml (python3 main.py)', []]);

    const imageDir = await mkdtemp(join(tmpdir(), 'iolab-dockerfile-'));
    await cp(join(reference('epoll-echo'), 'server.py'), join(imageDir, 'app.py'));
    await writeFile(join(imageDir, 'Dockerfile'), 'ARG IOLAB_IMAGE\nFROM ${IOLAB_IMAGE}\nCOPY app.py /app/app.py\nWORKDIR /app\nCMD ["python3", "app.py"]\n');
    const byImage = await grade(imageDir, 'epoll-echo', ['echo']);
    expect([byImage.status, failures(byImage)]).toEqual(['graded', []]);

    await writeFile(join(imageDir, 'Dockerfile'), 'ARG IOLAB_IMAGE\nFROM ${IOLAB_IMAGE}\nRUN exit 3\n');
    const broken = await grade(imageDir, 'epoll-echo', ['echo']);
    expect(broken).toMatchObject({ status: 'not-gradable', score: 0, checks: [] });
    expect(broken.notGradableReason).toMatch(/the submission's image did not build, at Step 3 : RUN exit 3: The command '\/bin\/sh -c exit 3' returned a non-zero code: 3/);
  }, 240_000);
});

describe('a class batch of mixed submissions', () => {
  let reports: Map<string, GradeReport>;
  let out: string;

  beforeAll(async () => {
    const classDir = await mkdtemp(join(tmpdir(), 'iolab-class-'));
    out = await mkdtemp(join(tmpdir(), 'iolab-grades-'));
    await cp(reference('epoll-echo'), join(classDir, 'alice-good'), { recursive: true });
    for (const mistake of Object.keys(MISTAKES) as Mistake[]) await writeMistake(mistake, join(classDir, mistake));
    for (const broken of ['never-listens', 'fork-bomb', 'endless-loop']) await cp(join(FIXTURES, broken), join(classDir, broken), { recursive: true });
    await mkdir(join(classDir, 'empty-handed'));
    await writeFile(join(classDir, 'empty-handed', 'notes.txt'), 'I will hand it in tomorrow\n');
    await mkdir(join(classDir, 'unbuildable'));
    await writeFile(join(classDir, 'unbuildable', 'Dockerfile'), 'ARG IOLAB_IMAGE\nFROM ${IOLAB_IMAGE}\nRUN exit 3\n');
    const exercise = await loadExercise('epoll-echo');
    const result = await gradeBatch(classDir, exercise, { grade: (dir) => gradeSubmission(dir, exercise, { sandbox: new DockerSandbox() }), jobs: 3, out, settings: { exercise: exercise.id, checks: null, timeLimitSeconds: 600, submissions: classDir, runtime: 'docker' } });
    reports = new Map(result.reports.map((r) => [r.submission.name, r]));
  }, 600_000);

  it('grades every submission, and the broken ones get the verdict and hint of their mistake', () => {
    expect([...reports.keys()].sort()).toEqual([
      'alice-good', 'busy-epoll', 'crash-on-reset', 'empty-handed', 'endless-loop', 'fork-bomb', 'loopback-only', 'never-listens', 'output-flood', 'single-read', 'unbuildable', 'wrong-port',
    ]);
    const get = (name: string) => reports.get(name)!;
    expect([get('alice-good').score, failures(get('alice-good'))]).toEqual([100, []]);
    // a server that floods its output is graded like any other, and the grader is not flooded
    expect(failures(get('output-flood'))).toEqual([]);
    // the mistakes before listening fail every check, with the reason
    for (const [name, hint, feedback] of [
      ['never-listens', 'never-listens', /never listened on port 7000 within 20 s/],
      ['loopback-only', 'loopback-only', /listens on 127\.0\.0\.1:7000, which the grader's clients cannot reach/],
      ['wrong-port', 'wrong-port', /listens on port 808\d, not on PORT=7000/],
      ['fork-bomb', 'process-limit', /its processes and threads filled the sandbox/],
      ['endless-loop', 'spins-before-listening', /never listened on port 7000 within 20 s/],
      ['empty-handed', 'no-server', /has no server\.py, server\.ts, server\.js, server\.c, Makefile, Dockerfile or iolab\.yaml/],
    ] as const) {
      const report = get(name);
      expect([name, report.status, report.score, hintIds(report)]).toEqual([name, 'graded', 0, [hint]]);
      expect(report.checks.every((c) => !c.passed && feedback.test(c.feedback)), `${name}: ${report.checks[0]?.feedback}`).toBe(true);
    }
    // the mistakes once listening cost the checks they break, and only those
    const crash = get('crash-on-reset');
    // the first round whose reset it meets: a reply to a client that closed and reset (BrokenPipeError), or a reset (ConnectionResetError)
    expect(failures(crash)).toEqual([expect.stringMatching(/^disconnect: after .*reset \(RST\).*your server exited \(status 1\); its output ends: .*(ConnectionResetError|BrokenPipeError)/)]);
    expect(hintIds(crash)).toEqual(['crash-on-reset']);
    expect(crash.server.restarts).toBeGreaterThanOrEqual(1);
    const busy = get('busy-epoll');
    expect(failures(busy)).toEqual([expect.stringMatching(/^no-busy-loop: \d+% of a core with 20 idle clients \(at most 25% expected\): a busy loop/)]);
    expect(hintIds(busy)).toEqual(['busy-loop']);
    const single = get('single-read');
    const largeMessage = single.checks.find((c) => c.check === 'large-message')!;
    expect(largeMessage).toMatchObject({
      passed: false,
      // closing with bytes still unread sends RST; a FIN when the rest had not yet arrived: the kernel decides which
      feedback: expect.stringMatching(/^sent 65,536 bytes and got 4,096 of them back, then the server (closed|reset) the connection$/),
      hints: [expect.objectContaining({ id: 'single-read', text: expect.stringContaining('your server answered 4,096 of 65,536 bytes and closed the connection') })],
    });
    expect(largeMessage.hints[0].text.includes('RST'), 'the hint explains a reset when there was one').toBe(largeMessage.feedback.endsWith('reset the connection'));
    expect(get('unbuildable')).toMatchObject({ status: 'not-gradable', notGradableReason: expect.stringContaining('did not build') });
  });

  it('writes a gradebook row per student and feedback files that fit their formats', async () => {
    const csv = parseCsv(await readFile(join(out, 'gradebook.csv'), 'utf8')) as string[][];
    expect(csv[0]).toEqual(['student', 'status', 'score', 'max_score', 'echo', 'large-message', 'binary', 'concurrent', 'disconnect', 'churn', 'fingerprint', 'no-busy-loop', 'hints', 'not_gradable_reason']);
    expect(csv).toHaveLength(13);
    const row = (name: string) => csv.find((r) => r[0] === name)!;
    expect(row('alice-good').slice(1, 12)).toEqual(['graded', '100', '100', '10', '10', '5', '15', '15', '10', '25', '10']);
    expect(row('busy-epoll').slice(2, 4).concat(row('busy-epoll')[11], row('busy-epoll')[12])).toEqual(['90', '100', '0', 'busy-loop']);
    expect(row('unbuildable').slice(1, 4)).toEqual(['not-gradable', '', '100']);

    for (const name of reports.keys()) {
      const gradescope = GradescopeResultsSchema.parse(JSON.parse(await readFile(join(out, name, 'results.json'), 'utf8')));
      const report = GradeReportSchema.parse(JSON.parse(await readFile(join(out, name, 'grade.json'), 'utf8')));
      if (report.status === 'graded') {
        expect(gradescope.score).toBe(report.score);
        expect(gradescope.tests!.map((t) => [t.score, t.max_score, t.status])).toEqual(report.checks.map((c) => [c.points, c.maxPoints, c.passed ? 'passed' : 'failed']));
      } else {
        expect(gradescope.score).toBeUndefined();
      }
      expect(await readFile(join(out, name, 'feedback.md'), 'utf8')).toContain(`# ${report.exercise.title}: ${name}`);
      expect((await readFile(join(out, name, 'junit.xml'), 'utf8')).startsWith('<?xml')).toBe(true);
    }
  });
});

