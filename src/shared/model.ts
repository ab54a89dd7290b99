// What an IO model declares about itself, and the check of its syscall fingerprint. Every rule
// that judges a claim reads these declarations (how the model waits, what a connection costs it,
// how many clients it serves at once, where its fd ceiling is), never a model's name, a label or
// a list of syscall names of its own. results.json carries each server's declaration, so a
// report judges a run by what its models declared when it ran, whatever the registry says later.
import { z } from 'zod';

/**
 * Where a model spends phase 1 (waiting for data), in the course's terms (CURRICULUM.md):
 *   blocking-call  inside recvfrom/accept4 themselves (blocking IO, a thread per connection, a pool)
 *   spin           nowhere: non-blocking calls asked in a loop until one has data (busy polling)
 *   scan-all-fds   in one call that is handed every watched fd and scans all of them (select, poll)
 *   ready-list     in one call that returns only the ready fds of a kernel-kept interest list (epoll)
 *   signal         until the kernel sends a signal that an fd is ready (signal-driven IO)
 *   completion     until the kernel reports a whole operation done, copy included (io_uring)
 *   runtime-loop   inside a language runtime's own event loop (Node's libuv, Python's asyncio)
 */
export const WAITING = ['blocking-call', 'spin', 'scan-all-fds', 'ready-list', 'signal', 'completion', 'runtime-loop'] as const;
export type Waiting = (typeof WAITING)[number];

export const ModelTraitsSchema = z.object({
  waits: z.enum(WAITING),
  /** what each new connection costs beyond its fd: a thread, a process, or nothing of the kind. */
  perConnection: z.enum(['thread', 'process', 'none']),
  /**
   * how many clients it serves at the same time: one (blocking), as many as its pool has threads
   * (the `threads` option, default 4), or every connection up to its fd ceiling.
   */
  concurrency: z.enum(['one', 'pool', 'all']),
  /**
   * what stops it taking connections: FD_SETSIZE (1024: glibc's fd_set, so select) or only
   * RLIMIT_NOFILE (EMFILE at accept4). See select(2), "BUGS", and getrlimit(2).
   */
  fdCeiling: z.enum(['FD_SETSIZE', 'RLIMIT_NOFILE']),
  /** readiness reported while data remains (level) or once per change (edge, EPOLLET); null: no readiness API. */
  triggering: z.enum(['level', 'edge']).nullable(),
  /** connections handled by coroutines that a scheduler switches where they would block. */
  coroutines: z.boolean(),
});
export type ModelTraits = z.infer<typeof ModelTraitsSchema>;

/** The system calls a model must and must not show in steady state, as strace names them. */
export const FingerprintSchema = z.object({
  /**
   * the calls its threads wait in during phase 1, for data or a connection (blocking: recvfrom
   * and accept4; select: select or pselect6; none for busy polling, which never waits).
   */
  waitsIn: z.array(z.string()),
  /** each entry is satisfied by any one of its names (glibc may use select or pselect6). */
  required: z.array(z.array(z.string()).min(1)),
  /** calls whose presence means the server is not this model. */
  forbidden: z.array(z.string()),
});
export type Fingerprint = z.infer<typeof FingerprintSchema>;

/** A model as results.json records it: what it is, how it waits, what the kernel must see. */
export const ModelDeclarationSchema = z.object({
  name: z.string(),
  /** one line: how the model waits for data. */
  summary: z.string(),
  traits: ModelTraitsSchema,
  fingerprint: FingerprintSchema,
});
export type ModelDeclaration = z.infer<typeof ModelDeclarationSchema>;

/**
 * The prefix of the name a thread gives itself (prctl PR_SET_NAME) when it starts running a
 * model's code: the tracer counts such threads' calls as the model's, the others' as the
 * language runtime's.
 */
export const SERVING_THREAD_PREFIX = 'iolab:';

/** How many clients a server serves at once: 1, its pool's threads, or every connection (Infinity). */
export function servesAtOnce(traits: ModelTraits, poolThreads: number): number {
  if (traits.concurrency === 'one') return 1;
  if (traits.concurrency === 'pool') return poolThreads;
  return Infinity;
}

/** The counts a fingerprint is checked against: calls of one name, whatever thread made them. */
export interface CallCount {
  syscall: string;
  calls: number;
}

export interface FingerprintCheck {
  /**
   * 'inconclusive': a required call is missing but no round trip was made while traced; a server
   * blocked in one call (the blocking model behind a client that holds it) makes no calls to
   * count, which is not evidence against the model. A forbidden call seen is never inconclusive.
   */
  verdict: 'matches' | 'does not match' | 'inconclusive';
  /** each required entry with the alternatives that were seen and their calls (none: missing). */
  required: { anyOf: string[]; seen: CallCount[] }[];
  /** every forbidden call with its count; calls > 0 is a violation. */
  forbidden: CallCount[];
}

/** Checks counted calls against a fingerprint. `roundTrips`: round trips made while they were counted. */
export function checkFingerprint(fingerprint: Fingerprint, counts: readonly CallCount[], roundTrips: number): FingerprintCheck {
  const callsOf = (name: string) => counts.filter((s) => s.syscall === name).reduce((sum, s) => sum + s.calls, 0);
  const required = fingerprint.required.map((anyOf) => ({
    anyOf,
    seen: anyOf.filter((name) => callsOf(name) > 0).map((name) => ({ syscall: name, calls: callsOf(name) })),
  }));
  const forbidden = fingerprint.forbidden.map((name) => ({ syscall: name, calls: callsOf(name) }));
  const missing = required.some((r) => r.seen.length === 0);
  const violated = forbidden.some((f) => f.calls > 0);
  const verdict = violated ? 'does not match' : !missing ? 'matches' : roundTrips > 0 ? 'does not match' : 'inconclusive';
  return { verdict, required, forbidden };
}

/**
 * System calls that do one job for a model, whichever a program's library calls: on a socket,
 * read(2), readv(2), recv(2), recvmsg(2) and recvfrom(2) all read (recv(2): "recv() is
 * equivalent to read() ... with a zero flags argument"); write(2)... sendto(2) all write;
 * accept(2) is accept4(2) without flags; pselect6 is how glibc makes select(2), ppoll poll(2),
 * epoll_pwait(2) epoll_wait(2); fork(2) is clone(2) on Linux. Keyed by the name the fingerprints
 * of src/servers use for the job.
 */
export const EQUIVALENT_SYSCALLS: Readonly<Record<string, readonly string[]>> = {
  recvfrom: ['recvfrom', 'recv', 'read', 'readv', 'recvmsg', 'recvmmsg'],
  sendto: ['sendto', 'send', 'write', 'writev', 'sendmsg', 'sendmmsg'],
  accept4: ['accept4', 'accept'],
  select: ['select', 'pselect6'],
  poll: ['poll', 'ppoll'],
  epoll_wait: ['epoll_wait', 'epoll_pwait', 'epoll_pwait2'],
  clone: ['clone', 'clone3', 'fork', 'vfork'],
};

/** The name of the job a call does (EQUIVALENT_SYSCALLS): "read" is "recvfrom"; a call of no group is itself. */
export function jobOf(syscall: string): string {
  for (const [job, names] of Object.entries(EQUIVALENT_SYSCALLS)) if (names.includes(syscall)) return job;
  return syscall;
}

/**
 * A fingerprint in jobs rather than names: each required entry and each forbidden call as its job
 * (jobOf). A job both required and forbidden (the event loop reads with read and never with
 * recvfrom: one job) is only required: names within a job cannot tell models apart.
 */
export function fingerprintByJob(fingerprint: Fingerprint): Fingerprint {
  const required = fingerprint.required.map((anyOf) => [...new Set(anyOf.map(jobOf))]);
  const requiredJobs = new Set(required.flat());
  const forbidden = [...new Set(fingerprint.forbidden.map(jobOf))].filter((job) => !requiredJobs.has(job));
  return { waitsIn: [...new Set(fingerprint.waitsIn.map(jobOf))], required: uniqueEntries(required), forbidden };
}

function uniqueEntries(entries: string[][]): string[][] {
  const seen = new Set<string>();
  return entries.filter((entry) => {
    const key = [...entry].sort().join(',');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Checks counted calls against a fingerprint by job (fingerprintByJob, jobOf): how a program that
 * is not one of iolab's models is held to a model's fingerprint, whichever name its library
 * calls the job by (Python's recv is recvfrom, C's read is read: both read).
 */
export function checkFingerprintByJob(fingerprint: Fingerprint, counts: readonly CallCount[], roundTrips: number): FingerprintCheck {
  const byJob = new Map<string, number>();
  for (const count of counts) byJob.set(jobOf(count.syscall), (byJob.get(jobOf(count.syscall)) ?? 0) + count.calls);
  const check = checkFingerprint(fingerprintByJob(fingerprint), [...byJob].map(([syscall, calls]) => ({ syscall, calls })), roundTrips);
  // What was seen, by the names the program called: pselect6 and read, not the jobs select and recvfrom.
  const namesOf = (jobs: readonly string[]): CallCount[] => {
    const calls = new Map<string, number>();
    for (const count of counts) if (count.calls > 0 && jobs.includes(jobOf(count.syscall))) calls.set(count.syscall, (calls.get(count.syscall) ?? 0) + count.calls);
    return [...calls].map(([syscall, n]) => ({ syscall, calls: n }));
  };
  return {
    verdict: check.verdict,
    required: check.required.map((entry) => ({ anyOf: entry.anyOf, seen: namesOf(entry.anyOf) })),
    forbidden: check.forbidden.flatMap((entry) => {
      const seen = namesOf([entry.syscall]);
      return seen.length ? seen : [{ syscall: entry.syscall, calls: 0 }];
    }),
  };
}
