// Grading on this machine, for developing an exercise or a solution without Docker. NOTHING is
// isolated: the submission runs as the grader's user with its files, its network and no limits.
// The CLI says so loudly. The server runs in its own process group, killed as a whole.
import { spawn, type ChildProcess } from 'node:child_process';
import { symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NotGradableError } from '../errors.js';
import { runProbe } from '../grade/probe.js';
import type { GradeSandbox, SandboxedServer, ServerState } from '../grade/sandbox.js';
import type { PreparedSubmission } from '../grade/submission.js';
import { processIds, waitForListener } from '../tracer/listeners.js';
import { observeProcess } from '../tracer/observe.js';

const KEPT_LINES = 40;
/** node_modules of this package: what `import koffi from 'koffi'` in a TypeScript submission finds. */
const NODE_MODULES = fileURLToPath(new URL('../../node_modules', import.meta.url));

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
  private readonly output: string[] = [];
  private exit: number | string | null = null;
  private readonly exited: Promise<void>;

  constructor(
    private readonly child: ChildProcess,
    private readonly port: number,
  ) {
    const keep = (line: string) => {
      this.output.push(line.length > 500 ? `${line.slice(0, 500)}...` : line);
      if (this.output.length > KEPT_LINES) this.output.shift();
    };
    createInterface({ input: child.stdout! }).on('line', keep);
    createInterface({ input: child.stderr! }).on('line', keep);
    this.exited = new Promise((resolve) => {
      child.on('error', (error) => {
        keep(`cannot start: ${error.message}`);
        this.exit ??= 'not started';
        resolve();
      });
      child.on('exit', (code, signal) => {
        this.exit ??= code ?? signal ?? 'unknown';
        resolve();
      });
    });
  }

  private get pid(): number {
    return this.child.pid ?? -1;
  }

  async waitListening(timeoutMs: number) {
    return waitForListener(() => (this.exit === null ? processIds('/proc', this.pid) : Promise.resolve([])), this.port, timeoutMs);
  }

  observe(pid: number, options: { trace: boolean }) {
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
    return { running: this.exit === null, exit: this.exit, oomKilled: false, output: [...this.output] };
  }

  async stop(): Promise<void> {
    if (this.exit === null && this.child.pid) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await this.exited;
  }
}

export class LocalSandbox implements GradeSandbox {
  readonly name = 'local';
  readonly id = `local-${process.pid}`;
  readonly limits = null;
  port = 0;
  private submission: PreparedSubmission | null = null;
  private readonly servers = new Set<LocalServer>();

  async describe(): Promise<string> {
    return `local processes on ${hostname()} (not isolated)`;
  }

  async prepare(submission: PreparedSubmission): Promise<void> {
    if (submission.kind === 'dockerfile') throw new NotGradableError('a Dockerfile submission needs the Docker runtime (--runtime docker)');
    this.submission = submission;
    // Module resolution walks up from the program's directory: give it this package's modules.
    if (!submission.files.some((file) => file.startsWith('node_modules/'))) {
      await symlink(NODE_MODULES, join(submission.dir, 'node_modules')).catch(() => {});
    }
    this.port = await freePort();
  }

  async start(): Promise<SandboxedServer> {
    if (!this.submission?.command) throw new NotGradableError('the local sandbox was started before a submission was prepared');
    const [command, ...args] = this.submission.command;
    const child = spawn(command, args, {
      cwd: this.submission.dir,
      env: { ...process.env, PORT: String(this.port), PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
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
