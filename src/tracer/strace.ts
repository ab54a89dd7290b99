// Traces the system calls of a running process and its children: `strace -f -ttt -o FILE -p PID ...`.
//
// strace attaches to a process that is already running: the caller attaches once the server has
// printed its ready line, so the server's start-up (execve, loading modules, binding) is never
// counted. Stopping sends SIGINT, which makes strace detach from every thread; the tracee keeps
// running, untouched. The log it wrote is counted by strace-log.ts, by phase and by thread.
//
// The flags, and why:
//   -f        follow every thread and child. With -p it also attaches to every thread that
//             already exists: a Node server is a dozen threads (libuv's pool, V8's workers).
//   -p PID    once for the server and once for each process it had already forked (a pre-forked
//             pool of workers): -f follows only the children born while traced.
//   -ttt      each line starts with the time of the call (seconds since the epoch, with
//             microseconds): what tells set-up from the measured window.
//   -s 16     strings cut at 16 bytes: a thread's name (at most 15) is all we read of them, and
//             shorter lines cost the traced server less.
//   -o FILE   one line per call to a file (with -f, each line starts with the thread's id),
//             leaving stderr to strace's "attached" messages. A log costs the server about 10%
//             more than strace -c's summary (measured here: 4,700 against 5,400 round trips/s of
//             an epoll server at 16 connections), and it is what per-thread counts need.
//   LC_ALL=C  strace formats numbers with printf: keep the decimal point a point.
import { spawn, type ChildProcess } from 'node:child_process';
import { diesWithThisProcess } from '../shared/dies-with-parent.js';
import { processIds } from './listeners.js';
import { readFile } from 'node:fs/promises';
import { LabRunError, RuntimeUnavailableError } from '../errors.js';
const DEFAULT_ATTACH_TIMEOUT_MS = 5000;
/** Detaching from thousands of threads takes a moment; longer than this, strace is stuck. */
const DETACH_TIMEOUT_MS = 10_000;
/** Enough of strace's stderr to explain a failure without holding every "detached" line. */
const STDERR_KEPT_CHARS = 4000;

export interface StraceOptions {
  /** Where strace writes its log. Its directory must exist. */
  outputFile: string;
  /** How long strace may take to attach before startStrace rejects. Default 5000 ms. */
  timeoutMs?: number;
}

/** strace's arguments for the processes `pids` (the server first, then its children). */
export function straceArguments(pids: number[], outputFile: string): string[] {
  return ['-f', '-ttt', '-s', '16', '-o', outputFile, ...pids.flatMap((pid) => ['-p', String(pid)])];
}

/**
 * Attaches strace to `pid` and every process it has forked, and resolves once it has attached
 * to every thread of the server's process. Rejects (LabRunError) when strace cannot attach.
 */
export async function startStrace(pid: number, options: StraceOptions): Promise<StraceSession> {
  const children = (await processIds('/proc', pid)).filter((other) => other !== pid);
  return attach(pid, [pid, ...children], options);
}

function attach(pid: number, pids: number[], options: StraceOptions): Promise<StraceSession> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_ATTACH_TIMEOUT_MS;
  const tied = diesWithThisProcess('strace', straceArguments(pids, options.outputFile));
  const child = spawn(tied.command, tied.args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_ALL: 'C' },
  });
  const session = new StraceSession(pid, options.outputFile, child);

  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error === null) return resolve(session);
      session.kill();
      reject(error);
    };
    const timer = setTimeout(
      () => settle(new LabRunError(`strace did not attach to pid ${pid} within ${timeoutMs} ms${session.stderrForMessage()}`)),
      timeoutMs,
    );
    child.once('error', (error: NodeJS.ErrnoException) => {
      settle(
        error.code === 'ENOENT'
          ? new RuntimeUnavailableError('strace is not installed (needed to count system calls): apt-get install strace')
          : new LabRunError(`cannot start strace for pid ${pid}: ${error.message}`),
      );
    });
    // "Process PID attached" (or "... attached with N threads") comes once every thread is held.
    const attachedLine = new RegExp(`^strace: Process ${pid} attached`, 'm');
    child.stderr!.on('data', () => {
      if (attachedLine.test(session.stderr)) settle(null);
    });
    child.once('close', () => settle(new LabRunError(`strace could not attach to pid ${pid}${session.stderrForMessage()}`)));
  });
}

export class StraceSession {
  /** What strace wrote on stderr, its last STDERR_KEPT_CHARS characters. */
  stderr = '';
  private readonly exited: Promise<void>;
  private killed = false;
  private stopping: Promise<string> | null = null;

  constructor(
    /** The traced process. */
    readonly pid: number,
    readonly outputFile: string,
    private readonly child: ChildProcess,
  ) {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-STDERR_KEPT_CHARS);
    });
    // 'close' also comes after a failed spawn ('error'), so the session always learns the end.
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
  }

  /** Detaches strace (SIGINT), waits for it to finish its log, and returns the log's text. */
  stop(): Promise<string> {
    this.stopping ??= this.detachAndRead();
    return this.stopping;
  }

  /** Teardown after an error: ends strace at once; its log is dropped. Safe to call again. */
  kill(): void {
    // A killed tracer leaves its tracees running: the kernel detaches them.
    if (this.killed || !this.running) return;
    this.killed = true;
    this.child.kill('SIGKILL');
  }

  private get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  stderrForMessage(): string {
    const text = this.stderr.trim();
    return text ? `: ${text}` : '';
  }

  private async detachAndRead(): Promise<string> {
    // strace ends by itself when the traced process exits, having written its log already.
    if (this.killed) throw new LabRunError(`strace (pid ${this.pid}) was killed: its log is not whole`);
    if (this.running) this.child.kill('SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), DETACH_TIMEOUT_MS)));
    const outcome = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.kill();
      throw new LabRunError(`strace did not detach from pid ${this.pid} within ${DETACH_TIMEOUT_MS} ms${this.stderrForMessage()}`);
    }
    try {
      return await readFile(this.outputFile, 'utf8');
    } catch (error) {
      throw new LabRunError(`strace (pid ${this.pid}) left no log in ${this.outputFile}: ${(error as Error).message}${this.stderrForMessage()}`);
    }
  }
}
