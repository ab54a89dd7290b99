// The grader against servers in the shapes students, course notes, man pages and textbooks write
// (test/fixtures/grader-cases/, README.md there): each gets the result that README states, on
// the local sandbox (real processes, real strace, real /proc). The cases that depend on the
// container (the server not PID 1, the network's send buffers) are in grade-cases-docker.test.ts.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gradeSubmission } from '../src/grade/grade.js';
import { LocalSandbox } from '../src/grade/local-sandbox.js';
import type { CheckResult, GradeReport } from '../src/grade/report.js';
import type { GradeSandbox, SandboxedServer } from '../src/grade/sandbox.js';
import { loadExercise, type CheckKind } from '../src/grade/rubric.js';
import type { ObserveOptions } from '../src/tracer/observe.js';

const CASES = join(import.meta.dirname, 'fixtures', 'grader-cases');
/** A whole grading takes 10-30 s; strace and 1,100 connections on a busy machine, more. */
const GRADING_MS = 240_000;

async function grade(name: string, exerciseId: string, only?: CheckKind[]): Promise<GradeReport> {
  const report = await gradeSubmission(join(CASES, name), await loadExercise(exerciseId), { sandbox: new LocalSandbox(), only });
  expect(report.status, report.notGradableReason ?? '').toBe('graded');
  return report;
}

const check = (report: GradeReport, kind: CheckKind): CheckResult => report.checks.find((c) => c.check === kind)!;
const hintIds = (result: CheckResult) => result.hints.map((h) => h.id);

describe('grader cases on the local sandbox', () => {
  it("threading-tcp-server: the threaded model, its poll of the listener explained, not taken for the model", async () => {
    const report = await grade('threading-tcp-server', 'threaded-echo', ['fingerprint', 'threads-per-connection']);
    const fingerprint = check(report, 'fingerprint');
    expect(fingerprint.passed, fingerprint.feedback).toBe(true);
    expect(fingerprint.feedback).toMatch(/poll calls? each watched a single fd \(fd \d+\): a wait on one socket with a timeout \(socketserver's serve_forever polls its listening socket between accepts/);
    expect(fingerprint.feedback).not.toMatch(/fit the model poll/);
    expect(check(report, 'threads-per-connection').passed).toBe(true);
  }, GRADING_MS);

  it('forking-tcp-server: a process per connection, recognised, named and followed by the /proc probe', async () => {
    const report = await grade('forking-tcp-server', 'threaded-echo', ['fingerprint', 'threads-per-connection']);
    const fingerprint = check(report, 'fingerprint');
    expect(fingerprint.passed).toBe(false);
    expect(fingerprint.feedback).toMatch(/it ran as \d+ processes with 16 connections open .*a process per connection \(fork\)/);
    expect(fingerprint.feedback).toContain('These counts fit a process per connection (fork)');
    expect(fingerprint.feedback).not.toMatch(/fit the model poll/);
    const threads = check(report, 'threads-per-connection');
    expect(threads.passed).toBe(false);
    expect(threads.feedback).toMatch(/in \d+ processes: a process per connection \(fork\), not a thread/);
  }, GRADING_MS);

  it('c-blocking-read-write: accept, read and write are the blocking model', async () => {
    const report = await grade('c-blocking-read-write', 'blocking-echo', ['echo', 'fingerprint', 'no-busy-loop']);
    expect(report.checks.map((c) => [c.check, c.passed, c.passed ? '' : c.feedback])).toEqual([
      ['echo', true, ''],
      ['fingerprint', true, ''],
      ['no-busy-loop', true, ''],
    ]);
    expect(check(report, 'fingerprint').feedback).toMatch(/accept \d+.*read [\d,]+.*write [\d,]+/);
  }, GRADING_MS);

  it('c-pthread-per-connection: pthread_create per connection with read/write and no futex is the threaded model', async () => {
    const report = await grade('c-pthread-per-connection', 'threaded-echo', ['fingerprint', 'threads-per-connection']);
    expect(report.checks.map((c) => [c.check, c.passed, c.passed ? '' : c.feedback])).toEqual([
      ['fingerprint', true, ''],
      ['threads-per-connection', true, ''],
    ]);
  }, GRADING_MS);

  it('c-prefork-workers: every pre-forked worker is traced, and the pool breaks the one-process budget', async () => {
    const report = await grade('c-prefork-workers', 'blocking-echo', ['echo', 'fingerprint']);
    expect(check(report, 'echo').passed).toBe(true);
    const fingerprint = check(report, 'fingerprint');
    expect(fingerprint.passed).toBe(false);
    expect(fingerprint.feedback).toMatch(/^it ran as 5 processes with 1 connection open \(5 processes before any client\); this exercise's server is one process\. These counts fit a pool of 5 processes forked before any client/);
    // the worker that served was traced: its calls are counted
    expect(fingerprint.evidence[0]).toMatch(/round trips?\): read [\d,]+, write [\d,]+, accept 1/);
  }, GRADING_MS);

  it('c-epoll-read-write: the epoll man page server with read/write scores 100', async () => {
    const report = await grade('c-epoll-read-write', 'epoll-echo');
    expect(report.checks.filter((c) => !c.passed).map((c) => `${c.check}: ${c.feedback}`)).toEqual([]);
    expect(report.score).toBe(100);
  }, GRADING_MS);

  it('c-epoll-et-read-once: the large message fails with the edge-triggered read-once hint', async () => {
    const report = await grade('c-epoll-et-read-once', 'epoll-echo', ['echo', 'large-message']);
    expect(check(report, 'echo').passed).toBe(true);
    const large = check(report, 'large-message');
    expect(large.passed).toBe(false);
    // Closed by the probe at last, this server (no MSG_NOSIGNAL) may die of SIGPIPE too: then both hints.
    expect(hintIds(large)[0]).toBe('edge-triggered-read-once');
    expect(large.evidence).toContain('epoll_ctl registered connections with EPOLLET');
  }, GRADING_MS);

  it('c-select-past-fd-setsize: 90 of 100, the fd-setsize hint, and the exit said as what it was: SIGABRT', async () => {
    const report = await grade('c-select-past-fd-setsize', 'select-echo');
    expect(report.checks.filter((c) => !c.passed).map((c) => c.check)).toEqual(['select-ceiling']);
    expect(report.score).toBe(90);
    const ceiling = check(report, 'select-ceiling');
    expect(hintIds(ceiling)).toEqual(['fd-setsize']);
    expect(ceiling.feedback).toMatch(/killed by SIGABRT \(signal 6: abort\(\)/);
    expect(ceiling.feedback).not.toContain('segmentation fault');
    expect(report.server.output.join('\n')).toContain('bit out of range');
  }, GRADING_MS);

  it('select-answers-then-exits: every client counted once, the ones left when the server died said so', async () => {
    const report = await grade('select-answers-then-exits', 'select-echo', ['select-ceiling']);
    const ceiling = check(report, 'select-ceiling');
    expect(ceiling.passed).toBe(false);
    const said = ceiling.feedback.match(/([\d,]+) of ([\d,]+) clients connected; ([\d,]+) were answered; ([\d,]+) were left unanswered when the server exited/);
    expect(said, ceiling.feedback).not.toBeNull();
    const [connected, , answered, unanswered] = said!.slice(1).map((n) => Number(n.replace(/,/g, '')));
    expect(answered).toBe(1000);
    expect(answered + unanswered).toBe(connected);
    expect(ceiling.feedback).toContain('your server exited (status 1)');
    expect(`${ceiling.feedback} ${ceiling.evidence.join(' ')}`).not.toMatch(/-\d/);
  }, GRADING_MS);

  it('ipv6-only-listener: its own hint, and no check passes on zero evidence', async () => {
    const report = await grade('ipv6-only-listener', 'blocking-echo');
    expect(report.score).toBe(0);
    expect(report.checks.every((c) => !c.passed)).toBe(true);
    expect(report.checks.flatMap(hintIds)).toContain('ipv6-only');
    expect(check(report, 'no-busy-loop').feedback).toMatch(/^could not be judged: no client could connect/);
    expect(check(report, 'fingerprint').feedback).toMatch(/^could not be judged: no client could connect/);
  }, GRADING_MS);

  it('c-sigpipe: killed by SIGPIPE when clients close and reset before the reply, with the MSG_NOSIGNAL hint', async () => {
    const report = await grade('c-sigpipe', 'epoll-echo', ['disconnect']);
    const disconnect = check(report, 'disconnect');
    expect(disconnect.passed).toBe(false);
    expect(disconnect.feedback).toMatch(/closed their side \(FIN\) and at once reset \(RST\).*killed by SIGPIPE \(signal 13/);
    expect(hintIds(disconnect)).toEqual(['sigpipe']);
  }, GRADING_MS);
});

describe("the grader's own limits", () => {
  it('an observer that fails is the grader\'s failure: not gradable, never a failed check', async () => {
    // The real local sandbox and server, whose observer cannot stop: what a broken tracer does.
    const real = new LocalSandbox();
    const breakObserver = (server: SandboxedServer): SandboxedServer =>
      Object.assign(Object.create(server) as SandboxedServer, {
        observe: async (pid: number, options: ObserveOptions) => {
          const observer = await server.observe(pid, options);
          return { ...observer, stop: async () => { await observer.stop(); throw new Error('strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted'); } };
        },
      });
    const sandbox: GradeSandbox = Object.assign(Object.create(real) as GradeSandbox, {
      // `this` is the wrapper, which prepare() readied
      async start(this: LocalSandbox) {
        return breakObserver(await LocalSandbox.prototype.start.call(this));
      },
    });
    const report = await gradeSubmission(join(CASES, 'c-epoll-read-write'), await loadExercise('epoll-echo'), { sandbox, only: ['echo', 'fingerprint'] });
    expect(report.status).toBe('not-gradable');
    expect(report.notGradableReason).toContain('the observer of the server failed: strace: attach');
    expect(report.score).toBe(0);
    expect(report.checks).toEqual([]);
  }, GRADING_MS);

  it('a grading that runs out of time keeps the scores of the checks it finished, says which it did not, and shows the output', async () => {
    // echo takes a moment; this server then leaves the large message unanswered for 15 s.
    const report = await gradeSubmission(join(CASES, 'c-epoll-et-read-once'), await loadExercise('epoll-echo'), {
      sandbox: new LocalSandbox(),
      only: ['echo', 'large-message', 'binary'],
      timeLimitSeconds: 10,
    });
    expect(report.status).toBe('graded');
    expect(report.timeLimit).toEqual({ seconds: 10, ranOut: true });
    expect(report.checks.map((c) => [c.check, c.passed, c.points])).toEqual([
      ['echo', true, 10],
      ['large-message', false, 0],
      ['binary', false, 0],
    ]);
    expect(report.score).toBe(10);
    expect(check(report, 'large-message').feedback).toMatch(/^the large-message check did not finish: the grading's time limit of 10 s ran out during it \([\d.]+ s were left when it began\)$/);
    expect(check(report, 'binary').feedback).toBe("not run: the grading's time limit of 10 s ran out before this check");
    expect(report.server.output).toContain('listening on 0.0.0.0:' + report.server.listening!.port);
  }, GRADING_MS);
});

