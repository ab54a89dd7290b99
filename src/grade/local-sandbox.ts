// Grading on this machine, for developing an exercise or a solution without Docker. NOTHING is
// isolated: the submission runs as the grader's user with its files, its network and no limits.
// The CLI says so loudly. The server runs in its own process group, killed as a whole.
import { symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NotGradableError } from '../errors.js';
import { runProbe } from './probe.js';
import { clipOutputLine, type GradeSandbox, type SandboxedServer, type ServerState } from './sandbox.js';
import type { PreparedSubmission } from './submission.js';
import { processIds, waitForListener } from '../tracer/listeners.js';
import { observeProcess } from '../tracer/observe.js';
import { LineProcess } from '../runtime/process.js';

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

  async waitListening(timeoutMs: number) {
    return waitForListener(() => (this.child.running ? processIds('/proc', this.pid) : Promise.resolve([])), this.port, timeoutMs);
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
