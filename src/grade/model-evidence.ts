// Which IO model a student's server shows, judged on the whole evidence of the fingerprint
// check: the calls strace counted (by job, not by name: a C server's read is Python's recv, see
// EQUIVALENT_SYSCALLS), what each readiness call watched, and how many threads and processes the
// server had while its connections were open. The exercise's model and its thread and process
// budget (rubric.yaml) are what it is held to; when it fails, the feedback names what the
// evidence does fit, from the same declarations the lab servers make (src/servers/MODEL.ts).
import { formatCount, formatShare, joinWords, plural } from '../shared/format.js';
import { checkFingerprint, EQUIVALENT_SYSCALLS, fingerprintByJob, jobOf, type Fingerprint, type ModelTraits } from '../shared/model.js';
import { mergeWatched, type SyscallCount } from '../shared/results.js';
import { findModel, models } from '../servers/index.js';
import type { Budget } from './rubric.js';

/** What the fingerprint check saw of the server. */
export interface ModelEvidence {
  /** every call counted while traced (connection set-up included). */
  counts: SyscallCount[];
  /** connections the server had open while counted (echoing and idle). */
  connections: number;
  /** the server's threads (every process's) and processes: before any client, and at most while counted. */
  threads: { before: number; peak: number } | null;
  processes: { before: number; peak: number } | null;
}

/** A job's calls, with the names that made them ("read 1,200"). */
interface JobCount {
  job: string;
  calls: number;
  errnos: Record<string, number>;
  watched: SyscallCount['watched'];
  /** the most threads that made the calls of one of its names. */
  threads?: number;
  names: { syscall: string; calls: number }[];
}

/**
 * Required calls that are a language runtime's, not the model's: futex is how Python's and Node's
 * threads wait for each other (the GIL, a worker's queue); a C server's detached threads need
 * none. A thread per connection is judged by the server's threads instead.
 */
const RUNTIME_ONLY = new Set(['futex']);
/** A model's fingerprint as a student's server is held to it: by job, without RUNTIME_ONLY calls. */
function gradedFingerprint(declared: Fingerprint): Fingerprint {
  const byJob = fingerprintByJob(declared);
  return { ...byJob, required: byJob.required.filter((anyOf) => !anyOf.every((job) => RUNTIME_ONLY.has(job))) };
}

/** The readiness jobs whose calls are handed their fds, so what they watched is known. */
const SCANNING_JOBS = new Set(['select', 'poll']);
/** A thread (or process) per connection: this share of the open connections each added one. */
const PER_CONNECTION_SHARE = 0.8;
/** A one-thread model may still gain a runtime's few helper threads, never one per connection. */
const oneThreadAllows = (connections: number) => Math.max(3, Math.floor(connections / 4));

function byJob(counts: SyscallCount[]): Map<string, JobCount> {
  const jobs = new Map<string, JobCount>();
  for (const count of counts) {
    const job = jobOf(count.syscall);
    const row = jobs.get(job) ?? { job, calls: 0, errnos: {}, watched: undefined, names: [] };
    row.calls += count.calls;
    for (const [errno, n] of Object.entries(count.errnos)) row.errnos[errno] = (row.errnos[errno] ?? 0) + n;
    if (count.watched) row.watched = mergeWatched(row.watched, count.watched);
    if (count.threads !== undefined) row.threads = Math.max(row.threads ?? 0, count.threads);
    if (count.calls > 0) row.names.push({ syscall: count.syscall, calls: count.calls });
    jobs.set(job, row);
  }
  return jobs;
}

const shown = (row: JobCount) => row.names.map((n) => `${n.syscall} ${formatCount(n.calls)}`).join(', ');
const times = (n: number) => (n === 1 ? 'once' : `${formatCount(n)} times`);

/** What each connection cost the server, from its threads and processes while they were open. */
function perConnection(evidence: ModelEvidence): ModelTraits['perConnection'] | null {
  if (!evidence.threads || evidence.connections < 2) return null;
  const enough = PER_CONNECTION_SHARE * evidence.connections;
  if (evidence.processes && evidence.processes.peak - evidence.processes.before >= enough) return 'process';
  if (evidence.threads.peak - evidence.threads.before >= enough) return 'thread';
  return 'none';
}

/**
 * Readiness calls that never watched more than one fd: a wait on one socket with a timeout, not
 * a server multiplexing its connections. Python's socketserver polls its listening socket so
 * between accepts (serve_forever), and socket.settimeout makes CPython poll a connection before
 * each recv. Returns the jobs to leave out of the model's judgement, with a sentence each.
 */
function singleFdWaits(jobs: Map<string, JobCount>): { job: string; sentence: string }[] {
  return [...jobs.values()]
    .filter((row) => SCANNING_JOBS.has(row.job) && row.calls > 0 && row.watched !== undefined && row.watched.max <= 1)
    .map((row) => {
      const fds = row.watched!.fds.map((fd) => `fd ${fd}`);
      const which = fds.length > 1 ? `one at a time (${fds.join(', ')})` : `(${fds[0] ?? 'one fd'})`;
      return {
        job: row.job,
        sentence: `Its ${formatCount(row.calls)} ${row.names.map((n) => n.syscall).join('/')} call${row.calls === 1 ? '' : 's'} each watched a single fd ${which}: a wait on one socket with a timeout (socketserver's serve_forever polls its listening socket between accepts; socket.settimeout polls a connection before each recv), not a wait on many connections, so not the model's readiness call`,
      };
    });
}

/** Busy polling's mark: reads of the connection sockets that find nothing (EAGAIN). */
function readStorm(jobs: Map<string, JobCount>): { calls: number; share: number } {
  const reads = jobs.get('recvfrom');
  const calls = reads?.calls ?? 0;
  const eagain = (reads?.errnos.EAGAIN ?? 0) + (reads?.errnos.EWOULDBLOCK ?? 0);
  return { calls, share: calls > 0 ? eagain / calls : 0 };
}

/**
 * The budget's problems: more processes than the server's own where it has one; a thread per
 * connection, or reads made by several threads (a pool started before any client), where one
 * thread serves every connection; no thread per connection where each should have one.
 */
function budgetProblems(budget: Budget, evidence: ModelEvidence, cost: ModelTraits['perConnection'] | null, jobs: Map<string, JobCount>): string[] {
  const problems: string[] = [];
  const open = `with ${plural(evidence.connections, 'connection')} open`;
  if (budget.processes === 'one' && evidence.processes && evidence.processes.peak > 1) {
    const clones = jobs.get('clone');
    problems.push(
      `it ran as ${formatCount(evidence.processes.peak)} processes ${open} (${plural(evidence.processes.before, 'process', 'processes')} before any client${clones ? `; ${shown(clones)}` : ''})${cost === 'process' ? ': a process per connection (fork)' : ''}; this exercise's server is one process`,
    );
  }
  if (evidence.threads) {
    const grew = evidence.threads.peak - evidence.threads.before;
    const went = `its threads went from ${formatCount(evidence.threads.before)} to ${formatCount(evidence.threads.peak)} ${open}`;
    const readers = jobs.get('recvfrom')?.threads ?? 0;
    if (budget.threads === 'one' && grew > oneThreadAllows(evidence.connections)) {
      problems.push(`${went}; this exercise serves every connection from one thread`);
    } else if (budget.threads === 'one' && readers > 1) {
      problems.push(`${formatCount(readers)} of its threads read from connections; this exercise serves every connection from one thread`);
    }
    if (budget.threads === 'per-connection' && cost === 'none') {
      problems.push(`${went}: not a thread per connection, which this exercise asks for`);
    }
  }
  return problems;
}

/** The models (or the process-per-connection shape, in words of its own) the evidence fits. */
function fits(jobs: Map<string, JobCount>, evidence: ModelEvidence, cost: ModelTraits['perConnection'] | null, storm: { share: number }, except: string): string | null {
  if (cost !== 'process' && evidence.processes && evidence.processes.before > 1) {
    return `a pool of ${formatCount(evidence.processes.before)} processes forked before any client (pre-forking), each waiting in its own ${jobs.get('accept4')?.names[0].syscall ?? 'accept'}`;
  }
  if (cost === 'process') {
    const reads = jobs.get('recvfrom');
    return `a process per connection (fork): each child process blocks in its own ${reads ? reads.names[0].syscall : 'read'}, and every connection costs a whole process`;
  }
  const fitting = models.filter((other) => {
    if (other.name === except) return false;
    // A Python model with a TypeScript twin shows its twin's mechanism: the twin names it. A
    // process per connection (python-fork) is said in its own words above, when the processes show it.
    if (other.program && other.twin !== null) return false;
    if (other.traits.perConnection === 'process') return false;
    if (cost !== null && other.traits.perConnection !== cost) return false;
    if (other.traits.waits === 'spin' && storm.share < 0.5) return false;
    return checkFingerprint(gradedFingerprint(other.fingerprint), jobCounts(jobs), 1).verdict === 'matches';
  });
  if (fitting.length === 0) return null;
  const names = fitting.slice(0, 4).map((m) => m.name);
  return `${names.length > 1 ? 'the models' : 'the model'} ${names.join(', ')}`;
}

const jobCounts = (jobs: Map<string, JobCount>) => [...jobs.values()].map((row) => ({ syscall: row.job, calls: row.calls }));

/**
 * Judges the evidence against the exercise's model and budget. `eagainStorm`: the exercise is
 * busy polling, whose mark is reads failing with EAGAIN. Returns the verdict and its sentence;
 * throws nothing (an unknown model name is a rubric error, caught when the rubric loads).
 */
export function judgeModel(modelName: string, budget: Budget, eagainStorm: boolean, evidence: ModelEvidence): { passed: boolean; feedback: string } {
  const model = findModel(modelName);
  const fingerprint = gradedFingerprint(model.fingerprint);
  const all = byJob(evidence.counts);
  const explained = singleFdWaits(all);
  const jobs = new Map([...all].filter(([job]) => !explained.some((e) => e.job === job)));
  const check = checkFingerprint(fingerprint, jobCounts(jobs), 1);
  const cost = perConnection(evidence);
  const storm = readStorm(jobs);
  const problems: string[] = [];

  const forbidden = check.forbidden.filter((f) => f.calls > 0).map((f) => jobs.get(f.syscall)!);
  if (forbidden.length > 0) {
    const seen = forbidden.map((row) => row.names.map((n) => `${n.syscall} ${times(n.calls)}`).join(', ')).join(', ');
    problems.push(`your server called ${seen}; this exercise asks for ${model.name}, which never does`);
  }
  const missing = check.required.filter((r) => r.seen.length === 0).map((r) => r.anyOf.flatMap((job) => EQUIVALENT_SYSCALLS[job] ?? [job]));
  if (missing.length > 0) problems.push(`it never called ${missing.map((names) => joinWords(names.slice(0, 3), 'or')).join(', nor ')}, which ${model.name} must`);
  problems.push(...budgetProblems(budget, evidence, cost, jobs));
  if (eagainStorm && storm.share < 0.5) {
    problems.push(
      `only ${formatShare(storm.share)} of its ${formatCount(storm.calls)} reads of a connection failed with EAGAIN: busy polling asks non-blocking connections again and again, so most of its reads find nothing (the EAGAIN storm); a spinning accept alone is not that`,
    );
  }
  const notes = explained.map((e) => e.sentence);
  if (problems.length === 0) {
    const required = check.required.map((r) => r.seen.map((s) => shown(jobs.get(s.syscall)!)).join(', ')).join('; ');
    const stormNote = eagainStorm ? `; ${formatShare(storm.share)} of its reads failed with EAGAIN: the busy loop's storm` : '';
    const costNote = cost === 'thread' ? '; a thread per connection' : cost === 'none' ? `; ${budget.threads === 'one' ? 'one thread for every connection' : 'no thread per connection'}` : '';
    // A forbidden call explained as a wait on one fd is said below, not denied here.
    const denied = model.fingerprint.forbidden.filter((name) => !explained.some((e) => e.job === jobOf(name)));
    const forbiddenNames = denied.length ? `; none of ${denied.join(', ')}${denied.length < model.fingerprint.forbidden.length ? ' (for the others, see below)' : ''}` : '';
    return { passed: true, feedback: [`the syscalls of ${model.name}: ${required}${forbiddenNames}${stormNote}${costNote}`, ...notes].join('. ') };
  }
  const fit = fits(jobs, evidence, cost, storm, model.name);
  return { passed: false, feedback: [problems.join('; '), ...notes, ...(fit ? [`These counts fit ${fit}`] : [])].join('. ') };
}
