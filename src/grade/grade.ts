// Grading one submission, step by step:
//   1. prepare a copy of it (what kind of server, how to start it; TypeScript transpiled);
//   2. the sandbox readies it (in Docker: builds its image) — a failure here is not the student's:
//      the grade is "not gradable", never a zero;
//   3. start the server and wait until it listens on PORT on every interface — if it does not,
//      every check fails with the reason (never listened, 127.0.0.1 only, wrong port, exited,
//      fork bomb, endless loop);
//   4. run the rubric's checks in order, each with a wall-clock limit; a server that exits during
//      a check fails that check and is started again (at most MAX_RESTARTS times) for the next.
import { NotGradableError } from '../errors.js';
import { type CheckContext, checkTitle, exitSentence, HINTS, runCheck, type CheckVerdict } from './checks.js';
import { GRADE_SCHEMA_VERSION, type CheckResult, type GradeReport, type Hint } from './report.js';
import type { CheckKind, Exercise } from './rubric.js';
import type { GradeSandbox, SandboxedServer, ServerState } from './sandbox.js';
import { prepareSubmission, SubmissionError, type PreparedSubmission } from './submission.js';
import type { ListenerReport } from '../tracer/listeners.js';

export const LISTEN_TIMEOUT_MS = 20_000;
export const CHECK_TIMEOUT_MS = 150_000;
export const MAX_RESTARTS = 3;
/** The whole grading's default limit: the checks it ran keep their scores when it runs out. */
export const GRADE_TIME_LIMIT_SECONDS = 600;

export interface GradeOptions {
  sandbox: GradeSandbox;
  /** only these checks (the others are left out of the score). */
  only?: CheckKind[];
  /** one line per step. */
  onProgress?: (line: string) => void;
  /** aborts between checks (Ctrl-C): the grade is then "not gradable". */
  signal?: AbortSignal;
  /** the limit on the whole grading, in seconds (default GRADE_TIME_LIMIT_SECONDS). */
  timeLimitSeconds?: number;
}

class ServerGone extends Error {}

/** The student's server across the checks: started, found listening, started again after an exit. */
class ServerSession {
  private current: { server: SandboxedServer; pid: number } | null = null;
  restarts = 0;
  lastOutput: string[] = [];

  constructor(private readonly sandbox: GradeSandbox) {}

  /** Starts the server and waits for its listener; the report says where it listens, if anywhere. */
  async start(): Promise<{ report: ListenerReport; state: ServerState }> {
    const server = await this.sandbox.start();
    const report = await server.waitListening(LISTEN_TIMEOUT_MS);
    const state = await server.state();
    this.lastOutput = state.output;
    if (report.listening && state.running) this.current = { server, pid: report.listening.pid };
    else await server.stop();
    return { report, state };
  }

  /** The running server; started again when it has exited. */
  async running(): Promise<{ server: SandboxedServer; pid: number }> {
    if (this.current) {
      const state = await this.current.server.state();
      if (state.running) return this.current;
      this.lastOutput = state.output;
      await this.current.server.stop();
      this.current = null;
    }
    if (this.restarts >= MAX_RESTARTS) throw new ServerGone(`the server exited ${this.restarts + 1} times; the grader stopped starting it again`);
    this.restarts += 1;
    const { report } = await this.start();
    if (!this.current) throw new ServerGone(`started again after it exited, the server did not listen (${report.running ? 'still running' : 'it exited'})`);
    return this.current;
  }

  async stop(): Promise<void> {
    if (this.current) {
      this.lastOutput = (await this.current.server.state().catch(() => ({ output: this.lastOutput }))).output;
      await this.current.server.stop();
    }
    this.current = null;
  }
}

/** Why the server cannot be reached, from where it listens (or not) and how it ended. */
export function explainNotListening(report: ListenerReport, state: ServerState, port: number, pidsLimit: number | null): { feedback: string; hints: Hint[] } {
  const seconds = LISTEN_TIMEOUT_MS / 1000;
  if (!state.running) {
    const hints = [state.oomKilled ? HINTS.memoryLimit(state.memoryLimit ?? null) : HINTS.exitsAtStart(state.exit)];
    return { feedback: `${exitSentence(state)}, before it listened on port ${port}`, hints };
  }
  const onPort = report.sockets.filter((s) => s.port === port);
  if (onPort.length > 0) {
    const address = onPort[0].address;
    return { feedback: `your server listens on ${address}:${port}, which the grader's clients cannot reach`, hints: [HINTS.loopbackOnly(address, port)] };
  }
  if (report.sockets.length > 0) {
    const ports = [...new Set(report.sockets.map((s) => s.port))];
    return { feedback: `your server listens on port ${ports.join(', ')}, not on PORT=${port}`, hints: [HINTS.wrongPort(ports, port)] };
  }
  if (pidsLimit !== null && report.threads >= 0.9 * pidsLimit) {
    return { feedback: `your server never listened on port ${port}: its processes and threads filled the sandbox`, hints: [HINTS.processLimit(report.threads, pidsLimit)] };
  }
  // A server waiting for nothing uses no CPU; one that spins uses up to a core (less on a busy machine).
  if (report.cpuSeconds >= 0.25 * seconds) {
    return { feedback: `your server never listened on port ${port} within ${seconds} s`, hints: [HINTS.spinsBeforeListening(report.cpuSeconds, seconds)] };
  }
  return { feedback: `your server never listened on port ${port} within ${seconds} s`, hints: [HINTS.neverListens(seconds, port)] };
}

/** `promise`, or ServerGone with `message` once `ms` have passed. */
function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  // A check that lost the race may still fail later, with nobody waiting for it.
  promise.catch(() => {});
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ServerGone(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function gradeSubmission(source: string, exercise: Exercise, options: GradeOptions): Promise<GradeReport> {
  const started = Date.now();
  const { sandbox } = options;
  const progress = options.onProgress ?? (() => {});
  const specs = exercise.rubric.checks.filter((spec) => !options.only || options.only.includes(spec.check));
  const results: CheckResult[] = [];
  let submission: PreparedSubmission | null = null;
  let notGradable: string | null = null;
  let listening: GradeReport['server']['listening'] = null;
  const session = new ServerSession(sandbox);
  const limitSeconds = options.timeLimitSeconds ?? GRADE_TIME_LIMIT_SECONDS;
  const deadline = started + limitSeconds * 1000;
  let ranOut = false;

  const record = (spec: (typeof specs)[number], v: CheckVerdict) =>
    results.push({ check: spec.check, title: checkTitle(spec, exercise), points: v.passed ? spec.points : 0, maxPoints: spec.points, ...v });
  const failAll = (feedback: string, hints: Hint[]) => {
    for (const spec of specs.slice(results.length)) record(spec, { passed: false, feedback, evidence: [], hints });
  };

  try {
    let prepared = false;
    try {
      submission = await prepareSubmission(source);
      progress(`${submission.name}: ${submission.description}; preparing the ${sandbox.name} sandbox ${sandbox.id}`);
      // A C server that does not compile (on this machine, or in the image build) is the student's mistake too.
      await sandbox.prepare(submission);
      prepared = true;
    } catch (error) {
      if (!(error instanceof SubmissionError)) throw error;
      failAll(error.message, [error.mistake === 'no-server' ? HINTS.noServer() : HINTS.doesNotBuild()]);
    }
    if (submission && prepared) {
      progress(`${submission.name}: starting the server, PORT=${sandbox.port}`);
      const { report, state } = await session.start();
      if (!report.listening || !state.running) {
        const why = explainNotListening(report, state, sandbox.port, sandbox.limits?.pids ?? null);
        failAll(why.feedback, why.hints);
      } else {
        listening = { address: report.listening.address, port: report.listening.port };
        const context: CheckContext = { exercise, limits: sandbox.limits, port: sandbox.port, server: () => session.running(), syscalls: null, listening };
        for (const spec of specs) {
          if (options.signal?.aborted) throw new NotGradableError('grading was interrupted');
          const left = deadline - Date.now();
          if (left <= 0) {
            ranOut = true;
            record(spec, { passed: false, feedback: `not run: the grading's time limit of ${limitSeconds} s ran out before this check`, evidence: [], hints: [] });
            continue;
          }
          progress(`${submission.name}: ${spec.check}`);
          const cutByLimit = left < CHECK_TIMEOUT_MS;
          try {
            const message = cutByLimit
              ? `the ${spec.check} check did not finish: the grading's time limit of ${limitSeconds} s ran out during it (${(left / 1000).toFixed(1)} s were left when it began)`
              : `the ${spec.check} check did not finish within ${CHECK_TIMEOUT_MS / 1000} s`;
            record(spec, await withTimeout(runCheck(context, spec), Math.min(CHECK_TIMEOUT_MS, left), message));
          } catch (error) {
            if (!(error instanceof ServerGone)) throw error;
            ranOut ||= cutByLimit && Date.now() >= deadline;
            record(spec, { passed: false, feedback: error.message, evidence: [], hints: [] });
            // A check that ran out of time leaves a server in an unknown state: start afresh.
            await session.stop();
          }
        }
      }
    }
  } catch (error) {
    notGradable = error instanceof NotGradableError ? error.message : `the grader failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    await session.stop().catch(() => {});
    await sandbox.close().catch(() => {});
    await submission?.dispose();
  }

  const description = await sandbox.describe().catch(() => sandbox.name);
  const graded = notGradable === null;
  return {
    schemaVersion: GRADE_SCHEMA_VERSION,
    exercise: { id: exercise.id, title: exercise.rubric.title, model: exercise.rubric.model },
    submission: { path: source, name: submission?.name ?? source.split('/').filter(Boolean).pop() ?? source, description: submission?.description ?? null },
    sandbox: { runtime: sandbox.name, isolated: sandbox.limits !== null, description, limits: sandbox.limits },
    status: graded ? 'graded' : 'not-gradable',
    notGradableReason: notGradable,
    score: graded ? results.reduce((sum, r) => sum + r.points, 0) : 0,
    maxScore: specs.reduce((sum, spec) => sum + spec.points, 0),
    checks: graded ? results : [],
    server: { listening, restarts: session.restarts, output: session.lastOutput.slice(-20) },
    timeLimit: { seconds: limitSeconds, ranOut },
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 100) / 10,
  };
}
