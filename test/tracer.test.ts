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
import { countStraceLog } from '../src/tracer/strace-log.js';
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

  it('names the offending line of a text that is not a summary', () => {
    expect(() => parseStraceSummary('strace: Process 12 attached\n')).toThrow(/line 1.*Process 12 attached/);
    const header = 'syscall            calls    errors usecs/call     seconds\n------------ --------- --------- ----------- -----------\n';
    expect(() => parseStraceSummary(`${header}read        12 x 1 0.000010\n`)).toThrow(/line 3.*"x" is not a number/);
    expect(() => parseStraceSummary(`${header}read 1 2\n`)).toThrow(/line 3: expected 5 columns, got 3/);
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
    expect(row(counted.setup.runtime, 'futex')).toEqual({ syscall: 'futex', calls: 1, errors: 1, errnos: { EAGAIN: 1 } });
    expect(row(counted.setup.runtime, 'openat')?.errnos).toEqual({ ENOENT: 1 });
    expect(row(counted.window.serving, 'recvfrom')).toEqual({ syscall: 'recvfrom', calls: 2, errors: 1, errnos: { EAGAIN: 1 } });
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
