// The eBPF observer: bpftrace runs src/tracer/bpf-program.ts beside the server and counts its
// calls in the measured run itself. No thread of the server is stopped (strace stops every one
// twice per call), so a run can be measured and counted at once.
//
// Why bpftrace: it is Debian's packaged front end to eBPF (0.17 in bookworm), its one-page
// programs are read like awk, and its maps print as JSON (`-f json`). perf stat counts calls as
// cheaply but cannot time a call per thread; BCC and libbpf programs are C built against the
// kernel, more than a lab needs.
//
// It also prints one short stretch of the window event by event (calls, returns, switches of
// the server's threads), which src/tracer/timeline.ts turns into each thread's states over time.
//
// Needs: root (CAP_SYS_ADMIN on Linux before 5.8 or on Docker 20.10, which knows no CAP_BPF),
// tracefs (mounted here if absent), an x86_64 kernel (the syscall numbers, syscall-names.ts).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { diesWithThisProcess } from '../shared/dies-with-parent.js';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { constants } from 'node:os';
import { LabRunError, RuntimeUnavailableError } from '../errors.js';
import type { CallTable, SyscallCount, TraceRecord, UringOp, WaitRow } from '../shared/results.js';
import { ARM_OFFSET, bpfProgram, DOCKER_INIT, MARKER_END, PRINTED, RESET, TIMELINE, type BpfFilter, type TimelineOptions } from './bpf-program.js';
import { syscallName } from './syscall-names.js';
import { buildTimeline, parseTimelineLine, type TimelineEvent, type TimelineThread } from './timeline.js';

/** Compiling and attaching takes a second or two here; on a loaded machine, longer. */
const ATTACH_TIMEOUT_MS = 30_000;
/**
 * Printing maps of thousands of threads takes a moment; longer than this, bpftrace is stuck.
 * Shorter than the Docker runtime's wait for a sidecar (30 s), so that this error is the one seen.
 */
const STOP_TIMEOUT_MS = 20_000;
/**
 * Map entries bpftrace allows (BPFTRACE_MAP_KEYS_MAX; its default, 4096, is one lab of 1,000
 * threads making four calls each). A map that is full drops new keys.
 */
const MAP_KEYS_MAX = 262_144;
/**
 * Pages of each CPU's perf buffer (BPFTRACE_PERF_RB_PAGES, a power of two; bpftrace's default is
 * 64, 256 KB): the timeline's printf lines go through it, 48 bytes each (8 pages held 682 lines
 * with bpftrace stopped), and bpftrace, on a CPU shared with the server and its clients, may not
 * read them for a while. Measured here (2 CPUs, loaded): a busy server's stretch is 100-1,100
 * lines (epoll about 370, thread per connection about 1,000), 53 KB at most, which the default
 * holds; three processes calling in a tight loop made 10,000 lines in 50 ms and lost none at 64
 * pages, half at 8. 256 pages (1 MB a CPU) hold the program's whole cap of 20,000 lines on one CPU
 * even if bpftrace reads none of them during the stretch.
 */
const PERF_RB_PAGES = 256;
const STDERR_KEPT_CHARS = 4000;
const TRACEFS = '/sys/kernel/tracing';

/** The names of the errnos a call can return at sys_exit, by number: Node's table, strace's spelling, and the kernel's restart codes (include/linux/errno.h). */
const ERRNO_NAMES: ReadonlyMap<number, string> = (() => {
  const names = new Map<number, string>([
    [11, 'EAGAIN'],
    [35, 'EDEADLK'],
    [95, 'EOPNOTSUPP'],
    [512, 'ERESTARTSYS'],
    [513, 'ERESTARTNOINTR'],
    [514, 'ERESTARTNOHAND'],
    [516, 'ERESTART_RESTARTBLOCK'],
  ]);
  for (const [name, number] of Object.entries(constants.errno)) if (!names.has(number)) names.set(number, name);
  return names;
})();

function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/**
 * Mounts tracefs at /sys/kernel/tracing when its events are not there (a fresh machine, a
 * container), as root may. Throws RuntimeUnavailableError when it cannot.
 */
export async function ensureTracefs(): Promise<void> {
  if (await exists(`${TRACEFS}/events/raw_syscalls`)) return;
  const mounted = await run('mount', ['-t', 'tracefs', 'nodev', TRACEFS]);
  if (mounted.code !== 0 || !(await exists(`${TRACEFS}/events/raw_syscalls`))) {
    throw new RuntimeUnavailableError(`eBPF tracing needs tracefs at ${TRACEFS} (mount -t tracefs nodev ${TRACEFS}, as root): ${String(mounted.stderr).trim()}`);
  }
}

/** Runs `command` to its end: its exit code (1 when it could not start) and stderr. */
function run(command: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, (error, _stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stderr: stderr || (error?.message ?? '') });
    });
  });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * The cgroup v2 id of process `pid` (the inode of its cgroup's directory; what
 * bpf_get_current_cgroup_id returns for its threads). Reads /proc/PID/cgroup's "0::PATH" line and
 * looks PATH up in a cgroup2 mount made at `mountPoint` (seeing the whole hierarchy needs the
 * host's cgroup namespace and CAP_SYS_ADMIN: the observer sidecar has both).
 * Throws LabRunError when the process has no cgroup v2 path of its own.
 */
export async function cgroupIdOf(pid: number, mountPoint = '/run/iolab-cgroup2'): Promise<bigint> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  const path = /^0::(\S+)$/m.exec(text)?.[1];
  if (!path || path === '/') throw new LabRunError(`pid ${pid} has no cgroup v2 path of its own (/proc/${pid}/cgroup: ${JSON.stringify(text.trim())}): run the observer in the host's cgroup namespace`);
  if (!(await exists(`${mountPoint}/cgroup.controllers`))) {
    await mkdir(mountPoint, { recursive: true });
    const mounted = await run('mount', ['-t', 'cgroup2', 'none', mountPoint]);
    if (mounted.code !== 0) throw new LabRunError(`cannot mount cgroup2 at ${mountPoint}: ${mounted.stderr.trim()}`);
  }
  const directory = await stat(`${mountPoint}${path}`, { bigint: true }).catch((error: Error) => {
    throw new LabRunError(`the cgroup of pid ${pid} (${path}) is not in the cgroup2 hierarchy at ${mountPoint}: ${error.message}`);
  });
  return directory.ino;
}

/** Whether a tracer can run here: its name and version, or why not. */
export type TracerCheck = { available: true; name: string } | { available: false; reason: string };

/**
 * Whether the eBPF observer can run on this machine (or in this container): x86_64, root,
 * bpftrace installed, tracefs mounted (mounted here if it is not), and a probe on
 * raw_syscalls that loads. Never throws.
 */
export async function checkBpf(): Promise<TracerCheck> {
  if (process.arch !== 'x64') return { available: false, reason: `the eBPF observer reads x86_64 syscall numbers; this is ${process.arch}` };
  if (process.getuid?.() !== 0) return { available: false, reason: 'the eBPF observer needs root' };
  const version = await new Promise<string | null>((resolve) => execFile('bpftrace', ['--version'], (error, stdout) => resolve(error ? null : stdout.trim())));
  if (version === null) return { available: false, reason: 'bpftrace is not installed (apt-get install bpftrace)' };
  try {
    await ensureTracefs();
  } catch (error) {
    return { available: false, reason: (error as Error).message };
  }
  const loaded = await new Promise<string | null>((resolve) =>
    execFile('bpftrace', ['-e', 'tracepoint:raw_syscalls:sys_enter { exit(); }'], { timeout: ATTACH_TIMEOUT_MS }, (error, _stdout, stderr) =>
      resolve(error ? (stderr.split('\n').find((line) => line.startsWith('ERROR') && !line.includes('RLIMIT_MEMLOCK')) ?? error.message).trim() : null),
    ),
  );
  if (loaded !== null) return { available: false, reason: `bpftrace cannot load a probe here: ${loaded}` };
  return { available: true, name: version.replace(/^bpftrace v?/, 'bpftrace ') };
}

/** A stats() value: how many, and their sum. */
type Stats = { count: number; total: number };
/** What bpftrace printed, as the JSON lines of `-f json`: each map by name. */
type Maps = Map<string, number | Record<string, number | string | Stats>>;

/** A thread in a system call now, as /proc shows it: the call's x86_64 number and the thread's name. */
export type ThreadsInCalls = ReadonlyMap<number, { syscall: number; name: string }>;

/** What the timeline is built from, beside the maps: the program's stretch, its lines, and what /proc showed at the end. */
export interface BpfTimelineInput {
  options: TimelineOptions;
  servingPrefix: string;
  /** the program's timeline lines, parsed. */
  events: readonly TimelineEvent[];
  /** events bpftrace lost (its "lost_events" lines). */
  lost: number;
  /** the server's threads inside a call at the end (readThreadsInCalls); those the program never saw were in it since before tracing. */
  threadsInCalls?: ThreadsInCalls;
}

export class BpfSession {
  stderr = '';
  private readonly exited: Promise<void>;
  private readonly lines: string[] = [];
  private partial = '';
  private killed = false;
  private stopping: Promise<TraceRecord> | null = null;
  private windowStarted = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly marker: number,
    private readonly servingPrefix: string,
    private readonly timeline: TimelineOptions,
  ) {
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const text = this.partial + chunk;
      const parts = text.split('\n');
      this.partial = parts.pop()!;
      this.lines.push(...parts.filter((line) => line.trim() !== ''));
    });
    child.stderr!.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-STDERR_KEPT_CHARS);
    });
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
  }

  /**
   * Starts bpftrace on the tasks `filter` names and resolves once its probes are attached (every
   * call from then on is counted). `servingPrefix`: thread names of the model's threads;
   * `timeline`: the stretch of the window printed event by event.
   * Rejects with RuntimeUnavailableError when bpftrace is missing, LabRunError when it fails.
   */
  static async start(filter: BpfFilter, servingPrefix: string, timeline: TimelineOptions = TIMELINE): Promise<BpfSession> {
    await ensureTracefs();
    const marker = 2 ** 30 + Math.floor(Math.random() * (MARKER_END - 2 ** 30));
    const tied = diesWithThisProcess('bpftrace', ['-f', 'json', '-e', bpfProgram({ filter, marker, servingPrefix, timeline })]);
    const child = spawn(tied.command, tied.args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BPFTRACE_MAP_KEYS_MAX: String(MAP_KEYS_MAX), BPFTRACE_PERF_RB_PAGES: String(PERF_RB_PAGES) },
    });
    const session = new BpfSession(child, marker, servingPrefix, timeline);
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (error: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(poll);
        if (!error) return resolve();
        session.kill();
        reject(error);
      };
      const timer = setTimeout(() => settle(new LabRunError(`bpftrace did not attach within ${ATTACH_TIMEOUT_MS} ms${session.stderrForMessage()}`)), ATTACH_TIMEOUT_MS);
      const poll = setInterval(() => {
        if (session.lines.some((line) => line.includes('"attached\\n"'))) settle(null);
      }, 20);
      child.once('error', (error: NodeJS.ErrnoException) =>
        settle(error.code === 'ENOENT' ? new RuntimeUnavailableError('bpftrace is not installed (the eBPF observer): apt-get install bpftrace') : new LabRunError(`cannot start bpftrace: ${error.message}`)),
      );
      child.once('close', () => settle(new LabRunError(`bpftrace ended before attaching${session.stderrForMessage()}`)));
    });
    return session;
  }

  /** Starts the measured window now: calls that begin from here on are the window's. */
  startWindow(): void {
    this.windowStarted = true;
    mark(this.marker);
  }

  /** Ends the window now (stop() does, if this was not called): calls begun later are not counted. */
  endWindow(): void {
    mark(this.marker + 1);
  }

  /**
   * Ends the window (the program prints its maps then), ends bpftrace, and counts what it printed.
   * `threadsInCalls`: the server's threads in a call now (readThreadsInCalls), for the timeline.
   */
  stop(threadsInCalls?: ThreadsInCalls): Promise<TraceRecord> {
    if (!this.stopping) this.endWindow();
    this.stopping ??= this.count(threadsInCalls).finally(() => this.kill());
    return this.stopping;
  }

  /**
   * Ends the window and counts what the program printed, leaving bpftrace attached for the next
   * server (reset, then arm). Rejects with LabRunError when bpftrace does not print its counts.
   */
  collect(threadsInCalls?: ThreadsInCalls): Promise<TraceRecord> {
    if (!this.stopping) this.endWindow();
    this.stopping ??= this.count(threadsInCalls);
    return this.stopping;
  }

  /**
   * Forgets the last server (a tree filter only): every map cleared, nothing counted until
   * arm(). Resolves once bpftrace has cleared them; rejects with LabRunError when it does not
   * within STOP_TIMEOUT_MS or has ended.
   */
  async reset(): Promise<void> {
    mark(this.marker + 2);
    const done = `"${RESET}\\n"`;
    await this.waitForLine(done, 'clear its maps');
    this.lines.splice(0, this.lines.findIndex((line) => line.includes(done)) + 1);
    this.windowStarted = false;
    this.stopping = null;
  }

  /** Counts from now on the calls of `pids` and of every process they fork (a tree filter only; after reset). */
  arm(pids: readonly number[]): void {
    for (const pid of pids) mark(this.marker + ARM_OFFSET + pid);
  }

  /** bpftrace has not ended. */
  get running(): boolean {
    return !this.killed && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Teardown after a failure: bpftrace ends at once and its maps are lost. Safe to call again. */
  kill(): void {
    if (this.killed || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.killed = true;
    this.child.kill('SIGKILL');
  }

  private stderrForMessage(): string {
    // bpftrace warns that it could not raise RLIMIT_MEMLOCK: harmless on kernels that account bpf memory by cgroup (5.11+).
    const text = this.stderr
      .split('\n')
      .filter((line) => line.trim() && !line.includes('RLIMIT_MEMLOCK'))
      .join('\n')
      .trim();
    return text ? `: ${text}` : '';
  }

  /** Waits until bpftrace prints a line holding `text`; rejects with LabRunError (`what` it did not do) when it ends or STOP_TIMEOUT_MS pass first. */
  private async waitForLine(text: string, what: string): Promise<void> {
    if (this.killed) throw new LabRunError(`bpftrace was killed: it cannot ${what}`);
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (!this.lines.some((line) => line.includes(text)) && Date.now() < deadline && this.running) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (this.lines.some((line) => line.includes(text))) return;
    throw new LabRunError(`bpftrace did not ${what} within ${STOP_TIMEOUT_MS} ms${this.running ? '' : ' (it ended)'}${this.stderrForMessage()}`);
  }

  private async count(threadsInCalls?: ThreadsInCalls): Promise<TraceRecord> {
    // The window's end (endWindow) made the program print its maps.
    const printed = `"${PRINTED}\\n"`;
    await this.waitForLine(printed, 'print its counts');
    const maps = parseBpftraceJson(this.lines.slice(0, this.lines.findIndex((line) => line.includes(printed))));
    if (!maps.has('@endNs')) throw new LabRunError(`bpftrace printed no counts${this.stderrForMessage()}`);
    // The timeline's lines: all of them so far, a "spanned" line may come after the maps.
    const { events, lost } = parseTimelineLines(this.lines);
    return countBpfMaps(maps, this.windowStarted, { options: this.timeline, servingPrefix: this.servingPrefix, events, lost, threadsInCalls });
  }
}

/** What observeProcess needs of an eBPF count: a BpfSession of its own, or a LabBpf armed for one server. */
export interface BpfCount {
  startWindow(): void;
  endWindow(): void;
  /** ends the window; what was counted (`threadsInCalls`: for the timeline, see BpfSession.stop). Rejects with LabRunError. */
  stop(threadsInCalls?: ThreadsInCalls): Promise<TraceRecord>;
  /** teardown after a failure; idempotent. */
  kill(): void;
}

/**
 * One eBPF observer for a lab, a server at a time: bpftrace is started for the first server and
 * reset and armed for each next one, since starting it took 1.4–1.8 s of wall time per run here
 * (bpftrace 0.17 parsing tracefs and compiling; measured with `iolab run starvation`), as long as
 * a short run itself. A session that fails or ends is replaced by a new one at the next arm().
 */
export class LabBpf {
  private session: Promise<BpfSession> | null = null;
  private busy = false;

  constructor(private readonly servingPrefix: string) {}

  /**
   * Counts the calls of `pids` and every process they fork, until the returned count is stopped
   * or killed. Throws LabRunError while another server is being counted, or when bpftrace cannot
   * start (RuntimeUnavailableError when it is missing).
   */
  async arm(pids: readonly number[]): Promise<BpfCount> {
    if (this.busy) throw new LabRunError('the lab\'s eBPF observer is counting another server');
    this.busy = true;
    try {
      let session = await this.current();
      await session.reset().catch(async () => {
        session.kill();
        this.session = null;
        session = await this.current();
        await session.reset();
      });
      session.arm(pids);
      let released = false;
      const release = () => {
        if (!released) this.busy = false;
        released = true;
      };
      return {
        startWindow: () => session.startWindow(),
        endWindow: () => session.endWindow(),
        stop: (threadsInCalls) => session.collect(threadsInCalls).finally(release),
        kill: release,
      };
    } catch (error) {
      this.busy = false;
      throw error;
    }
  }

  /** Ends bpftrace. */
  close(): void {
    void this.session?.then((session) => session.kill(), () => {});
    this.session = null;
  }

  private async current(): Promise<BpfSession> {
    const session = await this.session?.catch(() => null);
    if (session?.running) return session;
    session?.kill();
    this.session = BpfSession.start({ kind: 'pids', pids: [] }, this.servingPrefix);
    this.session.catch(() => (this.session = null));
    return this.session;
  }
}

/** kill(pid, 0) on a pid no process has: the call fails (ESRCH) and the eBPF program notes the moment. */
function mark(pid: number): void {
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH, as meant.
  }
}

/** The maps in bpftrace's `-f json` lines ({"type": "map" or "stats", "data": {"@name": ...}}); other lines are skipped. */
export function parseBpftraceJson(lines: readonly string[]): Maps {
  const maps: Maps = new Map();
  for (const line of lines) {
    let parsed: { type?: string; data?: Record<string, number | Record<string, number | string | Stats>> };
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new LabRunError(`bpftrace printed a line that is not JSON: ${JSON.stringify(line.slice(0, 200))}`);
    }
    if ((parsed.type !== 'map' && parsed.type !== 'stats') || !parsed.data) continue;
    for (const [name, value] of Object.entries(parsed.data)) maps.set(name, value);
  }
  return maps;
}

/**
 * The timeline's lines among bpftrace's `-f json` lines (printf lines that start with
 * TIMELINE_LINE_PREFIX), parsed, and the events bpftrace said it lost. Lines that are not JSON
 * are skipped (parseBpftraceJson reports them); a timeline line that cannot be read counts as lost.
 */
export function parseTimelineLines(lines: readonly string[]): { events: TimelineEvent[]; lost: number } {
  const events: TimelineEvent[] = [];
  let lost = 0;
  for (const line of lines) {
    let parsed: { type?: string; data?: unknown };
    try {
      parsed = JSON.parse(line);
    } catch {
      continue;
    }
    if (parsed.type === 'lost_events') lost += Number((parsed.data as { events?: number } | undefined)?.events ?? 0);
    if (parsed.type !== 'printf' || typeof parsed.data !== 'string') continue;
    // A line that cannot be read is an event lost: the timeline says it is incomplete, and the
    // counts, which do not depend on it, are kept.
    try {
      const event = parseTimelineLine(parsed.data);
      if (event) events.push(event);
    } catch (error) {
      if (!(error instanceof LabRunError)) throw error;
      lost++;
    }
  }
  return { events, lost };
}

const GROUP_SERVING = 1;

/** A map keyed by several integers ("1,4242,1,45"): its entries as number tuples (a stats() map: its counts). */
function entries(maps: Maps, name: string): { key: number[]; value: number }[] {
  return statsEntries(maps, name).map(({ key, value }) => ({ key, value: value.count }));
}

/** A map keyed by several integers, each value as {count, total} (a plain value v: {count: v, total: v}). */
function statsEntries(maps: Maps, name: string): { key: number[]; value: Stats }[] {
  const map = maps.get(name);
  if (map === undefined || typeof map === 'number') return [];
  return Object.entries(map).map(([key, value]) => ({
    key: key.split(',').map(Number),
    value: typeof value === 'object' ? { count: Number(value.count), total: Number(value.total) } : { count: Number(value), total: Number(value) },
  }));
}

function scalar(maps: Maps, name: string): number | null {
  const value = maps.get(name);
  return typeof value === 'number' ? value : null;
}

/**
 * Counts the maps of bpf-program.ts into a TraceRecord (tracer "bpf"): the calls of each phase and
 * thread group, with errnos and threads per call; where the model's threads spent the window
 * (waits); the io_uring requests by opcode; with `timeline`, each thread's states over the
 * program's stretch (null without it, or when the window did not reach the stretch). As the strace
 * log is counted: a server that names no thread has every thread counted as the model's, and a
 * call in progress at the end is not counted as a call (its time in the window is: a thread
 * asleep in accept4 all along spent the window there).
 */
export function countBpfMaps(maps: Maps, windowStarted: boolean, timeline?: BpfTimelineInput): TraceRecord {
  const calls = entries(maps, '@calls');
  const errors = entries(maps, '@errors');
  const anyServing = calls.some(({ key }) => key[2] === GROUP_SERVING);
  const groupOfTid = new Map<number, 'serving' | 'runtime'>();
  const groupOf = (group: number) => (!anyServing || group === GROUP_SERVING ? 'serving' : 'runtime');
  for (const { key } of calls) {
    const group = groupOf(key[2]);
    if (groupOfTid.get(key[1]) !== 'serving') groupOfTid.set(key[1], group);
  }

  // Rows by phase/group/syscall, and the threads that made each.
  const tables = { setup: { serving: new Map<number, SyscallCount>(), runtime: new Map<number, SyscallCount>() }, window: { serving: new Map<number, SyscallCount>(), runtime: new Map<number, SyscallCount>() } };
  const callers = new Map<SyscallCount, Set<number>>();
  const rowOf = (phase: number, group: number, id: number): SyscallCount => {
    const table = tables[phase === 1 ? 'window' : 'setup'][groupOf(group)];
    let row = table.get(id);
    if (!row) {
      row = { syscall: syscallName(id), calls: 0, errors: 0, errnos: {} };
      table.set(id, row);
      callers.set(row, new Set());
    }
    return row;
  };
  for (const { key: [phase, tid, group, id], value } of calls) {
    const row = rowOf(phase, group, id);
    row.calls += value;
    callers.get(row)!.add(tid);
  }
  for (const { key: [phase, , group, id, errno], value } of errors) {
    const row = rowOf(phase, group, id);
    row.errors += value;
    const name = errnoName(errno);
    row.errnos[name] = (row.errnos[name] ?? 0) + value;
  }
  for (const [row, tids] of callers) row.threads = tids.size;
  const table = (phase: 'setup' | 'window'): CallTable => ({
    serving: [...tables[phase].serving.values()].sort((a, b) => b.calls - a.calls),
    runtime: [...tables[phase].runtime.values()].sort((a, b) => b.calls - a.calls),
  });

  const windowStart = windowStarted ? scalar(maps, '@windowStart') : null;
  const end = scalar(maps, '@windowEnd') ?? scalar(maps, '@endNs') ?? 0;
  const windowSeconds = windowStart !== null && end > windowStart ? (end - windowStart) / 1e9 : 0;
  const tids = [...groupOfTid.entries()];
  return {
    tracer: 'bpf',
    setup: table('setup'),
    window: table('window'),
    windowSeconds: Math.round(windowSeconds * 1000) / 1000,
    threads: { serving: tids.filter(([, g]) => g === 'serving').length, runtime: tids.filter(([, g]) => g === 'runtime').length },
    waits: windowStart === null ? undefined : waitsOf(maps, windowStart, end, groupOf, groupOfTid, anyServing),
    uring: uringOf(maps),
    timeline: windowStart === null || !timeline ? null : timelineOf(maps, windowStart, end, groupOf, anyServing, timeline),
  };
}

/** The timeline (buildTimeline) from the maps and the program's lines: names and groups from @comm and @group, calls in progress from @enter and @sysid. */
function timelineOf(maps: Maps, windowStart: number, end: number, groupOf: (group: number) => 'serving' | 'runtime', anyServing: boolean, input: BpfTimelineInput) {
  const groups = new Map(entries(maps, '@group').map(({ key, value }) => [key[0], value]));
  const comms = maps.get('@comm');
  const nameOf = (tid: number) => (comms && typeof comms === 'object' && typeof comms[String(tid)] === 'string' ? String(comms[String(tid)]) : null);
  const sysid = new Map(entries(maps, '@sysid').map(({ key, value }) => [key[0], value]));
  const inCallAtEnd = new Map<number, { syscall: number; enterNs: number }>();
  for (const { key: [tid], value: enterNs } of entries(maps, '@enter')) {
    const syscall = sysid.get(tid);
    if (syscall !== undefined && enterNs > 0) inCallAtEnd.set(tid, { syscall, enterNs });
  }
  // A thread in a call now that the program never saw return from a call nor enter one has been in it since before tracing began.
  const inCallSinceAttach = new Map<number, { syscall: number; name: string }>();
  for (const [tid, call] of input.threadsInCalls ?? []) if (!groups.has(tid) && !inCallAtEnd.has(tid) && call.name !== DOCKER_INIT) inCallSinceAttach.set(tid, call);
  const threadOf = (tid: number): TimelineThread => {
    const name = nameOf(tid) ?? inCallSinceAttach.get(tid)?.name ?? `thread ${tid}`;
    const group = groups.get(tid);
    if (group !== undefined) return { name, group: groupOf(group) };
    return { name, group: !anyServing || name.startsWith(input.servingPrefix) ? 'serving' : 'runtime' };
  };
  return buildTimeline({
    windowStartNs: windowStart,
    windowEndNs: end,
    offsetNs: input.options.offsetNs,
    spanNs: input.options.spanNs,
    eventsMax: input.options.eventsMax,
    events: input.events,
    inCallAtEnd,
    inCallSinceAttach,
    threadOf,
    dropped: scalar(maps, '@timelineDropped') ?? 0,
    // bpftrace says it lost events once it writes again after a full buffer, which at the end of
    // the stretch it may never do: the lines the program printed and those that came tell too
    // (its count, not atomic, can only fall short: a surplus is no loss).
    lost: Math.max(input.lost, (scalar(maps, '@timelineEvents') ?? 0) - input.events.filter((event) => event.kind !== 'spanned').length),
  });
}

function waitsOf(
  maps: Maps,
  windowStart: number,
  end: number,
  groupOf: (group: number) => 'serving' | 'runtime',
  groupOfTid: ReadonlyMap<number, 'serving' | 'runtime'>,
  anyServing: boolean,
): NonNullable<TraceRecord['waits']> {
  // Per serving thread, per call: [inside, blocked] nanoseconds in the window.
  const perThread = new Map<number, Map<number, [number, number]>>();
  const add = (tid: number, id: number, inside: number, blocked: number) => {
    let calls = perThread.get(tid);
    if (!calls) perThread.set(tid, (calls = new Map()));
    const sums = calls.get(id) ?? [0, 0];
    calls.set(id, [sums[0] + inside, sums[1] + blocked]);
  };
  for (const { key: [, tid, group, id], value } of statsEntries(maps, '@calls')) if (groupOf(group) === 'serving' && value.total > 0) add(tid, id, value.total, 0);
  for (const { key: [tid, group, id], value } of entries(maps, '@blockedNs')) if (groupOf(group) === 'serving') add(tid, id, 0, value);
  // Calls still in progress at the end: their part of the window, and the sleep in it so far.
  const sysid = new Map(entries(maps, '@sysid').map(({ key, value }) => [key[0], value]));
  const asleep = new Map(entries(maps, '@asleep').map(({ key, value }) => [key[0], value]));
  const slept = new Map(entries(maps, '@sleptNs').map(({ key, value }) => [key[0], value]));
  for (const { key: [tid], value: entered } of entries(maps, '@enter')) {
    const id = sysid.get(tid);
    const group = groupOfTid.get(tid) ?? (anyServing ? 'runtime' : 'serving');
    if (id === undefined || group !== 'serving') continue;
    const sleepingSince = asleep.get(tid);
    const blocked = (slept.get(tid) ?? 0) + (sleepingSince !== undefined ? end - Math.max(sleepingSince, windowStart) : 0);
    add(tid, id, end - Math.max(entered, windowStart), blocked);
  }
  const rows = new Map<number, WaitRow>();
  for (const calls of perThread.values()) {
    let longest: { id: number; blocked: number } | null = null;
    for (const [id, [inside, blocked]] of calls) {
      const row = rows.get(id) ?? { syscall: syscallName(id), insideSeconds: 0, blockedSeconds: 0, threads: 0, mainWaitOf: 0 };
      row.insideSeconds += inside / 1e9;
      row.blockedSeconds += blocked / 1e9;
      row.threads += 1;
      rows.set(id, row);
      if (blocked > 0 && (!longest || blocked > longest.blocked)) longest = { id, blocked };
    }
    if (longest) rows.get(longest.id)!.mainWaitOf += 1;
  }
  const rounded = (seconds: number) => Math.round(seconds * 1e6) / 1e6;
  return {
    windowSeconds: Math.round(((end - windowStart) / 1e9) * 1000) / 1000,
    threads: perThread.size,
    serving: [...rows.values()]
      .map((row) => ({ ...row, insideSeconds: rounded(row.insideSeconds), blockedSeconds: rounded(Math.min(row.blockedSeconds, row.insideSeconds)) }))
      .sort((a, b) => b.insideSeconds - a.insideSeconds),
  };
}

function uringOf(maps: Maps): NonNullable<TraceRecord['uring']> {
  const names = maps.get('@uringOpName');
  const nameOf = (opcode: number) => (names && typeof names === 'object' && typeof names[String(opcode)] === 'string' ? String(names[String(opcode)]) : `opcode ${opcode}`);
  const phases = { setup: new Map<number, UringOp>(), window: new Map<number, UringOp>() };
  const opOf = (phase: number, opcode: number): UringOp => {
    const table = phases[phase === 1 ? 'window' : 'setup'];
    let op = table.get(opcode);
    if (!op) table.set(opcode, (op = { opcode: nameOf(opcode), submitted: 0, failed: 0, errnos: {} }));
    return op;
  };
  for (const { key: [phase, opcode], value } of entries(maps, '@uringSubmitted')) opOf(phase, opcode).submitted += value;
  for (const { key: [phase, opcode, errno], value } of entries(maps, '@uringFailed')) {
    const op = opOf(phase, opcode);
    op.failed += value;
    op.errnos[errnoName(errno)] = (op.errnos[errnoName(errno)] ?? 0) + value;
  }
  const sorted = (table: Map<number, UringOp>) => [...table.values()].sort((a, b) => b.submitted - a.submitted);
  return { setup: sorted(phases.setup), window: sorted(phases.window) };
}
