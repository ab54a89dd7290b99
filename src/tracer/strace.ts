// Counts the system calls of a running process, like `strace -c -f -p PID`.
//
// strace attaches to a process that is already running: the caller attaches once the server has
// printed its ready line, so the server's start-up (execve, loading modules, binding) is never
// counted. Stopping sends SIGINT, which makes strace detach from every thread and write its
// summary table to the output file; the tracee keeps running, untouched.
//
// The flags, and why:
//   -f        follow every thread and child. With -p it also attaches to every thread that
//             already exists: a Node server is a dozen threads (libuv's pool, V8's workers).
//   -c        count only, print nothing per call: the summary table is all we need, and printing
//             each call would slow the server even more than tracing does.
//   -U ...    choose the summary's columns and their order (strace >= 5.16): the ones the results
//             schema keeps, so the table reads like the report. The parser also takes the
//             default columns.
//   -o FILE   the summary goes to a file, leaving stderr to strace's "attached" messages.
//   LC_ALL=C  strace formats numbers with printf: keep the decimal point a point.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { LabRunError, RuntimeUnavailableError } from '../errors.js';
import type { SyscallCount } from '../report/results.js';
import { parseStraceSummary } from './strace-summary.js';

export const STRACE_SUMMARY_COLUMNS = 'name,calls,errors,avg-time,total-time';
const DEFAULT_ATTACH_TIMEOUT_MS = 5000;
/** Detaching from thousands of threads takes a moment; longer than this, strace is stuck. */
const DETACH_TIMEOUT_MS = 10_000;
/** Enough of strace's stderr to explain a failure without holding every "detached" line. */
const STDERR_KEPT_CHARS = 4000;

export interface StraceOptions {
  /** Where strace writes its summary table. Its directory must exist. */
  outputFile: string;
  /** How long strace may take to attach before startStrace rejects. Default 5000 ms. */
  timeoutMs?: number;
}

export function straceArguments(pid: number, outputFile: string): string[] {
  return ['-f', '-c', '-U', STRACE_SUMMARY_COLUMNS, '-o', outputFile, '-p', String(pid)];
}

/** Attaches strace to `pid` and resolves once it has attached to every thread of the process. */
export function startStrace(pid: number, options: StraceOptions): Promise<StraceSession> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_ATTACH_TIMEOUT_MS;
  const child = spawn('strace', straceArguments(pid, options.outputFile), {
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
  private stopping: Promise<SyscallCount[]> | null = null;

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

  /** Detaches strace (SIGINT), waits for it to write its summary, and returns the counts. */
  stop(): Promise<SyscallCount[]> {
    this.stopping ??= this.detachAndRead();
    return this.stopping;
  }

  /** Teardown after an error: ends strace at once, without a summary. Safe to call again. */
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

  private async detachAndRead(): Promise<SyscallCount[]> {
    // strace ends by itself when the traced process exits, having written the summary already.
    if (this.killed) throw new LabRunError(`strace (pid ${this.pid}) was killed: it wrote no summary`);
    if (this.running) this.child.kill('SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), DETACH_TIMEOUT_MS)));
    const outcome = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.kill();
      throw new LabRunError(`strace did not detach from pid ${this.pid} within ${DETACH_TIMEOUT_MS} ms${this.stderrForMessage()}`);
    }
    let summary: string;
    try {
      summary = await readFile(this.outputFile, 'utf8');
    } catch (error) {
      throw new LabRunError(`strace (pid ${this.pid}) left no summary in ${this.outputFile}: ${(error as Error).message}${this.stderrForMessage()}`);
    }
    return parseStraceSummary(summary);
  }
}
