// A lab on a Docker swarm (`iolab run LAB --on swarm --clients N`): the load generator gets nodes of
// its own, so the server's node spends its cores on the server alone.
//
//   - the run's network is an attachable overlay: the server (a plain container, as on one machine)
//     and the clients (swarm jobs on other nodes) reach each other by name across nodes;
//   - the server, its observer sidecar and a lab's programs run on this node, the manager's, exactly
//     as src/runtime/docker.ts runs them: the observer must share the server's engine (its pids);
//   - each client container is a swarm job placed on the other nodes in turn (placement constraint
//     node.id==ID); on a one-node swarm they share the server's node, and the report says so;
//   - no signal reaches a client on another node: the clients wait at a start gate beside the server
//     (src/clients/start-gate.ts), which the controller signals to start the window;
//   - the lab image reaches every node by save and load (src/swarm/images.ts).
import { CLIENT_GRACE_MS, DockerRuntime, type DockerRuntimeOptions } from '../runtime/docker.js';
import { readClientOutput } from '../runtime/process.js';
import { CLIENT_START_SIGNAL, type ClientRunSpec, type RunningClient, type RunningProgram, type RunningServer, type ServerSpec, type ProgramSpec } from '../runtime/runtime.js';
import type { SwarmPlacement } from '../shared/results.js';
import { START_GATE_PORT } from '../clients/start-gate.js';
import { swarmNodes, type SwarmNode } from './cluster.js';
import { distributeImage } from './images.js';
import { SwarmJob } from './job.js';

export class SwarmRuntime extends DockerRuntime {
  private nodes: SwarmNode[] = [];
  private readonly counts = new Map<string, number>();
  private gate: Promise<{ address: string; open: () => Promise<void> }> | null = null;
  private clientCount = 0;

  constructor(options: DockerRuntimeOptions = {}) {
    super(options);
  }

  /** An attachable overlay network; the lab image on every node. */
  protected override async createNetwork(image: { tag: string; id: string }): Promise<string> {
    this.nodes = await swarmNodes(this.docker);
    const self = this.self();
    const others = this.nodes.filter((n) => !n.self);
    this.progress(
      `swarm: ${this.nodes.length} node(s); servers on ${self.hostname}, clients on ${others.length ? others.map((n) => n.hostname).join(', ') : `${self.hostname} too (no other node)`}`,
    );
    const network = await this.run.network({ internal: false, overlay: true });
    // said without --verbose: a node loading the image may take minutes
    await distributeImage(this.run, image, network, (line) => this.progress(line.trimStart()));
    return network;
  }

  private self(): SwarmNode {
    return this.nodes.find((n) => n.self) ?? this.nodes[0];
  }

  private placed(role: string, node: SwarmNode): void {
    const key = `${role}\u0000${node.hostname}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** The nodes, and per role and node the containers placed there: servers first, then clients, then programs by name. */
  placement(): SwarmPlacement {
    const rank = (role: string) => ['server', 'client'].indexOf(role) >>> 0;
    const placement = [...this.counts].map(([key, containers]) => {
      const [role, node] = key.split('\u0000');
      return { role, node, containers };
    });
    placement.sort((a, b) => rank(a.role) - rank(b.role) || a.role.localeCompare(b.role) || a.node.localeCompare(b.node));
    return { nodes: this.nodes.map((n) => ({ hostname: n.hostname, cpus: n.cpus, role: n.role })), placement };
  }

  override async startServer(spec: ServerSpec): Promise<RunningServer> {
    const server = await super.startServer(spec);
    this.placed('server', this.self());
    return server;
  }

  override async startProgram(spec: ProgramSpec): Promise<RunningProgram> {
    const program = await super.startProgram(spec);
    this.placed(spec.role, this.self());
    return program;
  }

  /** The start gate, beside the server on the run's network: started at the first client. */
  private startGate(image: string): Promise<{ address: string; open: () => Promise<void> }> {
    this.gate ??= (async () => {
      const { container, output } = await this.run.start('start-gate', { Image: image, Cmd: ['iolab', 'start-gate'], HostConfig: { NetworkMode: this.network! } }, 'the clients\' start gate');
      await output.waitForLine('stderr', (line) => line.startsWith('gate listening'), 'its listening line', 30_000);
      const name = ((await container.inspect()) as { Name: string }).Name.replace(/^\//, '');
      return { address: `${name}:${START_GATE_PORT}`, open: async () => void (await container.kill({ signal: CLIENT_START_SIGNAL })) };
    })();
    this.gate.catch(() => (this.gate = null));
    return this.gate;
  }

  /** A client container as a swarm job on the next node other than this one (this one when there is none). */
  override async startClient(spec: ClientRunSpec): Promise<RunningClient> {
    const image = await this.prepare();
    const gate = await this.startGate(image.id);
    const others = this.nodes.filter((n) => !n.self);
    const node = others.length ? others[this.clientCount % others.length] : this.self();
    const jobName = `${this.runId}-client-${++this.clientCount}`;
    const description = `client ${spec.name} (${spec.mode}, ${spec.connections} connections) on node ${node.hostname}`;
    let connectTo: (target: string) => void = () => {};
    let cancel: (why: Error) => void = () => {};
    const target = spec.target !== null ? Promise.resolve(spec.target) : new Promise<string>((resolve, reject) => ((connectTo = resolve), (cancel = reject)));
    const job = target.then((at) =>
      this.run.createLabelled(`job ${jobName}`, () =>
        SwarmJob.start(
          this.docker,
          {
            name: jobName,
            image: image.tag,
            command: [
              'iolab', 'client', '--target', at, '--mode', spec.mode,
              '--connections', String(spec.connections), '--duration', String(spec.durationSeconds),
              '--message-size', String(spec.messageSize), '--wait-for-start', '--start-gate', gate.address,
              ...(spec.rate ? ['--rate', String(spec.rate)] : []),
            ],
            node: node.id,
            labels: { ...this.run.labels, 'iolab.role': 'client' },
            networks: [this.network!],
          },
          { follow: true },
        ),
      ),
    );
    this.placed('client', node);
    const outputs = job.then((j) => {
      // the job's output, named as a client
      Object.assign(j.output, { description });
      // the task's end ends the output, so that a client that dies fails its waits at once
      void j.ended(spec.durationSeconds * 1000 + 10 * CLIENT_GRACE_MS).catch(() => {});
      // a job placed on a node leaves the start of its container to the node: the grace covers it
      return readClientOutput(j.output, 2 * CLIENT_GRACE_MS, spec.durationSeconds * 1000 + 3 * CLIENT_GRACE_MS);
    });
    const ready = outputs.then((o) => o.ready);
    const result = outputs.then((o) => o.result);
    ready.catch(() => {});
    result.catch(() => {});
    return {
      name: spec.name,
      connect: (at) => {
        if (spec.target !== null) throw new Error(`${description} was started with its target`);
        connectTo(at);
      },
      ready,
      result,
      start: () => gate.open(),
      stop: async () => {
        cancel(new Error(`${description} was stopped before it was told where the server is`));
        await (await job.catch(() => null))?.remove();
      },
    };
  }

  override async close(): Promise<void> {
    this.gate = null;
    await super.close();
  }
}
