// The rubric's checks: each drives the server through the sandbox (probes, observers, strace) and
// judges what it saw, in the course's terms and with the numbers behind the verdict. The model
// fingerprints are the ones the lab servers declare (src/servers/MODEL.ts): a student's select
// server must show what iolab's own select server shows.
import { constants } from 'node:os';
import { NotGradableError } from '../errors.js';
import { formatMemoryLimit, oomKilledSentence } from '../runtime/container-ending.js';
import { formatCount, plural } from '../shared/format.js';
import { allCalls, type SyscallCount } from '../shared/results.js';
import { judgeModel, type ModelEvidence } from './model-evidence.js';
import type { ProbeOutcome, ProbeRequest } from './probe.js';
import type { Hint } from './report.js';
import type { CheckKind, CheckSpec, Exercise } from './rubric.js';
import type { Observed, Observer } from '../tracer/observe.js';
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
  /** where the server was found listening (address as /proc/net/tcp6 shows it: "::" for every IPv6 address). */
  listening: { address: string; port: number };
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
      return exercise.rubric.budget.threads === 'per-connection' ? 'A thread per connection' : 'One thread for every connection';
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
  memoryLimit: (limitBytes: number | null): Hint => ({
    id: 'memory-limit',
    text: `your server used more memory than the sandbox's limit (${limitBytes ? formatMemoryLimit(limitBytes) : 'its memory limit'}), and the kernel killed it: look for what grows without end, such as data kept from every message or connection`,
  }),
  exitsAtStart: (exit: number | string | null): Hint => ({
    id: 'exits-at-start',
    text: `your server exited (${describeExit(exit)}) before it listened: run it yourself with PORT=7000 and read its error`,
  }),
  crashOnReset: (): Hint => ({
    id: 'crash-on-reset',
    text: 'your server exited when a client reset its connection: recv and send raise ConnectionResetError (or BrokenPipeError) then; catch it, close that one connection and go on serving the others',
  }),
  ipv6Only: (port: number): Hint => ({
    id: 'ipv6-only',
    text: `your server listens on [::]:${port} for IPv6 only (the socket option IPV6_V6ONLY is set; Python's socket.create_server sets it for AF_INET6 unless dualstack_ipv6=True): the grader's clients connect over IPv4 and are refused. Listen on 0.0.0.0, or on :: with IPV6_V6ONLY off (dualstack_ipv6=True)`,
  }),
  sigpipe: (): Hint => ({
    id: 'sigpipe',
    text: 'your server was killed by SIGPIPE: writing to a connection whose peer has gone raises that signal, and its default action ends the whole process. Send with MSG_NOSIGNAL (send(fd, buf, len, MSG_NOSIGNAL)), or ignore the signal once at start (signal(SIGPIPE, SIG_IGN)); then the write fails with EPIPE, and you close that one connection',
  }),
  fullSendBuffer: (): Hint => ({
    id: 'full-send-buffer',
    text: "a send on a non-blocking socket failed with EAGAIN (Python: BlockingIOError, \"Resource temporarily unavailable\"): the socket's send buffer was full, because the client was not reading yet. That is not an error of the connection: keep the bytes that were not sent, wait until the socket is writable (EVENT_WRITE, POLLOUT, EPOLLOUT), send them then, and never drop or crash",
  }),
  edgeTriggeredReadOnce: (): Hint => ({
    id: 'edge-triggered-read-once',
    text: 'your server registers its connections edge-triggered (EPOLLET) and reads once per event: an edge-triggered event comes once per arrival of data, not while data remains, so whatever one read leaves in the socket waits for an event that never comes. Read (and echo) in a loop until read returns -1 with EAGAIN, or register the connections level-triggered',
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
  doesNotBuild: (): Hint => ({
    id: 'does-not-build',
    text: "your server does not build: above is the build's first error (a compiler error names its file, line and column; make names the Makefile's line or the target it could not make). Build it yourself as the grader does (see the exercise README) and fix the first error first: the ones after it often follow from it",
  }),
  noServer: (): Hint => ({
    id: 'no-server',
    text: 'hand in a directory with server.py, server.ts, server.js, server.c (or a Makefile), a Dockerfile or iolab.yaml (see the exercise README)',
  }),
};

/**
 * How a server ended, in words: "status 1", "killed by SIGPIPE (signal 13)". A signal's name is
 * known when the sandbox says it ('SIGPIPE'); a container's exit code 128+N is the shell's
 * convention for death by signal N (an init such as docker-init passes its child's on), so it is
 * said as that signal, "or status N" since a program may exit with such a status itself.
 */
export function describeExit(exit: number | string | null): string {
  if (exit === null) return 'still running';
  if (typeof exit === 'string') {
    const number = (constants.signals as Record<string, number>)[exit];
    return number === undefined ? exit : `killed by ${exit} (signal ${number}${SIGNAL_MEANING[exit] ? `: ${SIGNAL_MEANING[exit]}` : ''})`;
  }
  const signal = exit > 128 && exit < 128 + 65 ? Object.entries(constants.signals).find(([, n]) => n === exit - 128)?.[0] : undefined;
  if (signal) return `status ${exit}: killed by ${signal} (signal ${exit - 128}${SIGNAL_MEANING[signal] ? `: ${SIGNAL_MEANING[signal]}` : ''})`;
  return `status ${exit}`;
}

/** What the signals a crashed server most often dies of mean (signal(7)). */
const SIGNAL_MEANING: Record<string, string> = {
  SIGSEGV: 'segmentation fault, an invalid memory access',
  SIGABRT: 'abort(), e.g. glibc stopping the program on a detected error such as "*** bit out of range 0 - FD_SETSIZE on fd_set ***"',
  SIGPIPE: 'a write to a connection whose peer had gone',
  SIGKILL: 'killed, e.g. for exceeding a limit',
  SIGBUS: 'bus error',
  SIGFPE: 'arithmetic error',
};

/**
 * "your server exited (status 1); its output ends: ...", or "your server was killed by the
 * kernel's OOM killer: it reached its memory limit (512 MiB); ..." (runtime/container-ending.ts).
 */
export function exitSentence(state: ServerState): string {
  const tail = state.output.slice(-3).join(' | ');
  const killed = state.exit === 'SIGKILL' || state.exit === 128 + constants.signals.SIGKILL;
  const oom = state.oomKilled ? oomKilledSentence(state.memoryLimit ?? null) : null;
  // The OOM killer may also take one process of several, and the server end otherwise after it.
  const how = oom === null ? `exited (${describeExit(state.exit)})` : killed ? `was ${oom}` : `exited (${describeExit(state.exit)}) after one of its processes was ${oom}`;
  return `your server ${how}${tail ? `; its output ends: ${tail}` : ''}`;
}

async function probe(context: CheckContext, request: ProbeRequest): Promise<{ outcome: ProbeOutcome; state: ServerState; server: SandboxedServer }> {
  const { server } = await context.server();
  const outcome = await server.probe(request).result;
  const state = await server.state();
  return { outcome, state, server };
}

/** The grader's own failure (an observer or a tracer), not the student's: the grading is not gradable. */
export class GraderError extends NotGradableError {}

/**
 * What the observer saw; null when it could not stop because the server had exited (the check
 * then fails for that exit). An observer that fails while the server runs is the grader's own
 * failure: GraderError, which makes the grading not gradable rather than cost the student points.
 */
async function stopObserving(observer: Observer, server: SandboxedServer): Promise<Observed | null> {
  try {
    return await observer.stop();
  } catch (error) {
    if (!(await server.state()).running) return null;
    throw new GraderError(`the observer of the server failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The server's state once an exit in progress has been reported, or after EXIT_SETTLE_MS if it keeps running. */
async function exitSettled(server: SandboxedServer): Promise<ServerState> {
  for (const deadline = Date.now() + EXIT_SETTLE_MS; ; await new Promise((resolve) => setTimeout(resolve, 100))) {
    const state = await server.state();
    if (!state.running || Date.now() >= deadline) return state;
  }
}
/** How long an exit may take to be reported once the server's sockets have closed. */
const EXIT_SETTLE_MS = 2000;

/** A check that measures the server under clients has nothing to judge when none connected. */
function noClientConnected(outcome: ProbeOutcome): CheckVerdict {
  return verdict(false, `could not be judged: no client could connect (${outcome.summary})`);
}

function verdict(passed: boolean, feedback: string, evidence: string[] = [], hints: Hint[] = []): CheckVerdict {
  return { passed, feedback, evidence, hints };
}

/** The hint for a server that exited, from how it ended and what it wrote last; `otherwise` when neither tells. */
export function crashHint(state: ServerState, otherwise: Hint = HINTS.crashed()): Hint {
  if (state.oomKilled) return HINTS.memoryLimit(state.memoryLimit ?? null);
  if (state.exit === 'SIGPIPE' || state.exit === 128 + constants.signals.SIGPIPE) return HINTS.sigpipe();
  // The error's own line (Python's "BlockingIOError: [Errno 11] Resource temporarily unavailable",
  // C's perror "send: Resource temporarily unavailable"), not a source line that names it.
  if (state.output.some((line) => /^(?:\w+\.)*BlockingIOError:|Resource temporarily unavailable$/.test(line.trim()))) return HINTS.fullSendBuffer();
  return otherwise;
}

/** A check that failed because the server exited while it ran. */
function exitedDuring(state: ServerState, otherwise?: Hint): CheckVerdict {
  return verdict(false, `${exitSentence(state)}; the grader started it again for the next checks`, [], [crashHint(state, otherwise)]);
}

async function functional(context: CheckContext, request: ProbeRequest): Promise<CheckVerdict> {
  const { outcome, state } = await probe(context, request);
  if (!state.running) return exitedDuring(state);
  return verdict(outcome.ok, outcome.summary);
}

/**
 * Runs `request` while the server is observed (/proc, and strace with `trace`), the window
 * started before the probe's first connection. `observed` is null when the server exited before
 * the observer could stop.
 */
async function probeObserved(context: CheckContext, request: ProbeRequest, trace: boolean) {
  const { server, pid } = await context.server();
  const observer = await server.observe(pid, { tracer: trace ? 'strace' : null });
  await observer.startWindow();
  const outcome = await server.probe(request).result;
  const observed = await stopObserving(observer, server);
  return { outcome, observed, baseline: observer.baseline, state: await server.state() };
}

/**
 * The large message, traced: a reply cut short is read-once's mark, and the calls tell which
 * read-once it is (edge-triggered registrations, EPOLLET, wait for an event that never comes).
 */
async function largeMessage(context: CheckContext, bytes: number): Promise<CheckVerdict> {
  const { outcome, observed, state } = await probeObserved(context, { probe: 'large-message', bytes }, true);
  const { received, ended } = outcome.facts;
  const short = !outcome.ok && typeof received === 'number' && received < bytes;
  const hints: Hint[] = [];
  const epollCtl = observed?.trace ? allCalls(observed.trace).find((c) => c.syscall === 'epoll_ctl') : undefined;
  if (short && epollCtl?.flags?.includes('EPOLLET') && ended === null) hints.push(HINTS.edgeTriggeredReadOnce());
  else if (short && typeof ended === 'string' && state.running) hints.push(HINTS.singleRead(received, bytes, ended === 'reset'));
  const evidence = epollCtl?.flags?.length ? [`epoll_ctl registered connections with ${epollCtl.flags.join(', ')}`] : [];
  // A reply cut short is the failure even when the server died after it (the probe's close).
  if (!state.running) {
    const failure = short ? `${outcome.summary}; then ${exitSentence(state)}` : exitSentence(state);
    return verdict(false, `${failure}; the grader started it again for the next checks`, evidence, [...hints, crashHint(state)]);
  }
  return verdict(outcome.ok, outcome.summary, evidence, hints);
}

async function disconnect(context: CheckContext): Promise<CheckVerdict> {
  const { outcome, state } = await probe(context, { probe: 'disconnect' });
  if (!state.running) {
    const byReset = typeof outcome.facts.brokenBy === 'string' && outcome.facts.brokenBy.startsWith('reset');
    const resetInOutput = state.output.some((line) => /ConnectionResetError|BrokenPipeError|ECONNRESET|EPIPE/.test(line));
    return verdict(false, `${outcome.summary}: ${exitSentence(state)}`, [], [crashHint(state, byReset || resetInOutput ? HINTS.crashOnReset() : HINTS.crashed())]);
  }
  return verdict(outcome.ok, outcome.summary);
}

async function churn(context: CheckContext, cycles: number): Promise<CheckVerdict> {
  const { outcome, observed, baseline, state } = await probeObserved(context, { probe: 'churn', cycles }, false);
  if (!state.running || !observed) return exitedDuring(state);
  const before = baseline.fdsPeak;
  const peak = observed.proc.fdsPeak;
  const evidence = [`open fds: ${formatCount(before)} before, at most ${formatCount(peak)} during the cycles`];
  // The probe runs 4 cycles at a time: a server that closes what it accepted stays near its start.
  if (peak - before > cycles / 2) {
    return verdict(false, `${outcome.summary}, but the server's open files grew from ${formatCount(before)} to ${formatCount(peak)}`, evidence, [HINTS.fdLeak(peak - before, cycles)]);
  }
  return verdict(outcome.ok, outcome.summary, evidence);
}

/** Judges syscall counts alone (no thread or process evidence) against a model; for the tests of the wording. */
export function judgeFingerprint(modelName: string, counts: SyscallCount[], eagainStorm: boolean): { passed: boolean; feedback: string } {
  return judgeModel(modelName, { threads: 'one', processes: 'one' }, eagainStorm, { counts, connections: 0, threads: null, processes: null });
}

function topCalls(counts: SyscallCount[], n = 8): string {
  return [...counts]
    .sort((a, b) => b.calls - a.calls)
    .slice(0, n)
    .map((c) => `${c.syscall} ${formatCount(c.calls)}${c.errors ? ` (${formatCount(c.errors)} failed)` : ''}`)
    .join(', ');
}

async function fingerprint(context: CheckContext, spec: Extract<CheckSpec, { check: 'fingerprint' }>): Promise<CheckVerdict> {
  const { outcome, observed, baseline, state } = await probeObserved(context, { probe: 'load', connections: spec.connections, idle: spec.idle, seconds: spec.seconds }, true);
  if (!state.running || !observed) return exitedDuring(state);
  const counts = observed.trace ? allCalls(observed.trace) : [];
  context.syscalls = counts;
  const roundTrips = Number(outcome.facts.roundTrips ?? 0);
  const connected = Number(outcome.facts.connected ?? 0);
  const { proc } = observed;
  const evidence: ModelEvidence = {
    counts,
    connections: connected,
    threads: { before: baseline.threadsPeak, peak: proc.threadsPeak },
    processes: { before: baseline.processesPeak, peak: proc.processesPeak },
  };
  const lines = [
    `strace -f while ${plural(spec.connections, 'connection')} echoed for ${spec.seconds} s beside ${formatCount(spec.idle)} idle (${plural(roundTrips, 'round trip')}): ${topCalls(counts) || 'no calls'}`,
    `threads ${formatCount(baseline.threadsPeak)} and processes ${formatCount(baseline.processesPeak)} before any client; at most ${formatCount(proc.threadsPeak)} and ${formatCount(proc.processesPeak)} with ${plural(connected, 'connection')} open`,
  ];
  if (connected === 0) return verdict(false, `could not be judged: no client could connect (${outcome.summary})`, lines);
  const judged = judgeModel(context.exercise.rubric.model, context.exercise.rubric.budget, spec.eagainStorm, evidence);
  const answered = Number(outcome.facts.answered ?? 0);
  if (roundTrips > 0 && answered < spec.connections) {
    // A server that served some of its echoing clients and left the others waiting was not under
    // the load the fingerprint is judged by (a stall, or one connection at a time).
    const calls = judged.passed ? 'the calls it made fit the model, but a model is judged with every client served' : `and by the calls it made: ${judged.feedback}`;
    return verdict(false, `only ${formatCount(answered)} of the ${formatCount(spec.connections)} echoing connections got an answer in ${spec.seconds} s (${outcome.summary}); ${calls}`, lines);
  }
  if (roundTrips === 0) {
    // No echo under trace: the calls it made still tell against a model, never for one.
    const calls = judged.passed ? 'the calls it made fit the model, but a model is judged under load' : `and by the calls it made: ${judged.feedback}`;
    return verdict(false, `no round trip completed while strace counted (${outcome.summary}); ${calls}`, lines);
  }
  return verdict(judged.passed, judged.feedback, lines);
}

/** Holds `connections` silent clients and observes the server meanwhile (no strace: it would slow a busy loop). */
async function holdAndObserve(context: CheckContext, connections: number, seconds: number) {
  const { server, pid } = await context.server();
  const observer = await server.observe(pid, { tracer: null });
  const running = server.probe({ probe: 'hold', connections, seconds });
  await running.ready;
  await observer.startWindow();
  const outcome = await running.result;
  const observed = await stopObserving(observer, server);
  return { outcome, observed, baseline: observer.baseline, state: await server.state() };
}

function hottestCall(counts: SyscallCount[] | null): string | null {
  if (!counts || counts.length === 0) return null;
  const top = [...counts].sort((a, b) => b.calls - a.calls)[0];
  return `${top.syscall}, ${formatCount(top.calls)} calls`;
}

async function idleCpu(context: CheckContext, spec: Extract<CheckSpec, { check: 'no-busy-loop' | 'busy-poll' }>): Promise<CheckVerdict> {
  const { outcome, observed, state } = await holdAndObserve(context, spec.idle, spec.seconds);
  if (!state.running || !observed) return exitedDuring(state);
  if (Number(outcome.facts.connected ?? 0) === 0) return noClientConnected(outcome);
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
  if (!state.running || !observed) return exitedDuring(state);
  const connected = Number(outcome.facts.connected ?? 0);
  if (connected === 0) return noClientConnected(outcome);
  const grew = observed.proc.threadsPeak - baseline.threadsPeak;
  const evidence = [`threads: ${baseline.threadsPeak} with no client, at most ${observed.proc.threadsPeak} with ${connected} clients connected; processes: ${baseline.processesPeak}, at most ${observed.proc.processesPeak}`];
  const sentence = `with ${connected} clients connected its threads went from ${baseline.threadsPeak} to ${observed.proc.threadsPeak}`;
  const processes = observed.proc.processesPeak - baseline.processesPeak;
  const forked = processes >= 0.8 * connected ? `, in ${formatCount(observed.proc.processesPeak)} processes: a process per connection (fork), not a thread` : '';
  if (context.exercise.rubric.budget.threads === 'per-connection') {
    if (grew >= 0.8 * connected && !forked) return verdict(true, `${sentence}: a thread per connection`, evidence);
    return verdict(false, `${sentence}${forked}: this exercise asks for one thread per connection, started when the connection is accepted`, evidence);
  }
  if (grew < Math.max(4, 0.1 * connected)) return verdict(true, `${sentence}: one thread serves every connection`, evidence);
  return verdict(false, `${sentence}${forked}: this exercise asks for one thread that serves every connection`, evidence);
}

async function selectCeiling(context: CheckContext, spec: Extract<CheckSpec, { check: 'select-ceiling' }>): Promise<CheckVerdict> {
  const probed = await probe(context, { probe: 'ceiling', connections: spec.connections });
  const { outcome } = probed;
  // The kernel closes a dying process's sockets before its parent hears of the exit: give the
  // news a moment to arrive before judging a server that dropped its clients as still running.
  const state = probed.state.running && Number(outcome.facts.closedByServer ?? 0) > 0 ? await exitSettled(probed.server) : probed.state;
  const nofile = context.limits ? `; its RLIMIT_NOFILE is ${formatCount(context.limits.nofile)}, so FD_SETSIZE (1024) is the ceiling that binds` : '';
  const evidence = [`${outcome.summary}${nofile}`];
  if (!state.running) {
    // Every client once: answered, refused, or left unanswered (closed or silent) when the server died.
    const f = outcome.facts;
    const [connected, answered, failed] = [Number(f.connected ?? 0), Number(f.answered ?? 0), Number(f.failed ?? 0)];
    const counts = [`${formatCount(connected)} of ${formatCount(spec.connections)} clients connected`, `${formatCount(answered)} were answered`];
    if (connected > answered) counts.push(`${formatCount(connected - answered)} were left unanswered when the server exited`);
    if (failed) counts.push(`${formatCount(failed)} could not connect`);
    return verdict(false, `${counts.join('; ')}: ${exitSentence(state)}; the grader started it again for the next checks`, evidence, [crashHint(state, HINTS.fdSetSize())]);
  }
  if (outcome.ok) return verdict(true, `past fd 1023 it refused connections and kept serving the others: ${outcome.summary}`, evidence);
  return verdict(false, `past fd 1023: ${outcome.summary}`, evidence, [HINTS.fdSetSize()]);
}

/**
 * Runs one check of the rubric. A failure of the grader's own (an observer or tracer that cannot
 * run) throws: the grading is then not gradable, never a failed check.
 */
export async function runCheck(context: CheckContext, spec: CheckSpec): Promise<CheckVerdict> {
  const result = await runCheckOnly(context, spec);
  // Found listening on [::], yet IPv4 connections refused: the socket is IPv6 only (IPV6_V6ONLY);
  // a dual-stack one would have taken them. (ECONNREFUSED: probe.ts names a refused connect so.)
  const refused = [result.feedback, ...result.evidence].some((text) => text.includes('ECONNREFUSED'));
  if (!result.passed && refused && context.listening.address === '::') result.hints.unshift(HINTS.ipv6Only(context.listening.port));
  return result;
}

async function runCheckOnly(context: CheckContext, spec: CheckSpec): Promise<CheckVerdict> {
  switch (spec.check) {
    case 'echo':
      return functional(context, { probe: 'echo' });
    case 'large-message':
      return largeMessage(context, spec.bytes);
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
