// results.json: everything one lab run measured, what each server declared, and the analysis
// (figures, verdicts, observations) computed from it once, when the lab ended. The report is
// rendered from this file alone; it never reaches into a runtime and never judges again, so a
// results.json re-rendered by a later iolab keeps the verdicts it was written with.
//
// Versions (RESULTS_SCHEMA_VERSION; bump it on any change an old reader would misread):
//   1  the runs only; the report derived figures and verdicts when it was rendered.
//   2  the analysis is stored (analysis: figures, verdicts with the figures they rest on,
//      observations); each server's declaration (traits, fingerprint); the lab's description and
//      clients; syscall counts per phase (connection set-up, measured window) and per thread
//      group (the model's threads, the runtime's), with errnos; each run's host load and server
//      events; each client's warm-up and connections answered.
//      Added since, optional: an experiment lab's `experiment` and `analysis.experiment`
//      (shared/experiments.ts), with no variants and no runs; an earlier reader of version 2
//      refuses such a file (it asks for at least one variant) rather than misreading it.
//      Also optional: an open-loop echo client's `openLoop` and `rate` (its latency then timed from
//      each request's scheduled send time), latency's `p999Us`; an earlier reader ignores them.
// A reader takes version 2 and later versions it knows how to read; version 1 has no verdicts
// to keep, so it is refused with that reason.
import { z } from 'zod';
import { SpreadSchema, type Spread } from './spread.js';
import { ModelDeclarationSchema } from './model.js';
import { ServerEventCountsSchema } from './server-events.js';
import { ClaimVerdictSchema } from './verdicts.js';
import { ExperimentFiguresSchema, ExperimentRecordSchema } from './experiments.js';

export const RESULTS_SCHEMA_VERSION = 2;

const count = () => z.number().finite().int().nonnegative();

/** One system call of a traced thread group: how often it was made, how often it failed, and with which errno. */
export const SyscallCountSchema = z.object({
  syscall: z.string(),
  calls: count(),
  /** calls that returned -1 (an errno). */
  errors: count(),
  /** the errors by errno code, e.g. { EAGAIN: 41230 }. */
  errnos: z.record(z.string(), count()),
  /**
   * readiness calls that are handed their fds (select, pselect6, poll, ppoll): the most fds one
   * call watched, and the distinct fd numbers watched (at most WATCHED_FDS_KEPT). Absent for
   * every other call, and where counts come from a summary (strace -c) that has no arguments.
   */
  watched: z.object({ max: count(), fds: z.array(count()) }).optional(),
  /** how many threads made the call (in one table; where tables are merged, the most of any). */
  threads: count().optional(),
  /** the flags of NOTABLE_FLAGS seen in its arguments (epoll_ctl: EPOLLET; clone: CLONE_THREAD), when any was. */
  flags: z.array(z.string()).optional(),
});
export type SyscallCount = z.infer<typeof SyscallCountSchema>;

/**
 * The calls of one phase of a traced run, split by the thread that made them:
 *   serving  the threads that run the model's code (a thread names itself `iolab:...` when it
 *            starts serving; a server that names no thread has all its threads counted here)
 *   runtime  the language runtime's other threads (Node: V8's platform workers, a new thread's
 *            start-up before it serves)
 */
export const CallTableSchema = z.object({
  serving: z.array(SyscallCountSchema),
  runtime: z.array(SyscallCountSchema),
});
export type CallTable = z.infer<typeof CallTableSchema>;

/**
 * Flags that tell how a server uses a call, kept when its arguments show them: an edge-triggered
 * (EPOLLET) or one-shot (EPOLLONESHOT) registration, a clone that starts a thread (CLONE_THREAD)
 * rather than a process. See epoll_ctl(2) and clone(2).
 */
export const NOTABLE_FLAGS = ['EPOLLET', 'EPOLLONESHOT', 'CLONE_THREAD'] as const;

/** How many distinct watched fd numbers a count keeps: enough to tell "only the listener" from "the connections". */
export const WATCHED_FDS_KEPT = 8;

/** The fds two sets of readiness calls watched, together. */
export function mergeWatched(a: SyscallCount['watched'], b: NonNullable<SyscallCount['watched']>): NonNullable<SyscallCount['watched']> {
  const fds = [...new Set([...(a?.fds ?? []), ...b.fds])].sort((x, y) => x - y).slice(0, WATCHED_FDS_KEPT);
  return { max: Math.max(a?.max ?? 0, b.max), fds };
}

/** Adds several lists of counts into one, a row per syscall (errnos added too), in first-seen order. */
export function mergeCounts(...lists: readonly (readonly SyscallCount[])[]): SyscallCount[] {
  const bySyscall = new Map<string, SyscallCount>();
  for (const row of lists.flat()) {
    const sum = bySyscall.get(row.syscall) ?? { syscall: row.syscall, calls: 0, errors: 0, errnos: {} };
    sum.calls += row.calls;
    sum.errors += row.errors;
    for (const [errno, n] of Object.entries(row.errnos)) sum.errnos[errno] = (sum.errnos[errno] ?? 0) + n;
    if (row.watched) sum.watched = mergeWatched(sum.watched, row.watched);
    if (row.threads !== undefined) sum.threads = Math.max(sum.threads ?? 0, row.threads);
    if (row.flags) sum.flags = [...new Set([...(sum.flags ?? []), ...row.flags])];
    bySyscall.set(row.syscall, sum);
  }
  return [...bySyscall.values()];
}

/**
 * Where the threads of one group spent the measured window, per call (the eBPF observer only):
 * wall time inside the call, and the part of it they slept there (off the CPU, not runnable:
 * waiting for the kernel to have something for them). What is left of a thread's window was
 * spent outside any call (running its own code) or waiting for a CPU.
 */
export const WaitRowSchema = z.object({
  syscall: z.string(),
  /** seconds inside the call in the window, summed over the group's threads. */
  insideSeconds: z.number().finite().nonnegative(),
  /** of those, seconds asleep in it (sched_switch out with a state other than running). */
  blockedSeconds: z.number().finite().nonnegative(),
  /** threads that were inside it during the window. */
  threads: count(),
  /** threads whose longest sleep of the window was in this call. */
  mainWaitOf: count(),
});
export type WaitRow = z.infer<typeof WaitRowSchema>;

export const WaitsSchema = z.object({
  /** from the window's start to the tracer's end, in seconds: each thread's time to share. */
  windowSeconds: z.number().finite().nonnegative(),
  /** the model's threads alive in the window (they made a call in it, or were in one). */
  threads: count(),
  /** the model's threads (group "serving"), a row per call, most time inside first. */
  serving: z.array(WaitRowSchema),
});
export type Waits = z.infer<typeof WaitsSchema>;

/** io_uring requests the kernel ran for the server, by opcode name ("RECV", "SEND", "ACCEPT"). */
export const UringOpSchema = z.object({
  opcode: z.string(),
  submitted: count(),
  /** completions with a negative result, by errno code. */
  failed: count(),
  errnos: z.record(z.string(), count()),
});
export type UringOp = z.infer<typeof UringOpSchema>;

/**
 * A thread's state on the timeline: running on a CPU outside any call (its own code); in-call,
 * inside a call on a CPU; blocked, inside a call asleep (switched out not runnable); runnable,
 * switched out while it could run (preempted, waiting for a CPU), inside a call or not.
 */
export const TimelineStateSchema = z.enum(['running', 'in-call', 'blocked', 'runnable']);
export type TimelineState = z.infer<typeof TimelineStateSchema>;

/**
 * One short stretch of the measured window, event by event (the eBPF observer only, from
 * src/tracer/timeline.ts): for a chart with a row per thread, time on the x-axis, coloured by
 * state. Times are microseconds from the stretch's start, to 0.1 µs.
 */
export const TimelineSchema = z
  .object({
    /** the stretch's start, microseconds after the measured window's start. */
    startUs: z.number().finite().nonnegative(),
    /** the stretch's length in microseconds (the program's setting, even when truncated says the data ends earlier). */
    spanUs: z.number().finite().positive(),
    /** every thread of the server seen in the stretch or inside one call across it: the model's ("serving") first. */
    threads: z.array(z.object({ tid: count(), name: z.string(), group: z.enum(['serving', 'runtime']) })),
    /** [index into threads, from µs, to µs, state, the call it is in or null]: in time order per thread, contiguous where known. */
    segments: z.array(z.tuple([count(), z.number().finite().nonnegative(), z.number().finite().nonnegative(), TimelineStateSchema, z.string().nullable()])),
    /** the events the program printed for the stretch (calls, returns, switches). */
    events: count(),
    /** why the timeline is incomplete (the program's cap, events bpftrace lost, caps on rows or segments), or null. */
    truncated: z.string().nullable(),
  })
  .superRefine((timeline, context) => {
    timeline.segments.forEach(([thread, from, to], i) => {
      if (thread >= timeline.threads.length) context.addIssue({ code: 'custom', path: ['segments', i, 0], message: `thread ${thread} of ${timeline.threads.length}` });
      if (from > to || to > timeline.spanUs) context.addIssue({ code: 'custom', path: ['segments', i], message: `from ${from} to ${to} µs: not within [0, ${timeline.spanUs}]` });
    });
  });
export type Timeline = z.infer<typeof TimelineSchema>;

/** What the tracer counted in one run. */
export const TraceRecordSchema = z.object({
  /** which tracer counted: "strace" (ptrace, a traced run of its own) or "bpf" (eBPF, in the measured run). Absent: strace. */
  tracer: z.enum(['strace', 'bpf']).optional(),
  /** from attaching (after the server's ready line) to the start of the measured window: connecting, warming up. */
  setup: CallTableSchema,
  /** the measured window and the drain after it: steady state, the requests the clients' windows sent. */
  window: CallTableSchema,
  /** how long the window counted, in seconds (the clients' windows, and their drain). */
  windowSeconds: z.number().finite().nonnegative(),
  /** threads seen while tracing, by group. */
  threads: z.object({ serving: count(), runtime: count() }),
  /** where the model's threads spent the window (bpf only). */
  waits: WaitsSchema.optional(),
  /** the io_uring requests of each phase (bpf only; absent or empty for a server that makes none). */
  uring: z.object({ setup: z.array(UringOpSchema), window: z.array(UringOpSchema) }).optional(),
  /** each thread's state over a short stretch of the window (bpf only: null under strace, which cannot time switches; absent in results written before). */
  timeline: TimelineSchema.nullable().optional(),
});
export type TraceRecord = z.infer<typeof TraceRecordSchema>;

/** Every call of a traced run, whatever its phase and thread: what `strace -f -c` would have counted. */
export function allCalls(trace: TraceRecord): SyscallCount[] {
  return mergeCounts(trace.setup.serving, trace.setup.runtime, trace.window.serving, trace.window.runtime);
}

/**
 * The machine around one run's window, from /proc/stat and /proc/loadavg (proc(5)): what else
 * competed for the CPUs while the server and its clients were measured.
 */
export const HostLoadSchema = z.object({
  cpus: count(),
  /** every CPU's busy time (user, nice, system, irq, softirq, steal) over the window, in percent of one core. */
  busyPercent: z.number().finite().nonnegative(),
  /** time the hypervisor gave this machine's CPUs to others, in percent of one core. */
  stealPercent: z.number().finite().nonnegative(),
  /** the 1-minute load average at the window's end. */
  loadAverage: z.number().finite().nonnegative(),
});
export type HostLoad = z.infer<typeof HostLoadSchema>;

/**
 * The kernel's memory around one run, machine-wide (src/tracer/kernel-memory.ts): read with the
 * server idle before any client, and again with every client's connections established, warmed
 * up and idle, just before the window; these are the differences. Both ends of each connection
 * are sockets of this one kernel. Whatever else the machine did in between is in them too.
 */
export const KernelMemorySchema = z.object({
  /** seconds between the two readings. */
  seconds: z.number().finite().nonnegative(),
  /** growth of /proc/meminfo Slab (every slab cache, with its slabs' free space), KiB; negative: freed meanwhile. */
  slabKb: z.number().finite(),
  /** growth of /proc/meminfo SUnreclaim, KiB. */
  unreclaimableKb: z.number().finite(),
  /** growth of every /proc/slabinfo cache's active objects times its object size, summed, bytes; null without slabinfo. */
  cacheBytes: z.number().finite().nullable(),
  /** the caches that changed most (at least 16 KiB), largest change first: objects (active_objs) and bytes gained; null without slabinfo. */
  caches: z.array(z.object({ name: z.string(), objectBytes: count(), objects: z.number().finite().int(), bytes: z.number().finite().int() })).nullable(),
  /** why /proc/slabinfo could not be read (it is root's only), or null. */
  cachesUnreadable: z.string().nullable(),
  /** /proc/net/sockstat "TCP: ... mem": pages of TCP socket buffers, machine-wide, at the two readings; null without it. */
  tcpBufferPages: z.object({ before: count(), held: count() }).nullable(),
  /** bytes per page of those pages. */
  pageBytes: count(),
});
export type KernelMemory = z.infer<typeof KernelMemorySchema>;

/**
 * What the /proc probe saw of the server over the measured window: of its process tree, the
 * server's process and every descendant alive at a sample (src/tracer/proc.ts), so that a server
 * that forks a process per connection is seen whole. For a server of one process every figure is
 * that process's, as before the probe followed the tree.
 */
export const ProcWindowSchema = z.object({
  /** seconds from the first sample to the last. */
  wallSeconds: z.number().finite().nonnegative(),
  /**
   * CPU seconds in user mode of the tree over the window: utime plus cutime (what reaped children
   * had used) of each process of the tree, fields 14 and 16 of /proc/PID/stat (proc(5)), zombies
   * included; a child the kernel reaped unwaited (SIGCHLD ignored) counts for what the last sample
   * that saw it read.
   */
  cpuUserSeconds: z.number().finite().nonnegative(),
  /** the same in kernel mode: stime plus cstime, fields 15 and 17. */
  cpuSystemSeconds: z.number().finite().nonnegative(),
  /** (user + system) / wall, in percent of one core; above 100 with several busy threads or processes. */
  cpuPercent: z.number().finite().nonnegative(),
  /**
   * the most processes of the tree alive (zombies left out) at one sample, the server's own
   * included: 1 for a server that does not fork. Absent from results written before the probe
   * followed the tree, when it was always 1.
   */
  processesPeak: z.number().finite().int().nonnegative().optional(),
  /** the most tasks (the threads of every process of the tree) at one sample; a single process: its threads. */
  threadsPeak: z.number().finite().int().nonnegative(),
  /** the most open fds (entries of /proc/PID/fd) at one sample, summed over the tree: an fd inherited across fork counts in each process that holds it. */
  fdsPeak: z.number().finite().int().nonnegative(),
  /**
   * the server's own process's peak resident set (VmHWM of /proc/PID/status), KiB; its
   * descendants' are not added (a forked child shares most of its pages with its parent).
   */
  peakRssKb: z.number().finite().int().nonnegative(),
  /**
   * the proportional set size of the whole tree at the window's end (Pss of each process's
   * /proc/PID/smaps_rollup, summed), KiB: a page shared by N processes counts 1/N in each, so the
   * copy-on-write pages a fork shares with its parent count once. null: the server was gone by
   * then. Absent from older results.
   */
  pssKb: z.number().finite().int().nonnegative().nullable().optional(),
  /** of every thread of the tree, read at the window's ends and once a second (a thread that ended counts up to its last read). */
  voluntaryContextSwitches: z.number().finite().int().nonnegative(),
  involuntaryContextSwitches: z.number().finite().int().nonnegative(),
  /** samples read over the window (one every 100 ms, fewer for a tree so large that reading it takes long). */
  samples: z.number().finite().int().nonnegative(),
});
export type ProcWindow = z.infer<typeof ProcWindowSchema>;
/** A window as the probe measures it today: every field there (processesPeak is absent only from older results.json). */
export type ProbedProcWindow = Required<ProcWindow>;

/** The limits that decide how many connections a server can hold. */
export const LimitsSchema = z.object({
  nofileSoft: z.number().finite().nullable(),
  nofileHard: z.number().finite().nullable(),
  /** glibc's fd_set size: select(2) through the C library watches fds below it only. */
  fdSetSize: z.number().finite().int(),
  nrOpen: z.number().finite().int().nullable(),
  fileMax: z.number().finite().nullable(),
});
export type Limits = z.infer<typeof LimitsSchema>;

export const LatencySchema = z.object({
  count: z.number().finite().int().nonnegative(),
  meanUs: z.number().finite().nonnegative(),
  p50Us: z.number().finite().nonnegative(),
  p90Us: z.number().finite().nonnegative(),
  p99Us: z.number().finite().nonnegative(),
  /** the 99.9th percentile; absent from results written before clients measured it. */
  p999Us: z.number().finite().nonnegative().optional(),
  maxUs: z.number().finite().nonnegative(),
});
export type Latency = z.infer<typeof LatencySchema>;

/**
 * An open-loop echo client (a `rate`): each connection sends request k at its scheduled send time
 * t0 + k/rate (the connections' t0 staggered across one interval), or when the reply to request
 * k-1 comes if that is later (one request in flight per connection), as wrk2 does. The client's
 * `latency` is then measured from each request's scheduled send time, not from when it was sent:
 * a request that had to wait for the one before it counts that wait (wrk2's correction for
 * coordinated omission). A request scheduled in the window that has no reply when the client
 * stops (its drain over) is recorded at its wait so far, a lower bound: a connection the server
 * never serves cannot drop out of the percentiles.
 */
export const OpenLoopSchema = z.object({
  /** requests per second per connection, as asked. */
  ratePerConnection: z.number().finite().positive(),
  /** requests per second the schedule offered: the rate times the connections that took part in the window. */
  offeredPerSecond: z.number().finite().nonnegative(),
  /** requests whose scheduled send time fell in the window. */
  scheduled: count(),
  /** of them, sent after their scheduled time because the connection still awaited the reply to the one before. */
  sentLate: count(),
  /** of them, never sent: the reply to the one before had not come when the window and its drain ended, or the server closed the connection. */
  notSent: count(),
  /** requests recorded in `latency` at their wait so far (no reply by the end): the unanswered and the never sent on connections still open. */
  lowerBounds: count(),
  /**
   * the same requests' latency from the moment each was actually sent (what a closed-loop client
   * would report: coordinated omission uncorrected); answered requests only. A warm-up request
   * still in flight when the window starts counts from its scheduled time (the window's start).
   */
  serviceLatency: LatencySchema,
  /** how late the client itself sent the requests it could send on time (its timer's and loop's error), µs. */
  sendLag: z.object({ p99Us: z.number().finite().nonnegative(), maxUs: z.number().finite().nonnegative() }),
});
export type OpenLoop = z.infer<typeof OpenLoopSchema>;

/** The one JSON line a client prints on stdout when it ends. */
/** How a load generator does its IO: one io_uring_enter for many requests, or epoll_wait + recv + send per request. */
export const ClientEngineSchema = z.enum(['io_uring', 'epoll']);
export type ClientEngine = z.infer<typeof ClientEngineSchema>;

export const ClientResultSchema = z.object({
  mode: z.enum(['echo', 'hold']),
  target: z.string(),
  connectionsRequested: count(),
  /** connections that completed the TCP handshake (hold: the idle crowd, without the probe). */
  connected: count(),
  /**
   * Before its window each connection sent one request and waited for the reply (not counted
   * below), so that the window measures a server that has accepted and is serving every
   * connection. It ends when every connection was answered, or when no new one was for a while
   * (a server that serves one client at a time never answers the rest).
   */
  warmup: z.object({ connections: count(), answered: count(), seconds: z.number().finite().nonnegative() }),
  durationSeconds: z.number().finite().nonnegative(),
  messageSize: count(),
  /** requests of the window: those sent in it, and warm-up requests still unanswered when it started. */
  requestsSent: count(),
  /** replies received complete and correct within the window. */
  roundTrips: count(),
  /** requests in flight when the window ended whose reply came in the short drain after it. */
  answeredAfterWindow: count(),
  /** requests still waiting for (part of) their reply when the client stopped. */
  unanswered: count(),
  /** replies whose bytes differed from the expected echo. */
  wrongReplies: count(),
  /** echo: connections that got at least one reply in the window or its drain (hold: 0). */
  connectionsAnswered: count(),
  /** connections the server closed or reset while the client was using them. */
  closedByServer: count(),
  /** failed connects by errno code, e.g. { ECONNREFUSED: 3 }. */
  connectErrors: z.record(z.string(), z.number().finite().int()),
  /** echo: each round trip's latency (open-loop: from each request's scheduled send time, see OpenLoopSchema). */
  latency: LatencySchema,
  /** an open-loop echo client's schedule and what became of it; absent for a closed-loop one (and in older results). */
  openLoop: OpenLoopSchema.optional(),
  /** hold: a separate probe connection, opened after the crowd, that asks every 100 ms. */
  probe: z
    .object({
      sent: count(),
      answered: count(),
      latency: LatencySchema,
    })
    .nullable(),
  /** the client's own CPU over its window, in percent of one core: near 100, it may be what limits the measurement. */
  cpuPercent: z.number().finite().nonnegative(),
  /**
   * echo: what drove the window's IO (src/clients/echo-uring.ts): io_uring, or epoll where
   * io_uring is unavailable. Absent from results written before the client had both, and for hold.
   */
  engine: ClientEngineSchema.optional(),
  /** free-text problems worth showing (first occurrences only). */
  notes: z.array(z.string()),
});
export type ClientResult = z.infer<typeof ClientResultSchema>;

export const ClientRecordSchema = z.object({
  /** the lab's name for the client. */
  name: z.string(),
  /** with --clients N, which of the N processes (containers) of this client: 0 to N-1. */
  replica: count(),
  mode: z.enum(['echo', 'hold']),
  connections: z.number().finite().int(),
  messageSize: count(),
  /** an open-loop echo client's requests per second per connection; absent: closed loop. */
  rate: z.number().finite().positive().optional(),
  result: ClientResultSchema.nullable(),
  /** why there is no result (the client crashed, timed out, printed no JSON). */
  error: z.string().nullable(),
});
export type ClientRecord = z.infer<typeof ClientRecordSchema>;

/** One server started, loaded by the lab's clients and stopped. */
export const RunRecordSchema = z.object({
  model: z.string(),
  /** the lab's name for this server: the model's name, or a variant's label (epoll-nofile-1024). */
  variant: z.string(),
  /** in a lab with a sweep: the swept client's connections in this run. */
  sweepValue: z.number().finite().int().nullable(),
  /** measure: no tracer attached (timings, CPU). trace: strace attached (syscall counts). */
  phase: z.enum(['measure', 'trace']),
  repetition: count(),
  startedAt: z.string(),
  durationSeconds: z.number().finite().nonnegative(),
  serverPid: z.number().finite().int().nullable(),
  /** the server's language runtime as it announced itself ("node v18.19.0"); null when it did not. */
  serverRuntime: z.string().nullable(),
  clients: z.array(ClientRecordSchema),
  proc: ProcWindowSchema.nullable(),
  /** the idle server right after its ready line, before any client: processes, threads, fds and RSS to subtract. */
  baseline: ProcWindowSchema.nullable(),
  limits: LimitsSchema.nullable(),
  /** trace runs: what the tracer counted; null in measure runs. */
  trace: TraceRecordSchema.nullable(),
  /** the machine during the window; null when the window never started. */
  host: HostLoadSchema.nullable(),
  /** the kernel's memory with every connection held against the idle server's; null when not read; absent from older results. */
  kernel: KernelMemorySchema.nullable().optional(),
  /** the server's events (refused connections, fd exhaustion), every one counted. */
  events: ServerEventCountsSchema,
  /** lines the server wrote on stderr other than events, the first 50. */
  serverLog: z.array(z.string()),
  /** why the run is incomplete, when it is. */
  error: z.string().nullable(),
});
export type RunRecord = z.infer<typeof RunRecordSchema>;

/** One server of a lab: a model with its options and nofile, and what the model declares. */
export const VariantRecordSchema = z.object({
  label: z.string(),
  model: z.string(),
  nofile: z.number().finite().int().nullable(),
  /** the model's options with their defaults filled in (pool threads, coroutine blocking call, epoll-et drain). */
  options: z.object({ threads: z.number().finite().int(), blockingCallMs: z.number().finite().int(), drain: z.boolean() }),
  /**
   * what its model declares: for a server of one's own, the model it claims to be (`as`) or,
   * unclaimed, the model its fingerprint fits (set by the analysis); null when it fits none.
   */
  declared: ModelDeclarationSchema.nullable(),
  /** a server of one's own (`server: DIR`, `command: [...]`, `--server`); absent for a model of the registry. */
  own: z
    .object({
      /** its directory (or command) as given. */
      source: z.string(),
      /** how it ran: "server.py (Python)". */
      description: z.string(),
      /** the model it claims to be (`as`), or null. */
      claims: z.string().nullable(),
      /** unclaimed: every model it was classified against, in the registry's order. */
      candidates: z.array(ModelDeclarationSchema),
      /**
       * unclaimed: the models whose fingerprint (by job) its counted calls fit and whose traits
       * (a thread or a process per connection, spinning) its measurements do not contradict, set by
       * the analysis; null before.
       */
      fits: z.array(z.string()).nullable(),
      /** unclaimed: those measurements in words ("it added 1.00 processes or more per open connection; 0% of its reads ... failed with EAGAIN"). */
      evidence: z.string().optional(),
    })
    .optional(),
  /** the tracer its measured runs ran under, when the lab set one for this server alone ("none": untraced); absent: the lab's. */
  tracer: z.enum(['none', 'bpf', 'strace']).optional(),
});
export type VariantRecord = z.infer<typeof VariantRecordSchema>;

export const LabRecordSchema = z.object({
  name: z.string(),
  title: z.string(),
  claim: z.string(),
  description: z.string().nullable(),
  file: z.string(),
  /** the servers compared, in the lab's order; none in an experiment lab (see `experiment`). */
  variants: z.array(VariantRecordSchema),
  /** the clients as they ran (after command-line overrides), in the order they were started. */
  /** `rate`: an open-loop echo client's requests per second per connection (absent: closed loop). */
  clients: z.array(z.object({ name: z.string(), mode: z.enum(['echo', 'hold']), connections: count(), messageSize: count(), rate: z.number().finite().positive().optional() })),
  /** the client whose connections took each value in turn, when the lab sweeps. */
  sweep: z.object({ client: z.string(), connections: z.array(z.number().finite().int()) }).nullable(),
  /** the rule that judges the claim (src/analysis/claims.ts) and the client it measures. */
  /** the lab's verdict rule (its first, when it names several), or null. */
  verdict: z.object({ rule: z.string(), client: z.string().nullable() }).nullable(),
  /** every verdict rule of the lab, in order (absent in files that name one rule at most). */
  verdicts: z.array(z.object({ rule: z.string(), client: z.string().nullable() })).optional(),
  durationSeconds: z.number().finite(),
  repetitions: z.number().finite().int(),
  /** traced runs per server (0: no tracer). */
  traceRuns: count(),
  nofile: z.number().finite().int().nullable(),
});
export type LabRecord = z.infer<typeof LabRecordSchema>;

export const EnvironmentSchema = z.object({
  runtime: z.string(),
  iolabVersion: z.string(),
  /** the controller's Node.js (process.version). */
  node: z.string(),
  kernel: z.string(),
  hostname: z.string(),
  cpus: z.number().finite().int(),
  tracer: z.string().nullable(),
  /** how the counts were taken: "bpf" (in the measured runs) or "strace" (runs of their own); absent with no tracer, or in files written before the eBPF observer (strace). */
  tracerKind: z.enum(['strace', 'bpf']).optional(),
  /** the Docker runtime's image and engine; null on the local runtime. */
  container: z.object({ image: z.string(), imageId: z.string(), engine: z.string() }).nullable(),
  /** client processes (containers) per client of the lab (--clients). */
  clientReplicas: z.number().finite().int().positive(),
  /** `iolab run --on swarm`: the swarm's nodes and which node ran what; absent on one machine. */
  swarm: z
    .object({
      nodes: z.array(z.object({ hostname: z.string(), cpus: z.number().finite(), role: z.enum(['manager', 'worker']) })),
      /** per role ("server", "client", "observer", a program's) and node: how many containers of the lab ran there. */
      placement: z.array(z.object({ role: z.string(), node: z.string(), containers: z.number().finite().int().positive() })),
    })
    .optional(),
});
export type SwarmPlacement = NonNullable<z.infer<typeof EnvironmentSchema>['swarm']>;
export type Environment = z.infer<typeof EnvironmentSchema>;

// ---- reading one run: the definitions every stage shares ----

/** The results of one mode's clients in a run (every replica). */
export function clientResults(run: RunRecord, mode?: ClientResult['mode']): ClientResult[] {
  return run.clients.flatMap((client) => (client.result && (!mode || client.result.mode === mode) ? [client.result] : []));
}

/** The results of one of the lab's clients in a run, every replica of it. */
export function resultsOf(run: RunRecord, name: string): ClientResult[] {
  return run.clients.flatMap((client) => (client.name === name && client.result ? [client.result] : []));
}

/** A run that failed: an error, or a client without a result. Every figure leaves it out. */
export function isFailed(run: RunRecord): boolean {
  return run.error !== null || run.clients.some((client) => client.result === null);
}

/**
 * What the server holds beyond its idle self in a run: fds, processes, threads, memory (peak, or
 * PSS at the window's end, minus the same of its baseline); null where either was not read.
 */
export function grown(run: RunRecord, pick: 'fdsPeak' | 'processesPeak' | 'threadsPeak' | 'peakRssKb' | 'pssKb'): number | null {
  const now = run.proc?.[pick];
  const before = run.baseline?.[pick];
  if (now === undefined || now === null || before === undefined || before === null) return null;
  return now - before;
}

/** Requests answered: the window's round trips and the replies of the drain after it. One definition, used everywhere. */
export function answeredOf(result: ClientResult): number {
  return result.roundTrips + result.answeredAfterWindow;
}

/** Echo round trips per second in one run, all echo clients together; null without echo clients. */
export function runThroughput(run: RunRecord): number | null {
  const echo = clientResults(run, 'echo');
  if (echo.length === 0) return null;
  // Each client measures its own window; one that never started (0 s) adds nothing.
  return echo.reduce((sum, c) => sum + (c.durationSeconds > 0 ? c.roundTrips / c.durationSeconds : 0), 0);
}

/** A lab's verdict rules, in order: one, several, or none. */
export function verdictRulesOf(lab: Pick<LabRecord, 'verdict' | 'verdicts'>): { rule: string; client: string | null }[] {
  return lab.verdicts ?? (lab.verdict ? [lab.verdict] : []);
}

/** What a lab measured, before the analysis: what the runner returns. */
export const MeasurementSchema = z.object({
  schemaVersion: z.literal(RESULTS_SCHEMA_VERSION),
  lab: LabRecordSchema,
  environment: EnvironmentSchema,
  startedAt: z.string(),
  finishedAt: z.string(),
  /** false when the lab stopped early (a failure, Ctrl-C): the runs below are what it measured. */
  complete: z.boolean(),
  incompleteReason: z.string().nullable(),
  runs: z.array(RunRecordSchema),
  /** an experiment lab's scripts and what they measured (shared/experiments.ts); absent in a model lab, whose `runs` it replaces. */
  experiment: ExperimentRecordSchema.optional(),
  /**
   * what `iolab run` was asked (the lab file's SHA-256, the options that change what is measured,
   * the runtime): `--resume` continues a run only with the same (src/labs/journal.ts). Absent in
   * results written by an older iolab, which cannot be resumed.
   */
  settings: z.record(z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
  /** each time a killed or stopped run was continued (`iolab run --resume`): when, and how many of its runs were kept. */
  resumed: z.array(z.object({ at: z.string(), kept: count() })).optional(),
});
export type Measurement = z.infer<typeof MeasurementSchema>;

// ---- the analysis: computed once from the runs above (src/analysis/), rendered by src/report/ ----

export { SpreadSchema, type Spread };

/** Latency percentiles in microseconds, each the median over the repetitions. */
export const LatencyFiguresSchema = z.object({
  p50Us: z.number().finite(),
  p90Us: z.number().finite(),
  p99Us: z.number().finite(),
  /** present when every client measured it. */
  p999Us: z.number().finite().optional(),
  maxUs: z.number().finite(),
});
export type LatencyFigures = z.infer<typeof LatencyFiguresSchema>;

/** One of the lab's clients against one server, over that server's measure runs. */
export const ClientFiguresSchema = z.object({
  name: z.string(),
  mode: z.enum(['echo', 'hold']),
  /** connections established (hold: the idle crowd; the probe is counted under probe), median over runs. */
  connections: z.number().finite(),
  /** echo: connections that got at least one reply in the window, median over runs. */
  connectionsAnswered: z.number().finite(),
  /** connections answered during the warm-up, out of those warmed up, medians over runs. */
  warmup: z.object({ connections: z.number().finite(), answered: z.number().finite() }),
  /**
   * echo requests, summed over runs. answered = the window's round trips + the replies of the
   * drain after it: one definition everywhere (sent = answered + unanswered + wrong + lost with
   * a closed connection).
   */
  requests: z.object({ sent: count(), answered: count(), unanswered: count(), wrong: count() }),
  closedByServer: count(),
  connectErrors: z.record(z.string(), count()),
  /** echo: round trips per second of the window. */
  roundTripsPerSecond: SpreadSchema.nullable(),
  latency: LatencyFiguresSchema.nullable(),
  /** hold: the probe connection's requests summed over runs, and its median p50 latency. */
  probe: z.object({ sent: count(), answered: count(), p50Us: z.number().finite().nullable() }).nullable(),
  /** the client's own CPU, median over runs, percent of one core. */
  cpuPercent: z.number().finite().nullable(),
  /**
   * an open-loop echo client (OpenLoopSchema): the rate asked per connection; the offered rate,
   * median over runs; the achieved rate (round trips of the window per second) over the runs;
   * the requests sent late, never sent and recorded as lower bounds, summed over runs; its
   * latency (above) is from the scheduled send time. Absent for a closed-loop client.
   */
  openLoop: z
    .object({
      ratePerConnection: z.number().finite().positive(),
      offeredPerSecond: z.number().finite().nonnegative(),
      achievedPerSecond: SpreadSchema.nullable(),
      scheduled: count(),
      sentLate: count(),
      notSent: count(),
      lowerBounds: count(),
      /** latency from the actual send (coordinated omission uncorrected), median over runs. */
      serviceLatency: LatencyFiguresSchema.nullable(),
      /** the client's own lateness on the requests it could send on time (OpenLoop.sendLag), p99 in µs: the latest of the replicas, median over runs; absent from older results. */
      sendLagP99Us: z.number().finite().nonnegative().optional(),
    })
    .optional(),
});
export type ClientFigures = z.infer<typeof ClientFiguresSchema>;

export const MeasureFiguresSchema = z.object({
  /** measure runs that count (without error). */
  repetitions: count(),
  /** echo round trips per second of all echo clients together. */
  throughput: SpreadSchema.nullable(),
  /** all echo clients: each run's percentiles weighted by round trips, then the median over runs. */
  latency: LatencyFiguresSchema.nullable(),
  clients: z.array(ClientFiguresSchema),
  /** the server's CPU (user + system) over the window, percent of one core. */
  cpuPercent: SpreadSchema.nullable(),
  /** server CPU time per echo round trip, microseconds. */
  cpuPerRoundTripUs: SpreadSchema.nullable(),
  /** the busiest echo client's own CPU, median, percent of one core. */
  clientCpuPercent: z.number().finite().nullable(),
  /** peaks over the runs. */
  /** the most processes of the server's tree at one sample, of all runs (1: it never forked); absent from older results. */
  processesPeak: count().nullable().optional(),
  threadsPeak: count().nullable(),
  fdsPeak: count().nullable(),
  peakRssKb: count().nullable(),
  /** beyond the idle server (the peak minus the baseline before any client), median over runs. */
  threadsAdded: z.number().finite().nullable(),
  fdsAdded: z.number().finite().nullable(),
  rssAddedKb: z.number().finite().nullable(),
  /** the tree's proportional set size at the window's end beyond the idle server's (ProcWindow pssKb), KiB, median over runs; absent from older results. */
  pssAddedKb: z.number().finite().nullable().optional(),
  /** voluntary context switches per echo round trip, median over runs. */
  switchesPerRoundTrip: z.number().finite().nullable(),
});
export type MeasureFigures = z.infer<typeof MeasureFiguresSchema>;

export const SyscallFiguresSchema = SyscallCountSchema.extend({
  /** calls per round trip of the window; null in set-up or without round trips. */
  perRoundTrip: z.number().finite().nullable(),
  /** calls per connection set up; null in the window or without connections. */
  perConnection: z.number().finite().nullable(),
});
export type SyscallFigures = z.infer<typeof SyscallFiguresSchema>;

const PhaseFiguresSchema = z.object({
  /** sorted by calls, most first. */
  serving: z.array(SyscallFiguresSchema),
  runtime: z.array(SyscallFiguresSchema),
  servingCalls: count(),
  runtimeCalls: count(),
});
export type PhaseFigures = z.infer<typeof PhaseFiguresSchema>;

const CallCountSchema = z.object({ syscall: z.string(), calls: count() });
export const FingerprintCheckSchema = z.object({
  verdict: z.enum(['matches', 'does not match', 'inconclusive']),
  required: z.array(z.object({ anyOf: z.array(z.string()), seen: z.array(CallCountSchema) })),
  forbidden: z.array(CallCountSchema),
});

/** Where the model's threads spent the traced windows, per call, over every run with waits (bpf). */
export const WaitFiguresSchema = z.object({
  runs: count(),
  /** the most serving threads of one run's window. */
  threads: count(),
  /** every serving thread's window, added over threads and runs: what each share is of. */
  threadSeconds: z.number().finite().nonnegative(),
  rows: z.array(
    z.object({
      syscall: z.string(),
      /** of the threads' time, the share inside this call (0 to 1). */
      insideShare: z.number().finite().nonnegative(),
      /** of the threads' time, the share asleep in this call: waiting (0 to 1). */
      blockedShare: z.number().finite().nonnegative(),
      /** the blocked share of each run, for the spread. */
      blockedShares: z.array(z.number().finite().nonnegative()),
      /** the most threads in it in one run. */
      threads: count(),
      /** the most threads of one run whose longest sleep was in it. */
      mainWaitOf: count(),
    }),
  ),
});
export type WaitFigures = z.infer<typeof WaitFiguresSchema>;

export const TraceFiguresSchema = z.object({
  /** the tracer that counted (absent: strace). */
  tracer: z.enum(['strace', 'bpf']).optional(),
  /** runs with counts (trace runs under strace; measured runs under bpf); their counts are summed. */
  runs: count(),
  windowSeconds: z.number().finite().nonnegative(),
  /** echo round trips in the traced windows, with the replies of their drain: what the window's calls answered. */
  roundTrips: count(),
  /** connections the clients established in the traced runs (the probe included). */
  connections: count(),
  /** the serving threads' calls per round trip in each traced run (for comparisons). */
  servingPerRoundTrip: SpreadSchema.nullable(),
  window: PhaseFiguresSchema,
  setup: PhaseFiguresSchema,
  threads: z.object({ serving: count(), runtime: count() }),
  /** the model's fingerprint against its serving threads' calls, set-up and window together. */
  /** null for a server of one's own that fits no model: nothing to check it against. */
  fingerprint: FingerprintCheckSchema.nullable(),
  /** where the model's threads waited in the window (bpf only). */
  waits: WaitFiguresSchema.nullable().optional(),
  /** the io_uring requests of the windows by opcode, added over the runs (bpf only; empty: none). */
  uring: z.array(UringOpSchema).optional(),
});
export type TraceFigures = z.infer<typeof TraceFiguresSchema>;

/** One row of the report: a server and, in a sweep, one value of the swept connections. */
export const SubjectFiguresSchema = z.object({
  /** "select" or, in a sweep, "select, idle=1000". */
  subject: z.string(),
  variant: z.string(),
  model: z.string(),
  sweepValue: z.number().finite().int().nullable(),
  measure: MeasureFiguresSchema.nullable(),
  trace: TraceFiguresSchema.nullable(),
  limits: LimitsSchema.nullable(),
  /** server events of one measure run: each kind's median count over the measure runs that count. */
  events: ServerEventCountsSchema,
});
export type SubjectFigures = z.infer<typeof SubjectFiguresSchema>;

export const FailedRunSchema = z.object({
  subject: z.string(),
  phase: z.enum(['measure', 'trace']),
  repetition: count(),
  error: z.string().nullable(),
  clientErrors: z.array(z.object({ client: z.string(), error: z.string() })),
});
export type FailedRun = z.infer<typeof FailedRunSchema>;

/** What else ran on the machine during the measure runs' windows. */
export const MachineFiguresSchema = z.object({
  /** measure runs whose window had host figures. */
  runs: count(),
  /** runs in which other processes used at least BUSY_OTHER_PERCENT of a core, or steal reached BUSY_STEAL_PERCENT. */
  busyRuns: count(),
  /** the busiest window: busy minus the server's and its clients' own CPU, percent of one core. */
  worst: z
    .object({ subject: z.string(), repetition: count(), otherPercent: z.number().finite(), stealPercent: z.number().finite(), loadAverage: z.number().finite(), cpus: count() })
    .nullable(),
});
export type MachineFigures = z.infer<typeof MachineFiguresSchema>;

export const ObservationSchema = z.object({
  /** the rule that made it, so that a test can find it. */
  rule: z.string(),
  /** the row it is about; null for the whole lab. */
  subject: z.string().nullable(),
  text: z.string(),
});
export type Observation = z.infer<typeof ObservationSchema>;

/** One step of a swept idle crowd against one server (src/analysis/connection-costs.ts): figures over its measured runs that count. */
export const ConnectionCostStepSchema = z.object({
  /** the sweep's value: idle connections asked for. */
  asked: count(),
  /** connections established, the crowd's and the probe's, median over runs. */
  connections: z.number().finite().nonnegative(),
  runs: count(),
  /** the server's process tree's PSS at the window's end beyond its idle self (ProcWindow pssKb), KiB. */
  pssAddedKb: SpreadSchema.nullable(),
  /** the server's peak RSS (VmHWM) beyond its idle self, KiB. */
  rssAddedKb: SpreadSchema.nullable(),
  /** the kernel's slab objects gained with the connections held (KernelMemory cacheBytes, less the TIME_WAIT and /proc inode caches: analysis/connection-costs.ts), KiB. */
  kernelAddedKb: SpreadSchema.nullable(),
  /** /proc/meminfo Slab gained meanwhile (KernelMemory slabKb), KiB. */
  slabAddedKb: SpreadSchema.nullable(),
  /** TCP socket buffers (/proc/net/sockstat mem) with the connections held, machine-wide, KiB, median over runs. */
  socketBuffersKb: z.number().finite().nonnegative().nullable(),
  /** the probe's latency, each run's p50 and p99, µs. */
  probeP50Us: SpreadSchema.nullable(),
  probeP99Us: SpreadSchema.nullable(),
  /** the client's warm-up: seconds to get every connection's first reply (after connecting), median over runs. */
  warmupSeconds: z.number().finite().nonnegative().nullable(),
});
export type ConnectionCostStep = z.infer<typeof ConnectionCostStepSchema>;

/**
 * What an idle connection costs one server, from a lab that sweeps a hold client's crowd: memory
 * in user space (the server's) and in the kernel (both ends' sockets), and the probe's latency as
 * the crowd grows. Per connection: each run at the largest step against the smallest step's
 * median, ((its growth) − (median growth at the smallest)) / ((its connections) − (median
 * connections at the smallest)), over the runs; and the least-squares slope of growth against
 * connections over every run of every step.
 */
export const ConnectionCostsSchema = z.object({
  variant: z.string(),
  model: z.string(),
  /** the hold client whose crowd the lab sweeps. */
  client: z.string(),
  /** sockets per connection in the kernel figures: 2, both ends on the kernel whose memory is read. */
  socketsPerConnection: count(),
  /** where the kernel figures come from: per-cache objects (/proc/slabinfo), or /proc/meminfo Slab where slabinfo could not be read. */
  kernelFrom: z.enum(['slabinfo', 'meminfo']),
  steps: z.array(ConnectionCostStepSchema),
  /** from the smallest to the largest step, each run at the largest; KiB per connection (kernel also per socket). null with fewer than 2 steps. */
  perConnection: z
    .object({
      from: count(),
      to: count(),
      pssKb: SpreadSchema.nullable(),
      rssKb: SpreadSchema.nullable(),
      kernelKb: SpreadSchema.nullable(),
      kernelPerSocketKb: SpreadSchema.nullable(),
      slabKb: SpreadSchema.nullable(),
    })
    .nullable(),
  /** least squares over every run that counts: KiB per connection; null where fewer than 2 distinct connection counts were measured. */
  slope: z.object({ pssKb: z.number().finite().nullable(), kernelKb: z.number().finite().nullable(), slabKb: z.number().finite().nullable() }),
  /** the slab caches that grew with the connections, largest step against smallest, medians over runs, largest first. */
  caches: z.array(z.object({ name: z.string(), objectBytes: count(), objectsPerConnection: z.number().finite(), bytesPerConnection: z.number().finite() })),
});
export type ConnectionCosts = z.infer<typeof ConnectionCostsSchema>;

export const AnalysisSchema = z.object({
  subjects: z.array(SubjectFiguresSchema),
  verdicts: z.array(ClaimVerdictSchema),
  observations: z.array(ObservationSchema),
  failedRuns: z.array(FailedRunSchema),
  machine: MachineFiguresSchema,
  /** an experiment lab's figures (shared/experiments.ts); absent in a model lab, whose `subjects` it replaces. */
  experiment: ExperimentFiguresSchema.optional(),
  /** a lab that sweeps a hold client's idle crowd: what a connection costs each server; absent otherwise and in older results. */
  connectionCosts: z.array(ConnectionCostsSchema).optional(),
});
export type Analysis = z.infer<typeof AnalysisSchema>;

/** results.json. */
export const ResultsSchema = MeasurementSchema.extend({ analysis: AnalysisSchema });
export type Results = z.infer<typeof ResultsSchema>;
