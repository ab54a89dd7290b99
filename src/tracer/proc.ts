// What the kernel shows of a process in /proc: CPU time, threads, open fds, memory, context
// switches and limits. Unlike strace this costs the server nothing: the probe only reads files.
// The probe follows the server's whole process tree (ProcessTree), so that a server that forks a
// process per connection shows its children's CPU, threads and fds too.
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
import type { Limits, ProbedProcWindow } from '../shared/results.js';

const DEFAULT_PROC_ROOT = '/proc';
const DEFAULT_INTERVAL_MS = 100;
/**
 * Context switches are counted per thread, one file read per thread: about 25 us each, so a
 * thousand-thread server would cost the controller a quarter of a core if read every 100 ms.
 * They are read at the window's two ends and once a second in between (for a process that exits),
 * and so is the stat of every process of the machine (see ProcessTree). Every other read of a
 * sample is one per process of the tree, whatever its threads.
 */
const THREAD_READ_INTERVAL_MS = 1000;

/** CPU time of the whole process (every thread, living or exited), from /proc/PID/stat. */
export interface ProcStat {
  /** one letter: R running, S sleeping, D disk sleep, Z zombie, ... */
  state: string;
  parentPid: number;
  userTicks: number;
  systemTicks: number;
  /**
   * cutime and cstime: what the children this process waited for (reaped) had used, their own
   * reaped children included. A child's time is added when its parent's wait() returns it, never
   * before (it is the child's own until then) and never when the kernel reaps it unwaited (SIGCHLD
   * ignored).
   */
  reapedChildrenUserTicks: number;
  reapedChildrenSystemTicks: number;
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
    reapedChildrenUserTicks: field(16, 'cutime'),
    reapedChildrenSystemTicks: field(17, 'cstime'),
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

/**
 * The threads of processes `pids` inside a system call now, by tid: the call's x86_64 number
 * (the first field of /proc/PID/task/TID/syscall, which root or CAP_SYS_PTRACE may read; a thread
 * on a CPU shows "running", one in a fault -1) and the thread's name. Threads that end meanwhile
 * or cannot be read are left out; never throws.
 */
export async function readThreadsInCalls(pids: readonly number[], procRoot = DEFAULT_PROC_ROOT): Promise<Map<number, { syscall: number; name: string }>> {
  const found = new Map<number, { syscall: number; name: string }>();
  await Promise.all(
    pids.map(async (pid) => {
      const tids = await readdir(`${procRoot}/${pid}/task`).catch(() => [] as string[]);
      await Promise.all(
        tids.map(async (tid) => {
          const [syscall, name] = await Promise.all([readFile(`${procRoot}/${pid}/task/${tid}/syscall`, 'utf8'), readFile(`${procRoot}/${pid}/task/${tid}/comm`, 'utf8')]).catch(() => [null, null]);
          const number = syscall === null ? NaN : Number(syscall.split(' ')[0]);
          if (Number.isInteger(number) && number >= 0 && name !== null) found.set(Number(tid), { syscall: number, name: name.trimEnd() });
        }),
      );
    }),
  );
  return found;
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

/** A zombie (Z) has exited and waits for its parent's wait(); X is a task being freed. */
function isAlive(stat: ProcStat): boolean {
  return stat.state !== 'Z' && stat.state !== 'X' && stat.state !== 'x';
}

/** The tree at one reading. */
interface TreeReading {
  /** the tree's processes by pid, the root included, zombies included (their time is still theirs). */
  members: Map<number, ProcStat>;
  /** CPU time of the tree since its processes started, in clock ticks: see ProcessTree. */
  userTicks: number;
  systemTicks: number;
}

/**
 * A reading of the tree whose parents' reaped times changed while it was read is read again, this
 * many times at most; then the last reading is kept (its error: a child or two reaped then).
 */
const TREE_READ_ATTEMPTS = 3;

/**
 * A server's process tree: its own process (the root) and every descendant, found again at each
 * reading, so that a server that forks a process per connection is seen whole.
 *
 * Descendants are found by their parent pid (field 4 of /proc/PID/stat), not by
 * /proc/PID/task/TID/children. That file exists only with CONFIG_PROC_CHILDREN (a student's
 * kernel may lack it), lists the children of one thread (a process's children hang on the threads
 * that forked them: a thousand-thread server is a thousand files to read at every sample), and
 * proc(5) warns that it is reliable only while the children are stopped: "exiting children may
 * cause non-exiting children to be omitted from the list". A forking server's children exit all
 * the time. A stat file costs about 12 us to read, so a reading lists /proc (one readdir) and reads
 * the stat of the tree's processes and of the pids that are new since the last listing only: a
 * process listed before outside the tree stays outside (a process changes parent only when
 * orphaned, which takes it out of a tree, and a pid is given again only after the kernel's counter
 * went round the whole of pid_max). `everyProcess` readings (once a second) read them all anyway.
 *
 * CPU time of the tree: utime and stime (fields 14 and 15 of proc(5) /proc/PID/stat) plus cutime
 * and cstime (16 and 17, what the children it reaped had used) of every process of the tree,
 * zombies included. When a parent reaps a child, the child's time moves from its own fields to its
 * parent's, so the sum neither loses it nor counts it twice, but for two cases:
 * - a child reaped while the tree is read is missed (read after its parent, gone when its turn
 *   comes) or counted twice (read before its parent, in the parent's cutime by then): the parents'
 *   cutime and cstime are read before and after the listing, and a reading in which they changed
 *   is read again (TREE_READ_ATTEMPTS);
 * - a child the kernel reaps itself (its parent ignores SIGCHLD, a C server's idiom) adds nothing to
 *   its parent's cutime, and a subtree orphaned (its parent exited) leaves the tree: a process that
 *   is gone while its nearest ancestor still in the tree gained less reaped time than it had used
 *   keeps the difference, as "departed" time. Its time after the last reading that saw it is lost.
 */
class ProcessTree {
  /** pids of the last listing of /proc whose stat was read or needed no reading. */
  private listed = new Set<number>();
  /** the tree at the last reading. */
  private members = new Map<number, ProcStat>();
  private departedUserTicks = 0;
  private departedSystemTicks = 0;

  constructor(
    private readonly root: number,
    private readonly procRoot: string,
  ) {}

  /** Throws the read's error (ENOENT, ESRCH) when the root is gone. */
  read(everyProcess: boolean): TreeReading {
    let members = this.members;
    let listed = this.listed;
    for (let attempt = 1; attempt <= TREE_READ_ATTEMPTS; attempt++) {
      const parents = parentsOf(members, this.root);
      const before = this.reapedTicks(parents);
      ({ members, listed } = this.list(everyProcess));
      const after = this.reapedTicks(parents);
      const steady = [...parentsOf(members, this.root)].every((pid) => before.has(pid) && before.get(pid) === after.get(pid));
      if (steady) break;
    }
    this.keepDepartedTime(members);
    this.members = members;
    this.listed = listed;
    let userTicks = this.departedUserTicks;
    let systemTicks = this.departedSystemTicks;
    for (const stat of members.values()) {
      userTicks += stat.userTicks + stat.reapedChildrenUserTicks;
      systemTicks += stat.systemTicks + stat.reapedChildrenSystemTicks;
    }
    return { members, userTicks, systemTicks };
  }

  /** cutime + cstime of each of `pids` that can be read. */
  private reapedTicks(pids: Set<number>): Map<number, number> {
    const ticks = new Map<number, number>();
    for (const pid of pids) {
      const stat = readStatOrNull(`${this.procRoot}/${pid}/stat`);
      if (stat) ticks.set(pid, stat.reapedChildrenUserTicks + stat.reapedChildrenSystemTicks);
    }
    return ticks;
  }

  private list(everyProcess: boolean): { members: Map<number, ProcStat>; listed: Set<number> } {
    // Read synchronously: for these tiny files that costs a sixth of the CPU time of fs.promises.
    const rootStat = parseProcStat(readFileSync(`${this.procRoot}/${this.root}/stat`, 'utf8'));
    const listed = new Set<number>([this.root]);
    const children = new Map<number, [number, ProcStat][]>();
    for (const name of readdirSync(this.procRoot)) {
      if (!/^\d+$/.test(name)) continue;
      const pid = Number(name);
      if (pid === this.root) continue;
      const outside = !this.members.has(pid) && this.listed.has(pid);
      if (outside && !everyProcess) {
        listed.add(pid);
        continue;
      }
      const stat = readStatOrNull(`${this.procRoot}/${pid}/stat`);
      // Gone since the listing: not listed, so that a pid given again is read.
      if (!stat) continue;
      listed.add(pid);
      const siblings = children.get(stat.parentPid) ?? [];
      siblings.push([pid, stat]);
      children.set(stat.parentPid, siblings);
    }
    const members = new Map<number, ProcStat>([[this.root, rootStat]]);
    const unvisited = [this.root];
    while (unvisited.length > 0) {
      for (const [pid, stat] of children.get(unvisited.pop()!) ?? []) {
        if (members.has(pid)) continue;
        members.set(pid, stat);
        unvisited.push(pid);
      }
    }
    return { members, listed };
  }

  private keepDepartedTime(members: Map<number, ProcStat>): void {
    // What the processes gone since the last reading had used, by their nearest ancestor still here.
    const owed = new Map<number, { user: number; system: number }>();
    for (const [pid, stat] of this.members) {
      if (members.has(pid)) continue;
      let ancestor = stat.parentPid;
      // (bounded: stats read at slightly different times, with a pid given again, could loop)
      for (let steps = 0; !members.has(ancestor) && this.members.has(ancestor) && steps < this.members.size; steps++) {
        ancestor = this.members.get(ancestor)!.parentPid;
      }
      if (!members.has(ancestor)) continue;
      const sum = owed.get(ancestor) ?? { user: 0, system: 0 };
      sum.user += stat.userTicks + stat.reapedChildrenUserTicks;
      sum.system += stat.systemTicks + stat.reapedChildrenSystemTicks;
      owed.set(ancestor, sum);
    }
    for (const [pid, sum] of owed) {
      const before = this.members.get(pid);
      const now = members.get(pid)!;
      if (!before) continue;
      this.departedUserTicks += Math.max(0, sum.user - (now.reapedChildrenUserTicks - before.reapedChildrenUserTicks));
      this.departedSystemTicks += Math.max(0, sum.system - (now.reapedChildrenSystemTicks - before.reapedChildrenSystemTicks));
    }
  }
}

/** The root and every process of `members` that has a child among them. */
function parentsOf(members: Map<number, ProcStat>, root: number): Set<number> {
  const parents = new Set<number>([root]);
  for (const stat of members.values()) if (members.has(stat.parentPid)) parents.add(stat.parentPid);
  return parents;
}

function readStatOrNull(path: string): ProcStat | null {
  try {
    return parseProcStat(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

/** One reading of the tree. */
interface Sample {
  atMs: number;
  /** the root's state: Z once the server exited. */
  rootState: string;
  /** processes of the tree alive (zombies left out), the root included. */
  processes: number;
  /** threads of those processes. */
  threads: number;
  /** open fds of those processes. */
  fds: number;
  /** the root's VmHWM. */
  peakRssKb: number | null;
  /** the tree's proportional set size (the last sample only, else null), KiB. */
  pssKb: number | null;
  /** CPU time of the tree, in clock ticks: see ProcessTree. */
  userTicks: number;
  systemTicks: number;
  /** per thread id (unique across the tree's processes): /proc has no process-wide count. null when not read this time. */
  contextSwitches: Map<number, ContextSwitches> | null;
}

export interface ProcProbeOptions {
  /** time between two samples of processes, threads, fds and memory. Default 100 ms. */
  intervalMs?: number;
  procRoot?: string;
}

/**
 * A sample reads at most this share of the time: one that took longer than a tenth of the
 * interval (a tree of a thousand processes: a stat and an fd listing each, about 30 ms) pushes the
 * next one back, to ten times its own duration. The per-thread reads once a second are not counted.
 */
const MOST_TIME_READING = 0.1;

let ticksPerSecond: number | null = null;

/**
 * Samples a server's process tree (see ProcessTree) from start() to stop(): CPU time as a
 * difference of the two ends, processes, threads, fds and peak memory as maxima over the samples
 * in between (a peak that lasts less than an interval can be missed). For a server of one process
 * every figure is that process's.
 */
export class ProcProbe {
  private readonly first: Sample;
  private last: Sample;
  private samples = 1;
  private processesPeak: number;
  private threadsPeak: number;
  private fdsPeak: number;
  private peakRssKb: number;
  /** latest context switch counts of every thread seen, including threads that have exited since. */
  private readonly contextSwitches: Map<number, ContextSwitches>;
  private readonly contextSwitchesAtStart: Map<number, ContextSwitches>;
  private threadsReadAtMs: number;
  private lastSampleMs = 0;
  private exited = false;
  private stopped = false;
  private stopping: Promise<ProbedProcWindow> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> = Promise.resolve();

  private constructor(
    readonly pid: number,
    private readonly procRoot: string,
    private readonly intervalMs: number,
    private readonly tree: ProcessTree,
    first: Sample,
  ) {
    this.first = this.last = first;
    this.processesPeak = first.processes;
    this.threadsPeak = first.threads;
    this.fdsPeak = first.fds;
    this.peakRssKb = first.peakRssKb ?? 0;
    this.contextSwitchesAtStart = first.contextSwitches!;
    this.contextSwitches = new Map(first.contextSwitches!);
    this.threadsReadAtMs = first.atMs;
  }

  /** Reads a first sample (rejects if the process cannot be read), then samples every interval. */
  static async start(pid: number, options: ProcProbeOptions = {}): Promise<ProcProbe> {
    const procRoot = options.procRoot ?? DEFAULT_PROC_ROOT;
    ticksPerSecond ??= clockTicksPerSecond();
    const tree = new ProcessTree(pid, procRoot);
    let first: Sample;
    try {
      first = readSample(pid, procRoot, tree, true);
    } catch (error) {
      throw new LabRunError(`cannot probe pid ${pid} in ${procRoot}: ${(error as Error).message}`);
    }
    const probe = new ProcProbe(pid, procRoot, options.intervalMs ?? DEFAULT_INTERVAL_MS, tree, first);
    probe.scheduleNext();
    return probe;
  }

  /** Takes a last sample (when the process still runs) and returns the measured window. */
  stop(): Promise<ProbedProcWindow> {
    this.stopping ??= this.takeLastSample();
    return this.stopping;
  }

  private async takeLastSample(): Promise<ProbedProcWindow> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.sampling;
    await this.sample(true);
    return this.window();
  }

  private scheduleNext(): void {
    // One sample at a time: the next is scheduled when the previous one is done, never overlapping.
    const delay = Math.max(this.intervalMs, this.lastSampleMs / MOST_TIME_READING);
    this.timer = setTimeout(() => {
      this.sampling = this.sample().then(() => {
        if (!this.stopped && !this.exited) this.scheduleNext();
      });
    }, delay);
    // The probe alone must not keep the controller alive.
    this.timer.unref();
  }

  private async sample(last = false): Promise<void> {
    if (this.exited) return;
    const began = performance.now();
    const withThreads = last || began - this.threadsReadAtMs >= THREAD_READ_INTERVAL_MS;
    let sample: Sample;
    try {
      sample = readSample(this.pid, this.procRoot, this.tree, withThreads, last);
    } catch (error) {
      // Gone (ENOENT, ESRCH) or a zombie being reaped: the window ends at the last good sample.
      // Anything else skips this one sample.
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH') this.exited = true;
      return;
    } finally {
      // The per-thread reads have their own cadence (THREAD_READ_INTERVAL_MS): not counted here.
      if (!withThreads) this.lastSampleMs = performance.now() - began;
    }
    this.last = sample;
    this.samples += 1;
    this.processesPeak = Math.max(this.processesPeak, sample.processes);
    this.threadsPeak = Math.max(this.threadsPeak, sample.threads);
    this.fdsPeak = Math.max(this.fdsPeak, sample.fds);
    this.peakRssKb = Math.max(this.peakRssKb, sample.peakRssKb ?? 0);
    if (sample.contextSwitches) {
      this.threadsReadAtMs = sample.atMs;
      for (const [tid, counts] of sample.contextSwitches) this.contextSwitches.set(tid, counts);
    }
    if (sample.rootState === 'Z') this.exited = true;
  }

  private window(): ProbedProcWindow {
    const wallSeconds = (this.last.atMs - this.first.atMs) / 1000;
    const ticks = ticksPerSecond!;
    // A subtree that left the tree between the ends (orphaned, its time kept as departed) cannot
    // make it negative, but a reading whose races outlasted TREE_READ_ATTEMPTS could, by a tick or two.
    const cpuUserSeconds = Math.max(0, this.last.userTicks - this.first.userTicks) / ticks;
    const cpuSystemSeconds = Math.max(0, this.last.systemTicks - this.first.systemTicks) / ticks;
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
      processesPeak: this.processesPeak,
      threadsPeak: this.threadsPeak,
      fdsPeak: this.fdsPeak,
      peakRssKb: this.peakRssKb,
      pssKb: this.last.pssKb,
      voluntaryContextSwitches: voluntary,
      involuntaryContextSwitches: involuntary,
      samples: this.samples,
    };
  }
}

/** Pss of /proc/PID/smaps_rollup (proc(5)), KiB: the process's share of every page it maps. */
export function parseSmapsRollupPss(text: string): number | null {
  const match = /^Pss:\s+(\d+) kB$/m.exec(text);
  return match ? Number(match[1]) : null;
}

/**
 * Reads the tree, then the root's memory and, of every process alive, its fds (and, withThreads,
 * its threads' context switches; withPss, its Pss, summed: smaps_rollup walks every mapping, too
 * dear for every sample). The root's files must be read; a descendant that exits meanwhile counts
 * for what was read of it.
 */
function readSample(pid: number, procRoot: string, tree: ProcessTree, withThreads: boolean, withPss = false): Sample {
  const { members, userTicks, systemTicks } = tree.read(withThreads);
  const status = parseProcStatus(readFileSync(`${procRoot}/${pid}/status`, 'utf8'));
  const contextSwitches = withThreads ? new Map<number, ContextSwitches>() : null;
  let processes = 0;
  let threads = 0;
  let fds = 0;
  let pss: number | null = withPss ? 0 : null;
  for (const [member, stat] of members) {
    if (!isAlive(stat)) continue;
    const dir = `${procRoot}/${member}`;
    const isRoot = member === pid;
    processes += 1;
    threads += stat.threads;
    try {
      fds += readdirSync(`${dir}/fd`).length;
      if (contextSwitches) readThreadContextSwitches(dir, contextSwitches);
      if (pss !== null) pss += parseSmapsRollupPss(readFileSync(`${dir}/smaps_rollup`, 'utf8')) ?? 0;
    } catch (error) {
      if (isRoot) throw error;
    }
  }
  return { atMs: performance.now(), rootState: members.get(pid)!.state, processes, threads, fds, peakRssKb: status.peakRssKb, pssKb: pss, userTicks, systemTicks, contextSwitches };
}

/**
 * Context switches of every thread of one process, into `counts`: /proc/PID/status counts those of
 * the main thread only, and a thread-per-connection server switches in its other threads. Read
 * synchronously: for these tiny files that costs a sixth of the CPU time of fs.promises (measured:
 * 25 us against 150 us each).
 */
function readThreadContextSwitches(dir: string, counts: Map<number, ContextSwitches>): void {
  for (const tid of readdirSync(`${dir}/task`)) {
    try {
      const status = parseProcStatus(readFileSync(`${dir}/task/${tid}/status`, 'utf8'));
      counts.set(Number(tid), { voluntary: status.voluntaryContextSwitches, involuntary: status.involuntaryContextSwitches });
    } catch {
      // The thread ended between the listing and the read: its counts are the last ones seen.
    }
  }
}
