// Grading in containers: the student's code is untrusted, so its server runs
//
//   - in an image built FROM the lab image with the submission copied in (or from the student's
//     own Dockerfile, FROM ${IOLAB_IMAGE}), the build's RUN steps without a network; a C server
//     is compiled by a RUN step of that build (gcc or make), and its compile error, read from the
//     build's output, is the student's mistake (SubmissionError), not a grader's failure;
//   - under an init (Docker's docker-init, i.e. tini: HostConfig.Init), never as PID 1 itself:
//     the kernel drops a signal whose action is the default for a namespace's PID 1, so a server
//     there would survive the SIGPIPE that kills it anywhere else. The container's exit code is
//     then the server's: its status, or 128+N when signal N killed it;
//   - as nobody, every capability dropped, no-new-privileges, a read-only root with a tmpfs
//     for /tmp, limits on memory, CPU, processes+threads and open files, bounded logs;
//   - on an internal network with no route out, where only the grader's probe containers
//     reach it (by container name);
//   - watched by sidecars that share its PID namespace and hold the one capability the server
//     lacks (SYS_PTRACE): `iolab observe --listening` to find its listener, `iolab observe --pid`
//     for /proc and strace. They find the server by what listens, not as PID 1 (the init is).
// Everything carries the label iolab.run=<id> and its controller's (src/runtime/controller.ts):
// close() removes it, and `iolab clean` once the grading's process is gone.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { NotGradableError, RuntimeUnavailableError } from '../errors.js';
import { ContainerOutput, message, newRunId, observerCommand, RUN_LABEL, RunContainers, sidecarObserver, sidecarSpec } from '../runtime/containers.js';
import { buildImage, engineAvailable, ensureImage } from '../runtime/docker-image.js';
import type { ListenerReport } from '../tracer/listeners.js';
import type { ObserveOptions, Observer } from '../tracer/observe.js';
import { ProbeOutcomeSchema, type ProbeRequest } from './probe.js';
import { clipOutputLine, DEFAULT_LIMITS, SANDBOX_PORT, type GradeSandbox, type SandboxLimits, type SandboxedServer, type ServerState } from './sandbox.js';
import { buildMistake, C_BINARY, NO_C_BINARY, SubmissionError, type PreparedSubmission } from './submission.js';

const GENERATED_DOCKERFILE = '.iolab-submission.Dockerfile';
const BUILD_TIMEOUT_MS = 180_000;
const PROBE_GRACE_MS = 60_000;
const OUTPUT_LINES = 40;

/** Where the submission is copied in the image, and where its server starts. */
const SUBMISSION_DIR = '/submission';

/**
 * The Dockerfile of a submission's image, but for a Dockerfile submission (its own): the lab
 * image with the submission copied in and, for a C server, built by RUN steps (without a network,
 * as root; the binary stays readable and executable for nobody). Its first step labels it with
 * run `runId` (RUN_LABEL), so that every image the build makes carries the label from the start:
 * a build cut short (its controller killed) leaves its steps' images, which the run's reaper then
 * finds by the label. (The build's own labels come as LABEL steps at its end.)
 */
export function submissionDockerfile(labImage: string, submission: Pick<PreparedSubmission, 'build'>, runId: string): string {
  const lines = [`FROM ${labImage}`, `LABEL ${RUN_LABEL}=${JSON.stringify(runId)}`, `COPY . ${SUBMISSION_DIR}`];
  if (submission.build) {
    lines.push(`WORKDIR ${SUBMISSION_DIR}`, `RUN ${JSON.stringify(submission.build)}`);
    // make's first target may build something else: say so in the student's terms
    const check = `test -f ${C_BINARY} -a -x ${C_BINARY} || { echo ${JSON.stringify(NO_C_BINARY)} >&2; exit 1; }`;
    lines.push(`RUN ${JSON.stringify(['sh', '-c', check])}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A container's log, as the engine returns it without a TTY (8-byte frame headers), as lines. */
export function demultiplexLog(buffer: Buffer): string[] {
  const text: string[] = [];
  for (let at = 0; at + 8 <= buffer.length; ) {
    const size = buffer.readUInt32BE(at + 4);
    text.push(buffer.subarray(at + 8, at + 8 + size).toString('utf8'));
    at += 8 + size;
  }
  return text.join('').split('\n').filter((line) => line.length > 0).map(clipOutputLine);
}

export interface DockerSandboxOptions {
  onProgress?: (line: string) => void;
  limits?: SandboxLimits;
  /**
   * the network to put the server on (a lab's, where its clients are: src/grade/own-server.ts);
   * unset: an internal network of the grading's own, with no route out.
   */
  network?: string;
}

export class DockerSandbox implements GradeSandbox {
  readonly name = 'docker';
  readonly port = SANDBOX_PORT;
  readonly limits: SandboxLimits;
  readonly docker = new Docker();
  /** the run's label value, and the prefix of its containers' and network's names. */
  readonly id = newRunId('iolab-grade');
  /** every container, the network and the submission's image of this grading carry its label. */
  readonly run = new RunContainers(this.docker, this.id);
  private labImage: { tag: string; id: string } | null = null;
  private submission: PreparedSubmission | null = null;
  private image: string | null = null;
  private network: string | null = null;
  /** a build of the submission's image in progress: aborted by its timeout or by close(). */
  private building: AbortController | null = null;

  constructor(private readonly options: DockerSandboxOptions = {}) {
    this.limits = options.limits ?? DEFAULT_LIMITS;
  }

  async describe(): Promise<string> {
    const info = (await this.docker.info()) as { ServerVersion: string };
    return `Docker ${info.ServerVersion}, image ${this.labImage?.tag ?? '(not built)'}`;
  }

  async prepare(submission: PreparedSubmission): Promise<void> {
    const engine = await engineAvailable(this.docker);
    if (!engine.ok) throw new NotGradableError(engine.reason);
    try {
      this.labImage = await ensureImage(this.docker, { onProgress: this.options.onProgress });
    } catch (error) {
      if (error instanceof RuntimeUnavailableError) throw new NotGradableError(error.message);
      throw error;
    }
    await this.run.guard(this.labImage.id);
    this.submission = submission;
    const tag = `iolab-submission:${this.id}`;
    let dockerfile = 'Dockerfile';
    const files = [...submission.files];
    if (submission.kind !== 'dockerfile') {
      dockerfile = GENERATED_DOCKERFILE;
      await writeFile(join(submission.dir, dockerfile), submissionDockerfile(this.labImage.tag, submission, this.id));
      files.push(dockerfile);
    }
    // the output of the step under way: a RUN step's is the build's (gcc's errors)
    let stepOutput: string[] = [];
    const onBuildLine = (line: string) => {
      if (/^Step \d+\/\d+ : /.test(line)) stepOutput = [];
      else if (!/^ ---> /.test(line)) stepOutput.push(line);
    };
    const labImage = this.labImage;
    const building = (this.building = new AbortController());
    const timeout = setTimeout(() => building.abort(), BUILD_TIMEOUT_MS);
    const build = await this.run
      .createLabelled(`image ${tag}`, () =>
        buildImage(this.docker, {
          context: submission.dir,
          files,
          tag,
          dockerfile,
          labels: this.run.labels,
          buildArgs: { IOLAB_IMAGE: labImage.tag },
          network: 'none',
          signal: building.signal,
          onProgress: onBuildLine,
        }),
      )
      .finally(() => clearTimeout(timeout));
    if (!build.ok && submission.build && /^Step \d+\/\d+ : RUN /.test(build.step) && !building.signal.aborted) {
      // The student's compile error; any other failure (no compiler in the image) is the grader's.
      const mistake = buildMistake(stepOutput, SUBMISSION_DIR);
      if (mistake !== null) throw new SubmissionError(mistake, 'does-not-build');
    }
    if (!build.ok) {
      // "Step 3 : RUN ...", not "Step 3/9": the count includes the LABEL steps the grader appends, which vary with where it runs
      const step = build.step.replace(/^Step (\d+)\/\d+ :/, 'Step $1 :');
      throw new NotGradableError(`the submission's image did not build, at ${step}: ${build.failure}\n  ${build.lastLines.slice(-8).join('\n  ')}`);
    }
    this.image = tag;
    this.network = this.options.network ?? (await this.run.network({ internal: true }));
  }

  async start(): Promise<SandboxedServer> {
    if (!this.image || !this.submission || !this.labImage) throw new NotGradableError('the Docker sandbox was started before a submission was prepared');
    const limits = this.limits;
    const container = await this.run.create('student-server', {
      Image: this.image,
      ...(this.submission.command && { Cmd: this.submission.command, WorkingDir: SUBMISSION_DIR }),
      Env: [`PORT=${this.port}`, 'PYTHONUNBUFFERED=1', 'PYTHONDONTWRITEBYTECODE=1', 'HOME=/tmp'],
      User: '65534:65534',
      HostConfig: {
        // docker-init as PID 1, the server its child: default signal actions apply to the server
        Init: true,
        NetworkMode: this.network!,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        ReadonlyRootfs: limits.readOnlyRoot,
        Tmpfs: { '/tmp': `rw,nosuid,nodev,size=${limits.tmpfsMb}m,mode=1777` },
        Memory: limits.memoryMb * 1024 * 1024,
        MemorySwap: limits.memoryMb * 1024 * 1024,
        NanoCpus: limits.cpus * 1e9,
        PidsLimit: limits.pids,
        Ulimits: [{ Name: 'nofile', Soft: limits.nofile, Hard: limits.nofile }],
        // a server that floods its output fills at most this much of the engine's disk
        LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
      },
    });
    await container.start();
    const name = ((await container.inspect()) as { Name: string }).Name.replace(/^\//, '');
    return new DockerServer(this, container, name, this.labImage.id, this.network!);
  }

  async close(): Promise<void> {
    // the containers, the network and the submission's image: all carry the run's label
    // A build under way is cut short; its step's container carries the run's label from the
    // first step: the sweep removes it, and with it what that step would have committed.
    this.building?.abort();
    await this.run.close().catch(() => {});
    this.network = null;
    this.image = null;
  }
}

class DockerServer implements SandboxedServer {
  private readonly sidecars = new Set<Docker.Container>();

  constructor(
    private readonly sandbox: DockerSandbox,
    private readonly container: Docker.Container,
    private readonly name: string,
    private readonly labImage: string,
    private readonly network: string,
  ) {}

  private async remove(container: Docker.Container): Promise<void> {
    this.sidecars.delete(container);
    await this.sandbox.run.remove(container);
  }

  /** starts a container beside the server (removed with it), with its output; `what` names it in errors. */
  private async launch(role: string, spec: Docker.ContainerCreateOptions, what: string): Promise<{ container: Docker.Container; output: ContainerOutput }> {
    const started = await this.sandbox.run.start(role, spec, what);
    this.sidecars.add(started.container);
    return started;
  }

  /** a sidecar in the server's PID namespace, with SYS_PTRACE (and what the eBPF observer needs, for it) and no network. */
  private sidecar(role: string, command: string[], tracer: ObserveOptions['tracer'] = null): Promise<{ container: Docker.Container; output: ContainerOutput }> {
    return this.launch(role, sidecarSpec(this.labImage, this.container, command, tracer), `${role} of ${this.name}`);
  }

  address(): string {
    return `${this.name}:${this.sandbox.port}`;
  }

  async waitListening(timeoutMs: number): Promise<ListenerReport> {
    const gone: ListenerReport = { listening: null, sockets: [], processes: 0, threads: 0, cpuSeconds: 0, running: false };
    if (!(await this.state()).running) return gone;
    let sidecar: { container: Docker.Container; output: ContainerOutput };
    try {
      sidecar = await this.sidecar('listener', ['iolab', 'observe', '--listening', String(this.sandbox.port), '--timeout-ms', String(timeoutMs)]);
    } catch (error) {
      // The server's container stopped between the two calls: nothing to join.
      if (!(await this.state()).running) return gone;
      throw error;
    }
    try {
      const line = await sidecar.output.waitForLine('stdout', (l) => l.startsWith('{'), 'the listener report', timeoutMs + 30_000);
      return JSON.parse(line) as ListenerReport;
    } catch (error) {
      // The sidecar dies with the server's PID namespace when the server's first process exits.
      if (!(await this.state()).running) return gone;
      throw error;
    } finally {
      await this.remove(sidecar.container);
    }
  }

  async observe(pid: number, options: ObserveOptions): Promise<Observer> {
    const { container, output } = await this.sidecar('observer', observerCommand(pid, options), options.tracer);
    return sidecarObserver(output, container, (c) => this.remove(c));
  }

  probe(request: ProbeRequest) {
    const spec = {
      Image: this.labImage,
      Cmd: ['iolab', 'probe', '--target', `${this.name}:${this.sandbox.port}`, '--request', JSON.stringify(request)],
      HostConfig: { NetworkMode: this.network },
    };
    const started = this.launch('probe', spec, `probe ${request.probe} of ${this.name}`);
    const ready = started.then(({ output }) => output.waitForLine('stderr', (l) => l === 'ready', 'its ready line', PROBE_GRACE_MS)).then(() => undefined);
    const result = started.then(async ({ container, output }) => {
      try {
        const line = await output.waitForLine('stdout', (l) => l.startsWith('{'), 'its outcome', 10 * PROBE_GRACE_MS);
        return ProbeOutcomeSchema.parse(JSON.parse(line));
      } finally {
        await this.remove(container);
      }
    });
    ready.catch(() => {});
    result.catch(() => {});
    return { ready, result };
  }

  async state(): Promise<ServerState> {
    let details: { State: { Running: boolean; ExitCode: number; OOMKilled: boolean }; HostConfig: { Memory?: number } };
    try {
      details = (await this.container.inspect()) as typeof details;
    } catch (error) {
      throw new NotGradableError(`the server's container ${this.name} is gone: ${message(error)}`);
    }
    const log = (await this.container.logs({ stdout: true, stderr: true, tail: OUTPUT_LINES, follow: false }).catch(() => Buffer.alloc(0))) as Buffer;
    return {
      running: details.State.Running,
      exit: details.State.Running ? null : details.State.ExitCode,
      oomKilled: details.State.OOMKilled,
      memoryLimit: details.HostConfig.Memory || null,
      output: demultiplexLog(log).slice(-OUTPUT_LINES),
    };
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sidecars].map((c) => this.remove(c)));
    await this.sandbox.run.remove(this.container);
  }
}
