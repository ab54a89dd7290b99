// The Docker runtime's observer: one sidecar container for a whole lab, running `iolab observe
// --serve` (src/tracer/observe.ts), which observes each server in turn when asked on its stdin.
// One container and one bpftrace for the lab, not one per run: starting them cost about 1.8 s
// of every run (measured with `iolab run starvation --runtime docker`), as long as a short run.
//
// The sidecar is in the host's PID namespace, so the server is named by its host pid (the
// container's State.Pid): /proc/PID for its limits and its probe, strace -p PID, and the eBPF
// observer's process tree. It has what the eBPF observer needs (SYS_ADMIN: Docker 20.10 knows no
// CAP_BPF; no seccomp or AppArmor profile, which forbid bpf(2) and mounts; the host's cgroup
// namespace) and SYS_PTRACE (strace, /proc of other users' processes), and no network. It runs
// iolab's own code only: the servers it observes get none of this.
import type Docker from 'dockerode';
import { LabRunError } from '../errors.js';
import type { ObserveOptions, Observed, Observer, ObserverRequest } from '../tracer/observe.js';
import { ContainerOutput, type RunContainers } from './containers.js';

/** How long the observer may take to answer a request (start observing, start the window, print what it saw). */
const ANSWER_TIMEOUT_MS = 30_000;

type Request = ObserverRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

export class ObserverService {
  private lastId = 0;

  private constructor(
    private readonly stdin: NodeJS.ReadWriteStream,
    private readonly output: ContainerOutput,
  ) {}

  /** Starts the sidecar of `image` in `run`. Rejects with LabRunError when the engine refuses it. */
  static async start(run: RunContainers, docker: Docker, image: string): Promise<ObserverService> {
    const container = await run.create('observer', {
      Image: image,
      Cmd: ['iolab', 'observe', '--serve'],
      OpenStdin: true,
      StdinOnce: false,
      AttachStdin: true,
      HostConfig: {
        PidMode: 'host',
        CapAdd: ['SYS_PTRACE', 'SYS_ADMIN'],
        NetworkMode: 'none',
        SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'],
        // Spread: @types/dockerode does not know it (the Engine API has it since 1.41).
        ...{ CgroupnsMode: 'host' },
      },
    });
    const stdin = (await container.attach({ stream: true, stdin: true, hijack: true })) as NodeJS.ReadWriteStream;
    await container.start();
    return new ObserverService(stdin, new ContainerOutput('the lab\'s observer sidecar', container, docker));
  }

  /** Ends the sidecar's stdin (it ends then) and lets go of the connection to it, which would keep this process alive. */
  close(): void {
    this.stdin.end();
    (this.stdin as NodeJS.ReadWriteStream & { destroy?: () => void }).destroy?.();
  }

  /** The sidecar still runs (a new one is needed when it does not). */
  get running(): boolean {
    return this.output.running;
  }

  /**
   * Observes the process of host pid `pid` (and its descendants) until the Observer is stopped
   * or killed; one at a time. Rejects with LabRunError when the observer cannot (its error).
   */
  async observe(pid: number, options: ObserveOptions): Promise<Observer> {
    const first = (await this.request({ observe: { pid, tracer: options.tracer } }, 'start observing')) as unknown as Pick<Observer, 'limits' | 'baseline'>;
    return {
      limits: first.limits,
      baseline: first.baseline,
      startWindow: async () => {
        await this.request({ window: 'start' }, 'start its window');
      },
      stop: async () => {
        const { proc, trace } = (await this.request({ stop: true }, 'say what it observed')) as unknown as Observed;
        return { proc, trace };
      },
      kill: () => void this.request({ kill: true }, 'stop observing').catch(() => {}),
    };
  }

  private async request(request: Request, what: string): Promise<Record<string, unknown>> {
    const id = ++this.lastId;
    this.stdin.write(`${JSON.stringify({ id, ...request })}\n`);
    const line = await this.output.waitForLine('stdout', (l) => l.startsWith(`{"id":${id},`), `its answer (${what})`, ANSWER_TIMEOUT_MS);
    const answer = JSON.parse(line) as Record<string, unknown>;
    if (typeof answer.error === 'string') throw new LabRunError(`the observer could not ${what}: ${answer.error}`);
    return answer;
  }
}
