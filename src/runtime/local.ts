// The local runtime: the server and the clients run as processes on this machine, over
// 127.0.0.1, each server on a port the kernel picks (port 0, read back from the ready line).
// nofile is applied with prlimit(1) before the server's first instruction. strace attaches to the
// server's pid; the probe reads /proc/PID. The embedded default where no Docker engine answers.
import { execFile, spawn } from 'node:child_process';
import { diesWithThisProcess } from '../shared/dies-with-parent.js';
import { constants, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RuntimeUnavailableError } from '../errors.js';
import { parseReadyLine } from '../servers/listen.js';
import { findModel, programCommand, type ProgramModel } from '../servers/index.js';
import { ServerEventTally } from '../shared/server-events.js';
import { observeProcess, type Observer, type TracerKind } from '../tracer/observe.js';
import { checkBpf, LabBpf, type TracerCheck } from '../tracer/bpf.js';
import { SERVING_THREAD_PREFIX } from '../shared/model.js';
import { ProcProbe } from '../tracer/proc.js';
import { LineProcess, readClientOutput } from './process.js';
import { CLIENT_START_SIGNAL, type ClientRunSpec, type RunningClient, type RunningServer, type Runtime, type RuntimeFacts, type ServerSpec } from './runtime.js';
import type { ProgramSpec, RunningProgram } from './runtime.js';

const CLI = fileURLToPath(new URL('../../bin/iolab.js', import.meta.url));
/** The package's root, where a program model's file is (ProgramModel.program.file) and where programs run. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const READY_TIMEOUT_MS = 15_000;
/** After SIGTERM, a server gets this long to end before SIGKILL. */
const SERVER_STOP_GRACE_MS = 300;
/** How long past its duration a client may take to connect, finish and print its result. */
const CLIENT_GRACE_MS = 30_000;

const run = promisify(execFile);

async function which(command: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

/** The `iolab server` flags for a model's options. */
export function serverOptionArguments(options: ServerSpec['options'] = {}): string[] {
  const args: string[] = [];
  if (options.threads !== undefined) args.push('--threads', String(options.threads));
  if (options.blockingCallMs !== undefined) args.push('--blocking-call-ms', String(options.blockingCallMs));
  if (options.drain !== undefined) args.push(options.drain ? '--drain' : '--no-drain');
  return args;
}

/**
 * `iolab server --model python-select`: runs a program model in the foreground, its output on
 * this terminal, and resolves with its exit status (128+N when signal N ended it). SIGINT and
 * SIGTERM are passed on to it.
 */
export function runProgramModel(model: ProgramModel, host: string, port: number): Promise<number> {
  const [command, ...args] = programCommand(model, PACKAGE_ROOT);
  const tied = diesWithThisProcess(command, [...args, '--host', host, '--port', String(port)]);
  const child = spawn(tied.command, tied.args, { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  process.on('SIGINT', forward('SIGINT'));
  process.on('SIGTERM', forward('SIGTERM'));
  return new Promise((resolve, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(new RuntimeUnavailableError(error.code === 'ENOENT' ? `${command} is not installed: the model ${model.name} needs it (apt-get install python3)` : error.message)),
    );
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}

/** A local server also offers its /proc probe alone, for tests that need only that. */
export interface LocalServer extends RunningServer {
  alive(): boolean;
  ending(): string | null;
  startProbe(): Promise<ProcProbe>;
}

export class LocalRuntime implements Runtime {
  readonly name = 'local';
  private readonly processes = new Set<LineProcess>();
  private readonly cleanups = new Set<() => Promise<void>>();
  /** One eBPF observer for every server this runtime runs, armed for each in turn (src/tracer/bpf.ts). */
  private readonly labBpf = new LabBpf(SERVING_THREAD_PREFIX);

  async facts(): Promise<RuntimeFacts> {
    return { kernel: release(), container: null };
  }

  async tracer(kind: TracerKind): Promise<TracerCheck> {
    if (kind === 'bpf') return checkBpf();
    try {
      const { stdout } = await run('strace', ['-V']);
      return { available: true, name: stdout.split('\n')[0].replace(/^strace -- version /, 'strace ') };
    } catch {
      return { available: false, reason: 'strace is not installed (apt-get install strace)' };
    }
  }

  private track(process: LineProcess): LineProcess {
    this.processes.add(process);
    void process.exited.then(() => this.processes.delete(process));
    return process;
  }


  async startServer(spec: ServerSpec): Promise<LocalServer> {
    const model = findModel(spec.model);
    // A TypeScript model runs in `iolab server`; a program model (Python) is its own program.
    const [program, ...serverArgs] = model.program
      ? [...programCommand(model, PACKAGE_ROOT), '--host', '127.0.0.1', '--port', '0']
      : [process.execPath, CLI, 'server', '--model', spec.model, '--host', '127.0.0.1', '--port', '0', ...serverOptionArguments(spec.options)];
    let command = program;
    let args = serverArgs;
    if (spec.nofile !== null) {
      if (!(await which('prlimit'))) throw new RuntimeUnavailableError('prlimit(1) is needed to set nofile per lab: apt-get install util-linux');
      command = 'prlimit';
      args = [`--nofile=${spec.nofile}:${spec.nofile}`, '--', program, ...serverArgs];
    }
    const description = `server model=${spec.model}`;
    const events = new ServerEventTally();
    const server = this.track(new LineProcess(description, command, args, {}, (line) => events.line(line)));
    let ready;
    try {
      const line = await server.waitForLine('stdout', (l) => parseReadyLine(l) !== null, "its ready line ('listening on HOST:PORT ...')", READY_TIMEOUT_MS);
      ready = parseReadyLine(line)!;
    } catch (error) {
      await server.stop();
      throw error;
    }
    const pid = ready.pid;
    const observers = new Set<Observer>();
    const killObservers = async () => {
      for (const observer of observers) observer.kill();
    };
    this.cleanups.add(killObservers);
    return {
      model: spec.model,
      pid,
      target: `127.0.0.1:${ready.port}`,
      runtime: ready.runtime,
      log: () => server.stderr.filter((line) => !line.startsWith('{"event":')),
      events: () => events.snapshot(),
      alive: () => server.running,
      ending: () => server.ending(),
      observe: async (options) => {
        const observer = await observeProcess(pid, { ...options, labBpf: this.labBpf });
        observers.add(observer);
        return { ...observer, stop: () => observer.stop().finally(() => observers.delete(observer)) };
      },
      startProbe: () => ProcProbe.start(pid),
      stop: async () => {
        this.cleanups.delete(killObservers);
        await killObservers();
        // What it said and did is in: a server stuck in a blocking call (it cannot run its
        // SIGTERM handler) is not waited for long.
        await server.stop(SERVER_STOP_GRACE_MS);
      },
    };
  }

  async startClient(spec: ClientRunSpec): Promise<RunningClient> {
    const args = [
      CLI, 'client', '--target', spec.target ?? 'stdin', '--mode', spec.mode,
      '--connections', String(spec.connections), '--duration', String(spec.durationSeconds),
      '--message-size', String(spec.messageSize), '--wait-for-start',
      ...(spec.rate ? ['--rate', String(spec.rate)] : []),
    ];
    const description = `client ${spec.name} (${spec.mode}, ${spec.connections} connections)`;
    const client = this.track(new LineProcess(description, process.execPath, args, { stdin: spec.target === null ? 'pipe' : 'ignore' }));
    const { ready, result } = readClientOutput(client, CLIENT_GRACE_MS, spec.durationSeconds * 1000 + CLIENT_GRACE_MS);
    const start = async () => {
      client.child.kill(CLIENT_START_SIGNAL);
    };
    const connect = (target: string) => {
      if (!client.child.stdin) throw new Error(`${description} was started with its target`);
      client.child.stdin.end(`${target}\n`);
    };
    return { name: spec.name, connect, ready, start, result, stop: () => client.stop() };
  }

  /** A process in the package's root (where src/experiments/ is), listening on 127.0.0.1. */
  async startProgram(spec: ProgramSpec): Promise<RunningProgram> {
    const [command, ...args] = spec.command;
    const program = this.track(new LineProcess(spec.description, command, [...args, ...(spec.listens ? ['--host', '127.0.0.1'] : [])], { cwd: PACKAGE_ROOT }));
    return { host: '127.0.0.1', output: program, exited: program.exited, stop: () => program.stop() };
  }

  async close(): Promise<void> {
    this.labBpf.close();
    await Promise.all([...this.cleanups].map((cleanup) => cleanup().catch(() => {})));
    this.cleanups.clear();
    await Promise.all([...this.processes].map((p) => p.stop(1000)));
  }
}
