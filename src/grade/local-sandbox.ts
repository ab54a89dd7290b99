// Grading on this machine, for developing an exercise or a solution without Docker. NOTHING is
// isolated: the submission runs as the grader's user with its files, its network and no limits.
// The CLI says so loudly. The server runs in its own process group, killed as a whole. A C
// server is built here, with this machine's gcc or make (the student's Makefile runs unconfined
// too). A server killed by a signal ends with the signal's name ('SIGPIPE'), as Node reports it.
import { spawn } from 'node:child_process';
import { diesWithThisProcess } from '../shared/dies-with-parent.js';
import { access, constants, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NotGradableError } from '../errors.js';
import { runProbe } from './probe.js';
import { clipOutputLine, type GradeSandbox, type SandboxedServer, type ServerState } from './sandbox.js';
import { buildMistake, C_BINARY, NO_C_BINARY, SubmissionError, type PreparedSubmission } from './submission.js';
import { processIds, waitForListener } from '../tracer/listeners.js';
import { observeProcess, type ObserveOptions } from '../tracer/observe.js';
import { LineProcess } from '../runtime/process.js';

const KEPT_LINES = 40;
/** node_modules of this package: what `import koffi from 'koffi'` in a TypeScript submission finds. */
const NODE_MODULES = fileURLToPath(new URL('../../node_modules', import.meta.url));

/** How long a C server's build may take on this machine. */
const BUILD_TIMEOUT_MS = 120_000;

/**
 * Runs a submission's build (make, gcc) in its directory, in its own process group; stdout and
 * stderr as one list of lines, in the order they came. The C locale: plain quotes in gcc's
 * messages, as in the Docker image.
 */
function runBuild(command: string[], cwd: string, timeoutMs: number): Promise<{ status: number | string; output: string[] }> {
  return new Promise((resolve, reject) => {
    const output: string[] = [];
    const tied = diesWithThisProcess(command[0], command.slice(1), cwd);
    const child = spawn(tied.command, tied.args, { cwd, env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on('line', (line) => output.push(line));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      reject(new NotGradableError(`building the server (${command.join(' ')}) did not finish within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = error.code === 'ENOENT' ? `${command[0]} is not installed on this machine (a C server needs gcc, make and libc6-dev)` : error.message;
      reject(new NotGradableError(`cannot build the server with ${command.join(' ')}: ${why}`));
    });
    // 'close': both pipes are drained, every line is in
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? signal ?? 'unknown', output });
    });
  });
}

/** Builds a C server in the prepared copy; its compile error is the student's (SubmissionError). */
async function buildServer(submission: PreparedSubmission, build: string[]): Promise<void> {
  const { status, output } = await runBuild(build, submission.dir, BUILD_TIMEOUT_MS);
  if (status === 0) {
    const built = await access(join(submission.dir, C_BINARY), constants.X_OK).then(() => true, () => false);
    if (!built) throw new SubmissionError(NO_C_BINARY, 'does-not-build');
    return;
  }
  const mistake = buildMistake(output, submission.dir);
  if (mistake !== null) throw new SubmissionError(mistake, 'does-not-build');
  throw new NotGradableError(`building the server (${build.join(' ')}) failed (${typeof status === 'number' ? `status ${status}` : status}) without a compiler error:\n  ${output.slice(-8).join('\n  ')}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

class LocalServer implements SandboxedServer {
  private exit: number | string | null = null;

  constructor(
    private readonly child: LineProcess,
    private readonly port: number,
  ) {
    void child.exited.then((status) => (this.exit = status));
  }

  private get pid(): number {
    return this.child.pid ?? -1;
  }

  address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async waitListening(timeoutMs: number) {
    return waitForListener(() => (this.child.running ? processIds('/proc', this.pid) : Promise.resolve([])), this.port, timeoutMs);
  }

  observe(pid: number, options: ObserveOptions) {
    return observeProcess(pid, options);
  }

  probe(request: Parameters<SandboxedServer['probe']>[0]) {
    let markReady: () => void = () => {};
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    const result = runProbe(request, { host: '127.0.0.1', port: this.port }, markReady);
    result.finally(markReady).catch(() => {});
    return { ready, result };
  }

  async state(): Promise<ServerState> {
    // stdout, then stderr (where a traceback goes)
    const output = [...this.child.stdout, ...this.child.stderr].slice(-KEPT_LINES).map(clipOutputLine);
    return { running: this.child.running, exit: this.exit, oomKilled: false, output };
  }

  async stop(): Promise<void> {
    if (this.child.running && this.pid > 0) {
      try {
        process.kill(-this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await this.child.exited;
  }
}

export interface LocalSandboxOptions {
  /** RLIMIT_NOFILE (soft = hard) of the server, set with prlimit(1); unset: the grader's own. */
  nofile?: number | null;
}

export class LocalSandbox implements GradeSandbox {
  readonly name = 'local';
  readonly id = `local-${process.pid}`;
  readonly limits = null;
  port = 0;
  private submission: PreparedSubmission | null = null;
  private readonly servers = new Set<LocalServer>();

  constructor(private readonly options: LocalSandboxOptions = {}) {}

  async describe(): Promise<string> {
    return `local processes on ${hostname()} (not isolated)`;
  }

  async prepare(submission: PreparedSubmission): Promise<void> {
    if (submission.kind === 'dockerfile') throw new NotGradableError('a Dockerfile submission needs the Docker runtime (--runtime docker)');
    if (submission.build) await buildServer(submission, submission.build);
    this.submission = submission;
    // Module resolution walks up from the program's directory: give it this package's modules.
    if (!submission.files.some((file) => file.startsWith('node_modules/'))) {
      await symlink(NODE_MODULES, join(submission.dir, 'node_modules')).catch(() => {});
    }
    this.port = await freePort();
  }

  async start(): Promise<SandboxedServer> {
    if (!this.submission?.command) throw new NotGradableError('the local sandbox was started before a submission was prepared');
    const nofile = this.options.nofile ?? null;
    const [command, ...args] = nofile === null ? this.submission.command : ['prlimit', `--nofile=${nofile}:${nofile}`, '--', ...this.submission.command];
    const child = new LineProcess(`the server of ${this.submission.name}`, command, args, {
      cwd: this.submission.dir,
      env: { ...process.env, PORT: String(this.port), PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
      // its own process group: stop() kills the server and whatever it forked
      detached: true,
    });
    const server = new LocalServer(child, this.port);
    this.servers.add(server);
    return server;
  }

  async close(): Promise<void> {
    await Promise.all([...this.servers].map((server) => server.stop()));
    this.servers.clear();
  }
}
