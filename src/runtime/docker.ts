// The Docker runtime: every server, client and tracer in a container of the lab image.
//
//   - one user-defined bridge network per lab run; clients reach the server by container name
//   - the server container gets the lab's nofile as a ulimit and no added capability; a model
//     that needs io_uring gets a seccomp profile that allows it (newer Docker blocks it)
//   - one observer sidecar for the lab, in the host's PID namespace, observes each server in turn
//     by its host pid: /proc, strace, the eBPF observer (`iolab observe --serve`, see
//     observer-service.ts). The server itself never gets a capability.
//   - N client containers, each `iolab client ... --wait-for-start`, started together by signal
//   - every container and network carries the label iolab.run=<run id> and its controller's
//     (controller.ts); close() removes them, and `iolab clean` what a killed run left behind.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { findModel, programCommand } from '../servers/index.js';
import { parseReadyLine } from '../servers/listen.js';
import { ServerEventTally } from '../shared/server-events.js';
import { ContainerOutput, message, newRunId, RunContainers, sidecarSpec } from './containers.js';
import { ObserverService } from './observer-service.js';
import { engineAvailable, ensureImage } from './docker-image.js';
import { serverOptionArguments } from './local.js';
import { readClientOutput } from './process.js';
import { CLIENT_START_SIGNAL, type ClientRunSpec, type RunningClient, type RunningServer, type Runtime, type RuntimeFacts, type ServerSpec } from './runtime.js';
import type { ProgramSpec, RunningProgram } from './runtime.js';
import type { TracerCheck } from '../tracer/bpf.js';
import type { TracerKind } from '../tracer/observe.js';

const SERVER_PORT = 7000;
const READY_TIMEOUT_MS = 30_000;
/** How long a client may take to be ready, and beyond its duration to print its result. */
export const CLIENT_GRACE_MS = 60_000;
/** How long a lab waits, after a failed run, for an engine that stopped or restarted (it stops its containers first: about 10 s). */
const ENGINE_RETURN_MS = 90_000;
/** How long the engine's state is left to settle between two looks at it. */
const ENGINE_SETTLE_MS = 2_000;
/** Where the lab image holds the package (docker/Dockerfile's WORKDIR): a program's files are relative to it. */
const IMAGE_PACKAGE_ROOT = '/opt/iolab';

/** docker/seccomp-io-uring.json: a profile for models that need io_uring (see that file). */
const IO_URING_SECCOMP = readFileSync(fileURLToPath(new URL('../../docker/seccomp-io-uring.json', import.meta.url)), 'utf8');

export interface DockerRuntimeOptions {
  /** image build progress ("building TAG ...", "built TAG in 5m12s") and per-container status lines. */
  onProgress?: (line: string) => void;
  /** each line of the image build's output (default: onProgress). */
  onBuildOutput?: (line: string) => void;
}

export class DockerRuntime implements Runtime {
  readonly name = 'docker';
  readonly docker = new Docker();
  readonly runId = newRunId('iolab');
  protected readonly run = new RunContainers(this.docker, this.runId);
  protected image: { tag: string; id: string } | null = null;
  protected network: string | null = null;
  private readonly tracers = new Map<TracerKind, TracerCheck>();
  private observer: Promise<ObserverService> | null = null;

  constructor(protected readonly options: DockerRuntimeOptions = {}) {}

  protected progress(line: string): void {
    this.options.onProgress?.(line);
  }

  /** Builds (or reuses) the lab image and creates the run's network. */
  protected async prepare(): Promise<{ tag: string; id: string }> {
    if (this.image && this.network) return this.image;
    this.image = await ensureImage(this.docker, { onProgress: (line) => this.progress(line), onBuildOutput: this.options.onBuildOutput });
    await this.run.guard(this.image.id);
    this.network = await this.createNetwork(this.image);
    return this.image;
  }

  /** The run's network (its id): a bridge on this machine. */
  protected createNetwork(_image: { tag: string; id: string }): Promise<string> {
    return this.run.network({ internal: false });
  }

  /** The name of the run's network, where its clients are (a server of one's own joins it: src/grade/own-server.ts). */
  async labNetwork(): Promise<string> {
    await this.prepare();
    return this.network!;
  }

  async facts(): Promise<RuntimeFacts> {
    const image = await this.prepare();
    const info = (await this.docker.info()) as { ServerVersion: string; KernelVersion: string };
    return { kernel: info.KernelVersion, container: { image: image.tag, imageId: image.id, engine: `Docker ${info.ServerVersion}` } };
  }

  async tracer(kind: TracerKind): Promise<TracerCheck> {
    const known = this.tracers.get(kind);
    if (known) return known;
    const image = await this.prepare();
    // The check runs where the observer will: in a sidecar with the observer's privileges.
    const spec = { ...sidecarSpec(image.id, null, ['iolab', 'observe', '--check', kind], kind), Image: image.id };
    const output = await this.run.runToEnd(`${kind}-check`, spec);
    const line = output.stdout.find((l) => l.startsWith('{'));
    const check: TracerCheck = line ? JSON.parse(line) : { available: false, reason: `the ${kind} check printed nothing: ${output.stderr.slice(-3).join(' ')}` };
    const named: TracerCheck = check.available ? { available: true, name: `${check.name} (sidecar container)` } : check;
    this.tracers.set(kind, named);
    return named;
  }

  async startServer(spec: ServerSpec): Promise<RunningServer> {
    const image = await this.prepare();
    const model = findModel(spec.model);
    const description = `server model=${spec.model}`;
    const events = new ServerEventTally();
    const { container, output } = await this.run.start(
      'server',
      {
        Image: image.id,
        // A program model (Python) is the container's own program, so that the observer's pid 1 is it.
        Cmd: model.program
          ? [...programCommand(model, IMAGE_PACKAGE_ROOT), '--host', '0.0.0.0', '--port', String(SERVER_PORT)]
          : ['iolab', 'server', '--model', spec.model, '--host', '0.0.0.0', '--port', String(SERVER_PORT), ...serverOptionArguments(spec.options)],
        HostConfig: {
          NetworkMode: this.network!,
          Ulimits: spec.nofile === null ? [] : [{ Name: 'nofile', Soft: spec.nofile, Hard: spec.nofile }],
          SecurityOpt: model.needsIoUring ? [`seccomp=${IO_URING_SECCOMP}`] : [],
        },
      },
      description,
      (line) => events.line(line),
    );
    let ready;
    try {
      ready = parseReadyLine(await output.waitForLine('stdout', (line) => parseReadyLine(line) !== null, "its ready line ('listening on HOST:PORT ...')", READY_TIMEOUT_MS))!;
    } catch (error) {
      await this.run.remove(container);
      throw error;
    }
    const details = (await container.inspect()) as { Name: string; State: { Pid: number } };
    const name = details.Name.replace(/^\//, '');
    this.progress(`  ${description}: container ${name} listening`);
    return {
      model: spec.model,
      pid: details.State.Pid,
      target: `${name}:${SERVER_PORT}`,
      runtime: ready.runtime,
      log: () => output.stderr.filter((line) => !line.startsWith('{"event":')),
      events: () => events.snapshot(),
      alive: () => output.running,
      ending: () => output.ending(),
      observe: async (options) => (await this.observerService(image.id)).observe(details.State.Pid, options),
      // A forced removal kills.
      stop: () => this.run.remove(container),
    };
  }

  /** The lab's observer sidecar, started at the first server (again if it has ended). */
  private async observerService(image: string): Promise<ObserverService> {
    const current = await this.observer?.catch(() => null);
    if (current?.running) return current;
    current?.close();
    this.observer = ObserverService.start(this.run, this.docker, image);
    this.observer.catch(() => (this.observer = null));
    return this.observer;
  }

  async startClient(spec: ClientRunSpec): Promise<RunningClient> {
    const image = await this.prepare();
    const description = `client ${spec.name} (${spec.mode}, ${spec.connections} connections)`;
    const later = spec.target === null;
    const container = await this.run.create('client', {
      Image: image.id,
      Cmd: [
        'iolab', 'client', '--target', spec.target ?? 'stdin', '--mode', spec.mode,
        '--connections', String(spec.connections), '--duration', String(spec.durationSeconds),
        '--message-size', String(spec.messageSize), '--wait-for-start',
        ...(spec.rate ? ['--rate', String(spec.rate)] : []),
      ],
      // Told its target on stdin (target null): the container starts beside the server.
      ...(later && { OpenStdin: true, StdinOnce: true, AttachStdin: true }),
      // No ulimit of our own: the engine's default (the daemon's own limit) is the most a container
      // may get, and the client raises its soft limit to that hard limit itself.
      HostConfig: { NetworkMode: this.network! },
    });
    const stdin = later ? ((await container.attach({ stream: true, stdin: true, hijack: true })) as NodeJS.ReadWriteStream) : null;
    stdin?.on('error', () => {});
    await container.start();
    const output = new ContainerOutput(description, container, this.docker);
    const { ready, result } = readClientOutput(output, CLIENT_GRACE_MS, spec.durationSeconds * 1000 + CLIENT_GRACE_MS);
    return {
      name: spec.name,
      connect: (target) => {
        if (!stdin) throw new Error(`${description} was started with its target`);
        stdin.end(`${target}\n`);
      },
      ready,
      result,
      start: async () => {
        await container.kill({ signal: CLIENT_START_SIGNAL });
      },
      stop: async () => {
        (stdin as (NodeJS.ReadWriteStream & { destroy?: () => void }) | null)?.destroy?.();
        await this.run.remove(container);
      },
    };
  }

  /**
   * A container of the lab image, in /opt/iolab, on the run's network, with no capability added:
   * the run's other containers reach it by its name.
   */
  async startProgram(spec: ProgramSpec): Promise<RunningProgram> {
    const image = await this.prepare();
    const { container, output } = await this.run.start(
      spec.role,
      {
        Image: image.id,
        Cmd: [...spec.command, ...(spec.listens ? ['--host', '0.0.0.0'] : [])],
        WorkingDir: IMAGE_PACKAGE_ROOT,
        HostConfig: { NetworkMode: this.network! },
      },
      spec.description,
    );
    const details = (await container.inspect()) as { Name: string };
    return {
      host: details.Name.replace(/^\//, ''),
      output,
      exited: output.exited,
      stop: async () => {
        await container.kill().catch(() => {});
        await this.run.remove(container);
      },
    };
  }

  async recover(): Promise<{ cause: string | null; stop: string | null }> {
    // An engine that is stopping still answers for a moment, and stops the containers one by one:
    // looked at twice, ENGINE_SETTLE_MS apart, it has either stopped the reaper or not touched it.
    let troubled = false;
    for (const pause of [0, ENGINE_SETTLE_MS]) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      troubled ||= !(await engineAvailable(this.docker)).ok || !(await this.run.reaperRunning());
    }
    if (!troubled) return { cause: null, stop: null };
    const cause = 'the Docker engine stopped or restarted during this run, and with it every container of the run';
    const deadline = Date.now() + ENGINE_RETURN_MS;
    let last = 'it did not answer';
    // Back when it answers and a new reaper of the run still runs a moment after it started.
    while (Date.now() < deadline && !this.run.stopping) {
      await new Promise((resolve) => setTimeout(resolve, ENGINE_SETTLE_MS));
      const engine = await engineAvailable(this.docker);
      if (!engine.ok) {
        last = engine.reason;
        continue;
      }
      try {
        await this.run.afterEngineRestart();
        await new Promise((resolve) => setTimeout(resolve, ENGINE_SETTLE_MS));
        if (!(await this.run.reaperRunning())) {
          last = 'the run\'s new reaper was stopped too';
          continue;
        }
        if (this.image) this.network = await this.createNetwork(this.image);
        return { cause, stop: null };
      } catch (error) {
        last = message(error);
      }
    }
    return { cause, stop: `the Docker engine is not back ${ENGINE_RETURN_MS / 1000} s later (${last})` };
  }

  async close(): Promise<void> {
    const observer = this.observer;
    this.observer = null;
    (await observer?.catch(() => null))?.close();
    await this.run.close();
    this.network = null;
  }
}
