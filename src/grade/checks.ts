// The rubric's checks: each drives the server through the sandbox (probes, observers, strace) and
// judges what it saw, in the course's terms and with the numbers behind the verdict. The model
// fingerprints are the ones the lab servers declare (src/servers/MODEL.ts): a student's select
// server must show what iolab's own select server shows.
import { formatCount, formatShare, joinWords } from '../shared/format.js';
import { checkFingerprint } from '../shared/model.js';
import { allCalls, type SyscallCount } from '../shared/results.js';
import { findModel, models } from '../servers/index.js';
import type { ServerModel } from '../servers/model.js';
import type { ProbeOutcome, ProbeRequest } from './probe.js';
import type { Hint } from './report.js';
import type { CheckKind, CheckSpec, Exercise } from './rubric.js';
import type { SandboxLimits, SandboxedServer, ServerState } from './sandbox.js';

export interface CheckVerdict {
  passed: boolean;
  feedback: string;
  evidence: string[];
  hints: Hint[];
}

/** What a check needs of the grading session. */
export interface CheckContext {
  exercise: Exercise;
  limits: SandboxLimits | null;
  port: number;
  /** the running server, started again if it exited during an earlier check. */
  server(): Promise<{ server: SandboxedServer; pid: number }>;
  /** the syscall counts of the fingerprint check, once it ran: later checks cite them. */
  syscalls: SyscallCount[] | null;
}

/** CPU in whole percents of a core, as the rubric's thresholds are given. */
const percent = (n: number) => `${Math.round(n)}%`;

export function checkTitle(spec: CheckSpec, exercise: Exercise): string {
  switch (spec.check) {
    case 'echo':
      return 'Echo: each message comes back upper-cased';
    case 'large-message':
      return `A ${formatCount(spec.bytes / 1024)} KiB message comes back whole`;
    case 'binary':
      return 'Binary: all 256 byte values pass through';
    case 'concurrent':
      return `${spec.clients} clients at once`;
    case 'disconnect':
      return 'Clients that close or reset end only their own connection';
    case 'churn':
      return `${formatCount(spec.cycles)} connect / close cycles, no fd leak`;
    case 'fingerprint':
      return `The IO model: the syscalls of ${exercise.rubric.model}`;
    case 'no-busy-loop':
      return 'No busy loop: idle clients cost no CPU';
    case 'busy-poll':
      return 'Busy polling: idle clients keep a core busy';
    case 'threads-per-connection':
      return spec.expect === 'one-per-connection' ? 'A thread per connection' : 'One thread for every connection';
    case 'select-ceiling':
      return 'Past FD_SETSIZE: connections beyond fd 1023';
  }
}

export const HINTS = {
  loopbackOnly: (address: string, port: number): Hint => ({
    id: 'loopback-only',
    text: `your server listens on ${address}:${port} only: the grader's clients run in other containers and reach it through the network, so listen on every interface (0.0.0.0)`,
  }),
  wrongPort: (ports: number[], port: number): Hint => ({
    id: 'wrong-port',
    text: `your server listens on port ${ports.join(', ')}, but the grader gave it PORT=${port}: read the port from the environment (os.environ["PORT"], process.env.PORT)`,
  }),
  neverListens: (seconds: number, port: number): Hint => ({
    id: 'never-listens',
    text: `your server never listened on port ${port} within ${seconds} s: call bind() and listen() on a socket before anything else waits`,
  }),
  spinsBeforeListening: (cpuSeconds: number, seconds: number): Hint => ({
    id: 'spins-before-listening',
    text: `it kept a CPU busy (${cpuSeconds.toFixed(1)} s of CPU) and had not listened after ${seconds} s: an endless loop before listen()?`,
  }),
  processLimit: (tasks: number, limit: number): Hint => ({
    id: 'process-limit',
    text: `your server's processes and threads reached the sandbox's limit (${formatCount(tasks)} of ${formatCount(limit)}): a fork bomb, or processes or threads created without end`,
  }),
  memoryLimit: (limitMb: number | null): Hint => ({
    id: 'memory-limit',
    text: `your server was killed for using more than the sandbox's ${limitMb ?? '?'} MB of memory`,
  }),
  exitsAtStart: (exit: number | string | null): Hint => ({
    id: 'exits-at-start',
    text: `your server exited (${describeExit(exit)}) before it listened: run it yourself with PORT=7000 and read its error`,
  }),
  crashOnReset: (): Hint => ({
    id: 'crash-on-reset',
    text: 'your server exited when a client reset its connection: recv and send raise ConnectionResetError (or BrokenPipeError) then; catch it, close that one connection and go on serving the others',
  }),
  crashed: (): Hint => ({
    id: 'crash',
    text: 'one connection\'s error must end that connection only: catch errors per connection, close it, and keep serving',
  }),
  singleRead: (received: number, sent: number, reset: boolean): Hint => ({
    id: 'single-read',
    text: `your server answered ${formatCount(received)} of ${formatCount(sent)} bytes and closed the connection${reset ? ' (with the rest still unread in its socket, so the kernel sent a reset, RST, instead of a FIN)' : ''}: it read once and assumed the whole message had arrived. TCP is a byte stream: a message arrives in pieces, so read (and echo) until the peer closes`,
  }),
  busyLoop: (cpu: number, idle: number, hottest: string | null): Hint => ({
    id: 'busy-loop',
    text: `your server used ${percent(cpu)} of a core while its ${idle} clients sent nothing: it never sleeps in a wait${hottest ? ` (under load its most frequent call was ${hottest})` : ''}. A wait with timeout 0, or non-blocking calls tried again and again, is a busy loop`,
  }),
  fdLeak: (grew: number, cycles: number): Hint => ({
    id: 'fd-leak',
    text: `your server's open files grew by ${formatCount(grew)} over ${formatCount(cycles)} connections that all closed: close every connection you accept, once its peer is gone`,
  }),
  fdSetSize: (): Hint => ({
    id: 'fd-setsize',
    text: 'select() watches fds below FD_SETSIZE (1024) only; Python raises ValueError ("filedescriptor out of range in select()") and C corrupts memory for a larger fd. Refuse (close) a connection whose fd is 1024 or more, and keep serving the others',
  }),
  noServer: (): Hint => ({
    id: 'no-server',
    text: 'hand in a directory with server.py, server.ts, server.js, a Dockerfile or iolab.yaml (see the exercise README)',
  }),
};

export function describeExit(exit: number | string | null): string {
  if (exit === null) return 'still running';
  if (typeof exit === 'string') return exit;
  // 128 + N: killed by signal N (what a container's exit code says for a signal)
  if (exit === 137) return 'status 137: killed (SIGKILL)';
  if (exit === 139) return 'status 139: segmentation fault';
  return `status ${exit}`;
}

/** "exited (status 1); its output ends: ..." */
export function exitSentence(state: ServerState): string {
  const tail = state.output.slice(-3).join(' | ');
  return `your server exited (${describeExit(state.exit)})${state.oomKilled ? ', killed for exceeding its memory limit,' : ''}${tail ? `; its output ends: ${tail}` : ''}`;
}

async function probe(context: CheckContext, request: ProbeRequest): Promise<{ outcome: ProbeOutcome; state: ServerState }> {
  const { server } = await context.server();
  const outcome = await server.probe(request).result;
  const state = await server.state();
  return { outcome, state };
}

function verdict(passed: boolean, feedback: string, evidence: string[] = [], hints: Hint[] = []): CheckVerdict {
  return { passed, feedback, evidence, hints };
}

/** A check that failed because the server exited while it ran. */
function exitedDuring(state: ServerState, hints: Hint[] = [HINTS.crashed()]): CheckVerdict {
  return verdict(false, `${exitSentence(state)}; the grader started it again for the next checks`, [], state.oomKilled ? [HINTS.memoryLimit(null)] : hints);
}

async function functional(context: CheckContext, request: ProbeRequest): Promise<CheckVerdict> {
  const { outcome, state } = await probe(context, request);
  if (!state.running) return exitedDuring(state);
  const hints: Hint[] = [];
  const { sent, received, ended } = outcome.facts;
  // `ended` is how the connection ended before the whole reply came back, null if it did not
  if (!outcome.ok && request.probe === 'large-message' && typeof ended === 'string' && typeof received === 'number' && typeof sent === 'number' && received < sent) {
    hints.push(HINTS.singleRead(received, sent, ended === 'reset'));
  }
  return verdict(outcome.ok, outcome.summary, [], hints);
}

async function disconnect(context: CheckContext): Promise<CheckVerdict> {
  const { outcome, state } = await probe(context, { probe: 'disconnect' });
  if (!state.running) {
    const byReset = typeof outcome.facts.brokenBy === 'string' && outcome.facts.brokenBy.startsWith('reset');
    const resetInOutput = state.output.some((line) => /ConnectionResetError|BrokenPipeError|ECONNRESET|EPIPE/.test(line));
    return verdict(false, `${outcome.summary}: ${exitSentence(state)}`, [], [byReset || resetInOutput ? HINTS.crashOnReset() : HINTS.crashed()]);
  }
  return verdict(outcome.ok, outcome.summary);
}

async function churn(context: CheckContext, cycles: number): Promise<CheckVerdict> {
  const { server, pid } = await context.server();
  const observer = await server.observe(pid, { trace: false });
  await observer.startWindow();
  const outcome = await server.probe({ probe: 'churn', cycles }).result;
  const observed = await observer.stop().catch(() => null);
  const state = await server.state();
  if (!state.running) return exitedDuring(state);
  const before = observer.baseline.fdsPeak;
  const peak = observed?.proc.fdsPeak ?? before;
  const evidence = [`open fds: ${formatCount(before)} before, at most ${formatCount(peak)} during the cycles`];
  // The probe runs 4 cycles at a time: a server that closes what it accepted stays near its start.
  if (peak - before > cycles / 2) {
    return verdict(false, `${outcome.summary}, but the server's open files grew from ${formatCount(before)} to ${formatCount(peak)}`, evidence, [HINTS.fdLeak(peak - before, cycles)]);
  }
  return verdict(outcome.ok, outcome.summary, evidence);
}

/** Whether the counts show every call `model` requires and none it forbids (the labs' rule). */
function fingerprintHolds(model: ServerModel, counts: SyscallCount[]): boolean {
  return checkFingerprint(model.fingerprint, counts, 1).verdict === 'matches';
}

/** The EAGAIN storm of busy polling: most accept4/recvfrom calls fail. */
function eagainShare(counts: SyscallCount[]): { calls: number; share: number } {
  const reads = counts.filter((c) => c.syscall === 'accept4' || c.syscall === 'recvfrom' || c.syscall === 'read');
  const calls = reads.reduce((sum, c) => sum + c.calls, 0);
  const errors = reads.reduce((sum, c) => sum + c.errors, 0);
  return { calls, share: calls > 0 ? errors / calls : 0 };
}

/** Judges syscall counts against the exercise's model; exported for the tests of the wording. */
export function judgeFingerprint(modelName: string, counts: SyscallCount[], eagainStorm: boolean): { passed: boolean; feedback: string } {
  const model = findModel(modelName);
  const check = checkFingerprint(model.fingerprint, counts, 1);
  const missing = check.required.filter((r) => r.seen.length === 0).map((r) => r.anyOf);
  const forbidden = check.forbidden.filter((f) => f.calls > 0);
  const storm = eagainShare(counts);
  const problems: string[] = [];
  if (forbidden.length > 0) {
    const times = (n: number) => (n === 1 ? 'once' : `${formatCount(n)} times`);
    const seen = forbidden.map((f) => `${f.syscall} ${times(f.calls)}`).join(', ');
    problems.push(`your server called ${seen}; this exercise asks for ${model.name}, which never calls ${forbidden.length > 1 ? 'them' : 'it'}`);
  }
  if (missing.length > 0) {
    problems.push(`it never called ${missing.map((group) => joinWords(group, 'or')).join(', nor ')}, which ${model.name} must`);
  }
  if (eagainStorm && storm.share < 0.5) {
    problems.push(
      `only ${formatShare(storm.share)} of its ${formatCount(storm.calls)} accept4/recvfrom calls failed with EAGAIN: busy polling asks non-blocking sockets again and again, so most of its calls find nothing (the EAGAIN storm)`,
    );
  }
  if (problems.length === 0) {
    const stormNote = eagainStorm ? `; ${formatShare(storm.share)} of accept4/recvfrom failed with EAGAIN: the busy loop's storm` : '';
    const shown = check.required.map((r) => r.seen.map((s) => `${s.syscall} ${formatCount(s.calls)}`).join(', ')).join('; ');
    return { passed: true, feedback: `the syscalls of ${model.name}: ${shown}; none of ${model.fingerprint.forbidden.join(', ')}${stormNote}` };
  }
  // Busy polling's calls are those of any blocking server; its mark is the EAGAIN storm.
  const fitsOther = (other: ServerModel) => fingerprintHolds(other, counts) && (other.name !== 'nonblocking' || storm.share >= 0.5);
  const fits = models.filter((other) => other.name !== model.name && fitsOther(other)).map((other) => other.name);
  const fitNote = fits.length > 0 ? `. These counts fit ${fits.length > 1 ? 'the models' : 'the model'} ${fits.slice(0, 4).join(', ')}` : '';
  return { passed: false, feedback: `${problems.join('; ')}${fitNote}` };
}

function topCalls(counts: SyscallCount[], n = 8): string {
  return [...counts]
    .sort((a, b) => b.calls - a.calls)
    .slice(0, n)
    .map((c) => `${c.syscall} ${formatCount(c.calls)}${c.errors ? ` (${formatCount(c.errors)} failed)` : ''}`)
    .join(', ');
}

async function fingerprint(context: CheckContext, spec: Extract<CheckSpec, { check: 'fingerprint' }>): Promise<CheckVerdict> {
  const { server, pid } = await context.server();
  const observer = await server.observe(pid, { trace: true });
  await observer.startWindow();
  const outcome = await server.probe({ probe: 'load', connections: spec.connections, idle: spec.idle, seconds: spec.seconds }).result;
  const observed = await observer.stop().catch(() => null);
  const state = await server.state();
  if (!state.running) return exitedDuring(state);
  const counts = observed?.trace ? allCalls(observed.trace) : [];
  context.syscalls = counts;
  const roundTrips = Number(outcome.facts.roundTrips ?? 0);
  const evidence = [
    `strace -f while ${spec.connections} connection(s) echoed for ${spec.seconds} s beside ${spec.idle} idle ones (${formatCount(roundTrips)} round trips): ${topCalls(counts) || 'no calls'}`,
  ];
  const judged = judgeFingerprint(context.exercise.rubric.model, counts, spec.eagainStorm);
  if (roundTrips === 0) {
    // No echo under trace: the calls it made still tell against a model, never for one.
    const calls = judged.passed ? 'the calls it made fit the model, but a model is judged under load' : `and by the calls it made: ${judged.feedback}`;
    return verdict(false, `no round trip completed while strace counted (${outcome.summary}); ${calls}`, evidence);
  }
  return verdict(judged.passed, judged.feedback, evidence);
}

/** Holds `connections` silent clients and observes the server meanwhile (no strace: it would slow a busy loop). */
async function holdAndObserve(context: CheckContext, connections: number, seconds: number) {
  const { server, pid } = await context.server();
  const observer = await server.observe(pid, { trace: false });
  const running = server.probe({ probe: 'hold', connections, seconds });
  await running.ready;
  await observer.startWindow();
  const outcome = await running.result;
  const observed = await observer.stop().catch(() => null);
  return { outcome, observed, baseline: observer.baseline, state: await server.state() };
}

function hottestCall(counts: SyscallCount[] | null): string | null {
  if (!counts || counts.length === 0) return null;
  const top = [...counts].sort((a, b) => b.calls - a.calls)[0];
  return `${top.syscall}, ${formatCount(top.calls)} calls`;
}

async function idleCpu(context: CheckContext, spec: Extract<CheckSpec, { check: 'no-busy-loop' | 'busy-poll' }>): Promise<CheckVerdict> {
  const { outcome, observed, state } = await holdAndObserve(context, spec.idle, spec.seconds);
  if (!state.running) return exitedDuring(state);
  if (!observed) return verdict(false, 'the server could not be observed while its clients were idle');
  const cpu = observed.proc.cpuPercent;
  const evidence = [`CPU ${percent(cpu)} of a core over ${observed.proc.wallSeconds.toFixed(1)} s with ${spec.idle} idle clients (${outcome.summary})`];
  if (spec.check === 'no-busy-loop') {
    if (cpu <= spec.maxCpuPercent) return verdict(true, `${percent(cpu)} of a core with ${spec.idle} idle clients: it sleeps in its wait until there is work`, evidence);
    return verdict(false, `${percent(cpu)} of a core with ${spec.idle} idle clients (at most ${spec.maxCpuPercent}% expected): a busy loop`, evidence, [
      HINTS.busyLoop(cpu, spec.idle, hottestCall(context.syscalls)),
    ]);
  }
  if (cpu >= spec.minCpuPercent) return verdict(true, `${percent(cpu)} of a core with ${spec.idle} idle clients: the busy loop never sleeps, as the model predicts`, evidence);
  return verdict(
    false,
    `${percent(cpu)} of a core with ${spec.idle} idle clients (at least ${spec.minCpuPercent}% expected): it waits somewhere (a blocking call, select, poll or epoll), so it is not busy polling`,
    evidence,
  );
}

async function threads(context: CheckContext, spec: Extract<CheckSpec, { check: 'threads-per-connection' }>): Promise<CheckVerdict> {
  const { outcome, observed, baseline, state } = await holdAndObserve(context, spec.connections, 1);
  if (!state.running) return exitedDuring(state);
  if (!observed) return verdict(false, 'the server could not be observed while its clients were connected');
  const grew = observed.proc.threadsPeak - baseline.threadsPeak;
  const evidence = [`threads: ${baseline.threadsPeak} with no client, at most ${observed.proc.threadsPeak} with ${outcome.facts.connected} clients connected`];
  const sentence = `with ${outcome.facts.connected} clients connected its threads went from ${baseline.threadsPeak} to ${observed.proc.threadsPeak}`;
  if (spec.expect === 'one-per-connection') {
    if (grew >= 0.8 * spec.connections) return verdict(true, `${sentence}: a thread per connection`, evidence);
    return verdict(false, `${sentence}: this exercise asks for one thread per connection, started when the connection is accepted`, evidence);
  }
  if (grew < Math.max(4, 0.1 * spec.connections)) return verdict(true, `${sentence}: one thread serves every connection`, evidence);
  return verdict(false, `${sentence}: this exercise asks for one thread that serves every connection (coroutines, not threads)`, evidence);
}

async function selectCeiling(context: CheckContext, spec: Extract<CheckSpec, { check: 'select-ceiling' }>): Promise<CheckVerdict> {
  const { outcome, state } = await probe(context, { probe: 'ceiling', connections: spec.connections });
  const nofile = context.limits ? `; its RLIMIT_NOFILE is ${formatCount(context.limits.nofile)}, so FD_SETSIZE (1024) is the ceiling that binds` : '';
  const evidence = [`${outcome.summary}${nofile}`];
  if (!state.running) {
    return verdict(false, `${spec.connections} clients connected: ${exitSentence(state)}; the grader started it again for the next checks`, evidence, [HINTS.fdSetSize()]);
  }
  if (outcome.ok) return verdict(true, `past fd 1023 it refused connections and kept serving the others: ${outcome.summary}`, evidence);
  return verdict(false, `past fd 1023: ${outcome.summary}`, evidence, [HINTS.fdSetSize()]);
}

export async function runCheck(context: CheckContext, spec: CheckSpec): Promise<CheckVerdict> {
  switch (spec.check) {
    case 'echo':
      return functional(context, { probe: 'echo' });
    case 'large-message':
      return functional(context, { probe: 'large-message', bytes: spec.bytes });
    case 'binary':
      return functional(context, { probe: 'binary' });
    case 'concurrent':
      return functional(context, { probe: 'concurrent', clients: spec.clients });
    case 'disconnect':
      return disconnect(context);
    case 'churn':
      return churn(context, spec.cycles);
    case 'fingerprint':
      return fingerprint(context, spec);
    case 'no-busy-loop':
    case 'busy-poll':
      return idleCpu(context, spec);
    case 'threads-per-connection':
      return threads(context, spec);
    case 'select-ceiling':
      return selectCeiling(context, spec);
  }
}

export type { CheckKind };
