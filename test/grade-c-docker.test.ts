// C submissions in the Docker sandbox, against a real engine (no engine is a failure, not a
// skip): server.c is compiled by a RUN step of the submission's image build (gcc from the lab
// image, no network), a compile error there is the student's, named as on the local sandbox, and
// the server runs under an init (docker-init), not as PID 1, so that a signal's default action
// kills it as anywhere else. On this machine: grade-c.test.ts.
import Docker from 'dockerode';
import { beforeAll, describe, expect, it } from 'vitest';
import { DockerSandbox, submissionDockerfile } from '../src/grade/docker-sandbox.js';
import { gradeSubmission } from '../src/grade/grade.js';
import type { GradeReport } from '../src/grade/report.js';
import { loadExercise } from '../src/grade/rubric.js';
import { copyGraderCase, submissionDir } from './helpers.js';
import { prepareSubmission, SubmissionError } from '../src/grade/submission.js';
import { RUN_LABEL } from '../src/runtime/containers.js';
import { engineAvailable, ensureImage } from '../src/runtime/docker-image.js';
import { allCalls } from '../src/shared/results.js';

const docker = new Docker();

beforeAll(async () => {
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new Error(`these tests need a Docker engine: ${engine.reason}`);
  await ensureImage(docker);
}, 900_000);

async function grade(dir: string, exerciseId: string, only: NonNullable<Parameters<typeof gradeSubmission>[2]['only']>): Promise<GradeReport> {
  return gradeSubmission(dir, await loadExercise(exerciseId), { sandbox: new DockerSandbox(), only });
}

/** What the sandbox left behind of a run: containers, networks, images. */
async function leftovers(runId: string): Promise<number[]> {
  const label = { label: [`${RUN_LABEL}=${runId}`] };
  return [(await docker.listContainers({ all: true, filters: label })).length, (await docker.listNetworks({ filters: label })).length, (await docker.listImages({ filters: label })).length];
}

/**
 * Answers its first client with a write after shutting down its own sending side: EPIPE, and
 * SIGPIPE, whose default action ends the process. As a namespace's PID 1 the kernel drops that
 * signal and the write just fails: the server then says so.
 */
const WRITES_AFTER_SHUTDOWN = `#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int ls = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(getenv("PORT"))), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 16) < 0) { perror("bind/listen"); return 1; }
    printf("listening as pid %d\\n", (int)getpid());
    fflush(stdout);
    int c = accept(ls, NULL, NULL);
    char buf[256];
    read(c, buf, sizeof buf);
    shutdown(c, SHUT_WR);
    ssize_t w = write(c, "late\\n", 5);
    printf("survived the write: %zd, errno %d\\n", w, errno);
    fflush(stdout);
    pause();
    return 0;
}
`;

/** Line 4 holds the mistake: `int x = (;` */
const SYNTAX_ERROR = '#include <stdio.h>\n\nint main(void) {\n    int x = (;\n    return x;\n}\n';

describe('a C submission in the Docker sandbox', () => {
  it('server.c is compiled by a RUN step of the image build, without a network, and passes echo', async () => {
    expect(submissionDockerfile('iolab:x', { build: ['gcc', '-o', 'server', 'server.c'] }, 'iolab-grade-x')).toBe(
      'FROM iolab:x\nLABEL iolab.run="iolab-grade-x"\nCOPY . /submission\nWORKDIR /submission\nRUN ["gcc","-o","server","server.c"]\n' +
        'RUN ["sh","-c","test -f server -a -x server || { echo \\"make finished without building ./server: the first target of the Makefile must build the server as ./server\\" >&2; exit 1; }"]\n',
    );
    const report = await grade(await copyGraderCase('c-blocking-read-write'), 'blocking-echo', ['echo', 'large-message']);
    expect(report.status, report.notGradableReason ?? '').toBe('graded');
    expect(report.submission.description).toBe('server.c (C)');
    expect(report.checks.map((c) => [c.check, c.passed, c.passed ? '' : c.feedback])).toEqual([
      ['echo', true, ''],
      ['large-message', true, ''],
    ]);
    expect(report.server.output).toContain('listening on 0.0.0.0:7000');
  }, 240_000);

  it('a compile error in the image build is the student\'s: "server.c:LINE:COL: error: ..." on every check', async () => {
    const dir = await submissionDir({ 'server.c': SYNTAX_ERROR });
    const sandbox = new DockerSandbox();
    const submission = await prepareSubmission(dir);
    const error = await sandbox.prepare(submission).then(() => null, (e: unknown) => e);
    await sandbox.close();
    await submission.dispose();
    expect(error).toBeInstanceOf(SubmissionError);
    expect((error as SubmissionError).mistake).toBe('does-not-build');
    expect((error as Error).message).toMatch(/^server\.c:4:14: error: expected expression before ';' token\n {4}4 \| {5}int x = \(;\n {6}\| {14}\^$/);
    expect(await leftovers(sandbox.id)).toEqual([0, 0, 0]);

    const report = await grade(dir, 'blocking-echo', ['echo', 'large-message']);
    expect(report.status, report.notGradableReason ?? '').toBe('graded');
    expect(report.checks.map((c) => [c.check, c.passed, c.feedback.split('\n')[0]])).toEqual([
      ['echo', false, "server.c:4:14: error: expected expression before ';' token"],
      ['large-message', false, "server.c:4:14: error: expected expression before ';' token"],
    ]);
    expect(report.score).toBe(0);
  }, 240_000);

  it('the server is not PID 1: its pid is found by its listener, and SIGPIPE kills it (status 141 = 128 + 13)', async () => {
    const sandbox = new DockerSandbox();
    const submission = await prepareSubmission(await submissionDir({ 'server.c': WRITES_AFTER_SHUTDOWN }));
    try {
      await sandbox.prepare(submission);
      const server = await sandbox.start();
      const listening = await server.waitListening(20_000);
      expect(listening.listening).toMatchObject({ address: '0.0.0.0', port: 7000 });
      // PID 1 is the init; the server is its child
      expect(listening.listening!.pid).toBeGreaterThan(1);
      expect((await server.state()).output).toEqual([`listening as pid ${listening.listening!.pid}`]);
      // the observer sidecar finds it by that pid too
      const observer = await server.observe(listening.listening!.pid, { tracer: null });
      expect(observer.baseline.threadsPeak).toBe(1);
      observer.kill();

      const outcome = await server.probe({ probe: 'echo' }).result;
      expect(outcome.ok).toBe(false);
      let state = await server.state();
      for (let waited = 0; state.running && waited < 50; waited++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        state = await server.state();
      }
      expect([state.running, state.exit, state.oomKilled]).toEqual([false, 141, false]);
      expect(state.output.some((line) => line.startsWith('survived the write'))).toBe(false);
    } finally {
      await sandbox.close();
      await submission.dispose();
    }
    expect(await leftovers(sandbox.id)).toEqual([0, 0, 0]);
  }, 240_000);

  it('a build stopped in its middle (the grading closed) leaves none of its steps\' images', async () => {
    // make sleeps before it compiles: the build is cut short while its RUN step runs
    const makefile = 'server: server.c\n\tsleep 60\n\tgcc -o server server.c\n';
    const submission = await prepareSubmission(await submissionDir({ 'server.c': SYNTAX_ERROR.replace('int x = (;', 'int x = 0;'), Makefile: makefile }));
    const sandbox = new DockerSandbox();
    const label = { label: [`${RUN_LABEL}=${sandbox.id}`] };
    const prepared = sandbox.prepare(submission).then(() => null, (e: unknown) => e);
    try {
      // the RUN step's container is made from the image of the step before: labelled with the run
      const deadline = Date.now() + 180_000;
      while ((await docker.listContainers({ filters: label })).filter((c) => c.Command.includes('make')).length === 0) {
        if (Date.now() > deadline) throw new Error('the build never reached its make step');
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const stepImages = await docker.listImages({ all: true, filters: label });
      expect(stepImages.length, 'the images of the steps before make').toBeGreaterThan(0);
    } finally {
      await sandbox.close();
      await submission.dispose();
    }
    expect(await prepared).toBeInstanceOf(Error);
    expect(await leftovers(sandbox.id)).toEqual([0, 0, 0]);
    expect(await docker.listImages({ all: true, filters: label }), 'intermediate images of the run').toEqual([]);
  }, 300_000);

  it("under the init, the sidecars still find the server: its listener, /proc, and strace -f of its calls", async () => {
    const sandbox = new DockerSandbox();
    const submission = await prepareSubmission(await copyGraderCase('c-blocking-read-write'));
    try {
      await sandbox.prepare(submission);
      const server = await sandbox.start();
      const listening = await server.waitListening(20_000);
      expect(listening.listening!.pid).toBeGreaterThan(1);
      const observer = await server.observe(listening.listening!.pid, { tracer: 'strace' });
      await observer.startWindow();
      const outcome = await server.probe({ probe: 'echo' }).result;
      const observed = await observer.stop();
      expect(outcome.ok, outcome.summary).toBe(true);
      const calls = new Map(allCalls(observed.trace!).map((c) => [c.syscall, c.calls]));
      // the echo's read() and write() on the accepted connection, as the C code makes them
      expect(calls.get('read'), JSON.stringify([...calls])).toBeGreaterThanOrEqual(1);
      expect(calls.get('write'), JSON.stringify([...calls])).toBeGreaterThanOrEqual(1);
      expect(observed.proc.threadsPeak).toBe(1);
      expect((await server.state()).running).toBe(true);
    } finally {
      await sandbox.close();
      await submission.dispose();
    }
  }, 240_000);
});
