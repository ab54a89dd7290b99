// One piece of work on a swarm: a service in job mode (Docker API 1.41: replicated-job, one task;
// global-job, one task per node) that runs to its end and is never restarted by the swarm (a lost
// task is the caller's to re-queue). Its output comes back through the swarm's service logs, from
// whichever node ran it. Everything it creates carries the caller's labels (iolab.run=ID).
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { LabRunError } from '../errors.js';
import { LineSource } from '../runtime/process.js';

/** Where a node's engine listens: a job that starts containers on its own node mounts it. */
export const DOCKER_SOCKET = '/var/run/docker.sock';
/** How often a job's task is looked at. */
const POLL_MS = 1000;
/** Task states after which a task never runs again (the swarm's task model). */
const ENDED = new Set(['complete', 'failed', 'rejected', 'shutdown', 'orphaned', 'remove', 'node-down', 'node-unavailable']);
/** Task states before its container starts. */
const NOT_STARTED = new Set(['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing']);

export interface JobSpec {
  /** the service's name: unique in the swarm, e.g. RUN-ID-grade-alice-1. */
  name: string;
  image: string;
  /** the command, replacing the image's entrypoint and command. */
  command: string[];
  env?: string[];
  /** a node id: the job runs there (placement constraint node.id==ID); unset: where the swarm places it. */
  node?: string;
  /** more placement constraints ("node.id!=ID"). */
  constraints?: string[];
  /** one task on every ready node (global-job) instead of one task. */
  everyNode?: boolean;
  /** labels of the service and of its task's container. */
  labels: Record<string, string>;
  /** bind-mounts the node's Docker socket: the job starts containers on its own node. */
  dockerSocket?: boolean;
  /** swarm configs mounted as files: config id and name, and the path in the container. */
  configs?: Array<{ id: string; name: string; file: string }>;
  /** networks (ids) the task joins: an attachable overlay, to reach the run's other containers. */
  networks?: string[];
}

/** How a job's task ended, as the swarm reports it. */
export interface TaskEnd {
  /** the node id the task ran on (null: never placed). */
  node: string | null;
  /** the task's last state: complete, failed, rejected, shutdown, orphaned. */
  state: string;
  /** the container's exit code, where it ran. */
  exitCode: number | null;
  /** the swarm's reason for a failed or rejected task ("task: non-zero exit (2)", "no suitable node"). */
  error: string | null;
}

interface TaskInfo {
  NodeID?: string;
  Status: { State: string; Err?: string; ContainerStatus?: { ExitCode?: number } };
}

/** A job's output as lines (stdout, stderr), followed while it runs: see LineSource. */
class JobOutput extends LineSource {
  finish(status: number | string): void {
    this.ended(status);
  }

  follow(stream: NodeJS.ReadableStream, docker: Docker): void {
    const out = new PassThrough();
    const err = new PassThrough();
    this.readLines(out, 'stdout');
    this.readLines(err, 'stderr');
    docker.modem.demuxStream(stream, out, err);
    stream.on('end', () => {
      out.end();
      err.end();
    });
  }
}

export class SwarmJob {
  /** its output while it runs (followed from the start: a client's ready line, its result). */
  readonly output: JobOutput;
  private logStream: NodeJS.ReadableStream | null = null;

  private constructor(
    private readonly docker: Docker,
    readonly spec: JobSpec,
    readonly service: Docker.Service,
  ) {
    this.output = new JobOutput(`swarm job ${spec.name}`);
  }

  /** Creates the job's service (it starts at once). Throws LabRunError when the manager refuses it. */
  static async start(docker: Docker, spec: JobSpec, options: { follow?: boolean } = {}): Promise<SwarmJob> {
    const service = await docker
      .createService({
        Name: spec.name,
        Labels: spec.labels,
        TaskTemplate: {
          ContainerSpec: {
            Image: spec.image,
            Command: spec.command,
            Env: spec.env ?? [],
            Labels: spec.labels,
            // an init as PID 1: the program gets SIGTERM's default action when the swarm stops the task
            Init: true,
            Mounts: spec.dockerSocket ? [{ Type: 'bind', Source: DOCKER_SOCKET, Target: DOCKER_SOCKET }] : [],
            Configs: (spec.configs ?? []).map((c) => ({ ConfigID: c.id, ConfigName: c.name, File: { Name: c.file, UID: '0', GID: '0', Mode: 0o444 } })),
          },
          RestartPolicy: { Condition: 'none' },
          Placement: { Constraints: [...(spec.node ? [`node.id==${spec.node}`] : []), ...(spec.constraints ?? [])] },
          Networks: (spec.networks ?? []).map((target) => ({ Target: target })),
        },
        Mode: spec.everyNode ? { GlobalJob: {} } : { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } },
      } as unknown as Docker.CreateServiceOptions)
      .catch((error: Error) => {
        throw new LabRunError(`the swarm manager refused the job ${spec.name}: ${error.message}`);
      });
    const job = new SwarmJob(docker, spec, docker.getService((service as unknown as { id: string }).id));
    if (options.follow) {
      const stream = (await job.service.logs({ follow: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream;
      job.logStream = stream;
      job.output.follow(stream, docker);
    }
    return job;
  }

  /** The job's tasks as they are now (one, or one per node). */
  async tasks(): Promise<TaskEnd[]> {
    const tasks = (await this.docker.listTasks({ filters: { service: [this.spec.name] } })) as TaskInfo[];
    return tasks.map((task) => ({
      node: task.NodeID ?? null,
      state: task.Status.State,
      exitCode: task.Status.ContainerStatus?.ExitCode ?? null,
      error: task.Status.Err ?? null,
    }));
  }

  /**
   * The tasks, where a task still "running" on a node the manager now sees down is ended, as
   * "node-down": the swarm keeps such a task's state until the node comes back, which it may never.
   */
  private async tasksOrNodeDown(): Promise<TaskEnd[]> {
    const tasks = await this.tasks();
    return Promise.all(
      tasks.map(async (task) => {
        if (ENDED.has(task.state) || task.node === null) return task;
        const node = (await this.docker.getNode(task.node).inspect().catch(() => null)) as { Status?: { State?: string }; Spec?: { Availability?: string } } | null;
        if (node === null || node.Status?.State === 'down') return { ...task, state: 'node-down', error: `node ${task.node} is down or gone` };
        // a task not yet started on a node drained or paused meanwhile would wait for it for ever
        if (NOT_STARTED.has(task.state) && node.Spec?.Availability !== 'active') return { ...task, state: 'node-unavailable', error: `node ${task.node} is ${node.Spec?.Availability}` };
        return task;
      }),
    );
  }

  /**
   * Waits until every task of the job has ended (or `timeoutMs` passes, or `signal` aborts) and
   * returns how each ended. Throws LabRunError on the timeout, naming the job and its tasks' states.
   */
  async ended(timeoutMs: number, signal?: AbortSignal, expectedTasks = 1): Promise<TaskEnd[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const tasks = await this.tasksOrNodeDown();
      if (tasks.length >= expectedTasks && tasks.every((t) => ENDED.has(t.state))) {
        this.output.finish(tasks[0]?.exitCode ?? tasks[0]?.state ?? 'gone');
        return tasks;
      }
      if (signal?.aborted) throw new LabRunError(`swarm job ${this.spec.name}: stopped`);
      if (Date.now() > deadline) {
        throw new LabRunError(`swarm job ${this.spec.name} did not end within ${Math.round(timeoutMs / 1000)} s (its tasks: ${tasks.map((t) => t.state).join(', ') || 'none yet'})`);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** The whole output of the job so far (not only the last lines): read once it has ended. */
  async logs(): Promise<{ stdout: string[]; stderr: string[] }> {
    const raw = (await this.service.logs({ follow: false, stdout: true, stderr: true })) as unknown as Buffer;
    const stdout: string[] = [];
    const stderr: string[] = [];
    // the frames say which stream each chunk is from (byte 0: 1 stdout, 2 stderr)
    for (let at = 0; at + 8 <= raw.length; ) {
      const size = raw.readUInt32BE(at + 4);
      (raw[at] === 2 ? stderr : stdout).push(raw.subarray(at + 8, at + 8 + size).toString('utf8'));
      at += 8 + size;
    }
    const lines = (chunks: string[]) => chunks.join('').split('\n').filter((line) => line.length > 0);
    return { stdout: lines(stdout), stderr: lines(stderr) };
  }

  /** Removes the service (and with it its tasks' containers). Idempotent. */
  async remove(): Promise<void> {
    (this.logStream as (NodeJS.ReadableStream & { destroy?: () => void }) | null)?.destroy?.();
    await this.service.remove().catch(() => {});
  }
}
