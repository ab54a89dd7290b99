// Output read line by line, with a way to wait for a given line: a child process of the local
// runtime (LineProcess) or a container of the Docker runtime (see docker.ts). Both keep the last
// lines of stdout and stderr and report how the source ended.
import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import { diesWithThisProcess } from '../shared/dies-with-parent.js';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { LabRunError } from '../errors.js';
import { ClientResultSchema, type ClientResult } from '../shared/results.js';

const KEPT_LINES = 200;

export abstract class LineSource {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** How many lines of each stream were dropped from the front (only the last KEPT_LINES are kept). */
  private readonly dropped = { stdout: 0, stderr: 0 };
  protected exitStatus: number | string | null = null;
  private readonly waiters = new Set<() => void>();

  constructor(
    /** how errors name this source, e.g. "server model=epoll". */
    readonly description: string,
    /** sees every stderr line as it comes, before only the last ones are kept (server events). */
    private readonly onStderrLine?: (line: string) => void,
  ) {}

  get running(): boolean {
    return this.exitStatus === null;
  }

  /**
   * How it ended and the last lines of its stderr ("exited with code 1; its stderr ends: ...");
   * null while it runs. A status that is a sentence (a container's: "killed by the kernel's OOM
   * killer: ...", runtime/container-ending.ts) is said as it is.
   */
  ending(): string | null {
    if (this.exitStatus === null) return null;
    const how = typeof this.exitStatus === 'number' ? `exited with code ${this.exitStatus}` : /^SIG/.test(this.exitStatus) ? `killed by ${this.exitStatus}` : this.exitStatus;
    return `${how}${this.tail()}`;
  }

  protected readLines(stream: Readable, into: 'stdout' | 'stderr'): void {
    const lines = this[into];
    createInterface({ input: stream }).on('line', (line) => {
      if (into === 'stderr') this.onStderrLine?.(line);
      lines.push(line);
      if (lines.length > KEPT_LINES) this.dropped[into] += lines.splice(0, lines.length - KEPT_LINES).length;
      this.notify();
    });
  }

  protected ended(status: number | string): void {
    this.exitStatus ??= status;
    this.notify();
  }

  private notify(): void {
    for (const wake of this.waiters) wake();
  }

  /** Waits until a line of `stream` (of those kept, then of those to come) matches, the source ends, or the time is up. */
  waitForLine(stream: 'stdout' | 'stderr', match: (line: string) => boolean, expected: string, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const lines = this[stream];
      // Counted from the stream's first line, so that lines dropped from the front meanwhile do not shift it.
      let searched = this.dropped[stream];
      const finish = (outcome: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        outcome();
      };
      const check = () => {
        const dropped = this.dropped[stream];
        for (searched = Math.max(searched, dropped); searched < dropped + lines.length; searched++) {
          const line = lines[searched - dropped];
          if (match(line)) return finish(() => resolve(line));
        }
        if (!this.running) {
          // A code or a signal's name in brackets; a sentence (a container's "killed by SIGKILL (exit code 137)") after.
          const status = this.exitStatus!;
          const ended = typeof status === 'string' && status.includes(' ') ? `ended before ${expected}: ${status}` : `exited (${status}) before ${expected}`;
          finish(() => reject(new LabRunError(`${this.description} ${ended}${this.tail()}`)));
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
}

export class LineProcess extends LineSource {
  readonly child: ChildProcess;
  /** resolves with the exit code (or the signal's name) once the process is gone. */
  readonly exited: Promise<number | string>;

  constructor(
    description: string,
    command: string,
    args: string[],
    /** stdin: 'pipe' to write to it (child.stdin); default 'ignore'. */
    options: Pick<SpawnOptions, 'cwd' | 'env' | 'detached'> & { stdin?: 'pipe' | 'ignore' } = {},
    onStderrLine?: (line: string) => void,
  ) {
    super(description, onStderrLine);
    const { stdin = 'ignore', ...spawnOptions } = options;
    const tied = diesWithThisProcess(command, args, typeof spawnOptions.cwd === 'string' ? spawnOptions.cwd : undefined);
    this.child = spawn(tied.command, tied.args, { ...spawnOptions, stdio: [stdin, 'pipe', 'pipe'] });
    // A child that ends without reading what was written to it is not an error of ours.
    this.child.stdin?.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.child.on('error', (error) => {
        this.stderr.push(`cannot start ${command}: ${error.message}`);
        this.ended('not started');
        resolve('not started');
      });
      this.child.on('close', (code, signal) => {
        this.ended(code ?? signal ?? 'unknown');
        resolve(this.exitStatus!);
      });
    });
    this.readLines(this.child.stdout!, 'stdout');
    this.readLines(this.child.stderr!, 'stderr');
  }

  get pid(): number | undefined {
    return this.child.pid;
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

/**
 * The `iolab client` protocol, read from a client's output wherever it runs: `ready ...` on stderr
 * once its connections are up (and warmed up), then one JSON result on stdout when its window is
 * over. The result counts as soon as it is printed: a lab's client then keeps its connections
 * open until it is stopped. A client that ends before either line fails that wait at once.
 */
export function readClientOutput(
  source: LineSource,
  readyTimeoutMs: number,
  resultTimeoutMs: number,
): { ready: Promise<void>; result: Promise<ClientResult> } {
  const ready = source.waitForLine('stderr', (l) => l.startsWith('ready '), "its ready line ('ready connections=N')", readyTimeoutMs).then(() => undefined);
  const result = (async (): Promise<ClientResult> => {
    const line = await source.waitForLine('stdout', (l) => l.startsWith('{'), 'its JSON result', resultTimeoutMs);
    const parsed = ClientResultSchema.safeParse(JSON.parse(line));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new LabRunError(`${source.description} printed a result that does not fit the schema: ${issue.path.join('.')}: ${issue.message}`);
    }
    return parsed.data;
  })();
  // Callers may await only one of the two; the other must not become an unhandled rejection.
  ready.catch(() => {});
  result.catch(() => {});
  return { ready, result };
}
