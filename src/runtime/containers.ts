// The containers and network of one run, all labelled with its id, so that they are created,
// tracked and removed together: what the lab runtime (docker.ts) and the grading sandbox
// (src/grade/docker-sandbox.ts) both start. Also the pieces both need: a container's output as
// lines, the observer sidecar's spec and protocol, and `iolab clean`'s sweep.
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { LabRunError } from '../errors.js';
import { OBSERVER_SIGNALS, type ObserveOptions, type Observed, type Observer, type TracerKind } from '../tracer/observe.js';
import { CONTAINER_REMOVED, containerEnding } from './container-ending.js';
import { controllerLabels } from './controller.js';
import { LineSource } from './process.js';
import { startReaper } from './reaper.js';

/**
 * The label every container, network and submission image of a run carries; its value is the run
 * id. Beside it, the labels naming the run's controller (controller.ts), for `iolab clean`.
 */
export const RUN_LABEL = 'iolab.run';
/**
 * The label naming the run that started this controller, where one did: a grading a swarm job runs
 * on a node (src/swarm/grading.ts) labels what it starts with the batch's id, taken from the
 * environment variable of the same name, so that the batch removes it from every node at its end.
 */
export const PARENT_LABEL = 'iolab.parent';
export const PARENT_RUN_ENV = 'IOLAB_PARENT_RUN';
/** How often the removal of a run's swarm config is tried while a removed service's task holds it. */
const CONFIG_REMOVE_ATTEMPTS = 5;
/**
 * How long the removal of a run's networks is tried while containers still hang on them, or an
 * overlay network removed from the swarm is still listed here.
 */
const NETWORK_GONE_MS = 15_000;
/** At most this many sweeps at a run's close, each while the one before found something. */
const CLOSE_SWEEPS = 4;
/** How long a sidecar may take to say it is observing, that its window started, or what it saw. */
const SIDECAR_TIMEOUT_MS = 30_000;

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A run id: the prefix, the time in base 36 and 4 random characters ("iolab-mx2h9k-3f0a"). */
export function newRunId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/**
 * A container's output, demultiplexed into stdout and stderr lines. Its ending() says how it
 * ended from the engine's record (container-ending.ts): "killed by SIGKILL (exit code 137)", the
 * OOM killer at its memory limit, "its container was removed", or "exited with code 1".
 */
export class ContainerOutput extends LineSource {
  /** its exit code once it has ended, or "gone" when its container was removed. */
  readonly exited: Promise<number | string>;

  constructor(
    description: string,
    readonly container: Docker.Container,
    docker: Docker,
    onStderrLine?: (line: string) => void,
  ) {
    super(description, onStderrLine);
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
      // How it ended, from the engine's record (OOM killer, signal, removed), read at once: a
      // container being removed is still there a moment.
      const how = await containerEnding(container, result.StatusCode);
      // Let the last log lines through before anyone reads "it has ended".
      await streamEnded;
      out.end();
      err.end();
      await new Promise((resolve) => setImmediate(resolve));
      this.ended(how);
      return how === CONTAINER_REMOVED ? 'gone' : result.StatusCode;
    })().catch((error: Error & { statusCode?: number }) => {
      // Removed before its log or its end could be read.
      if (error.statusCode === 404) {
        this.ended(CONTAINER_REMOVED);
        return 'gone';
      }
      this.stderr.push(`docker: ${error.message}`);
      this.ended('gone');
      return 'gone';
    });
  }
}

/**
 * The containers and the network of one run (lab or grading), created and removed together.
 * close() is final: it waits for the requests that create something (a container, the network, an
 * image) to come back, removes everything labelled with the run, and from then on refuses to
 * create anything (LabRunError), so a run stopped in its middle (Ctrl-C) leaves nothing that its
 * in-flight requests made after the sweep.
 */
export class RunContainers {
  private readonly containers = new Set<Docker.Container>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private counter = 0;
  private networkId: string | null = null;
  private closed = false;
  private reaper: Promise<{ container: Docker.Container; release: () => void }> | null = null;
  private reaperImage: string | null = null;
  private reapers = 0;
  /** the labels of everything the run creates: iolab.run=RUN-ID and its controller's (this process). */
  readonly labels: Record<string, string>;

  constructor(
    readonly docker: Docker,
    /** the label's value and the prefix of every name. */
    readonly runId: string,
  ) {
    const parent = process.env[PARENT_RUN_ENV];
    this.labels = { [RUN_LABEL]: runId, ...controllerLabels(), ...(parent && { [PARENT_LABEL]: parent }) };
  }

  /**
   * Starts the run's reaper (reaper.ts) from `image`, the lab image's id, once: what removes the
   * run's containers, networks and images if this process dies before close(). Call it before
   * creating anything. Throws LabRunError when the reaper cannot start (nothing of the run would be
   * removed if this process were killed: the run does not go on without it).
   */
  async guard(image: string): Promise<void> {
    if (this.closed) throw new LabRunError(`not starting a reaper: run ${this.runId} is stopping`);
    this.reaperImage = image;
    // A name of its own each: an engine restarted under the run stops one, and the next takes over.
    this.reaper ??= this.createLabelled(`the reaper of run ${this.runId}`, () => startReaper(this.docker, image, this.runId, this.labels, ++this.reapers));
    try {
      await this.reaper;
    } catch (error) {
      this.reaper = null;
      throw new LabRunError(`run ${this.runId}: its reaper (the container that removes the run if this process is killed) did not start: ${message(error)}`);
    }
  }

  /**
   * After the engine was stopped or restarted under the run (which stops every container, the
   * reaper's too, which nothing else stops): starts a new reaper where the old one no longer runs,
   * and forgets the network if it is gone, so that network() makes it anew. Throws the engine's
   * errors.
   */
  async afterEngineRestart(): Promise<void> {
    if (!this.reaperImage) return;
    const old = await this.reaper?.catch(() => null);
    // A reaper that still runs was not stopped (the engine was only slow to answer): it stays. Let
    // go while it ran, it would sweep the live run.
    if (!old || !(await old.container.inspect().then((info) => info.State.Running === true, () => false))) {
      await old?.container.remove({ force: true }).catch(() => {});
      old?.release();
      this.reaper = null;
      await this.guard(this.reaperImage);
    }
    if (this.networkId !== null && !(await this.docker.getNetwork(this.networkId).inspect().then(() => true, () => false))) this.networkId = null;
  }

  /** Whether close() was called: the run creates nothing more. */
  get stopping(): boolean {
    return this.closed;
  }

  /** Whether the run's reaper runs (none started yet: true). An engine that does not answer: false. */
  async reaperRunning(): Promise<boolean> {
    if (!this.reaper) return true;
    const reaper = await this.reaper.catch(() => null);
    if (!reaper) return false;
    return reaper.container.inspect().then((info) => info.State.Running === true, () => false);
  }

  /**
   * Sends a request that creates something labelled with the run (`what` names it in the error),
   * so that close() waits for it. Throws LabRunError once the run is closed.
   */
  async createLabelled<T>(what: string, request: () => Promise<T>): Promise<T> {
    if (this.closed) throw new LabRunError(`not creating ${what}: run ${this.runId} is stopping`);
    const pending = request();
    this.inFlight.add(pending);
    try {
      return await pending;
    } finally {
      this.inFlight.delete(pending);
    }
  }

  /**
   * The run's network, created on first use: a bridge on this machine or, `overlay`, an attachable
   * overlay network across the nodes of a swarm (which services and plain containers both join);
   * internal: no route out.
   */
  async network(options: { internal: boolean; overlay?: boolean }): Promise<string> {
    if (this.networkId === null) {
      const network = await this.createLabelled(`network ${this.runId}`, () =>
        this.docker.createNetwork({
          Name: this.runId,
          Driver: options.overlay ? 'overlay' : 'bridge',
          ...(options.overlay && { Attachable: true }),
          Internal: options.internal,
          Labels: this.labels,
        }),
      );
      this.networkId = network.id;
    }
    return this.networkId;
  }

  /** Creates a container of the run, named RUN-ROLE-N and labelled with the run, its controller and its role. */
  async create(role: string, spec: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    const name = `${this.runId}-${role}-${++this.counter}`;
    const container = await this.createLabelled(`container ${name}`, () =>
      this.docker.createContainer({ ...spec, name, Labels: { ...spec.Labels, ...this.labels, 'iolab.role': role } }),
    );
    this.containers.add(container);
    return container;
  }

  /** Creates and starts a container and follows its output; `description` names it in errors. */
  async start(
    role: string,
    spec: Docker.ContainerCreateOptions,
    description: string,
    onStderrLine?: (line: string) => void,
  ): Promise<{ container: Docker.Container; output: ContainerOutput }> {
    const container = await this.create(role, spec);
    await container.start();
    return { container, output: new ContainerOutput(description, container, this.docker, onStderrLine) };
  }

  /** Runs a short container to its end, removes it and returns its output. */
  async runToEnd(role: string, spec: Docker.ContainerCreateOptions): Promise<ContainerOutput> {
    const { container, output } = await this.start(role, spec, role);
    await output.exited;
    await this.remove(container);
    return output;
  }

  async remove(container: Docker.Container): Promise<void> {
    this.containers.delete(container);
    await container.remove({ force: true }).catch(() => {});
  }

  /**
   * Refuses to create anything more, waits for what is being created, and removes every
   * container, network and image that carries the run's label. Throws LabRunError when the
   * engine refuses a removal.
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    // The reaper goes last: were this process killed in the middle of the sweep, it would sweep
    // what is left. Then its lifeline is let go.
    // Swept again while a sweep finds something: a build cut short (Ctrl-C) may still be
    // committing its step as the first sweep runs.
    const reaper = await this.reaper?.catch(() => null);
    for (let pass = 1; pass <= CLOSE_SWEEPS; pass++) {
      const removed = await removeLabelled(this.docker, this.runId, RUN_LABEL, (id) => id === reaper?.container.id).catch((error: Error & { code?: string }) => {
        if (error.code !== 'ENOENT' && error.code !== 'ECONNREFUSED' && !/ENOENT|ECONNREFUSED/.test(error.message)) throw error;
        throw new LabRunError(`the Docker engine does not answer (${message(error)}): what run ${this.runId} left on it stays there; \`iolab clean\` removes it once the engine is back`);
      });
      if (removed.containers + removed.networks + removed.images + removed.swarm === 0) break;
    }
    await reaper?.container.remove({ force: true }).catch(() => {});
    reaper?.release();
    this.reaper = null;
    this.containers.clear();
    this.networkId = null;
  }
}

/**
 * A sidecar in `target`'s PID namespace (none: a container that checks a tracer) with no network: what observes a server. It gets
 * SYS_PTRACE (strace, /proc of the server); for the eBPF observer (tracer "bpf") also SYS_ADMIN
 * (Docker 20.10 knows no CAP_BPF or CAP_PERFMON), no seccomp or AppArmor profile (both forbid
 * bpf(2) and mounts), and the host's cgroup namespace, so that it can mount tracefs and cgroup2
 * and find the server's cgroup. The server itself gets none of these.
 */
export function sidecarSpec(image: string, target: Docker.Container | null, command: string[], tracer: TracerKind | null = null): Docker.ContainerCreateOptions {
  const bpf = tracer === 'bpf';
  return {
    Image: image,
    Cmd: command,
    HostConfig: {
      ...(target ? { PidMode: `container:${target.id}` } : {}),
      CapAdd: bpf ? ['SYS_PTRACE', 'SYS_ADMIN'] : ['SYS_PTRACE'],
      NetworkMode: 'none',
      ...(bpf ? { SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'], CgroupnsMode: 'host' as const } : {}),
    },
  };
}

/** The `iolab observe` command line for a sidecar: see src/tracer/observe.ts. */
export function observerCommand(pid: number, options: ObserveOptions): string[] {
  return ['iolab', 'observe', '--pid', String(pid), ...(options.tracer ? ['--tracer', options.tracer] : []), ...(options.tracer === 'bpf' ? ['--bpf-scope', 'cgroup'] : [])];
}

/** The Docker side of the `iolab observe` protocol: JSON lines on stdout, driven by signals. */
export async function sidecarObserver(
  output: ContainerOutput,
  sidecar: Docker.Container,
  remove: (container: Docker.Container) => Promise<void>,
): Promise<Observer> {
  const json = (line: string) => line.startsWith('{');
  const first = JSON.parse(await output.waitForLine('stdout', json, 'its limits and baseline', SIDECAR_TIMEOUT_MS));
  return {
    limits: first.limits,
    baseline: first.baseline,
    startWindow: async () => {
      await sidecar.kill({ signal: OBSERVER_SIGNALS.startWindow });
      await output.waitForLine('stdout', (line) => line.includes('"window"'), 'the start of its window', SIDECAR_TIMEOUT_MS);
    },
    stop: async (): Promise<Observed> => {
      await sidecar.kill({ signal: OBSERVER_SIGNALS.stop }).catch(() => {});
      const line = await output.waitForLine('stdout', (l) => l.includes('"proc"'), 'what it observed', SIDECAR_TIMEOUT_MS);
      // What it observed is in: the sidecar is removed meanwhile, not waited for (its exit took ~1 s).
      void remove(sidecar);
      return JSON.parse(line) as Observed;
    },
    kill: () => void remove(sidecar),
  };
}

/**
 * Removes the swarm services and configs (src/swarm/) of one run: `label` is KEY=VALUE. Returns how
 * many it removed. An engine that is no swarm manager has none: 0.
 */
async function removeSwarmLabelled(docker: Docker, label: string): Promise<number> {
  const services = await docker.listServices({ filters: { label: [label] } }).catch(() => []);
  const removedServices = await Promise.all(services.map((s) => docker.getService(s.ID).remove().then(() => 1, () => 0)));
  const configs = await docker.listConfigs({ filters: { label: [label] } }).catch(() => []);
  let removedConfigs = 0;
  // a config is removable once no task of a removed service holds it
  for (const config of configs) {
    for (let attempt = 1; attempt <= CONFIG_REMOVE_ATTEMPTS; attempt++) {
      const failure = await docker.getConfig(config.ID).remove().then(() => null, (error: Error) => error);
      if (failure === null) removedConfigs++;
      if (failure === null || /not found/i.test(failure.message)) break;
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
  return removedServices.reduce((sum, n) => sum + n, 0) + removedConfigs;
}

/**
 * Removes the containers, networks and images (a graded submission's) of one run, whatever the
 * state of its controller: what a run's close() does, and `iolab clean` for a run whose
 * controller is gone (src/runtime/clean.ts). On a swarm manager also the run's services and
 * configs. `key`: the label that names the run (iolab.run, or iolab.parent for what a swarm
 * batch's gradings started on a node). Returns how many of each it removed. Throws LabRunError
 * naming what the engine refused to remove.
 */
export async function removeLabelled(
  docker: Docker,
  runId: string,
  key: string = RUN_LABEL,
  /** containers to leave (by id): the reaper's own, while it sweeps. */
  keep: (containerId: string) => boolean = () => false,
): Promise<{ containers: number; networks: number; images: number; swarm: number }> {
  const label = `${key}=${runId}`;
  const swarm = await removeSwarmLabelled(docker, label);
  const removeContainers = async () => {
    const containers = (await docker.listContainers({ all: true, filters: { label: [label] } })).filter((c) => !keep(c.Id));
    await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch((error: Error) => {
      if (!/No such container|is already in progress/.test(error.message)) throw new LabRunError(`cannot remove container ${c.Names[0]}: ${message(error)}`);
    })));
    return containers.length;
  };
  let containers = await removeContainers();
  // A run stopped in its middle (Ctrl-C) may still be creating a container on a network: what
  // appeared meanwhile is removed and the network tried again. An overlay network is still listed
  // a moment after the swarm removed it (its instance on this node goes after): looked at until it
  // is gone.
  const networks = new Set<string>();
  const began = Date.now();
  let lastFailure: string | null = null;
  for (let pass = 1; ; pass++) {
    const listed = await docker.listNetworks({ filters: { label: [label] } });
    if (listed.length === 0) break;
    if (Date.now() - began > NETWORK_GONE_MS) {
      throw new LabRunError(lastFailure ?? `network ${listed[0].Name} is still there ${NETWORK_GONE_MS / 1000} s after its removal`);
    }
    let busy = false;
    for (const network of listed) {
      networks.add(network.Id);
      const failure = await docker.getNetwork(network.Id).remove().then(() => null, (error: Error) => error);
      if (failure === null || /not found|No such network/.test(failure.message)) continue;
      lastFailure = `cannot remove network ${network.Name}: ${message(failure)}`;
      // containers on it (a bridge), or a swarm task still attached (an overlay network)
      if (!/active endpoints|in use by (task|service)/.test(failure.message)) throw new LabRunError(lastFailure);
      busy = true;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(200 * pass, 1_000)));
    if (busy) containers += await removeContainers();
  }
  const images = await docker.listImages({ filters: { label: [label] } });
  await Promise.all(images.map((i) => docker.getImage(i.Id).remove({ force: true }).catch((error: Error) => {
    if (!/No such image|image is being used|conflict/i.test(error.message)) throw new LabRunError(`cannot remove image ${i.RepoTags?.[0] ?? i.Id}: ${message(error)}`);
  })));
  return { containers, networks: networks.size, images: images.length, swarm };
}
