// The eBPF observer's program, in bpftrace's language (bpftrace(8), docs/reference_guide.md of
// bpftrace 0.17). It runs in the kernel beside the server, at every system call of the machine,
// and keeps only the server's: no thread is stopped, so the counts come from the measured run
// itself. What it keeps, all in bpf maps printed at the window's end (below):
//
//   @calls[phase, tid, group, syscall]          calls that ended          (raw_syscalls:sys_exit),
//                                               one in progress when bpftrace attached too (a
//                                               blocking server in accept4 until the first
//                                               client): set-up, as strace counts it. A stats()
//                                               map: the count is the calls, the total the wall
//                                               time between their entry and exit that fell in
//                                               the window (nanoseconds; 0 outside it)
//   @errors[phase, tid, group, syscall, errno]  those that returned -errno
//   @blockedNs[tid, group, syscall]             window only: the part of it the thread slept,
//                                               switched out of the CPU not runnable
//                                               (sched:sched_switch with a state in TASK_REPORT;
//                                               a task preempted in the kernel shows only the bit
//                                               above it, TASK_REPORT_MAX: runnable)
//   @enter, @sysid, @asleep, @sleptNs [tid]     calls in progress when bpftrace ends (@sysid is
//                                               the last call's; read only where @enter is set;
//                                               a thread's exit, which never returns, clears them)
//   @uringSubmitted[phase, opcode], @uringFailed[phase, opcode, errno], @uringOpName[opcode]
//                                               the io_uring requests the kernel ran for the
//                                               server (io_uring:io_uring_submit_req and
//                                               io_uring_complete): the calls strace never sees
//   @windowStart, @windowEnd, @endNs            CLOCK_MONOTONIC nanoseconds
//   @group, @comm [tid]                         each thread's group (below) and name, set at its
//                                               first call's exit and again once it renames itself
//   @timelineEvents, @timelineDropped           timeline lines printed, and those left out (cap)
//
// The timeline (src/tracer/timeline.ts): for one stretch of the window, from TIMELINE.offsetNs
// after its start for TIMELINE.spanNs, a line per event of the server's threads, printed as it
// happens (printf, so in order per CPU only; the parser sorts them by time). So that a chart can
// show each thread's state over time, which no count can: these lines are the only output that
// grows with the load, hence the short stretch and the cap.
//
//   tl:call TID SYSCALL NS       a call entered          (raw_syscalls:sys_enter)
//   tl:return TID SYSCALL NS     a call returned         (raw_syscalls:sys_exit)
//   tl:born TID NS               a new task's first return, from the clone that made it
//   tl:out TID ASLEEP NS         switched out of its CPU (sched_switch prev): ASLEEP 1 when it
//                                sleeps (prev_state & TASK_REPORT), 0 when still runnable
//                                (preempted: 0, or TASK_REPORT_MAX on a kernel preemption)
//   tl:in TID NS                 switched onto a CPU     (sched_switch next; a tid of @group)
//   tl:gone TID NS               the thread ended        (sched:sched_process_exit)
//   tl:spanned TID SYSCALL ENTER_NS EXIT_NS  printed at a call's exit after the stretch when the
//                                call covered it all: a thread that waited in one call all along
//                                has no event in the stretch (a blocking server's accept4, the
//                                thread of an idle connection). A call still in progress at the
//                                window's end is in @enter/@sysid instead, and one in progress
//                                since before the program attached in neither: the observer
//                                finds those in /proc at the end (readThreadsInCalls)
// At most TIMELINE.eventsMax lines of the stretch (counted without atomics, so approximate by a
// few; "spanned" lines aside, one per thread at most); the rest only counted in
// @timelineDropped. 20,000 lines of 48 bytes fill 0.96 MB of perf buffer: bpftrace's per-CPU
// buffers are sized for them (PERF_RB_PAGES, bpf.ts).
//
// The window's end prints every map (print() in the marker's probe, then the line "printed"),
// and the observer then kills bpftrace without waiting for its own exit, which now and then took
// longer than 20 s while the server ran on. Once the window has ended, no call is entered into
// @enter and no sleep into @asleep: a hash map that keeps gaining and losing keys while it is
// walked can be walked forever (bpf_map_get_next_key starts over at a missing key).
//
// phase: 0 for a call that began before the measured window (connecting, warming up), 1 after:
// as the strace log counts. The window starts when the observer calls kill(MARKER, 0) and ends
// at kill(MARKER + 1, 0): pids no process can have (above the kernel's PID_MAX_LIMIT, 2^22), so
// the calls fail with ESRCH and only mark the moments. A call begun after the window is not
// counted, and a call's time inside and asleep is cut at the window's end (as strace's log is
// cut there): bpftrace takes a moment to end, while the server runs on. group: 1 for a thread of the model (named `iolab:...` by itself), 2 for
// the language runtime's; a thread born while traced inherits its creator's name and stays the
// runtime's until it names itself (prctl PR_SET_NAME), as src/tracer/strace-log.ts decides.
// Which processes are the server's: those of one cgroup (a container: the cgroup v2 id, from
// bpf_get_current_cgroup_id; its docker-init, if any, left out), or a process tree (the pids given, and every process they fork,
// from sched:sched_process_fork).
//
// One bpftrace serves a whole lab, a server at a time: compiling and attaching takes a second or
// two, as long as a short run. With a tree filter, kill(MARKER + 2, 0) resets it (every map
// cleared, nothing counted, then the line "reset"), and kill(MARKER + ARM_OFFSET + PID, 0) adds
// PID's tree to what is counted. A reset's clear() is carried out by bpftrace after the probe returns, as
// print() is: the observer arms the next server once "reset" is printed, and resets only once the
// last window's maps are printed.

/** Which tasks the program counts. */
export type BpfFilter = { kind: 'pids'; pids: readonly number[] } | { kind: 'cgroup'; id: bigint };

export interface BpfProgramOptions {
  filter: BpfFilter;
  /** kill(marker, 0) by anyone starts the window, kill(marker + 1, 0) ends it; a number in [2^30, 2^31 - 1). */
  marker: number;
  /** a thread whose name starts with this is the model's (SERVING_THREAD_PREFIX). */
  servingPrefix: string;
  /** the timeline's stretch and cap; TIMELINE by default. */
  timeline?: TimelineOptions;
}

/** Which stretch of the window the program prints event by event, and how many lines at most. */
export interface TimelineOptions {
  /** from the window's start to the stretch's, nanoseconds. */
  offsetNs: number;
  /** the stretch's length, nanoseconds. */
  spanNs: number;
  /** lines printed at most; the others are counted in @timelineDropped. */
  eventsMax: number;
}

/**
 * The timeline's stretch: 100 ms into the window (the clients, started with the window, are in
 * their stride by then), for 10 ms. 10 ms on a chart 1,000 px wide is 10 µs a pixel: a round
 * trip (20-100 µs here) is 2 to 10 pixels, so a row shows each request and its calls as a
 * texture, a hundred round trips or more per connection, and a sleep of a millisecond stands out.
 * A busy server makes 100-1,100 events in it (calls, returns, switches; epoll about 370, a
 * thread per connection about 1,000; the models lab on 2 loaded CPUs), far below the cap of
 * 20,000 lines, which only a thread calling in a tight loop on an idle CPU could reach.
 */
export const TIMELINE: TimelineOptions = { offsetNs: 100_000_000, spanNs: 10_000_000, eventsMax: 20_000 };

/** The prefix of the timeline's lines ("tl:call 4242 45 123456789"): no other line of the program starts with it. */
export const TIMELINE_LINE_PREFIX = 'tl:';
/** The states a task switched out can report (sched_switch's prev_state, include/trace/events/sched.h): TASK_REPORT. A bit above it (TASK_REPORT_MAX) is a preemption. */
const TASK_REPORT = 0xff;

/** The line the program prints once it has printed its maps, at the window's end. */
export const PRINTED = 'printed';
/** The line the program prints once a reset's maps are cleared. */
export const RESET = 'reset';
/** Window start, window end and reset are MARKER, MARKER + 1, MARKER + 2; arming a pid is MARKER + ARM_OFFSET + pid. */
export const ARM_OFFSET = 16;
/** No pid reaches this (PID_MAX_LIMIT, include/linux/threads.h): a marker above it names no process. */
export const PID_MAX_LIMIT = 2 ** 22;
/** The range a session's marker is drawn from: [2^30, MARKER_END), so every marker and MARKER + ARM_OFFSET + any pid stays below 2^31 - 1. */
export const MARKER_END = 2 ** 31 - 1 - ARM_OFFSET - PID_MAX_LIMIT;

/** PR_SET_NAME, prctl(2). */
const PR_SET_NAME = 15;
/** The name of Docker's init (tini), PID 1 of a container started with HostConfig.Init: never counted. */
export const DOCKER_INIT = 'docker-init';
/** prctl's number on x86_64 (src/tracer/syscall-names.ts). */
const PRCTL = 157;

/** bpftrace's source for `options`. Throws RangeError on a marker or prefix it cannot embed. */
export function bpfProgram(options: BpfProgramOptions): string {
  const { filter, marker, servingPrefix, timeline = TIMELINE } = options;
  for (const [name, value] of Object.entries(timeline)) if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`timeline ${name} ${value}: not a positive integer`);
  if (!Number.isInteger(marker) || marker < 2 ** 30 || marker >= MARKER_END) throw new RangeError(`marker ${marker}: not an integer in [2^30, ${MARKER_END})`);
  if (!/^[\w:.-]{1,15}$/.test(servingPrefix)) throw new RangeError(`serving prefix ${JSON.stringify(servingPrefix)}: 1 to 15 word characters, ':', '.', '-'`);
  // In a cgroup, the init Docker puts before a sandboxed server (HostConfig.Init, src/grade/own-server.ts) is not the server.
  // @armed: 0 from a reset until the next server is armed, while bpftrace clears the last one's maps.
  const ours = filter.kind === 'cgroup' ? `@armed && cgroup == ${filter.id} && comm != "${DOCKER_INIT}"` : `@armed && @tree[pid] && comm != "${DOCKER_INIT}"`;
  // A tree filter only: a reset, and arming the next server's tree.
  const treeReset = `
tracepoint:syscalls:sys_enter_kill /args->sig == 0 && args->pid >= ${marker + ARM_OFFSET} && args->pid < ${marker + ARM_OFFSET + PID_MAX_LIMIT}/ { @tree[args->pid - ${marker + ARM_OFFSET}] = 1; @armed = 1; }
tracepoint:syscalls:sys_enter_kill /args->pid == ${marker + 2} && args->sig == 0/ {
  @armed = 0; @windowStart = 0; @windowEnd = 0; @endNs = 0;
  clear(@calls); clear(@errors); clear(@blockedNs); clear(@enter); clear(@sysid); clear(@asleep); clear(@sleptNs);
  clear(@uringSubmitted); clear(@uringFailed); clear(@uringOpName); clear(@uringRequest);
  clear(@tree); clear(@born); clear(@group); clear(@renaming); clear(@comm);
  @timelineEvents = 0; @timelineDropped = 0;
  printf("${RESET}\\n");
}`;
  const roots = filter.kind === 'pids' ? filter.pids.map((pid) => `@tree[${Math.trunc(pid)}] = 1;`).join(' ') : '';
  const prefix = JSON.stringify(servingPrefix);
  const group = `strncmp(comm, ${prefix}, ${servingPrefix.length}) == 0 ? 1 : 2`;
  // The timeline: $t in the stretch ($from = its start, set from @windowStart), and one line under the cap.
  const stretchStart = `@windowStart + ${timeline.offsetNs}`;
  const inStretch = (t: string, from: string) => `${from} > ${timeline.offsetNs} && ${t} >= ${from} && ${t} < ${from} + ${timeline.spanNs}`;
  const line = (format: string, args: string) =>
    `if (@timelineEvents < ${timeline.eventsMax}) { printf("${TIMELINE_LINE_PREFIX}${format}\\n", ${args}); @timelineEvents++; } else { @timelineDropped++; }`;
  return `
BEGIN { ${roots} @armed = 1; printf("attached\\n"); }
tracepoint:sched:sched_process_fork /${ours}/ { ${filter.kind === 'pids' ? '@tree[args->child_pid] = 1; ' : ''}@born[args->child_pid] = 1; }
${filter.kind === 'pids' ? treeReset : ''}
tracepoint:syscalls:sys_enter_kill /args->pid == ${marker} && args->sig == 0/ { @windowStart = nsecs; }
tracepoint:syscalls:sys_enter_kill /args->pid == ${marker + 1} && args->sig == 0/ {
  @windowEnd = nsecs;
  @endNs = nsecs;
  print(@windowStart); print(@windowEnd); print(@endNs);
  print(@calls); print(@errors); print(@blockedNs);
  print(@enter); print(@sysid); print(@asleep); print(@sleptNs);
  print(@uringSubmitted); print(@uringFailed); print(@uringOpName);
  print(@group); print(@comm); print(@timelineEvents); print(@timelineDropped);
  printf("${PRINTED}\\n");
}
tracepoint:raw_syscalls:sys_enter /${ours} && @windowEnd == 0/ {
  $t = nsecs;
  @enter[tid] = $t;
  @sysid[tid] = args->id;
  $from = ${stretchStart};
  if (${inStretch('$t', '$from')}) { ${line('call %d %d %llu', 'tid, args->id, $t')} }
}
tracepoint:raw_syscalls:sys_exit /${ours}/ {
  $id = args->id;
  $ret = args->ret;
  $w = @windowStart;
  $e = @enter[tid];
  $windowEnd = @windowEnd;
  $end = $windowEnd > 0 ? $windowEnd : nsecs;
  $g = @group[tid];
  if ($g == 0 || ($id == ${PRCTL} && @renaming[tid])) {
    $g = @born[tid] && !@renaming[tid] ? 2 : (${group});
    @group[tid] = $g;
    @comm[tid] = comm;
    delete(@renaming[tid]);
  }
  $t = nsecs;
  $from = $w + ${timeline.offsetNs};
  if ($windowEnd == 0 && ${inStretch('$t', '$from')}) {
    if ($e > 0 || !@born[tid]) { ${line('return %d %d %llu', 'tid, $id, $t')} } else { ${line('born %d %llu', 'tid, $t')} }
  }
  // After the window's end too: @enter, printed then, may have lost the call since.
  if ($e > 0 && $e < $from && $t >= $from + ${timeline.spanNs} && $w > 0) { printf("${TIMELINE_LINE_PREFIX}spanned %d %d %llu %llu\\n", tid, $id, $e, $t); }
  $phase = $w > 0 && $e >= $w ? 1 : 0;
  $inside = $w > 0 && $end > $w ? $end - ($e > $w ? $e : $w) : 0;
  // A call begun after the window's end (none is entered into @enter then) is not counted; nor
  // is a new task's return from the fork or clone that made it (entered by its parent, counted
  // there): a call without an entry is one in progress at attach only for a task not born since.
  if ($e > 0 || ($windowEnd == 0 && !@born[tid])) {
    @calls[$phase, tid, $g, $id] = stats($inside);
    if ($ret < 0 && $ret > -4096) { @errors[$phase, tid, $g, $id, 0 - $ret] = count(); }
  }
  if (@sleptNs[tid] > 0) { @blockedNs[tid, $g, $id] = sum(@sleptNs[tid]); delete(@sleptNs[tid]); }
  delete(@enter[tid]);
}
tracepoint:syscalls:sys_enter_prctl /args->option == ${PR_SET_NAME} && ${ours}/ { @renaming[tid] = 1; }
tracepoint:sched:sched_process_exit /@enter[tid]/ { delete(@enter[tid]); delete(@asleep[tid]); delete(@sleptNs[tid]); }
tracepoint:sched:sched_process_exit /@group[tid] && @windowEnd == 0 && ${inStretch('nsecs', stretchStart)}/ { ${line('gone %d %llu', 'tid, nsecs')} }
tracepoint:sched:sched_switch /(args->prev_state & ${TASK_REPORT}) != 0 && @enter[args->prev_pid] && @windowEnd == 0/ { @asleep[args->prev_pid] = nsecs; }
tracepoint:sched:sched_switch /@windowEnd == 0 && ${inStretch('nsecs', stretchStart)}/ {
  $t = nsecs;
  if (@group[args->prev_pid]) { ${line('out %d %d %llu', `args->prev_pid, (args->prev_state & ${TASK_REPORT}) != 0 ? 1 : 0, $t`)} }
  if (@group[args->next_pid]) { ${line('in %d %llu', 'args->next_pid, $t')} }
}
tracepoint:sched:sched_switch /@asleep[args->next_pid]/ {
  $w = @windowStart;
  $s = @asleep[args->next_pid];
  $to = @windowEnd > 0 ? @windowEnd : nsecs;
  $from = $s > $w ? $s : $w;
  if ($w > 0 && $to > $from) { @sleptNs[args->next_pid] += $to - $from; }
  delete(@asleep[args->next_pid]);
}
tracepoint:io_uring:io_uring_submit_req /${ours} && @windowEnd == 0/ {
  @uringSubmitted[@windowStart > 0 ? 1 : 0, args->opcode] = count();
  @uringOpName[args->opcode] = str(args->op_str);
  @uringRequest[args->req] = args->opcode + 1;
}
tracepoint:io_uring:io_uring_complete /@uringRequest[args->req]/ {
  if (args->res < 0) { @uringFailed[@windowStart > 0 ? 1 : 0, @uringRequest[args->req] - 1, 0 - args->res] = count(); }
  delete(@uringRequest[args->req]);
}
END {
  @endNs = nsecs;
  ${filter.kind === 'pids' ? 'clear(@tree); ' : ''}clear(@born); clear(@group); clear(@comm); clear(@renaming); clear(@uringRequest);
}
`;
}
