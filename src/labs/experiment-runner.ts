// Runs an experiment lab on a runtime and returns what it measured. The steps are:
//   1. start the slow servers once for the whole lab, when the experiment waits on IO
//      (src/experiments/slow_servers.py; in Docker a container of their own, see below), and wait
//      for their ready line: `listening on HOST ports=P1,P2,... delay_ms=D pid=PID`
//   2. per repetition, per arm (interleaved: A B C, A B C, ...): run the arm's script in a fresh
//      python3 process (in Docker, a container of the lab image) to its end; read its one JSON line
//      and validate it (shared/experiments.ts, ArmOutputSchema)
//   3. after each repetition of a part of CPU-only jobs: every arm must have computed the same
//      checksum as the baseline (it did the same work), else its run does not count
//   4. stop the slow servers
// One process per run: gevent's monkey-patching changes the socket module for the rest of the
// process and cannot be undone, and no arm inherits another's warm caches or garbage. Each script
// times only its own section (the jobs), not the interpreter's start or its imports, so the
// container's start in Docker is not in the figures either.
//
// In Docker the slow servers are a container of their own, on the run's network, as K slow web
// sites would be other machines: a round trip crosses a bridge and two network namespaces, the
// scripts' connects really wait for a handshake (EINPROGRESS), and the servers' threads do not
// compete with the measured script inside one container's process tree.
//
// A failing run is recorded with its error and the lab goes on; an abort (Ctrl-C) stops it. Either
// way the results hold every run measured so far, marked incomplete. Nothing is judged here
// (src/analysis/experiments.ts).
import { basename } from 'node:path';
import { LabRunError } from '../errors.js';
import { ArmOutputSchema, armSubject, formatWallTime, type ArmDeclaration, type ArmOutput, type ExperimentRecord, type ExperimentRun, type SectionHost } from '../shared/experiments.js';
import { RESULTS_SCHEMA_VERSION, type Measurement } from '../shared/results.js';
import type { RunningProgram, Runtime } from '../runtime/runtime.js';
import { parseCpuTimes, parseLoadAverage } from '../tracer/host.js';
import type { ExperimentLab } from './experiment-schema.js';
import { planExperiment, PYTHON, SLOW_SERVERS_SCRIPT, type ExperimentPlan } from './experiments.js';
import type { RunOptions, RunProgress } from './runner.js';
import { environmentOf, labHeaderOf } from './records.js';
import { experimentRunKey, recordSoFar, resumedOf } from './journal.js';

/** How long the slow servers may take to print their ready line. */
const SLOW_SERVERS_READY_MS = 15_000;
const READY_LINE = /^listening on \S+ ports=([\d,]+) delay_ms=(\d+)/;


function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The slow servers of a lab run, started and listening. */
interface SlowServers {
  program: RunningProgram;
  /** HOST:PORT of each server, as the runtime's other programs reach it. */
  addresses: string[];
  where: string;
}

async function startSlowServers(plan: ExperimentPlan, runtime: Runtime): Promise<SlowServers | null> {
  if (!plan.slowServers) return null;
  const { servers, delayMs } = plan.slowServers;
  const program = await runtime.startProgram({
    role: 'slow-servers',
    description: `the slow servers (${servers} × ${delayMs} ms, ${SLOW_SERVERS_SCRIPT})`,
    command: [PYTHON, '-B', SLOW_SERVERS_SCRIPT, '--servers', String(servers), '--delay-ms', String(delayMs)],
    listens: true,
  });
  try {
    const line = await program.output.waitForLine('stdout', (l) => READY_LINE.test(l), "its ready line ('listening on HOST ports=...')", SLOW_SERVERS_READY_MS);
    const ports = READY_LINE.exec(line)![1].split(',');
    if (ports.length !== servers) throw new LabRunError(`the slow servers listen on ${ports.length} ports, not ${servers}: ${line}`);
    const where = runtime.name === 'docker' ? `container ${program.host}, on the run's network` : `a process on this machine (${program.host})`;
    return { program, addresses: ports.map((port) => `${program.host}:${port}`), where };
  } catch (error) {
    await program.stop();
    throw error;
  }
}

/**
 * The machine during a script's section, from the /proc/stat "cpu" lines it read before and after
 * (not namespaced: in a container they are the host's) and /proc/loadavg, as src/tracer/host.ts
 * computes it for a model lab's window. Null when the script could not read them.
 */
function sectionHost(procStat: ArmOutput['procStat']): SectionHost | null {
  try {
    const before = parseCpuTimes(procStat.before);
    const after = parseCpuTimes(procStat.after);
    const elapsed = after.total - before.total;
    const percentOfCore = (ticks: number) => (elapsed > 0 ? Math.round((ticks / elapsed) * after.cpus * 1000) / 10 : 0);
    return {
      cpus: after.cpus,
      busyPercent: percentOfCore(after.busy - before.busy),
      stealPercent: percentOfCore(after.steal - before.steal),
      loadAverage: parseLoadAverage(procStat.loadavg),
    };
  } catch {
    return null;
  }
}

/** What to tell the user when python3 cannot be started at all. */
function withHint(text: string): string {
  return /ENOENT/.test(text) && text.includes(PYTHON) ? `${text} (${PYTHON} is needed: apt-get install python3 python3-gevent python3-greenlet)` : text;
}

/** One run of one arm: its script in a fresh process, to its end. Never throws: a failure is the run's error. */
async function runArm(plan: ExperimentPlan, arm: ArmDeclaration, repetition: number, runtime: Runtime, slow: SlowServers | null): Promise<{ run: ExperimentRun; python: string | null }> {
  const run: ExperimentRun = { part: arm.part, arm: arm.arm, repetition, startedAt: new Date().toISOString(), result: null, host: null, error: null };
  let program: RunningProgram | null = null;
  try {
    program = await runtime.startProgram({
      role: 'experiment',
      description: `the ${plan.name} script ${basename(arm.script)} (${arm.arm}, ${arm.part})`,
      command: [PYTHON, '-B', arm.script, ...plan.arguments(arm, slow?.addresses ?? [])],
      listens: false,
    });
    const line = await program.output.waitForLine('stdout', (l) => l.startsWith('{'), 'its JSON line', plan.timeoutSeconds(arm) * 1000);
    const status = await program.exited;
    if (status !== 0) throw new LabRunError(`${program.output.description} printed its line but then ${program.output.ending()}`);
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (error) {
      throw new LabRunError(`${program.output.description} printed a line that is not JSON (${message(error)}): ${line.slice(0, 200)}`);
    }
    const parsed = ArmOutputSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new LabRunError(`${program.output.description} printed a line that does not fit the schema: ${issue.path.join('.') || '(the line)'}: ${issue.message}`);
    }
    const output = parsed.data;
    if (output.arm !== arm.arm || output.part !== arm.part) throw new LabRunError(`${program.output.description} measured arm ${output.arm}, part ${output.part}: not what it was asked`);
    const { procStat, experiment: _experiment, arm: _arm, part: _part, ...result } = output;
    run.result = result;
    run.host = sectionHost(procStat);
    if (slow && !slow.program.output.running) run.error = `the slow servers ended during the run: ${slow.program.output.ending()}`;
    return { run, python: output.python };
  } catch (error) {
    run.error = withHint(message(error));
    return { run, python: null };
  } finally {
    await program?.stop();
  }
}

/** CPU-only jobs must all compute what the baseline computed: a run that did other work does not count. */
function checkSameWork(plan: ExperimentPlan, runs: readonly ExperimentRun[]): void {
  const baseline = runs.find((run) => plan.arms.some((arm) => arm.baseline && arm.arm === run.arm && arm.part === run.part) && run.result?.checksum != null && !run.error);
  if (!baseline) return;
  for (const run of runs) {
    const checksum = run.result?.checksum;
    if (run === baseline || checksum === null || checksum === undefined || run.error) continue;
    if (checksum !== baseline.result!.checksum) run.error = `its jobs' checksum ${checksum} is not the baseline's (${baseline.arm}: ${baseline.result!.checksum}): it did not do the same work`;
  }
}

/** How many runs runExperimentLab makes of `lab`: every arm, every repetition. */
export function experimentRunCount(lab: ExperimentLab): number {
  return lab.repetitions * planExperiment(lab).arms.length;
}

/**
 * Runs an experiment lab (its slow servers, then every arm of every repetition) on `runtime` and
 * returns what was measured, complete or not: a failed run is recorded and the lab goes on; an
 * abort (options.signal) stops it. Options about servers and clients (durationSeconds,
 * connections, clients, tracer) do not apply and are said to be ignored through onNotice.
 * Throws only when the runtime cannot start at all (RuntimeUnavailableError from its facts).
 */
export async function runExperimentLab(loaded: { lab: ExperimentLab; file: string }, runtime: Runtime, options: RunOptions = {}): Promise<Measurement> {
  const { lab, file } = loaded;
  const plan = planExperiment(lab);
  const startedAt = new Date().toISOString();
  const facts = await runtime.facts();
  const ignored = [
    options.durationSeconds !== undefined ? '--duration' : null,
    options.connections !== undefined ? '--connections' : null,
    (options.clients ?? 1) !== 1 ? '--clients' : null,
    options.tracer === 'none' ? '--no-trace' : options.tracer !== undefined && options.tracer !== 'auto' ? '--tracer' : null,
  ].filter((flag) => flag !== null);
  if (ignored.length) options.onNotice?.(`${lab.name} is an experiment lab (Python scripts, not a server under load): ${ignored.join(', ')} ignored`);

  const record: ExperimentRecord = { name: plan.name, parameters: plan.parameters, parts: plan.parts, arms: plan.arms, slowServers: null, python: options.resume?.experiment?.python ?? null, runs: [] };
  const steps = Array.from({ length: lab.repetitions }, (_, repetition) => plan.arms.map((arm) => ({ arm, repetition }))).flat();
  let incompleteReason: string | null = null;
  let slow: SlowServers | null = null;
  const kept = new Map((options.resume?.experiment?.runs ?? []).map((run) => [experimentRunKey(run), run]));
  let reused = 0;
  try {
    // On disk before the first run: a run killed in its first is there to be resumed too.
    await recordSoFar(options.onRecorded, measurementOf, 0, steps.length);
    try {
      slow = await startSlowServers(plan, runtime);
      if (slow && plan.slowServers) record.slowServers = { where: slow.where, ...plan.slowServers };
    } catch (error) {
      incompleteReason = `the slow servers did not start: ${withHint(message(error))}`;
    }
    for (const [index, { arm, repetition }] of (incompleteReason === null ? steps : []).entries()) {
      if (options.signal?.aborted) {
        incompleteReason = `interrupted (${String(options.signal.reason ?? 'aborted')}) after ${index} of ${steps.length} runs`;
        break;
      }
      const done = kept.get(experimentRunKey({ part: arm.part, arm: arm.arm, repetition }));
      if (done) {
        record.runs.push(done);
        reused++;
        if (done.error) incompleteReason ??= `run ${index + 1} (${armSubject(record, arm)}, repetition ${repetition + 1}) failed: ${done.error}`;
        continue;
      }
      const progress: RunProgress = { lab: lab.name, step: index + 1, steps: steps.length, subject: armSubject(record, arm), phase: 'measure', repetition };
      options.onProgress?.(progress);
      const { run, python } = await runArm(plan, arm, repetition, runtime, slow);
      record.python ??= python === null ? null : `${PYTHON} ${python}`;
      record.runs.push(run);
      const lastOfPart = plan.arms.filter((a) => a.part === arm.part).at(-1) === arm;
      if (lastOfPart) checkSameWork(plan, record.runs.filter((r) => r.repetition === repetition && r.part === arm.part));
      const summary = run.result ? formatWallTime(run.result.wallSeconds) : undefined;
      options.onProgress?.({ ...progress, outcome: { error: run.error, roundTripsPerSecond: null, answered: 0, ...(summary !== undefined && { summary }) } });
      if (run.error && !options.signal?.aborted) incompleteReason ??= `run ${index + 1} (${armSubject(record, arm)}, repetition ${repetition + 1}) failed: ${run.error}`;
      const unrecorded = await recordSoFar(options.onRecorded, measurementOf, record.runs.length, steps.length);
      if (unrecorded) {
        incompleteReason = unrecorded;
        break;
      }
    }
    if (options.signal?.aborted && !incompleteReason?.startsWith('interrupted')) {
      incompleteReason = `interrupted (${String(options.signal.reason ?? 'aborted')}) during run ${record.runs.length} of ${steps.length}`;
    }
    // A run whose checksum was found wrong after it was reported.
    const wrong = record.runs.find((run) => run.error);
    if (wrong && incompleteReason === null) incompleteReason = `a run (${armSubject(record, plan.arms.find((a) => a.arm === wrong.arm && a.part === wrong.part)!)}, repetition ${wrong.repetition + 1}) failed: ${wrong.error}`;
  } finally {
    await slow?.program.stop();
  }

  return measurementOf(incompleteReason);

  /** What was measured so far, with `reason` (null: complete). */
  function measurementOf(reason: string | null): Measurement {
    const rules = [...new Set(plan.arms.flatMap((arm) => (arm.claim ? [arm.claim] : [])))].map((rule) => ({ rule, client: null }));
    return {
      schemaVersion: RESULTS_SCHEMA_VERSION,
      lab: {
        ...labHeaderOf(lab, file),
        variants: [],
        clients: [],
        sweep: null,
        verdict: rules[0] ?? null,
        ...(rules.length > 1 ? { verdicts: rules } : {}),
        durationSeconds: 0,
        repetitions: lab.repetitions,
        traceRuns: 0,
        nofile: null,
      },
      environment: environmentOf(runtime, facts, { name: null, kind: null }, 1),
      startedAt: options.resume?.startedAt ?? startedAt,
      finishedAt: new Date().toISOString(),
      complete: reason === null,
      incompleteReason: reason,
      runs: [],
      experiment: { ...record, runs: [...record.runs] },
      ...(options.settings && { settings: options.settings }),
      ...resumedOf(options.resume, reused),
    };
  }
}
