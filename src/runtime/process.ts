// A child process whose output is read line by line, with a way to wait for a given line. The
// local runtime runs servers, clients and tracers as these.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { LabRunError } from '../errors.js';

const KEPT_LINES = 200;

export class LineProcess {
  readonly child: ChildProcess;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** resolves with the exit code (or the signal's name) once the process is gone. */
  readonly exited: Promise<number | string>;
  private exitStatus: number | string | null = null;
  private readonly waiters = new Set<() => void>();

  constructor(
    /** how errors name this process, e.g. "server model=epoll". */
    readonly description: string,
    command: string,
    args: string[],
  ) {
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (error) => {
        this.stderr.push(`cannot start ${command}: ${error.message}`);
        this.exitStatus = 'not started';
        this.notify();
        resolve(this.exitStatus);
      });
      this.child.on('close', (code, signal) => {
        this.exitStatus = code ?? signal ?? 'unknown';
        this.notify();
        resolve(this.exitStatus);
      });
    });
    for (const [stream, lines] of [
      [this.child.stdout!, this.stdout],
      [this.child.stderr!, this.stderr],
    ] as const) {
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(line);
        if (lines.length > KEPT_LINES) lines.splice(0, lines.length - KEPT_LINES);
        this.notify();
      });
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitStatus === null;
  }

  private notify(): void {
    for (const wake of this.waiters) wake();
  }

  /** Waits until a line of `stream` matches, the process exits, or the time is up. */
  waitForLine(stream: 'stdout' | 'stderr', match: (line: string) => boolean, expected: string, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const lines = this[stream];
      let searched = 0;
      const finish = (outcome: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        outcome();
      };
      const check = () => {
        for (; searched < lines.length; searched++) {
          if (match(lines[searched])) {
            const line = lines[searched];
            return finish(() => resolve(line));
          }
        }
        if (!this.running) {
          finish(() => reject(new LabRunError(`${this.description} exited (${this.exitStatus}) before ${expected}${this.tail()}`)));
        }
      };
      const timer = setTimeout(
        () => finish(() => reject(new LabRunError(`${this.description}: ${expected} not seen after ${timeoutMs} ms${this.tail()}`))),
        timeoutMs,
      );
      this.waiters.add(check);
      check();
    });
  }

  /** The last lines of stderr, for error messages. */
  tail(count = 5): string {
    const last = this.stderr.slice(-count);
    return last.length ? `; its stderr ends: ${last.join(' | ')}` : '';
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. Resolves once it is gone. */
  async stop(graceMs = 2000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(killer);
  }
}
