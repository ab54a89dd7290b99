// results.json: everything one lab run measured, in one versioned schema. The report and (later)
// the grader read only this; they never reach into a runtime. Bump RESULTS_SCHEMA_VERSION on any
// change that an old reader would misread.
import { z } from 'zod';

export const RESULTS_SCHEMA_VERSION = 1;

/** One row of an `strace -c` summary. */
export const SyscallCountSchema = z.object({
  syscall: z.string(),
  calls: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  usecsPerCall: z.number().nonnegative(),
  seconds: z.number().nonnegative(),
});
export type SyscallCount = z.infer<typeof SyscallCountSchema>;

/** What the /proc probe saw of the server process over the measured window. */
export const ProcWindowSchema = z.object({
  wallSeconds: z.number().nonnegative(),
  cpuUserSeconds: z.number().nonnegative(),
  cpuSystemSeconds: z.number().nonnegative(),
  /** (user + system) / wall, in percent of one core; above 100 with several busy threads. */
  cpuPercent: z.number().nonnegative(),
  threadsPeak: z.number().int().nonnegative(),
  fdsPeak: z.number().int().nonnegative(),
  peakRssKb: z.number().int().nonnegative(),
  voluntaryContextSwitches: z.number().int().nonnegative(),
  involuntaryContextSwitches: z.number().int().nonnegative(),
  samples: z.number().int().nonnegative(),
});
export type ProcWindow = z.infer<typeof ProcWindowSchema>;

/** The limits that decide how many connections a server can hold. */
export const LimitsSchema = z.object({
  nofileSoft: z.number().nullable(),
  nofileHard: z.number().nullable(),
  /** glibc's fd_set size: select(2) through the C library watches fds below it only. */
  fdSetSize: z.number().int(),
  nrOpen: z.number().int().nullable(),
  fileMax: z.number().nullable(),
});
export type Limits = z.infer<typeof LimitsSchema>;

export const LatencySchema = z.object({
  count: z.number().int().nonnegative(),
  meanUs: z.number().nonnegative(),
  p50Us: z.number().nonnegative(),
  p90Us: z.number().nonnegative(),
  p99Us: z.number().nonnegative(),
  maxUs: z.number().nonnegative(),
});
export type Latency = z.infer<typeof LatencySchema>;

/** The one JSON line a client prints on stdout when it ends. */
export const ClientResultSchema = z.object({
  mode: z.enum(['echo', 'hold']),
  target: z.string(),
  connectionsRequested: z.number().int().nonnegative(),
  /** connections that completed the TCP handshake. */
  connected: z.number().int().nonnegative(),
  durationSeconds: z.number().nonnegative(),
  messageSize: z.number().int().nonnegative(),
  /** echo: requests sent and replies received complete and correct. */
  requestsSent: z.number().int().nonnegative(),
  roundTrips: z.number().int().nonnegative(),
  /** requests in flight when the window ended whose reply came in the short drain after it. */
  answeredAfterWindow: z.number().int().nonnegative(),
  /** requests still waiting for (part of) their reply when the client stopped. */
  unanswered: z.number().int().nonnegative(),
  /** replies whose bytes differed from the expected echo. */
  wrongReplies: z.number().int().nonnegative(),
  /** connections the server closed or reset while the client was using them. */
  closedByServer: z.number().int().nonnegative(),
  /** failed connects by errno code, e.g. { ECONNREFUSED: 3 }. */
  connectErrors: z.record(z.string(), z.number().int()),
  latency: LatencySchema,
  /** hold: a separate probe connection that asks while the others sit idle. */
  probe: z
    .object({
      sent: z.number().int().nonnegative(),
      answered: z.number().int().nonnegative(),
      latency: LatencySchema,
    })
    .nullable(),
  /** the client's own CPU over its window, in percent of one core: near 100, it may be what limits the measurement. */
  cpuPercent: z.number().nonnegative(),
  /** free-text problems worth showing (first occurrences only). */
  notes: z.array(z.string()),
});
export type ClientResult = z.infer<typeof ClientResultSchema>;

export const ClientRecordSchema = z.object({
  name: z.string(),
  mode: z.enum(['echo', 'hold']),
  connections: z.number().int(),
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
  sweepValue: z.number().int().nullable(),
  /** measure: no tracer attached (timings, CPU). trace: strace attached (syscall counts). */
  phase: z.enum(['measure', 'trace']),
  repetition: z.number().int().nonnegative(),
  startedAt: z.string(),
  durationSeconds: z.number().nonnegative(),
  serverPid: z.number().int().nullable(),
  clients: z.array(ClientRecordSchema),
  proc: ProcWindowSchema.nullable(),
  /** the idle server right after its ready line, before any client: threads, fds and RSS to subtract. */
  baseline: ProcWindowSchema.nullable(),
  limits: LimitsSchema.nullable(),
  syscalls: z.array(SyscallCountSchema).nullable(),
  /** lines the server wrote on stderr (refusals, errors), the first 50. */
  serverLog: z.array(z.string()),
  /** why the run is incomplete, when it is. */
  error: z.string().nullable(),
});
export type RunRecord = z.infer<typeof RunRecordSchema>;

export const ResultsSchema = z.object({
  schemaVersion: z.literal(RESULTS_SCHEMA_VERSION),
  lab: z.object({
    name: z.string(),
    title: z.string(),
    claim: z.string(),
    file: z.string(),
    models: z.array(z.string()),
    /** the servers compared, in the lab's order: a model with its options and nofile. */
    variants: z.array(
      z.object({
        label: z.string(),
        model: z.string(),
        nofile: z.number().int().nullable(),
        options: z.record(z.string(), z.union([z.number(), z.boolean()])),
      }),
    ),
    /** the client whose connections took each value in turn, when the lab sweeps. */
    sweep: z.object({ client: z.string(), connections: z.array(z.number().int()) }).nullable(),
    /** the rule that judges the claim (src/report/claims.ts), when the lab names one. */
    verdict: z.string().nullable(),
    durationSeconds: z.number(),
    repetitions: z.number().int(),
    nofile: z.number().int().nullable(),
  }),
  environment: z.object({
    runtime: z.string(),
    iolabVersion: z.string(),
    node: z.string(),
    kernel: z.string(),
    hostname: z.string(),
    cpus: z.number().int(),
    tracer: z.string().nullable(),
    /** the Docker runtime's image and engine; null on the local runtime. */
    container: z.object({ image: z.string(), imageId: z.string(), engine: z.string() }).nullable(),
    /** client processes (containers) per client of the lab (--clients). */
    clientReplicas: z.number().int().positive(),
  }),
  startedAt: z.string(),
  finishedAt: z.string(),
  /** false when the lab stopped early (a failure, Ctrl-C): the runs below are what it measured. */
  complete: z.boolean(),
  incompleteReason: z.string().nullable(),
  runs: z.array(RunRecordSchema),
});
export type Results = z.infer<typeof ResultsSchema>;
