// The tracer and the /proc probe against real strace and real processes: a summary parsed from
// what strace really wrote, a log counted by phase and by thread, counts of calls a process is
// known to make, a probe that watches a process burn CPU, sleep, open files.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LabRunError, RuntimeUnavailableError } from '../src/errors.js';
import { mergeCounts, ProcWindowSchema, type SyscallCount } from '../src/shared/results.js';
import { parseProcLimits, parseProcStat, parseProcStatus, ProcProbe, readLimits, readThreadNames } from '../src/tracer/proc.js';
import { countStraceLog, watchedFds } from '../src/tracer/strace-log.js';
import { parseStraceSummary, type StraceSummaryRow } from '../src/tracer/strace-summary.js';
import { startStrace } from '../src/tracer/strace.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fixture = (name: string) => readFile(new URL(`fixtures/${name}`, import.meta.url), 'utf8');

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'iolab-tracer-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Starts a process and waits for it to print "ready" (its start-up is then over). */
function startReady(command: string, args: string[]): Promise<ChildProcess & { pid: number }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('ready')) resolve(child as ChildProcess & { pid: number });
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${command} exited (${code}) before printing "ready"`)));
  });
}

/** A node script run with `node -e`, that prints "ready" once set up. */
function startNode(script: string) {
  return startReady(process.execPath, ['-e', script]);
}

function row<T extends { syscall: string }>(counts: T[], syscall: string): T | undefined {
  return counts.find((count) => count.syscall === syscall);
}

/** Every call of a log (no window: all of it is set-up), whatever the thread. */
function countAll(log: string): SyscallCount[] {
  const counted = countStraceLog(log, { namesAtAttach: new Map(), servingPrefix: 'iolab:', windowStart: null, windowEnd: null });
  return mergeCounts(counted.setup.serving, counted.setup.runtime);
}

describe('parseStraceSummary', () => {
  it('reads the default columns of a summary strace wrote (fixture)', async () => {
    const counts = parseStraceSummary(await fixture('strace-default-columns.txt'));
    expect(counts).toHaveLength(32);
    expect(row(counts, 'wait4')).toEqual({ syscall: 'wait4', calls: 6, errors: 3, usecsPerCall: 43, seconds: 0.000261 });
    expect(row(counts, 'mmap')).toEqual({ syscall: 'mmap', calls: 35, errors: 0, usecsPerCall: 0, seconds: 0 });
    expect(row(counts, 'total')).toBeUndefined();
  });

  it('reads the columns -U name,calls,errors,avg-time,total-time gives, from strace attached to a node process (fixture)', async () => {
    const counts = parseStraceSummary(await fixture('strace-iolab-columns.txt'));
    expect(counts.map((count) => count.syscall)).toEqual(['futex', 'openat', 'epoll_pwait', 'mprotect', 'mmap', 'munmap', 'madvise', 'getpid', 'read', 'close']);
    expect(row(counts, 'openat')).toEqual({ syscall: 'openat', calls: 971, errors: 970, usecsPerCall: 4, seconds: 0.003893 });
    expect(row(counts, 'epoll_pwait')?.errors).toBe(0);
  });

  it('counts what a command does, errors included (live strace)', async () => {
    const output = join(scratch, 'command.txt');
    const script = `
      const fs = require('fs');
      for (let i = 0; i < 100; i++) fs.closeSync(fs.openSync('/dev/null', 'r'));
      for (let i = 0; i < 40; i++) try { fs.openSync('/nonexistent/iolab-missing'); } catch {}`;
    await run('strace', ['-f', '-c', '-U', 'name,calls,errors,avg-time,total-time', '-o', output, '--', process.execPath, '-e', script]);
    const counts: StraceSummaryRow[] = parseStraceSummary(await readFile(output, 'utf8'));
    expect(row(counts, 'openat')!.calls).toBeGreaterThanOrEqual(140);
    expect(row(counts, 'openat')!.errors).toBeGreaterThanOrEqual(40);
    expect(row(counts, 'close')!.calls).toBeGreaterThanOrEqual(100);
  });

  it('reads the default columns of a live strace too', async () => {
    const output = join(scratch, 'shell.txt');
    await run('strace', ['-f', '-c', '-o', output, '--', 'sh', '-c', 'for i in 1 2 3; do cat /dev/null; done']);
    const counts = parseStraceSummary(await readFile(output, 'utf8'));
    // sh itself, then cat three times.
    expect(row(counts, 'execve')!.calls).toBe(4);
    expect(row(counts, 'vfork') ?? row(counts, 'clone') ?? row(counts, 'clone3')).toBeDefined();
  });

  it('reads no text (strace counted nothing) as no calls', () => {
    expect(parseStraceSummary('')).toEqual([]);
  });

  it('reads a total row whose usecs/call and errors are blank (grader case, strace 4.x layout)', async () => {
    const counts = parseStraceSummary(await fixture('grader-cases/strace-default-columns/summary.txt'));
    expect(counts).toEqual([{ syscall: 'epoll_wait', calls: 1, errors: 0, usecsPerCall: 12, seconds: 0.000012 }]);
  });

  // Each file's flags and command: fixtures/strace-summaries/README.md.
  const SUMMARIES: { file: string; rows: number; named: StraceSummaryRow[] }[] = [
    {
      file: 'strace-6.1-c-failed-opens.txt',
      rows: 26,
      named: [
        { syscall: 'openat', calls: 84, errors: 32, usecsPerCall: 1, seconds: 0.000113 },
        { syscall: 'close', calls: 52, errors: 0, usecsPerCall: 1, seconds: 0.000075 },
        { syscall: 'readlink', calls: 1, errors: 1, usecsPerCall: 4, seconds: 0.000004 },
      ],
    },
    {
      file: 'strace-6.1-c-no-call-fails.txt',
      rows: 3,
      named: [
        { syscall: 'write', calls: 1, errors: 0, usecsPerCall: 0, seconds: 0 },
        { syscall: 'getpid', calls: 5, errors: 0, usecsPerCall: 0, seconds: 0 },
        { syscall: 'execve', calls: 1, errors: 0, usecsPerCall: 0, seconds: 0 },
      ],
    },
    {
      file: 'strace-6.1-c-w-f-sleep.txt',
      rows: 36,
      named: [
        { syscall: 'clock_nanosleep', calls: 1, errors: 0, usecsPerCall: 200060, seconds: 0.20006 },
        { syscall: 'wait4', calls: 4, errors: 2, usecsPerCall: 51694, seconds: 0.206779 },
        { syscall: 'openat', calls: 72, errors: 32, usecsPerCall: 10, seconds: 0.00073 },
      ],
    },
    {
      file: 'strace-6.1-c-f-U-name-first.txt',
      rows: 30,
      named: [
        { syscall: 'sched_getaffinity', calls: 5, errors: 0, usecsPerCall: 18, seconds: 0.000092 },
        { syscall: 'newfstatat', calls: 212, errors: 44, usecsPerCall: 0, seconds: 0.000193 },
        { syscall: 'futex', calls: 23, errors: 1, usecsPerCall: 48, seconds: 0.001116 },
      ],
    },
    {
      file: 'strace-6.1-c-U-min-max-percent.txt',
      rows: 23,
      named: [
        { syscall: 'openat', calls: 40, errors: 19, usecsPerCall: 0, seconds: 0 },
        { syscall: 'statx', calls: 3, errors: 2, usecsPerCall: 0, seconds: 0 },
        { syscall: 'rseq', calls: 1, errors: 0, usecsPerCall: 0, seconds: 0 },
      ],
    },
    {
      // No errors or time columns: they read as 0.
      file: 'strace-6.1-c-U-calls-name.txt',
      rows: 3,
      named: [
        { syscall: 'write', calls: 1, errors: 0, usecsPerCall: 0, seconds: 0 },
        { syscall: 'getpid', calls: 5, errors: 0, usecsPerCall: 0, seconds: 0 },
      ],
    },
    {
      // getpid and write in both tables (5 + 1 and 3 getpid), open only in the 32-bit one.
      file: 'strace-6.1-c-f-two-personalities.txt',
      rows: 30,
      named: [
        { syscall: 'getpid', calls: 9, errors: 0, usecsPerCall: 0, seconds: 0 },
        { syscall: 'write', calls: 2, errors: 0, usecsPerCall: 0, seconds: 0 },
        { syscall: 'open', calls: 2, errors: 2, usecsPerCall: 0, seconds: 0 },
        { syscall: 'wait4', calls: 4, errors: 2, usecsPerCall: 0, seconds: 0 },
      ],
    },
    {
      // read in both tables: 0.000150 s + 0.000020 s over 50 + 10 calls.
      file: 'strace-4.x-two-personalities.txt',
      rows: 6,
      named: [
        { syscall: 'epoll_wait', calls: 50, errors: 0, usecsPerCall: 8, seconds: 0.0004 },
        { syscall: 'read', calls: 60, errors: 10, usecsPerCall: 3, seconds: 0.00017 },
        { syscall: 'sched_getaffinity', calls: 4, errors: 0, usecsPerCall: 0, seconds: 0 },
        { syscall: 'socketcall', calls: 2, errors: 2, usecsPerCall: 0, seconds: 0 },
      ],
    },
  ];

  it.each(SUMMARIES)('reads the calls and errors of $file (fixture)', async ({ file, rows, named }) => {
    const counts = parseStraceSummary(await fixture(`strace-summaries/${file}`));
    expect(counts).toHaveLength(rows);
    expect(row(counts, 'total')).toBeUndefined();
    for (const expected of named) {
      // Seconds add up in floating point where two personalities share a call.
      expect(row(counts, expected.syscall)).toEqual({ ...expected, seconds: expect.closeTo(expected.seconds, 9) });
    }
  });

  it('reads a table pasted without its dashed lines, on whitespace', () => {
    const pasted = [
      '% time     seconds  usecs/call     calls    errors syscall',
      ' 61.54    0.000400           8        50           epoll_wait',
      ' 23.08    0,000150           3        50        10 read',
      '100.00    0.000550                   100        10 total',
    ].join('\n');
    expect(parseStraceSummary(pasted)).toEqual([
      { syscall: 'epoll_wait', calls: 50, errors: 0, usecsPerCall: 8, seconds: 0.0004 },
      { syscall: 'read', calls: 50, errors: 10, usecsPerCall: 3, seconds: 0.00015 },
    ]);
  });

  it('names the offending line of a text that is not a summary', () => {
    expect(() => parseStraceSummary('strace: Process 12 attached\n')).toThrow(/line 1.*Process 12 attached/);
    // The header of -U name,calls,errors,avg-time,total-time, and a row with its cells where strace puts them.
    const header = 'syscall              calls    errors  usecs/call     seconds\n---------------- --------- --------- ----------- -----------\n';
    const aligned = (...cells: string[]) => `${cells[0].padEnd(16)} ${cells[1].padStart(9)} ${cells[2].padStart(9)} ${cells[3].padStart(11)} ${cells[4].padStart(11)}\n`;
    expect(parseStraceSummary(header + aligned('read', '12', '', '1', '0.000010'))).toEqual([{ syscall: 'read', calls: 12, errors: 0, usecsPerCall: 1, seconds: 0.00001 }]);
    expect(() => parseStraceSummary(header + aligned('read', '12', 'x', '1', '0.000010'))).toThrow(/line 3: "x" is not a number: "read/);
    expect(() => parseStraceSummary(`${header}read                12 x 1 0.000010\n`)).toThrow(/line 3: "x" is a second value under "calls"/);
    expect(() => parseStraceSummary(`${header}read 1 2\n`)).toThrow(/line 3: "1" is a second value under "syscall"/);
    expect(() => parseStraceSummary(`${header}read          123456\n`)).toThrow(/line 3: "123456" is not under one column of dashes/);
    expect(() => parseStraceSummary(`${header}                        12\n`)).toThrow(/line 3: "" is not a system call name/);
    expect(() => parseStraceSummary(`${header}read\n`)).toThrow(/line 3: the calls cell is blank: "read"/);
    expect(() => parseStraceSummary('syscall  errors\n-------- ------\n')).toThrow(/line 1: the strace -c header lacks calls/);
    expect(() => parseStraceSummary('syscall calls errors\nread 1 2 3\n')).toThrow(/line 2: expected 3 columns, got 4: "read 1 2 3"/);
  });
});

describe('countStraceLog: what readiness calls watched, and the flags that tell how a call is used', () => {
  const LOG = [
    // socketserver's serve_forever: a poll of the listener alone, one whole and one cut by another line
    '300 20.000100 poll([{fd=3, events=POLLIN}], 1, 500) = 0 (Timeout)',
    '300 20.000200 poll([{fd=3, events=POLLIN}], 1, 500 <unfinished ...>',
    '301 20.000250 recvfrom(5, "a", 65536, 0, NULL, NULL) = 1',
    '300 20.000300 <... poll resumed>) = 1 ([{fd=3, revents=POLLIN}])',
    // a select server watching three fds, another a poll server with an array strace shortened
    '302 20.000400 pselect6(8, [3 5 7], NULL, NULL, NULL, NULL) = 1 (in [5])',
    '303 20.000500 poll([{fd=3, events=POLLIN}, {fd=4, events=POLLIN}, ...], 40, -1) = 1 ([{fd=4, revents=POLLIN}])',
    '304 20.000600 epoll_ctl(4, EPOLL_CTL_ADD, 6, {events=EPOLLIN|EPOLLET, data={u32=6, u64=6}}) = 0',
    '305 20.000700 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 400',
    '',
  ].join('\n');
  const counted = countStraceLog(LOG, { namesAtAttach: new Map(), servingPrefix: 'iolab:', windowStart: null, windowEnd: null });
  const row = (syscall: string) => counted.setup.serving.find((r) => r.syscall === syscall)!;

  it('keeps the most fds one call watched and which, from poll\'s array and count and select\'s sets', () => {
    expect(watchedFds('poll([{fd=3, events=POLLIN}], 1, 500) = 0 (Timeout)')).toEqual({ max: 1, fds: [3] });
    expect(watchedFds('pselect6(8, [3 5 7], [5], NULL, NULL, NULL) = 1')).toEqual({ max: 3, fds: [3, 5, 7] });
    expect(watchedFds('recvfrom(5, "a", 65536, 0, NULL, NULL) = 1')).toBeNull();
    expect(row('poll')).toMatchObject({ calls: 3, watched: { max: 40, fds: [3, 4] } });
    expect(row('pselect6')).toMatchObject({ calls: 1, watched: { max: 3, fds: [3, 5, 7] } });
    expect(row('recvfrom').watched).toBeUndefined();
    // each of the four polls' threads (300, 303) and the one that read
    expect([row('poll').threads, row('recvfrom').threads]).toEqual([2, 1]);
  });

  it('keeps EPOLLET of an epoll_ctl, and tells a clone that forks (no CLONE_THREAD) from one that starts a thread', () => {
    expect(row('epoll_ctl').flags).toEqual(['EPOLLET']);
    expect(row('clone').flags).toBeUndefined();
    const thread = countStraceLog('1 1.0 clone3({flags=CLONE_VM|CLONE_THREAD, exit_signal=0}, 88) = 2\n', { namesAtAttach: new Map(), servingPrefix: 'iolab:', windowStart: null, windowEnd: null });
    expect(thread.setup.serving[0].flags).toEqual(['CLONE_THREAD']);
  });
});

describe('countStraceLog', () => {
  // The shapes strace -f -ttt writes (strace(1)): whole calls, a call cut by another thread's
  // line and resumed, a failed call with its errno, a thread naming itself, exits and signals.
  const LOG = [
    '100 10.000100 accept4(3, NULL, NULL, 0) = 7',
    '100 10.000200 clone3({flags=CLONE_VM|CLONE_THREAD, ...}, 88) = 200',
    '200 10.000300 openat(AT_FDCWD, "/x", O_RDONLY) = -1 ENOENT (No such file or directory)',
    '200 10.000400 prctl(PR_SET_NAME, "iolab:conn" <unfinished ...>',
    '101 10.000450 futex(0x1, FUTEX_WAIT, 0, NULL <unfinished ...>',
    '200 10.000500 <... prctl resumed>) = 0',
    '200 10.000600 recvfrom(7, "abc", 65536, 0, NULL, NULL) = 3',
    '101 10.000700 <... futex resumed>) = -1 EAGAIN (Resource temporarily unavailable)',
    '--- SIGUSR2 {si_signo=SIGUSR2, si_code=SI_USER} ---',
    '200 11.000000 recvfrom(7, "def", 65536, 0, NULL, NULL) = 3',
    '200 11.000100 sendto(7, "DEF", 3, MSG_NOSIGNAL, NULL, 0) = 3',
    '200 11.000200 recvfrom(7, 0x7f, 65536, 0, NULL, NULL) = -1 EAGAIN (Resource temporarily unavailable)',
    '101 11.000300 mprotect(0x1000, 4096, PROT_READ) = 0',
    '100 11.000400 epoll_pwait(4, [], 1024, 0, NULL, 8) = 0',
    '200 13.000000 recvfrom(7, "late", 65536, 0, NULL, NULL) = 4',
    '200 13.000100 +++ exited with 0 +++',
    '',
  ].join('\n');
  const names = new Map([
    [100, 'iolab:main'],
    [101, 'node'],
  ]);
  const counted = countStraceLog(LOG, { namesAtAttach: names, servingPrefix: 'iolab:', windowStart: 10.5, windowEnd: 12 });
  const calls = (rows: SyscallCount[]) => Object.fromEntries(rows.map((r) => [r.syscall, r.calls]));

  it("splits set-up from the window by each call's start, and drops what comes after the window", () => {
    expect(calls(counted.setup.serving)).toEqual({ accept4: 1, clone3: 1, recvfrom: 1 });
    expect(calls(counted.window.serving)).toEqual({ recvfrom: 2, sendto: 1, epoll_pwait: 1 });
  });

  it("counts a new thread as the runtime's until it names itself iolab:..., then as the model's", () => {
    // Thread 200 was born while traced: its openat and its prctl are the runtime's (Node starting it).
    expect(calls(counted.setup.runtime)).toEqual({ openat: 1, prctl: 1, futex: 1 });
    expect(calls(counted.window.runtime)).toEqual({ mprotect: 1 });
    expect(counted.threads).toEqual({ serving: 2, runtime: 1 });
  });

  it('keeps each failure with its errno, a resumed call included', () => {
    expect(row(counted.setup.runtime, 'futex')).toEqual({ syscall: 'futex', calls: 1, errors: 1, errnos: { EAGAIN: 1 }, threads: 1 });
    expect(row(counted.setup.runtime, 'openat')?.errnos).toEqual({ ENOENT: 1 });
    expect(row(counted.window.serving, 'recvfrom')).toEqual({ syscall: 'recvfrom', calls: 2, errors: 1, errnos: { EAGAIN: 1 }, threads: 1 });
  });

  it('counts every thread as the model\'s when none names itself (a Python or C server)', () => {
    const plain = countStraceLog(LOG.replace('iolab:conn', 'worker'), { namesAtAttach: new Map(), servingPrefix: 'iolab:', windowStart: null, windowEnd: null });
    expect(plain.setup.runtime).toEqual([]);
    expect(calls(plain.setup.serving)).toMatchObject({ accept4: 1, openat: 1, futex: 1, recvfrom: 4 });
    expect(plain.threads).toEqual({ serving: 3, runtime: 0 });
  });

  it('counts the threads of a live server by the names they give themselves', async () => {
    // A worker names itself iolab:conn through prctl (koffi) and reads a missing file in a loop.
    const libc = new URL('../dist/libc/thread.js', import.meta.url).href;
    const server = await startNode(`
      const { Worker } = require('worker_threads');
      const body = "import('${libc}').then(({ setThreadName }) => { setThreadName('iolab:conn'); const fs = require('fs'); setInterval(() => { try { fs.openSync('/nonexistent/iolab-named'); } catch {} }, 5); require('worker_threads').parentPort.postMessage('up'); })";
      new Worker(body, { eval: true }).once('message', () => console.log('ready'));`);
    const namesAtAttach = await readThreadNames(server.pid);
    const session = await startStrace(server.pid, { outputFile: join(scratch, 'named.txt') });
    const attached = await readThreadNames(server.pid);
    await sleep(500);
    const live = countStraceLog(await session.stop(), { namesAtAttach: attached, servingPrefix: 'iolab:', windowStart: null, windowEnd: null });
    expect([...namesAtAttach.values()]).toContain('iolab:conn');
    expect(row(live.setup.serving, 'openat')?.errnos.ENOENT).toBeGreaterThan(0);
    expect(row(live.setup.runtime, 'openat')).toBeUndefined();
    expect(live.threads.serving).toBe(1);
  });
});

describe('startStrace', () => {
  it('counts the calls of a running process, without its start-up, and leaves it running', async () => {
    // Opens a missing file every 5 ms: openat calls that all fail.
    const server = await startNode(`
      const fs = require('fs');
      setInterval(() => { try { fs.openSync('/nonexistent/iolab-probe'); } catch {} }, 5);
      console.log('ready');`);
    const session = await startStrace(server.pid, { outputFile: join(scratch, 'live.txt') });
    await sleep(500);
    const counts = countAll(await session.stop());

    expect(row(counts, 'openat')!.calls).toBeGreaterThan(0);
    expect(row(counts, 'openat')!.errors).toBeGreaterThan(0);
    // execve ran before strace attached: start-up is not in the counts.
    expect(row(counts, 'execve')).toBeUndefined();
    // Detached: the process runs on, traced by no one.
    const status = await readFile(`/proc/${server.pid}/status`, 'utf8');
    expect(status).toMatch(/^TracerPid:\s+0$/m);
    expect(server.exitCode).toBeNull();
  });

  it('follows every thread of the process, not only the main one', async () => {
    // The main thread sits idle; a worker thread opens the missing file in a loop.
    const server = await startNode(`
      const { Worker } = require('worker_threads');
      new Worker("const fs = require('fs'); setInterval(() => { try { fs.openSync('/nonexistent/iolab-worker'); } catch {} }, 5); require('worker_threads').parentPort.postMessage('up')", { eval: true })
        .once('message', () => console.log('ready'));`);
    const session = await startStrace(server.pid, { outputFile: join(scratch, 'threads.txt') });
    await sleep(500);
    expect(row(countAll(await session.stop()), 'openat')!.errors).toBeGreaterThan(0);
  });

  it('rejects with the pid when there is no such process', async () => {
    const gone = spawn('true');
    await new Promise((resolve) => gone.once('exit', resolve));
    const attempt = startStrace(gone.pid!, { outputFile: join(scratch, 'gone.txt') });
    await expect(attempt).rejects.toThrow(LabRunError);
    await expect(attempt).rejects.toThrow(new RegExp(`pid ${gone.pid}.*No such process`));
  });

  it('says how to install strace when it is not on the PATH', async () => {
    const server = await startNode(`setInterval(() => {}, 10); console.log('ready');`);
    const path = process.env.PATH;
    process.env.PATH = scratch;
    try {
      const attempt = startStrace(server.pid, { outputFile: join(scratch, 'missing.txt') });
      await expect(attempt).rejects.toThrow(RuntimeUnavailableError);
      await expect(attempt).rejects.toThrow(/apt-get install strace/);
    } finally {
      process.env.PATH = path;
    }
  });

  it('kill() ends strace without a summary, twice without harm, and spares the process', async () => {
    const server = await startNode(`setInterval(() => {}, 10); console.log('ready');`);
    const session = await startStrace(server.pid, { outputFile: join(scratch, 'killed.txt') });
    session.kill();
    session.kill();
    await expect(session.stop()).rejects.toThrow(/killed/);
    expect(server.exitCode).toBeNull();
  });
});

describe('/proc parsers', () => {
  it('parseProcStat splits after the last ")", whatever the command name holds', async () => {
    const own = await readFile('/proc/self/stat', 'utf8');
    const odd = own.replace(/\(.*\)/, '(a) (b c) d)');
    expect(parseProcStat(odd)).toEqual(parseProcStat(own));
    expect(parseProcStat(own).threads).toBeGreaterThan(0);
    expect(() => parseProcStat('12 (x) S')).toThrow(/field 14 \(utime\)/);
  });

  it('parseProcStatus reads threads, memory and context switches', async () => {
    const status = parseProcStatus(await readFile('/proc/self/status', 'utf8'));
    expect(status.threads).toBeGreaterThan(0);
    expect(status.peakRssKb!).toBeGreaterThanOrEqual(status.rssKb!);
    expect(status.voluntaryContextSwitches).toBeGreaterThanOrEqual(0);
    // A kernel thread has no memory lines.
    expect(parseProcStatus(await readFile('/proc/2/status', 'utf8')).rssKb).toBeNull();
  });

  it('parseProcLimits reads "Max open files", "unlimited" as null', async () => {
    const own = await readFile('/proc/self/limits', 'utf8');
    expect(parseProcLimits(own).soft).toBeGreaterThan(0);
    const unlimited = own.replace(/^Max open files\s+\S+\s+\S+/m, 'Max open files            512                  unlimited');
    expect(parseProcLimits(unlimited)).toEqual({ soft: 512, hard: null });
    expect(() => parseProcLimits('Limit  Soft Limit  Hard Limit\n')).toThrow(/Max open files/);
  });
});

describe('readLimits', () => {
  it('reflects the nofile limit the process was started with', async () => {
    const sleeper = spawn('prlimit', ['--nofile=1234:2345', '--', 'sleep', '5']);
    children.push(sleeper);
    // prlimit sets the limit, then becomes sleep (same pid): wait for the exec.
    for (let i = 0; i < 100 && (await readFile(`/proc/${sleeper.pid}/comm`, 'utf8')).trim() !== 'sleep'; i++) await sleep(20);

    const limits = await readLimits(sleeper.pid!);
    expect(limits).toMatchObject({ nofileSoft: 1234, nofileHard: 2345, fdSetSize: 1024 });
    expect(limits.nrOpen).toBeGreaterThanOrEqual(2345);
    expect(limits.fileMax).toBeGreaterThan(0);
  });
});

describe('ProcProbe', () => {
  it('sees a busy loop use most of a core, and a sleeping process almost none', async () => {
    const busy = await startNode(`console.log('ready'); for (;;) {}`);
    const sleeper = await startReady('sh', ['-c', 'echo ready; exec sleep 10']);
    const [busyProbe, sleeperProbe] = await Promise.all([ProcProbe.start(busy.pid), ProcProbe.start(sleeper.pid)]);
    await sleep(1000);
    const [busyWindow, sleeperWindow] = await Promise.all([busyProbe.stop(), sleeperProbe.stop()]);

    ProcWindowSchema.parse(busyWindow);
    expect(busyWindow.cpuPercent).toBeGreaterThan(50);
    expect(busyWindow.cpuUserSeconds).toBeGreaterThan(busyWindow.cpuSystemSeconds);
    expect(busyWindow.samples).toBeGreaterThan(2);
    expect(sleeperWindow.cpuPercent).toBeLessThan(20);
  });

  it('counts the fds a process opened, its threads and its memory', async () => {
    const server = await startNode(`
      const fs = require('fs');
      const files = Array.from({ length: 50 }, () => fs.openSync('/dev/null', 'r'));
      setInterval(() => {}, 1000);
      console.log('ready');`);
    const probe = await ProcProbe.start(server.pid, { intervalMs: 50 });
    await sleep(300);
    const window = await probe.stop();

    expect(window.fdsPeak).toBeGreaterThanOrEqual(50);
    // node: the main thread, libuv's pool, V8's platform workers.
    expect(window.threadsPeak).toBeGreaterThan(1);
    expect(window.peakRssKb).toBeGreaterThan(10_000);
  });

  it('counts the context switches of every thread, not only the main one', async () => {
    // The main thread idles; a worker wakes up a thousand times a second.
    const server = await startNode(`
      const { Worker } = require('worker_threads');
      new Worker("const cell = new Int32Array(new SharedArrayBuffer(4)); require('worker_threads').parentPort.postMessage('up'); for (;;) Atomics.wait(cell, 0, 0, 1);", { eval: true })
        .once('message', () => console.log('ready'));`);
    const mainThreadSwitches = async () => parseProcStatus(await readFile(`/proc/${server.pid}/status`, 'utf8')).voluntaryContextSwitches;
    const mainThreadBefore = await mainThreadSwitches();
    const probe = await ProcProbe.start(server.pid);
    await sleep(500);
    const window = await probe.stop();
    const mainThreadDelta = (await mainThreadSwitches()) - mainThreadBefore;

    expect(window.voluntaryContextSwitches).toBeGreaterThan(mainThreadDelta + 100);
  });

  it('returns what it measured when the process exits during the window', async () => {
    const shortLived = await startNode(`console.log('ready'); setTimeout(() => {}, 200);`);
    const exited = new Promise((resolve) => shortLived.once('exit', resolve));
    const probe = await ProcProbe.start(shortLived.pid, { intervalMs: 50 });
    await exited;
    await sleep(500);
    const window = await probe.stop();

    ProcWindowSchema.parse(window);
    expect(window.samples).toBeGreaterThanOrEqual(1);
    expect(window.wallSeconds).toBeLessThan(0.5);
  });

  it('rejects with the pid when there is no such process', async () => {
    const gone = spawn('true');
    await new Promise((resolve) => gone.once('exit', resolve));
    await expect(ProcProbe.start(gone.pid!)).rejects.toThrow(new RegExp(`pid ${gone.pid}`));
  });
});
