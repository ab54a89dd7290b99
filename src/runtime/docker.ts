// The Docker runtime: every server, client and tracer in a container of the lab image.
//
//   - one user-defined bridge network per lab run; clients reach the server by container name
//   - the server container gets the lab's nofile as a ulimit and no added capability; a model
//     that needs io_uring gets a seccomp profile that allows it (newer Docker blocks it)
//   - an observer sidecar shares the server's PID namespace (PidMode container:<server>), so the
//     server is its pid 1: it reads /proc/1 and, for traced runs, runs strace with SYS_PTRACE
//     (`iolab observe`, see src/tracer/observe.ts). The server itself never gets that capability.
//   - N client containers, each `iolab client ... --wait-for-start`, started together by signal
//   - every container and network carries the label iolab.run=<run id>; close() removes them,
//     and `iolab clean` removes what a killed run left behind.
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { LabRunError } from '../errors.js';
import { findModel } from '../servers/index.js';
import { parseReadyLine } from '../servers/listen.js';
import { OBSERVER_SIGNALS, type Observed, type Observer } from '../tracer/observe.js';
import { ensureImage } from './docker-image.js';
import { serverOptionArguments } from './local.js';
import { LineSource, readClientOutput } from './process.js';
import { CLIENT_START_SIGNAL, type ClientRunSpec, type RunningClient, type RunningServer, type Runtime, type RuntimeFacts, type ServerSpec } from './runtime.js';

/** The label every container and network of a run carries; its value is the run id. */
export const RUN_LABEL = 'iolab.run';
const SERVER_PORT = 7000;
const READY_TIMEOUT_MS = 30_000;
const CLIENT_GRACE_MS = 60_000;

/** docker/seccomp-io-uring.json: a profile for models that need io_uring (see that file). */
const IO_URING_SECCOMP = readFileSync(fileURLToPath(new URL('../../docker/seccomp-io-uring.json', import.meta.url)), 'utf8');

/** A container's output, demultiplexed into stdout and stderr lines. */
export class ContainerOutput extends LineSource {
  readonly exited: Promise<number | string>;

  constructor(
    description: string,
    readonly container: Docker.Container,
    docker: Docker,
  ) {
    super(description);
    this.exited = (async () => {
      const stream = await container.logs({ follow: true, stdout: true, stderr: true });
      // The log stream ends once the container has exited and every line is through.
      const streamEnded = new Promise((resolve) => stream.on('end', resolve).on('close', resolve).on('error', resolve));
      const out = new PassThrough();
      const err = new PassThrough();
      this.readLines(out, 'stdout');
      this.readLines(err, 'stderr');
      docker.modem.demuxStream(stream, out, err);
      const result = (await container.wait()) as { StatusCode: number };
      // Let the last log lines through before anyone reads "it has ended".
      await streamEnded;
      out.end();
      err.end();
      await new Promise((resolve) => setImmediate(resolve));
      this.ended(result.StatusCode);
      return result.StatusCode;
    })().catch((error: Error) => {
      this.stderr.push(`docker: ${error.message}`);
      this.ended('gone');
      return 'gone';
    });
  }
}

/** A sidecar in `target`'s PID namespace, with SYS_PTRACE and no network: what observes a server. */
export function sidecarSpec(image: string, target: Docker.Container, command: string[]): Docker.ContainerCreateOptions {
  return { Image: image, Cmd: command, HostConfig: { PidMode: `container:${target.id}`, CapAdd: ['SYS_PTRACE'], NetworkMode: 'none' } };
}

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export interface DockerRuntimeOptions {
  /** image build progress and per-container status lines. */
  onProgress?: (line: string) => void;
}

export class DockerRuntime implements Runtime {
  readonly name = 'docker';
  readonly docker = new Docker();
  readonly runId = `iolab-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  private image: { tag: string; id: string } | null = null;
  private network: string | null = null;
  private traceVersion: string | null = null;
  private containers = new Set<Docker.Container>();
  private counter = 0;

  constructor(private readonly options: DockerRuntimeOptions = {}) {}

  private progress(line: string): void {
    this.options.onProgress?.(line);
  }

  /** Builds (or reuses) the lab image and creates the run's network. */
  private async prepare(): Promise<{ tag: string; id: string }> {
    if (this.image && this.network) return this.image;
    this.image = await ensureImage(this.docker, { onProgress: (line) => this.progress(line) });
    const network = await this.docker.createNetwork({
      Name: this.runId,
      Driver: 'bridge',
      Labels: { [RUN_LABEL]: this.runId },
    });
    this.network = network.id;
    return this.image;
  }

  async facts(): Promise<RuntimeFacts> {
    const image = await this.prepare();
    const info = (await this.docker.info()) as { ServerVersion: string; KernelVersion: string };
    return { kernel: info.KernelVersion, container: { image: image.tag, imageId: image.id, engine: `Docker ${info.ServerVersion}` } };
  }

  async tracer(): Promise<string | null> {
    if (this.traceVersion === null) {
      const image = await this.prepare();
      const output = await this.runToEnd('strace-version', { Image: image.id, Cmd: ['strace', '-V'] });
      this.traceVersion = output.stdout[0]?.replace(/^strace -- version /, 'strace ') ?? 'strace';
    }
    return `${this.traceVersion} (sidecar container)`;
  }

  private async create(role: string, spec: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    const name = `${this.runId}-${role}-${++this.counter}`;
    const container = await this.docker.createContainer({
      ...spec,
      name,
      Labels: { [RUN_LABEL]: this.runId, 'iolab.role': role },
    });
    this.containers.add(container);
    return container;
  }

  /** Runs a short container to its end and returns its output. */
  private async runToEnd(role: string, spec: Docker.ContainerCreateOptions): Promise<ContainerOutput> {
    const container = await this.create(role, spec);
    await container.start();
    const output = new ContainerOutput(role, container, this.docker);
    await output.exited;
    await this.remove(container);
    return output;
  }

  private async remove(container: Docker.Container): Promise<void> {
    this.containers.delete(container);
    await container.remove({ force: true }).catch(() => {});
  }

  async startServer(spec: ServerSpec): Promise<RunningServer> {
    const image = await this.prepare();
    const model = findModel(spec.model);
    const description = `server model=${spec.model}`;
    const container = await this.create('server', {
      Image: image.id,
      Cmd: ['iolab', 'server', '--model', spec.model, '--host', '0.0.0.0', '--port', String(SERVER_PORT), ...serverOptionArguments(spec.options)],
      HostConfig: {
        NetworkMode: this.network!,
        Ulimits: spec.nofile === null ? [] : [{ Name: 'nofile', Soft: spec.nofile, Hard: spec.nofile }],
        SecurityOpt: model.needsIoUring ? [`seccomp=${IO_URING_SECCOMP}`] : [],
      },
    });
    await container.start();
    const output = new ContainerOutput(description, container, this.docker);
    try {
      await output.waitForLine('stdout', (line) => parseReadyLine(line) !== null, "its ready line ('listening on HOST:PORT ...')", READY_TIMEOUT_MS);
    } catch (error) {
      await this.remove(container);
      throw error;
    }
    const details = (await container.inspect()) as { Name: string; State: { Pid: number } };
    this.progress(`${description}: container ${details.Name.replace(/^\//, '')} listening`);
    const observers = new Set<Docker.Container>();
    return {
      model: spec.model,
      pid: details.State.Pid,
      target: `${details.Name.replace(/^\//, '')}:${SERVER_PORT}`,
      log: () => [...output.stderr],
      alive: () => output.running,
      observe: async ({ trace }) => {
        const sidecar = await this.create('observer', sidecarSpec(image.id, container, ['iolab', 'observe', '--pid', '1', ...(trace ? ['--trace'] : [])]));
        observers.add(sidecar);
        await sidecar.start();
        return sidecarObserver(new ContainerOutput(`observer of ${description}`, sidecar, this.docker), sidecar, (c) => this.remove(c));
      },
      stop: async () => {
        await Promise.all([...observers].map((sidecar) => this.remove(sidecar)));
        await container.kill().catch(() => {});
        await this.remove(container);
      },
    };
  }

  async startClient(spec: ClientRunSpec): Promise<RunningClient> {
    const image = await this.prepare();
    const description = `client ${spec.name} (${spec.mode}, ${spec.connections} connections)`;
    const container = await this.create('client', {
      Image: image.id,
      Cmd: [
        'iolab', 'client', '--target', spec.target, '--mode', spec.mode,
        '--connections', String(spec.connections), '--duration', String(spec.durationSeconds),
        '--message-size', String(spec.messageSize), '--wait-for-start',
      ],
      // No ulimit of our own: the engine's default (the daemon's own limit) is the most a container
      // may get, and the client raises its soft limit to that hard limit itself.
      HostConfig: { NetworkMode: this.network! },
    });
    await container.start();
    const output = new ContainerOutput(description, container, this.docker);
    const { ready, result } = readClientOutput(output, output.exited, CLIENT_GRACE_MS, spec.durationSeconds * 1000 + CLIENT_GRACE_MS);
    return {
      name: spec.name,
      ready,
      result,
      start: async () => {
        await container.kill({ signal: CLIENT_START_SIGNAL });
      },
      stop: () => this.remove(container),
    };
  }

  async close(): Promise<void> {
    await removeLabelled(this.docker, this.runId);
    this.containers.clear();
    this.network = null;
  }
}

/** The Docker side of the `iolab observe` protocol: JSON lines on stdout, driven by signals. */
export async function sidecarObserver(
  output: ContainerOutput,
  sidecar: Docker.Container,
  remove: (container: Docker.Container) => Promise<void>,
): Promise<Observer> {
  const json = (line: string) => line.startsWith('{');
  const first = JSON.parse(await output.waitForLine('stdout', json, 'its limits and baseline', READY_TIMEOUT_MS));
  return {
    limits: first.limits,
    baseline: first.baseline,
    startWindow: async () => {
      await sidecar.kill({ signal: OBSERVER_SIGNALS.startWindow });
      await output.waitForLine('stdout', (line) => line.includes('"window"'), 'the start of its window', READY_TIMEOUT_MS);
    },
    stop: async (): Promise<Observed> => {
      await sidecar.kill({ signal: OBSERVER_SIGNALS.stop }).catch(() => {});
      const line = await output.waitForLine('stdout', (l) => l.includes('"proc"'), 'what it observed', READY_TIMEOUT_MS);
      await output.exited;
      await remove(sidecar);
      return JSON.parse(line) as Observed;
    },
    kill: () => void remove(sidecar),
  };
}

/**
 * Removes the containers, networks and images (a graded submission's) of one run (runId) or of
 * every run (null): what `iolab clean` does after a run that was killed before it could clean
 * up. Returns what it removed.
 */
export async function removeLabelled(docker: Docker, runId: string | null): Promise<{ containers: number; networks: number; images: number }> {
  const label = runId === null ? RUN_LABEL : `${RUN_LABEL}=${runId}`;
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch((error: Error) => {
    if (!/No such container|is already in progress/.test(error.message)) throw new LabRunError(`cannot remove container ${c.Names[0]}: ${message(error)}`);
  })));
  const networks = await docker.listNetworks({ filters: { label: [label] } });
  await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove().catch((error: Error) => {
    if (!/not found|No such network/.test(error.message)) throw new LabRunError(`cannot remove network ${n.Name}: ${message(error)}`);
  })));
  const images = await docker.listImages({ filters: { label: [label] } });
  await Promise.all(images.map((i) => docker.getImage(i.Id).remove({ force: true }).catch((error: Error) => {
    if (!/No such image|image is being used|conflict/i.test(error.message)) throw new LabRunError(`cannot remove image ${i.RepoTags?.[0] ?? i.Id}: ${message(error)}`);
  })));
  return { containers: containers.length, networks: networks.length, images: images.length };
}
