// What the kernel shows of a process in /proc: CPU time, threads, open fds, memory, context
// switches and limits. Unlike strace this costs the server nothing: the probe only reads files.
//
// The parsers are pure functions of the files' text, and every reader takes the /proc root as a
// parameter, so that a runtime that reads the text elsewhere (in a container) can reuse them.
//
// A server may exit while it is probed (a crash is a result too): a sample that cannot be read is
// dropped, and the window covers the samples that were read.
import { readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { LabRunError } from '../errors.js';
import { clockTicksPerSecond, FD_SETSIZE } from '../libc/index.js';
import type { Limits, ProcWindow } from '../shared/results.js';

const DEFAULT_PROC_ROOT = '/proc';
const DEFAULT_INTERVAL_MS = 100;
/**
 * Context switches are counted per thread, one file read per thread: about 25 us each, so a
 * thousand-thread server would cost the controller a quarter of a core if read every 100 ms.
 * They are read at the window's two ends and once a second in between (for a process that exits).
 */
const THREAD_READ_INTERVAL_MS = 1000;

/** CPU time of the whole process (every thread, living or exited), from /proc/PID/stat. */
export interface ProcStat {
  /** one letter: R running, S sleeping, D disk sleep, Z zombie, ... */
  state: string;
  parentPid: number;
  userTicks: number;
  systemTicks: number;
  threads: number;
}

export function parseProcStat(text: string): ProcStat {
  // Field 2, the command name, is in parentheses and may itself hold spaces and parentheses
  // ("(my (odd) name)"): the fields after it start after the LAST ')'.
  const end = text.lastIndexOf(')');
  const fields = end === -1 ? [] : text.slice(end + 1).trim().split(/\s+/);
  // fields[0] is field 3 of proc(5), so field N is fields[N - 3].
  const field = (n: number, name: string): number => {
    const value = Number(fields[n - 3]);
    if (fields[n - 3] === undefined || !Number.isInteger(value)) {
      throw new Error(`/proc/PID/stat: field ${n} (${name}) is not an integer in ${JSON.stringify(text.slice(0, 200))}`);
    }
    return value;
  };
  return {
    state: fields[0] ?? '?',
    userTicks: field(14, 'utime'),
    systemTicks: field(15, 'stime'),
    threads: field(20, 'num_threads'),
    parentPid: field(4, 'ppid'),
  };
}

/** From /proc/PID/status (or /proc/PID/task/TID/status: the same fields, for one thread). */
export interface ProcStatus {
  threads: number;
  /** null for a zombie or a kernel thread: they have no memory of their own. */
  rssKb: number | null;
  /** the peak of the resident set size since the process started ("high water mark"). */
  peakRssKb: number | null;
  /** of this thread only: the kernel counts context switches per thread. */
  voluntaryContextSwitches: number;
  involuntaryContextSwitches: number;
}

export function parseProcStatus(text: string): ProcStatus {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) values.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const integer = (key: string): number | null => {
    const value = values.get(key);
    if (value === undefined) return null;
    const number = Number(value.replace(/ kB$/, ''));
    if (!Number.isInteger(number)) throw new Error(`/proc/PID/status: ${key} is not an integer: ${JSON.stringify(value)}`);
    return number;
  };
  const required = (key: string): number => {
    const value = integer(key);
    if (value === null) throw new Error(`/proc/PID/status: no ${key} line in ${JSON.stringify(text.slice(0, 200))}`);
    return value;
  };
  return {
    threads: required('Threads'),
    rssKb: integer('VmRSS'),
    peakRssKb: integer('VmHWM'),
    voluntaryContextSwitches: required('voluntary_ctxt_switches'),
    involuntaryContextSwitches: required('nonvoluntary_ctxt_switches'),
  };
}

/** RLIMIT_NOFILE from /proc/PID/limits; null stands for "unlimited". */
export interface NofileLimit {
  soft: number | null;
  hard: number | null;
}

export function parseProcLimits(text: string): NofileLimit {
  // "Max open files            1024                 1048576              files"
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!match) throw new Error(`/proc/PID/limits: no "Max open files" line in ${JSON.stringify(text.slice(0, 200))}`);
  const limit = (value: string): number | null => {
    if (value === 'unlimited') return null;
    const number = Number(value);
    if (!Number.isInteger(number)) throw new Error(`/proc/PID/limits: "Max open files" has ${JSON.stringify(value)}, not a number`);
    return number;
  };
  return { soft: limit(match[1]), hard: limit(match[2]) };
}

/**
 * Every thread's name (/proc/PID/task/TID/comm: what prctl PR_SET_NAME set, or the program's
 * name), by tid. Threads that end while being read are left out.
 */
export async function readThreadNames(pid: number, procRoot = DEFAULT_PROC_ROOT): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  let tids: string[];
  try {
    tids = await readdir(`${procRoot}/${pid}/task`);
  } catch (error) {
    throw new LabRunError(`cannot list the threads of pid ${pid}: ${(error as Error).message}`);
  }
  await Promise.all(
    tids.map(async (tid) => {
      const name = await readFile(`${procRoot}/${pid}/task/${tid}/comm`, 'utf8').catch(() => null);
      if (name !== null) names.set(Number(tid), name.trimEnd());
    }),
  );
  return names;
}

/** The limits that decide how many connections the process can hold. */
export async function readLimits(pid: number, procRoot = DEFAULT_PROC_ROOT): Promise<Limits> {
  let nofile: NofileLimit;
  try {
    nofile = parseProcLimits(await readFile(`${procRoot}/${pid}/limits`, 'utf8'));
  } catch (error) {
    throw new LabRunError(`cannot read the limits of pid ${pid}: ${(error as Error).message}`);
  }
  return {
    nofileSoft: nofile.soft,
    nofileHard: nofile.hard,
    fdSetSize: FD_SETSIZE,
    // the ceiling of any process's nofile limit, and of all open files of the system.
    nrOpen: await readNumberOrNull(`${procRoot}/sys/fs/nr_open`),
    fileMax: await readNumberOrNull(`${procRoot}/sys/fs/file-max`),
  };
}

async function readNumberOrNull(path: string): Promise<number | null> {
  try {
    const value = Number((await readFile(path, 'utf8')).trim());
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

interface ContextSwitches {
  voluntary: number;
  involuntary: number;
}

/** One reading of the process. */
interface Sample {
  atMs: number;
  stat: ProcStat;
  status: ProcStatus;
  fds: number;
  /** per thread id: /proc has no process-wide count. null when not read this time. */
  contextSwitches: Map<number, ContextSwitches> | null;
}

export interface ProcProbeOptions {
  /** time between two samples of threads, fds and memory. Default 100 ms. */
  intervalMs?: number;
  procRoot?: string;
}

let ticksPerSecond: number | null = null;

/**
 * Samples a process from start() to stop(): CPU time as a difference of the two ends, threads,
 * fds and peak memory as maxima over the samples in between (a peak that lasts less than an
 * interval can be missed).
 */
export class ProcProbe {
  private readonly first: Sample;
  private last: Sample;
  private samples = 1;
  private threadsPeak: number;
  private fdsPeak: number;
  private peakRssKb: number;
  /** latest context switch counts of every thread seen, including threads that have exited since. */
  private readonly contextSwitches: Map<number, ContextSwitches>;
  private readonly contextSwitchesAtStart: Map<number, ContextSwitches>;
  private threadsReadAtMs: number;
  private exited = false;
  private stopped = false;
  private stopping: Promise<ProcWindow> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> = Promise.resolve();

  private constructor(
    readonly pid: number,
    private readonly procRoot: string,
    private readonly intervalMs: number,
    first: Sample,
  ) {
    this.first = this.last = first;
    this.threadsPeak = first.status.threads;
    this.fdsPeak = first.fds;
    this.peakRssKb = first.status.peakRssKb ?? 0;
    this.contextSwitchesAtStart = first.contextSwitches!;
    this.contextSwitches = new Map(first.contextSwitches!);
    this.threadsReadAtMs = first.atMs;
  }

  /** Reads a first sample (rejects if the process cannot be read), then samples every interval. */
  static async start(pid: number, options: ProcProbeOptions = {}): Promise<ProcProbe> {
    const procRoot = options.procRoot ?? DEFAULT_PROC_ROOT;
    ticksPerSecond ??= clockTicksPerSecond();
    let first: Sample;
    try {
      first = await readSample(pid, procRoot, true);
    } catch (error) {
      throw new LabRunError(`cannot probe pid ${pid} in ${procRoot}: ${(error as Error).message}`);
    }
    const probe = new ProcProbe(pid, procRoot, options.intervalMs ?? DEFAULT_INTERVAL_MS, first);
    probe.scheduleNext();
    return probe;
  }

  /** Takes a last sample (when the process still runs) and returns the measured window. */
  stop(): Promise<ProcWindow> {
    this.stopping ??= this.takeLastSample();
    return this.stopping;
  }

  private async takeLastSample(): Promise<ProcWindow> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.sampling;
    await this.sample(true);
    return this.window();
  }

  private scheduleNext(): void {
    // One sample at a time: the next is scheduled when the previous one is done, never overlapping.
    this.timer = setTimeout(() => {
      this.sampling = this.sample().then(() => {
        if (!this.stopped && !this.exited) this.scheduleNext();
      });
    }, this.intervalMs);
    // The probe alone must not keep the controller alive.
    this.timer.unref();
  }

  private async sample(last = false): Promise<void> {
    if (this.exited) return;
    const withThreads = last || performance.now() - this.threadsReadAtMs >= THREAD_READ_INTERVAL_MS;
    let sample: Sample;
    try {
      sample = await readSample(this.pid, this.procRoot, withThreads);
    } catch (error) {
      // Gone (ENOENT, ESRCH) or a zombie being reaped: the window ends at the last good sample.
      // Anything else skips this one sample.
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH') this.exited = true;
      return;
    }
    this.last = sample;
    this.samples += 1;
    this.threadsPeak = Math.max(this.threadsPeak, sample.status.threads);
    this.fdsPeak = Math.max(this.fdsPeak, sample.fds);
    this.peakRssKb = Math.max(this.peakRssKb, sample.status.peakRssKb ?? 0);
    if (sample.contextSwitches) {
      this.threadsReadAtMs = sample.atMs;
      for (const [tid, counts] of sample.contextSwitches) this.contextSwitches.set(tid, counts);
    }
    if (sample.stat.state === 'Z') this.exited = true;
  }

  private window(): ProcWindow {
    const wallSeconds = (this.last.atMs - this.first.atMs) / 1000;
    const ticks = ticksPerSecond!;
    const cpuUserSeconds = (this.last.stat.userTicks - this.first.stat.userTicks) / ticks;
    const cpuSystemSeconds = (this.last.stat.systemTicks - this.first.stat.systemTicks) / ticks;
    let voluntary = 0;
    let involuntary = 0;
    for (const [tid, latest] of this.contextSwitches) {
      // A thread born inside the window counts from zero.
      const before = this.contextSwitchesAtStart.get(tid) ?? { voluntary: 0, involuntary: 0 };
      voluntary += latest.voluntary - before.voluntary;
      involuntary += latest.involuntary - before.involuntary;
    }
    return {
      wallSeconds,
      cpuUserSeconds,
      cpuSystemSeconds,
      cpuPercent: wallSeconds > 0 ? ((cpuUserSeconds + cpuSystemSeconds) / wallSeconds) * 100 : 0,
      threadsPeak: this.threadsPeak,
      fdsPeak: this.fdsPeak,
      peakRssKb: this.peakRssKb,
      voluntaryContextSwitches: voluntary,
      involuntaryContextSwitches: involuntary,
      samples: this.samples,
    };
  }
}

async function readSample(pid: number, procRoot: string, withThreads: boolean): Promise<Sample> {
  const dir = `${procRoot}/${pid}`;
  const [stat, status, fds] = await Promise.all([
    readFile(`${dir}/stat`, 'utf8').then(parseProcStat),
    readFile(`${dir}/status`, 'utf8').then(parseProcStatus),
    readdir(`${dir}/fd`).then((entries) => entries.length),
  ]);
  const contextSwitches = withThreads ? readThreadContextSwitches(dir) : null;
  return { atMs: performance.now(), stat, status, fds, contextSwitches };
}

/**
 * Context switches of every thread: /proc/PID/status counts those of the main thread only, and a
 * thread-per-connection server switches in its other threads. Read synchronously: for these tiny
 * files that costs a sixth of the CPU time of fs.promises (measured: 25 us against 150 us each).
 */
function readThreadContextSwitches(dir: string): Map<number, ContextSwitches> {
  const counts = new Map<number, ContextSwitches>();
  for (const tid of readdirSync(`${dir}/task`)) {
    try {
      const status = parseProcStatus(readFileSync(`${dir}/task/${tid}/status`, 'utf8'));
      counts.set(Number(tid), { voluntary: status.voluntaryContextSwitches, involuntary: status.involuntaryContextSwitches });
    } catch {
      // The thread ended between the listing and the read: its counts are the last ones seen.
    }
  }
  return counts;
}
