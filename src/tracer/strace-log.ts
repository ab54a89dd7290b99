// Counts the calls of a traced server from strace's log of every call (`strace -f -ttt -o FILE`),
// by phase and by thread, which `strace -c` cannot: its summary adds every thread together.
//
//   phase   a call made before the measured window started is connection set-up (accept4,
//           clone, epoll_ctl, a new thread's start-up); one made in the window (which lasts
//           until the tracer is stopped, the drain of the last requests included) is steady
//           state; one made after the window (the detach) is not counted.
//   thread  a thread that runs the model's code names itself `iolab:...` (prctl PR_SET_NAME, see
//           src/libc/thread.ts): its calls are the model's ("serving"). Every other thread is the
//           language runtime's: V8's platform workers (garbage collection, compilation: futex,
//           mprotect, madvise), libuv's pool, and a new thread before it names itself (Node
//           starting a worker: loading modules, its own event loop). A thread takes the name it
//           had when strace attached; one born later starts as the runtime's (it inherits its
//           creator's name) until it names itself. A server that names no thread at all (a
//           Python or C server) has every call counted as serving.
//
// The log's lines, with -f and -ttt (strace(1)):
//   TID SECONDS NAME(ARGS) = RET                    a whole call
//   TID SECONDS NAME(ARGS) = -1 ERRNO (TEXT)        a failed call
//   TID SECONDS NAME(ARGS <unfinished ...>          a call another thread's line interrupted...
//   TID SECONDS <... NAME resumed>ARGS) = RET       ...and its end
//   TID SECONDS +++ exited with 0 +++ / --- SIGNAL {...} ---   not calls
// The readiness calls that are handed their fds (select, pselect6, poll, ppoll) also keep which
// fds they watched, from their arguments: a wait on the listening socket alone (Python's
// socketserver waits so between accepts) is not a server multiplexing its connections. Flags
// that tell how a call is used (NOTABLE_FLAGS: EPOLLET, CLONE_THREAD) are kept too.
// A call is counted once it has ended (its phase is where it began), with its errno: a call still
// in progress when strace detaches (a thread blocked in accept4 or in its own event loop since
// before the attach, which strace prints as `<unfinished ...>` then) was not a call of the
// window, as `strace -c` does not count it either.
import { mergeWatched, NOTABLE_FLAGS, type CallTable, type SyscallCount } from '../shared/results.js';

export interface StraceLogOptions {
  /** each thread's name when strace attached (/proc/PID/task/TID/comm), by tid. */
  namesAtAttach: ReadonlyMap<number, string>;
  /** names starting with this are threads of the model. */
  servingPrefix: string;
  /** epoch seconds (as -ttt prints them): calls before this are set-up; null: the window never started. */
  windowStart: number | null;
  /** epoch seconds: calls from here on are not counted; null: up to the end of the log. */
  windowEnd: number | null;
}

export interface StraceLogCounts {
  setup: CallTable;
  window: CallTable;
  threads: { serving: number; runtime: number };
}

type Group = 'serving' | 'runtime';
type Phase = 'setup' | 'window';

interface Thread {
  name: string | null;
  everServing: boolean;
  /** the call this thread is in, between `<unfinished ...>` and `<... resumed>`. */
  pending: { syscall: string; counted: Counted | null; start: string } | null;
}

/** Where a call was counted, so that its errno (on a later line) lands in the same row. */
interface Counted {
  phase: Phase;
  group: Group;
  syscall: string;
}

const LINE = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/;
const CALL_START = /^([a-z_][a-z0-9_]*)\(/;
const RESUMED = /^<\.\.\. ([a-z_][a-z0-9_]*) resumed>/;
const RESULT = /^(-?\d+|0x[0-9a-f]+|\?)(?:\s+(E[A-Z0-9]+)\b)?/;
const THREAD_NAME = /PR_SET_NAME, "([^"]*)"/;
/** The calls whose arguments carry NOTABLE_FLAGS (epoll_ctl(2), clone(2), clone3). */
const FLAGGED_CALLS = new Set(['epoll_ctl', 'clone', 'clone3']);
/** poll(2)/ppoll: `poll([{fd=3, events=POLLIN}, ...], NFDS, ...`; select(2)/pselect6: `select(NFDS, [3 4], [5], NULL, ...`. */
const POLL_ARGS = /^p?poll\(\[(.*?)\], (\d+)/;
const SELECT_SETS = /^(?:select|pselect6)\(\d+, (\[[\d ]*\]|NULL), (\[[\d ]*\]|NULL), (\[[\d ]*\]|NULL)/;

/** How many fds one readiness call watched, and their numbers, from its start line; null for other calls. */
export function watchedFds(call: string): { max: number; fds: number[] } | null {
  const poll = POLL_ARGS.exec(call);
  if (poll) {
    // strace shortens a long array ("..."): NFDS still says how many there were.
    return { max: Number(poll[2]), fds: [...poll[1].matchAll(/fd=(\d+)/g)].map((m) => Number(m[1])) };
  }
  const select = SELECT_SETS.exec(call);
  if (select) {
    const fds = new Set(select.slice(1).flatMap((set) => (set === 'NULL' ? [] : set.slice(1, -1).split(' ').filter(Boolean).map(Number))));
    return { max: fds.size, fds: [...fds] };
  }
  return null;
}

/** Counts an strace log; see the header for the phases and thread groups. */
export function countStraceLog(text: string, options: StraceLogOptions): StraceLogCounts {
  const threads = new Map<number, Thread>();
  // Rows keyed phase/group/syscall, plus the same calls without the group for a server that names no thread.
  const rows = new Map<string, SyscallCount>();
  // The threads that made each row's calls.
  const callers = new Map<SyscallCount, Set<number>>();
  let anyServingName = false;

  const threadOf = (tid: number): Thread => {
    let thread = threads.get(tid);
    if (!thread) {
      // Not there at attach: a thread (or process) born while traced. It carries its creator's
      // name, but is not the model's until it names itself.
      thread = { name: options.namesAtAttach.get(tid) ?? null, everServing: false, pending: null };
      threads.set(tid, thread);
    }
    return thread;
  };
  const isServing = (thread: Thread) => thread.name !== null && thread.name.startsWith(options.servingPrefix);
  const row = (phase: Phase, group: Group | 'all', syscall: string): SyscallCount => {
    const key = `${phase}/${group}/${syscall}`;
    let found = rows.get(key);
    if (!found) {
      found = { syscall, calls: 0, errors: 0, errnos: {} };
      rows.set(key, found);
    }
    return found;
  };
  const phaseAt = (seconds: number): Phase | null => {
    if (options.windowStart === null || seconds < options.windowStart) return 'setup';
    if (options.windowEnd !== null && seconds >= options.windowEnd) return null;
    return 'window';
  };
  /** Where a call that starts now will be counted (its phase, its thread's group then), or null after the window. */
  const start = (thread: Thread, syscall: string, seconds: number): Counted | null => {
    const phase = phaseAt(seconds);
    if (phase === null) return null;
    return { phase, group: isServing(thread) ? 'serving' : 'runtime', syscall };
  };
  const finish = (counted: Counted | null, tail: string, thread: Thread, arguments_: string, tid: number) => {
    const returned = RESULT.exec(tail);
    if (!returned) return;
    const [, value, errno] = returned;
    if (counted) {
      if (counted.group === 'serving') thread.everServing = true;
      const fds = watchedFds(arguments_);
      for (const group of [counted.group, 'all'] as const) {
        const target = row(counted.phase, group, counted.syscall);
        target.calls++;
        callers.set(target, (callers.get(target) ?? new Set<number>()).add(tid));
        if (fds) target.watched = mergeWatched(target.watched, fds);
        const flags = FLAGGED_CALLS.has(counted.syscall) ? NOTABLE_FLAGS.filter((flag) => arguments_.includes(flag)) : [];
        if (flags.length) target.flags = [...new Set([...(target.flags ?? []), ...flags])];
      }
    }
    if (counted && value === '-1' && errno) {
      for (const group of [counted.group, 'all'] as const) {
        const target = row(counted.phase, group, counted.syscall);
        target.errors++;
        target.errnos[errno] = (target.errnos[errno] ?? 0) + 1;
      }
    }
    if (counted?.syscall === 'prctl' && value === '0') {
      const named = THREAD_NAME.exec(arguments_);
      if (named) {
        thread.name = named[1];
        if (isServing(thread)) anyServingName = true;
      }
    }
  };

  for (const line of text.split('\n')) {
    if (line === '') continue;
    // Anything else (strace's own notes) is not a call.
    const match = LINE.exec(line);
    if (!match) continue;
    const tid = Number(match[1]);
    const seconds = Number(match[2]);
    const rest = match[3];
    if (rest.startsWith('+++') || rest.startsWith('---')) continue;
    const thread = threadOf(tid);
    if (isServing(thread)) anyServingName = true;

    const resumed = RESUMED.exec(rest);
    if (resumed) {
      const pending = thread.pending;
      thread.pending = null;
      const tail = rest.slice(rest.lastIndexOf(') = ') + 4);
      if (rest.lastIndexOf(') = ') === -1) continue;
      const matches = pending !== null && pending.syscall === resumed[1];
      finish(matches ? pending.counted : null, tail, thread, matches ? pending.start : rest, tid);
      continue;
    }
    const call = CALL_START.exec(rest);
    if (!call) continue;
    const counted = start(thread, call[1], seconds);
    if (rest.endsWith('<unfinished ...>')) {
      thread.pending = { syscall: call[1], counted, start: rest };
      continue;
    }
    const end = rest.lastIndexOf(') = ');
    if (end !== -1) finish(counted, rest.slice(end + 4), thread, rest, tid);
  }

  const table = (phase: Phase): CallTable => {
    const pick = (group: Group | 'all') =>
      [...rows.entries()].filter(([key]) => key.startsWith(`${phase}/${group}/`)).map(([, value]) => ({ ...value, threads: callers.get(value)?.size ?? 0 }));
    // A server that names no thread: nothing tells the runtime's threads apart, so all is the model's.
    return anyServingName ? { serving: pick('serving'), runtime: pick('runtime') } : { serving: pick('all'), runtime: [] };
  };
  const all = [...threads.values()];
  return {
    setup: table('setup'),
    window: table('window'),
    threads: anyServingName
      ? { serving: all.filter((t) => t.everServing).length, runtime: all.filter((t) => !t.everServing).length }
      : { serving: all.length, runtime: 0 },
  };
}
