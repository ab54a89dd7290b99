// The grader's parts that need no Docker: exercises and rubrics, the submission kinds, the
// listener table, the fingerprint wording, the output formats, and the grade command's exit
// codes (with the local runtime's warning). Grading in containers: grade-docker.test.ts.
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LabFileError } from '../src/errors.js';
import { describeExit, judgeFingerprint } from '../src/grade/checks.js';
import { judgeModel } from '../src/grade/model-evidence.js';
import { toGradescope, toJunit } from '../src/grade/formats.js';
import { GradeReportSchema } from '../src/grade/report.js';
import { EXERCISES_DIR, loadAllExercises, parseRubric } from '../src/grade/rubric.js';
import { prepareSubmission, SubmissionError } from '../src/grade/submission.js';
import type { SyscallCount } from '../src/shared/results.js';
import { allInterfaces, parseListeningSockets, readListeners } from '../src/tracer/listeners.js';
import { GradescopeResultsSchema } from './gradescope.js';
import { runIolab as iolab, submissionDir } from './helpers.js';

const counts = (entries: [string, number, number?][]): SyscallCount[] =>
  entries.map(([syscall, calls, errors = 0]) => ({ syscall, calls, errors, errnos: errors ? { EAGAIN: errors } : ({} as Record<string, number>) }));

describe('exercises', () => {
  it('each of the eight has its task, both starters, a reference and a valid rubric', async () => {
    const exercises = await loadAllExercises();
    expect(exercises.map((e) => e.id)).toEqual([
      'blocking-echo', 'coroutine-echo', 'epoll-echo', 'nonblocking-echo', 'poll-echo', 'select-echo', 'selectors-echo', 'threaded-echo',
    ]);
    for (const exercise of exercises) {
      for (const file of ['README.md', 'starter/server.py', 'starter-ts/server.ts', 'reference/server.py']) {
        expect((await stat(join(exercise.dir, file))).size, `${exercise.id}/${file}`).toBeGreaterThan(200);
      }
      expect(exercise.maxScore).toBe(100);
      const readme = await readFile(join(exercise.dir, 'README.md'), 'utf8');
      // The README tells the student every check the rubric scores.
      for (const check of exercise.rubric.checks) expect(readme, `${exercise.id} README names ${check.check}`).toContain(`\`${check.check}\``);
    }
  });

  it('every TypeScript starter transpiles', async () => {
    for (const exercise of await loadAllExercises()) {
      const prepared = await prepareSubmission(join(exercise.dir, 'starter-ts'));
      expect(prepared.kind).toBe('typescript');
      expect(await readFile(join(prepared.dir, 'server.mjs'), 'utf8')).toContain('koffi');
      await prepared.dispose();
    }
  });

  it('a bad rubric is refused with its file, field and line', () => {
    const text = 'exercise: select-echo\ntitle: t\nmodel: kqueue\nchecks:\n  - { check: echo, points: 5 }\n  - { check: echo, points: 5 }\n  - { check: fingerprint, points: -1 }\nbudget: { threads: one, processes: one }\n';
    let error: LabFileError | null = null;
    try {
      parseRubric(text, 'labs/exercises/select-echo/rubric.yaml', 'select-echo');
    } catch (e) {
      error = e as LabFileError;
    }
    expect(error).toBeInstanceOf(LabFileError);
    expect(error!.message).toContain('labs/exercises/select-echo/rubric.yaml');
    expect(error!.message).toMatch(/model: expected a model, one of: blocking, .* \(line 3\)/);
    expect(error!.message).toMatch(/checks\[1\]\.check: expected each check once; echo is listed twice \(line 6\)/);
    expect(error!.message).toMatch(/checks\[2\]\.points: .* \(line 7\)/);
    expect(() => parseRubric('exercise: other\ntitle: t\nmodel: poll\nbudget: { threads: one, processes: one }\nchecks: [{ check: echo, points: 1 }]\n', 'x/rubric.yaml', 'poll-echo')).toThrow(
      /exercise: "other" does not match its directory \(expected "poll-echo"\)/,
    );
  });
});

describe('submissions', () => {
  it('iolab.yaml comes first, then a Dockerfile, server.py, server.ts, server.js', async () => {
    const both = await prepareSubmission(await submissionDir({ 'iolab.yaml': 'command: python3 -u main.py --fast\n', 'server.py': '' }));
    expect([both.kind, both.command]).toEqual(['command', ['sh', '-c', 'python3 -u main.py --fast']]);
    const list = await prepareSubmission(await submissionDir({ 'iolab.yaml': 'command: [python3, main.py]\n' }));
    expect(list.command).toEqual(['python3', 'main.py']);
    expect((await prepareSubmission(await submissionDir({ Dockerfile: 'FROM x', 'server.py': '' }))).kind).toBe('dockerfile');
    expect((await prepareSubmission(await submissionDir({ 'server.py': '', 'server.ts': '' }))).command).toEqual([expect.stringMatching(/(^|\/)python3$/), 'server.py']);
    expect((await prepareSubmission(await submissionDir({ 'server.js': '' }))).command).toEqual(['node', 'server.js']);
  });

  it("a student's mistake in the submission itself is named: nothing to run, bad iolab.yaml, a TypeScript syntax error", async () => {
    await expect(prepareSubmission(await submissionDir({ 'notes.txt': 'hi' }))).rejects.toThrow(/has no server.py, server.ts, server.js, server.c, Makefile, Dockerfile or iolab.yaml \(it holds notes.txt\)/);
    await expect(prepareSubmission(await submissionDir({ 'iolab.yaml': 'cmd: x\n' }))).rejects.toThrow(/iolab\.yaml: [\s\S]*command: expected the command that starts the server: a string, or a list of strings[\s\S]*unknown field\(s\) cmd/);
    const error = await prepareSubmission(await submissionDir({ 'server.ts': 'const a = 1;\nconst b = (;\n' })).catch((e) => e);
    expect(error).toBeInstanceOf(SubmissionError);
    expect(error.message).toMatch(/^server\.ts:2:\d+: Expression expected/);
  });
});

describe('the listener table', () => {
  it('reads LISTEN sockets of /proc/net/tcp and tcp6, addresses in the order people write them', () => {
    const tcp = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0',
      '   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0',
      '   2: 0100007F:1B58 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 20 4 30 10 -1',
    ].join('\n');
    expect(parseListeningSockets(tcp, 4)).toEqual([
      { address: '127.0.0.1', port: 7000, inode: 1111 },
      { address: '0.0.0.0', port: 8080, inode: 2222 },
    ]);
    const tcp6 = [
      '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 00000000000000000000000000000000:1B58 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0',
      '   1: 00000000000000000000000001000000:1B58 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0 100 0 0 10 0',
    ].join('\n');
    expect(parseListeningSockets(tcp6, 6).map((s) => s.address)).toEqual(['::', '::1']);
    expect(['0.0.0.0', '::', '127.0.0.1', '::1'].map(allInterfaces)).toEqual([true, true, false, false]);
  });

  it('finds which process of a tree listens where, from the real /proc', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const report = await readListeners([process.pid], port);
      expect(report.sockets).toContainEqual(expect.objectContaining({ address: '127.0.0.1', port, pid: process.pid }));
      // bound to the loopback only: not what a grader's client in another container can reach
      expect(report.listening).toBeNull();
      expect(report.running).toBe(true);
      expect(report.threads).toBeGreaterThan(1);
    } finally {
      server.close();
    }
  });
});

describe('fingerprint feedback', () => {
  it('names the calls that betray another model, and the model they fit', () => {
    const epollCounts = counts([['epoll_wait', 812], ['epoll_ctl', 16], ['recvfrom', 1650], ['sendto', 1640], ['accept4', 16]]);
    const judged = judgeFingerprint('select', epollCounts, false);
    expect(judged.passed).toBe(false);
    expect(judged.feedback).toContain('your server called epoll_wait 812 times; this exercise asks for select');
    expect(judged.feedback).toContain('it never called select or pselect6');
    expect(judged.feedback).toMatch(/These counts fit the models epoll, epoll-et, coroutine/);
    expect(judgeFingerprint('epoll', epollCounts, false).passed).toBe(true);
  });

  it('the non-blocking exercise needs the EAGAIN storm of its reads, not just the right calls, nor a spinning accept alone', () => {
    const paced = counts([['accept4', 10, 2], ['recvfrom', 1000, 100], ['sendto', 900]]);
    expect(judgeFingerprint('nonblocking', paced, true).feedback).toMatch(/only 10% of its 1,000 reads of a connection failed with EAGAIN/);
    const spinningAccept = counts([['accept4', 40000, 39990], ['recvfrom', 1000, 10], ['sendto', 990]]);
    expect(judgeFingerprint('nonblocking', spinningAccept, true)).toMatchObject({ passed: false, feedback: expect.stringContaining('a spinning accept alone is not that') });
    const storm = counts([['accept4', 40000, 39990], ['recvfrom', 20000, 12000], ['sendto', 8000]]);
    expect(judgeFingerprint('nonblocking', storm, true)).toMatchObject({ passed: true, feedback: expect.stringMatching(/60% of its reads failed with EAGAIN/) });
    // A C busy loop reads with read(2): the same storm.
    const cStorm = counts([['accept', 30000, 29990], ['read', 20000, 15000], ['write', 5000]]);
    expect(judgeFingerprint('nonblocking', cStorm, true)).toMatchObject({ passed: true, feedback: expect.stringMatching(/75% of its reads failed with EAGAIN/) });
  });
});

describe('the model on the whole evidence (calls by job, what readiness calls watched, threads and processes)', () => {
  const open16 = { connections: 16, threads: { before: 1, peak: 1 }, processes: { before: 1, peak: 1 } };
  const threaded = { threads: 'per-connection', processes: 'one' } as const;
  const oneThread = { threads: 'one', processes: 'one' } as const;

  it('takes read/write/accept for recvfrom/sendto/accept4: a textbook C server passes', () => {
    const cEpoll = counts([['epoll_wait', 800], ['epoll_ctl', 16], ['accept', 16], ['read', 1650, 16], ['write', 1640]]);
    expect(judgeModel('epoll', oneThread, false, { ...open16, counts: cEpoll })).toMatchObject({ passed: true, feedback: expect.stringContaining('read 1,650') });
    const cBlocking = counts([['accept', 1], ['read', 900], ['write', 899]]);
    expect(judgeModel('blocking', oneThread, false, { ...open16, counts: cBlocking }).passed).toBe(true);
    const vectored = counts([['poll', 700], ['accept4', 16], ['recvmsg', 700], ['writev', 690]]);
    expect(judgeModel('poll', oneThread, false, { ...open16, counts: vectored }).passed).toBe(true);
  });

  it("explains a poll of the listening socket alone (socketserver's serve_forever) instead of taking it for the model", () => {
    const socketserver: SyscallCount[] = [
      ...counts([['accept4', 16], ['recvfrom', 3900], ['sendto', 3890], ['clone3', 16], ['futex', 5000]]),
      { syscall: 'poll', calls: 19, errors: 0, errnos: {}, watched: { max: 1, fds: [3] } },
    ];
    const judged = judgeModel('threaded', threaded, false, { ...open16, threads: { before: 1, peak: 17 }, counts: socketserver });
    expect(judged.passed).toBe(true);
    expect(judged.feedback).toContain("Its 19 poll calls each watched a single fd (fd 3): a wait on one socket with a timeout (socketserver's serve_forever polls its listening socket between accepts");
    // A poll of every connection is a poll server's, and threaded forbids it.
    const pollAll: SyscallCount[] = [...socketserver.slice(0, 5), { syscall: 'poll', calls: 19, errors: 0, errnos: {}, watched: { max: 17, fds: [3, 4, 5] } }];
    expect(judgeModel('threaded', threaded, false, { ...open16, threads: { before: 1, peak: 17 }, counts: pollAll })).toMatchObject({
      passed: false,
      feedback: expect.stringContaining('your server called poll 19 times'),
    });
  });

  it('names a process per connection and holds every exercise to its thread and process budget', () => {
    const forking = counts([['accept4', 16], ['recvfrom', 17000], ['sendto', 17000], ['clone', 16], ['wait4', 184]]);
    const judged = judgeModel('threaded', threaded, false, { connections: 16, threads: { before: 1, peak: 17 }, processes: { before: 1, peak: 17 }, counts: forking });
    expect(judged.passed).toBe(false);
    expect(judged.feedback).toContain('it ran as 17 processes with 16 connections open');
    expect(judged.feedback).toContain('These counts fit a process per connection (fork)');
    // epoll's calls, with a thread per connection beside: not the one-thread model.
    const epollWithThreads = counts([['epoll_wait', 800], ['epoll_ctl', 16], ['accept4', 16], ['recvfrom', 1650], ['sendto', 1640], ['clone3', 16], ['futex', 300]]);
    expect(judgeModel('epoll', oneThread, false, { ...open16, threads: { before: 1, peak: 17 }, counts: epollWithThreads })).toMatchObject({
      passed: false,
      feedback: expect.stringContaining('its threads went from 1 to 17 with 16 connections open; this exercise serves every connection from one thread'),
    });
  });
});

describe('the model on the whole evidence: what a thread, a process or a one-fd wait really is', () => {
  const threaded = { threads: 'per-connection', processes: 'one' } as const;
  const oneThread = { threads: 'one', processes: 'one' } as const;
  const withThreads = (calls: [string, number, number?][], threads: Record<string, number>): SyscallCount[] =>
    counts(calls).map((c) => (threads[c.syscall] ? { ...c, threads: threads[c.syscall] } : c));

  it("a C thread per connection (pthread_create, read/write, no futex) is the threaded model: futex is a runtime's, not the model's", () => {
    const cPthread = counts([['accept', 16], ['clone3', 16], ['read', 19819], ['write', 19818]]);
    const judged = judgeModel('threaded', threaded, false, { connections: 16, threads: { before: 1, peak: 17 }, processes: { before: 1, peak: 1 }, counts: cPthread });
    expect(judged).toMatchObject({ passed: true, feedback: expect.stringContaining('a thread per connection') });
  });

  it('a pool started before any client, or pre-forked workers, break a one-thread, one-process budget', () => {
    const pool = withThreads([['accept', 8], ['read', 8049], ['write', 8048]], { read: 8, accept: 8 });
    expect(judgeModel('blocking', oneThread, false, { connections: 1, threads: { before: 9, peak: 9 }, processes: { before: 1, peak: 1 }, counts: pool })).toMatchObject({
      passed: false,
      feedback: expect.stringContaining('8 of its threads read from connections; this exercise serves every connection from one thread'),
    });
    const prefork = counts([['accept', 1], ['read', 900], ['write', 899]]);
    expect(judgeModel('blocking', oneThread, false, { connections: 1, threads: { before: 5, peak: 5 }, processes: { before: 5, peak: 5 }, counts: prefork })).toMatchObject({
      passed: false,
      feedback: expect.stringMatching(/it ran as 5 processes with 1 connection open \(5 processes before any client\); this exercise's server is one process\. These counts fit a pool of 5 processes forked before any client \(pre-forking\), each waiting in its own accept$/),
    });
  });

  it('a poll of one connection at a time (socket.settimeout) is a wait on one socket, said so, and never denied beside it', () => {
    const settimeout: SyscallCount[] = [
      ...counts([['accept4', 16], ['recvfrom', 3084], ['sendto', 3080], ['clone3', 16], ['futex', 900]]),
      { syscall: 'poll', calls: 3084, errors: 0, errnos: {}, watched: { max: 1, fds: [4, 5, 6] } },
    ];
    const judged = judgeModel('threaded', threaded, false, { connections: 16, threads: { before: 1, peak: 17 }, processes: { before: 1, peak: 1 }, counts: settimeout });
    expect(judged.passed).toBe(true);
    expect(judged.feedback).toContain('Its 3,084 poll calls each watched a single fd one at a time (fd 4, fd 5, fd 6): a wait on one socket with a timeout');
    expect(judged.feedback).toContain('none of select, pselect6 (for the others, see below)');
    // the blocking exercise, one connection: the same wait is not taken for the poll model
    const blocking: SyscallCount[] = [...counts([['accept4', 1], ['recvfrom', 900], ['sendto', 899]]), { syscall: 'poll', calls: 900, errors: 0, errnos: {}, watched: { max: 1, fds: [4] } }];
    expect(judgeModel('blocking', oneThread, false, { connections: 1, threads: { before: 1, peak: 1 }, processes: { before: 1, peak: 1 }, counts: blocking }).passed).toBe(true);
  });
});

describe('how a server ended', () => {
  it('says the signal by name and number, from a name or from a status of 128+N', () => {
    expect(describeExit(134)).toMatch(/^status 134: killed by SIGABRT \(signal 6: abort\(\)/);
    expect(describeExit(139)).toMatch(/^status 139: killed by SIGSEGV \(signal 11: segmentation fault/);
    expect(describeExit('SIGPIPE')).toMatch(/^killed by SIGPIPE \(signal 13: a write to a connection whose peer had gone\)$/);
    expect(describeExit(141)).toContain('SIGPIPE (signal 13');
    expect(describeExit(1)).toBe('status 1');
  });
});

describe('iolab grade (local runtime, and its errors)', () => {
  it('grades on the local runtime only with a loud warning, and writes every format asked for', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-grade-local-'));
    const exercise = join(EXERCISES_DIR, 'poll-echo', 'reference');
    const run = await iolab(['grade', exercise, '--exercise', 'poll-echo', '--runtime', 'local', '--checks', 'echo,fingerprint', '--format', 'junit', '--out', out]);
    expect(run.stderr).toContain('--runtime local: NOTHING IS ISOLATED');
    expect(run.code).toBe(0);
    const report = GradeReportSchema.parse(JSON.parse(await readFile(join(out, 'grade.json'), 'utf8')));
    expect(report.sandbox).toMatchObject({ runtime: 'local', isolated: false, limits: null });
    expect(report.checks.map((c) => [c.check, c.passed])).toEqual([['echo', true], ['fingerprint', true]]);
    expect(report.checks[1].feedback).toMatch(/the syscalls of poll: (poll|ppoll) [\d,]+; recvfrom [\d,]+; none of select, pselect6, epoll_wait, epoll_pwait/);
    expect([report.score, report.maxScore]).toEqual([35, 35]);
    const junit = await readFile(join(out, 'junit.xml'), 'utf8');
    expect(junit.match(/<testcase /g)).toHaveLength(2);
    expect(junit).toContain('classname="poll-echo.fingerprint"');
  });

  it('usage errors exit 2 and name what was wrong', async () => {
    const both = await iolab(['grade', '/tmp', '--batch', '/tmp', '--exercise', 'poll-echo']);
    expect([both.code, both.stderr]).toEqual([2, expect.stringContaining('grade one SUBMISSION directory, or a class with --batch DIR')]);
    const unknown = await iolab(['grade', '/tmp', '--exercise', 'kqueue-echo']);
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringMatching(/unknown exercise "kqueue-echo"; the exercises are: blocking-echo, /)]);
    const checks = await iolab(['grade', '/tmp', '--exercise', 'poll-echo', '--checks', 'select-ceiling']);
    expect([checks.code, checks.stderr]).toEqual([2, expect.stringContaining('--checks: select-ceiling not in the rubric of poll-echo')]);
  });

  it('a report that is not gradable is never a zero: no score in Gradescope, an error in JUnit', () => {
    const report = GradeReportSchema.parse({
      schemaVersion: 1,
      exercise: { id: 'poll-echo', title: 'A poll() echo server', model: 'poll' },
      submission: { path: '/s/alice', name: 'alice', description: 'Dockerfile' },
      sandbox: { runtime: 'docker', isolated: true, description: 'Docker', limits: null },
      status: 'not-gradable',
      notGradableReason: "the submission's image did not build",
      score: 0,
      maxScore: 100,
      checks: [],
      server: { listening: null, restarts: 0, output: [] },
      timeLimit: { seconds: 600, ranOut: false },
      startedAt: new Date().toISOString(),
      durationSeconds: 3,
    });
    const gradescope = GradescopeResultsSchema.parse(toGradescope(report));
    expect(gradescope).not.toHaveProperty('score');
    expect(gradescope).not.toHaveProperty('tests');
    expect(gradescope.output).toContain('NOT GRADABLE: the submission\'s image did not build');
    expect(toJunit(report)).toMatch(/<error message="not gradable">NOT GRADABLE: the submission.s image did not build/);
  });
});

