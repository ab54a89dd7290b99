// The tracer and the /proc probe against real strace and real processes: a summary parsed from
// what strace really wrote, counts of calls a process is known to make, a probe that watches a
// process burn CPU, sleep, open files.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LabRunError, RuntimeUnavailableError } from '../src/errors.js';
import { ProcWindowSchema, SyscallCountSchema, type SyscallCount } from '../src/report/results.js';
import { parseProcLimits, parseProcStat, parseProcStatus, ProcProbe, readLimits } from '../src/tracer/proc.js';
import { parseStraceSummary } from '../src/tracer/strace-summary.js';
import { startStrace, STRACE_SUMMARY_COLUMNS } from '../src/tracer/strace.js';

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

function row(counts: SyscallCount[], syscall: string): SyscallCount | undefined {
  return counts.find((count) => count.syscall === syscall);
}

describe('parseStraceSummary', () => {
  it('reads the default columns of a summary strace wrote (fixture)', async () => {
    const counts = parseStraceSummary(await fixture('strace-default-columns.txt'));
    expect(counts).toHaveLength(32);
    expect(row(counts, 'wait4')).toEqual({ syscall: 'wait4', calls: 6, errors: 3, usecsPerCall: 43, seconds: 0.000261 });
    expect(row(counts, 'mmap')).toEqual({ syscall: 'mmap', calls: 35, errors: 0, usecsPerCall: 0, seconds: 0 });
    expect(row(counts, 'total')).toBeUndefined();
    for (const count of counts) SyscallCountSchema.parse(count);
  });

  it('reads the columns iolab asks for, from strace attached to a node process (fixture)', async () => {
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
    await run('strace', ['-f', '-c', '-U', STRACE_SUMMARY_COLUMNS, '-o', output, '--', process.execPath, '-e', script]);
    const counts = parseStraceSummary(await readFile(output, 'utf8'));
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

describe('startStrace', () => {
  it('counts the calls of a running process, without its start-up, and leaves it running', async () => {
    // Opens a missing file every 5 ms: openat calls that all fail.
    const server = await startNode(`
      const fs = require('fs');
      setInterval(() => { try { fs.openSync('/nonexistent/iolab-probe'); } catch {} }, 5);
      console.log('ready');`);
    const session = await startStrace(server.pid, { outputFile: join(scratch, 'live.txt') });
    await sleep(500);
    const counts = await session.stop();

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
    expect(row(await session.stop(), 'openat')!.errors).toBeGreaterThan(0);
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
