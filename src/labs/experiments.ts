// The course's two experiments that are not a server under load, as iolab runs them: which parts
// each has, which arms each part runs (each a Python script of src/experiments/, in the course's
// style), what the course claims of each arm, and the command line of one run. What a lab file
// chooses is only the parameters (src/labs/experiment-schema.ts); what is measured and how it is
// judged follows from the declarations below, which results.json keeps (shared/experiments.ts).
import type { ArmDeclaration, ExperimentName, PartDeclaration } from '../shared/experiments.js';
import type { ExperimentLab } from './experiment-schema.js';
import { pythonInterpreter } from '../servers/index.js';

/**
 * Debian's python3 (3.11, with python3-gevent and python3-greenlet), the same path on this machine
 * and in the lab image (docker/Dockerfile): not a python3 earlier on PATH (a virtualenv) that may
 * lack gevent. The runner starts it with -B: no __pycache__ written into src/experiments/ (which
 * the lab image's tag hashes).
 */
export const PYTHON = pythonInterpreter();
/** The slow servers every experiment that waits on IO fetches from. */
export const SLOW_SERVERS_SCRIPT = 'src/experiments/slow_servers.py';

/** An experiment with the lab's parameters filled in: everything the runner needs to run it. */
export interface ExperimentPlan {
  name: ExperimentName;
  parameters: Record<string, number>;
  parts: PartDeclaration[];
  /** in the order one repetition runs them. */
  arms: ArmDeclaration[];
  /** the slow servers to start once for the whole lab: how many, and each one's delay; null: none. */
  slowServers: { servers: number; delayMs: number } | null;
  /** the arguments of one run of an arm's script, given the slow servers' HOST:PORT addresses. */
  arguments(arm: ArmDeclaration, servers: readonly string[]): string[];
  /**
   * the longest one run of an arm may take, seconds: its waits (known) or, for CPU-only jobs, 10 µs
   * per step (gevent, the slowest, takes about 2 µs per step and switch here), with a minute of
   * slack for a busy machine and the interpreter's start.
   */
  timeoutSeconds(arm: ArmDeclaration): number;
}

const SLACK_SECONDS = 60;
const CPU_SECONDS_PER_STEP = 10e-6;

const ms = (n: number) => `${n} ms`;

function concurrentClient(lab: Extract<ExperimentLab, { experiment: 'concurrent-client' }>): ExperimentPlan {
  const { servers, delayMs } = lab.parameters;
  const script = 'src/experiments/concurrent_client.py';
  return {
    name: 'concurrent-client',
    parameters: { servers, delayMs },
    parts: [
      {
        part: 'fetch',
        title: `fetching from ${servers} slow servers`,
        description: `one round trip (connect, an HTTP/1.0 request, the reply until the server closes) to each of K = ${servers} slow servers, each answering D = ${delayMs} ms after the request arrives`,
        sumOfWaitsSeconds: (servers * delayMs) / 1000,
        longestChainSeconds: delayMs / 1000,
        sumOfWaitsIs: `K × D = ${servers} × ${ms(delayMs)}`,
        longestChainIs: 'D',
      },
    ],
    arms: [
      {
        part: 'fetch',
        arm: 'serial',
        label: 'one server at a time',
        how: 'blocking connect, send and recv, one server after the other: the thread sleeps through each server\'s delay before it asks the next',
        script,
        baseline: true,
        claim: 'sum-of-waits',
      },
      {
        part: 'fetch',
        arm: 'select',
        label: 'all at once (non-blocking connect + select)',
        how: 'every socket non-blocking: connect returns EINPROGRESS at once, select says which handshake is over (then the request goes out) and which reply is there (then recv copies it without waiting)',
        script,
        baseline: false,
        claim: 'longest-wait',
      },
    ],
    slowServers: { servers, delayMs },
    arguments: (arm, addresses) => ['--mode', arm.arm, '--servers', addresses.join(',')],
    timeoutSeconds: () => (servers * delayMs) / 1000 + SLACK_SECONDS,
  };
}

function switching(lab: Extract<ExperimentLab, { experiment: 'switching' }>): ExperimentPlan {
  const { jobs, steps, waits, waitMs } = lab.parameters;
  const script = (arm: string) => `src/experiments/switching_${arm}.py`;
  const cpu = (arm: string, label: string, how: string): ArmDeclaration => ({
    part: 'cpu',
    arm,
    label,
    how,
    script: script(arm),
    baseline: arm === 'serial',
    claim: arm === 'serial' ? null : 'adds-time',
  });
  const io = (arm: string, label: string, how: string): ArmDeclaration => ({
    part: 'io',
    arm,
    label,
    how,
    script: script(arm),
    baseline: arm === 'serial',
    claim: arm === 'gevent' ? 'longest-wait' : 'sum-of-waits',
  });
  return {
    name: 'switching',
    parameters: { jobs, steps, waits, waitMs },
    parts: [
      {
        part: 'cpu',
        title: 'CPU-only jobs',
        description: `${jobs} jobs of ${steps.toLocaleString('en-US')} steps of arithmetic each and no IO; every arm but serial switches to another job after every step`,
        sumOfWaitsSeconds: null,
        longestChainSeconds: null,
        sumOfWaitsIs: null,
        longestChainIs: null,
      },
      {
        part: 'io',
        title: 'jobs that wait on IO',
        description: `${jobs} jobs, each making ${waits} round trips one after the other to a slow server that answers W = ${waitMs} ms after each request`,
        sumOfWaitsSeconds: (jobs * waits * waitMs) / 1000,
        longestChainSeconds: (waits * waitMs) / 1000,
        sumOfWaitsIs: `jobs × waits × W = ${jobs} × ${waits} × ${ms(waitMs)}`,
        longestChainIs: `waits × W = ${waits} × ${ms(waitMs)}`,
      },
    ],
    arms: [
      cpu('serial', 'serial', 'each job runs all its steps, then the next one starts: no switch at all'),
      cpu('generators', 'generators (yield)', 'each job is a generator that yields after every step; a round-robin scheduler resumes the next one with next()'),
      cpu('greenlets', 'greenlets (greenlet.switch)', 'each job runs in a greenlet and, after every step, switches to its parent, the scheduler, which switches to the next job'),
      cpu('gevent', 'gevent (spawn + joinall)', 'gevent.spawn starts each job in a greenlet and gevent.joinall waits for them; each job gives way after every step with gevent.sleep(0), a switch to the hub'),
      io('serial', 'serial', 'each job makes its round trips with blocking calls, then the next job starts'),
      io('generators', 'generators (yield)', 'each job yields after every round trip; but the round trip is a blocking recv that the scheduler knows nothing about'),
      io('greenlets', 'greenlets (greenlet.switch)', 'each job switches to the scheduler after every round trip; but the round trip is the plain blocking socket code'),
      io('gevent', 'gevent (spawn + joinall)', 'the same straight-line round trips, with monkey-patched sockets: a recv that would block switches to the hub, which runs the other jobs'),
    ],
    slowServers: { servers: 1, delayMs: waitMs },
    arguments: (arm, addresses) =>
      arm.part === 'cpu'
        ? ['--part', 'cpu', '--jobs', String(jobs), '--steps', String(steps)]
        : ['--part', 'io', '--jobs', String(jobs), '--waits', String(waits), '--server', addresses[0]],
    timeoutSeconds: (arm) => (arm.part === 'cpu' ? jobs * steps * CPU_SECONDS_PER_STEP : (jobs * waits * waitMs) / 1000) + SLACK_SECONDS,
  };
}

/** The plan of an experiment lab: its parts, its arms with their claims, its slow servers, its command lines. */
export function planExperiment(lab: ExperimentLab): ExperimentPlan {
  switch (lab.experiment) {
    case 'concurrent-client':
      return concurrentClient(lab);
    case 'switching':
      return switching(lab);
  }
}
