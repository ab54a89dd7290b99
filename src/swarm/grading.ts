// A class batch on a swarm (`iolab grade --batch DIR --on swarm`): each submission's grading is a
// swarm job on a node with a free slot. The job runs the one-machine grader there, in the lab
// image, with its node's Docker socket: `iolab grade SUBMISSION --format json`. So the sandbox is
// the same on every node as on one machine (src/grade/docker-sandbox.ts: nobody, no capability, a
// read-only root, the limits, an internal network of the grading's own on that node, the observer
// sidecars in the server's PID namespace, which only one engine can give).
//
//   - the submission travels as swarm configs (its files, tar.gz, in 480 KB parts): no registry,
//     and its image is built on the node that grades it, so a compile error reads as it does locally;
//   - slots: each node takes as many gradings at a time as it has CPUs (or --jobs-per-node);
//   - a grading whose job ends without a report (its node went down or away, its container was
//     killed) is queued again, on another node where there is one, up to MAX_ATTEMPTS times;
//     after that the student's grade is "not gradable" with the reason, never a zero; the nodes
//     are looked at again after a loss and while no slot is free (down, drained, back, joined);
//   - what a grading started on a node carries the label iolab.parent=<batch id>: the batch's last
//     job removes it from every node (`iolab clean --parent`), with the batch's services, configs
//     and network.
import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { basename } from 'node:path';
import Docker from 'dockerode';
import { pack } from 'tar-fs';
import { LabRunError, NotGradableError } from '../errors.js';
import type { RemoteGrader } from '../grade/batch.js';
import { GRADE_SCHEMA_VERSION, GradeReportSchema, type GradeReport } from '../grade/report.js';
import type { Exercise } from '../grade/rubric.js';
import { DEFAULT_LIMITS } from '../grade/sandbox.js';
import { message, newRunId, PARENT_RUN_ENV, RunContainers } from '../runtime/containers.js';
import { ensureImage } from '../runtime/docker-image.js';
import { swarmNodes, type SwarmNode } from './cluster.js';
import { distributeImage } from './images.js';
import { SwarmJob } from './job.js';

/** A swarm config holds at most 500 KB (Docker's limit): a submission is cut into parts of this size. */
const CONFIG_PART_BYTES = 480 * 1024;
/** A submission larger than this (compressed) is not sent: 16 parts. */
const MAX_SUBMISSION_BYTES = 16 * CONFIG_PART_BYTES;
/** Where a grading job finds the parts of its submission. */
const PARTS_DIR = '/run/iolab-submission';
/** Gradings of one submission before it is "not gradable": the first and two more after a loss. */
export const MAX_ATTEMPTS = 3;
/** How often the nodes are looked at again while no slot is free (a drained node may come back). */
const NODES_RECHECK_MS = 5_000;
/** Beyond the grading's own time limit: the image build and the job's start on its node. */
const JOB_MARGIN_MS = 5 * 60_000;

export interface SwarmGradingOptions {
  exercise: Exercise;
  /** the checks to run (--checks), or all. */
  only?: string[];
  timeLimitSeconds: number;
  /** gradings at a time on each node (a whole number, at least 1); unset: the node's CPUs. */
  jobsPerNode?: number;
  onProgress?: (line: string) => void;
}

/** A node's share of the batch, for the progress lines and the summary. */
interface NodeSlots {
  node: SwarmNode;
  capacity: number;
  busy: number;
  /** gradings that came back with a report (graded or not gradable). */
  reported: number;
  lost: number;
  seconds: number[];
}

/**
 * The gzipped tar of a directory, as a Buffer. Throws NotGradableError naming the directory when
 * it cannot be packed (a FIFO or socket in it, an unreadable file) or is too large to send.
 */
async function tarball(dir: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    await pipeline(pack(dir), createGzip(), async function* (gzipped) {
      for await (const chunk of gzipped) chunks.push(chunk as Buffer);
    });
  } catch (error) {
    throw new NotGradableError(`the submission ${dir} cannot be sent to a node: ${message(error)} (a swarm grading sends its files only: regular files, directories and links)`);
  }
  const tar = Buffer.concat(chunks);
  if (tar.length > MAX_SUBMISSION_BYTES) {
    throw new NotGradableError(`the submission ${dir} is ${Math.round(tar.length / 1024)} KB compressed; a swarm grading takes at most ${MAX_SUBMISSION_BYTES / 1024} KB (swarm configs of 500 KB): leave out what the server does not need`);
  }
  return tar;
}

/** How an attempt ended: a report, a loss (to queue again) or a failure that another node would not mend. */
type Attempt = { report: GradeReport } | { lost: string } | { failed: string };

export class SwarmGrading implements RemoteGrader {
  readonly docker = new Docker();
  /** the batch's id: the label of its services, configs, network, and (iolab.parent) of what its gradings start. */
  readonly runId = newRunId('iolab-swarm');
  readonly run = new RunContainers(this.docker, this.runId);
  private readonly slots = new Map<string, NodeSlots>();
  private readonly waiting: Array<() => void> = [];
  private readonly jobs = new Set<SwarmJob>();
  private image: { tag: string; id: string } | null = null;
  private counter = 0;
  /** aborted by close(): no grading starts an attempt or waits for a job after it. */
  private readonly stopping = new AbortController();
  private readonly inFlight = new Set<Promise<GradeReport>>();
  private closing: Promise<void> | null = null;

  constructor(private readonly options: SwarmGradingOptions) {}

  private progress(line: string): void {
    this.options.onProgress?.(line);
  }

  /**
   * Lists the nodes, builds (or reuses) the lab image and makes it present on every node. Returns
   * the number of slots (gradings at a time) over all nodes. Throws RuntimeUnavailableError when
   * the engine is not a swarm manager, LabRunError when the image cannot reach a node.
   */
  async prepare(): Promise<number> {
    const nodes = await swarmNodes(this.docker);
    for (const node of nodes) this.slots.set(node.id, { node, capacity: this.capacityOf(node), busy: 0, reported: 0, lost: 0, seconds: [] });
    this.progress(`swarm: ${nodes.length} node(s): ${[...this.slots.values()].map((s) => `${s.node.hostname} (${s.node.cpus} CPUs, ${s.capacity} at a time)`).join(', ')}`);
    // the build's steps only, not each line of their output
    this.image = await ensureImage(this.docker, { onProgress: (line) => this.progress(line), onBuildOutput: (line) => /^Step \d+\/\d+ : /.test(line) && this.progress(`  ${line}`) });
    await this.run.guard(this.image.id);
    const network = await this.run.network({ internal: true, overlay: true });
    await distributeImage(this.run, this.image, network, (line) => this.progress(line));
    return [...this.slots.values()].reduce((sum, s) => sum + s.capacity, 0);
  }

  private capacityOf(node: SwarmNode): number {
    return this.options.jobsPerNode ?? Math.max(1, Math.floor(node.cpus));
  }

  /**
   * Looks at the nodes again: one that is no longer ready and active (down, drained, gone) takes
   * no more gradings; one that is again does. A node that joins during the batch is not used: it
   * has no lab image (prepare() carries it to the nodes there were).
   */
  private async refreshNodes(): Promise<void> {
    const nodes = await swarmNodes(this.docker).catch(() => [] as SwarmNode[]);
    const ready = new Map(nodes.map((n) => [n.id, n]));
    for (const slot of this.slots.values()) slot.capacity = ready.has(slot.node.id) ? this.capacityOf(slot.node) : 0;
  }

  /**
   * Takes a slot: on a node not in `avoid` where one is free, else on any node. While every slot
   * is busy, or no node takes work, waits for a slot to be released or NODES_RECHECK_MS, then
   * looks at the nodes again. Says where the grading goes.
   */
  private async acquire(avoid: Set<string>, what: string): Promise<NodeSlots> {
    for (;;) {
      if (this.stopping.signal.aborted) throw new LabRunError('the batch is stopping');
      const free = [...this.slots.values()].filter((s) => s.busy < s.capacity);
      const preferred = free.filter((s) => !avoid.has(s.node.id));
      const pick = (preferred.length ? preferred : free).sort((a, b) => a.busy / a.capacity - b.busy / b.capacity)[0];
      if (pick) {
        pick.busy++;
        this.progress(`  ${what} -> node ${pick.node.hostname} (${pick.busy} of ${pick.capacity} slots busy)`);
        return pick;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(wake), 1);
          resolve();
        }, NODES_RECHECK_MS);
        this.waiting.push(wake);
      });
      await this.refreshNodes();
    }
  }

  private release(slot: NodeSlots): void {
    slot.busy--;
    this.waiting.shift()?.();
  }

  /** The submission's parts (`tar`) as swarm configs of the batch, named after the job. */
  private async sendSubmission(tar: Buffer, job: string): Promise<Array<{ id: string; name: string; file: string }>> {
    const parts = [];
    for (let at = 0, n = 0; at < tar.length || n === 0; at += CONFIG_PART_BYTES, n++) {
      const name = `${job}-part-${String(n).padStart(3, '0')}`;
      const created = (await this.run.createLabelled(`config ${name}`, () =>
        this.docker.createConfig({ Name: name, Labels: this.run.labels, Data: tar.subarray(at, at + CONFIG_PART_BYTES).toString('base64') } as unknown as Docker.ConfigInfo),
      )) as unknown as { id: string };
      parts.push({ id: created.id, name, file: `${PARTS_DIR}/${name.slice(job.length + 1)}` });
    }
    return parts;
  }

  /**
   * One attempt: the job on `slot`'s node. Lost: the job was killed (a signal's exit status), its
   * node went down or away, the swarm rejected or shut down its task, or it ran past its time.
   * Failed: it ran to an exit of its own without a report (the grader failed there: another node
   * would do the same). Throws LabRunError once the batch is stopping.
   */
  private async attempt(dir: string, tar: Buffer, slot: NodeSlots): Promise<Attempt> {
    const name = basename(dir);
    const jobName = `${this.runId}-grade-${++this.counter}`;
    const configs: Array<{ id: string; name: string; file: string }> = [];
    let job: SwarmJob | null = null;
    const where = `its job on node ${slot.node.hostname}`;
    try {
      configs.push(...(await this.sendSubmission(tar, jobName)));
      const args = ['--exercise', this.options.exercise.id, '--format', 'json', '--time-limit', String(this.options.timeLimitSeconds), ...(this.options.only ? ['--checks', this.options.only.join(',')] : [])];
      // the student's directory name is the submission's name in the gradebook: the job unpacks it under the same name
      const script = `set -e; d="/tmp/grading/$STUDENT"; mkdir -p "$d"; cat ${PARTS_DIR}/part-* | tar -xzf - -C "$d"; exec iolab grade "$d" "$@"`;
      job = await this.run.createLabelled(`job ${jobName}`, () =>
        SwarmJob.start(this.docker, {
          name: jobName,
          image: this.image!.tag,
          command: ['sh', '-c', script, 'grade', ...args],
          env: [`STUDENT=${name}`, `${PARENT_RUN_ENV}=${this.runId}`, `IOLAB_GRADING=${randomUUID()}`],
          node: slot.node.id,
          labels: { ...this.run.labels, 'iolab.student': name },
          dockerSocket: true,
          configs,
        }),
      );
      this.jobs.add(job);
      let task;
      try {
        [task] = await job.ended(this.options.timeLimitSeconds * 1000 + JOB_MARGIN_MS, this.stopping.signal);
      } catch (error) {
        if (this.stopping.signal.aborted) throw error;
        return { lost: `${where}: ${message(error)}` };
      }
      const { stdout, stderr } = await job.logs();
      const report = parseReport(stdout.join('\n'));
      if (report) return { report };
      const how = task ? `${task.state}${task.exitCode !== null ? ` (exit ${task.exitCode})` : ''}${task.error ? `: ${task.error}` : ''}` : 'no task';
      const why = `${where} ended without a report, ${how}${stderr.length ? `; its output ends: ${stderr.slice(-3).join(' | ')}` : ''}`;
      const ownExit = task?.state === 'failed' && task.exitCode !== null && task.exitCode > 0 && task.exitCode < 128;
      return ownExit || task?.state === 'complete' ? { failed: why } : { lost: why };
    } catch (error) {
      if (this.stopping.signal.aborted) throw new LabRunError('the batch is stopping');
      if (error instanceof NotGradableError) return { failed: error.message };
      return { lost: `${where}: ${message(error)}` };
    } finally {
      if (job) this.jobs.delete(job);
      await job?.remove();
      await Promise.all(configs.map((c) => this.docker.getConfig(c.id).remove().catch(() => {})));
    }
  }

  /**
   * Grades the submission in `dir` on a node with a free slot, again elsewhere when its job is
   * lost. Returns its report (submission.path is `dir`; the sandbox's description names the node),
   * or a not-gradable one: it cannot be sent, its grader failed, or it was lost MAX_ATTEMPTS times.
   * Throws LabRunError once the batch is stopping (close()).
   */
  async grade(dir: string): Promise<GradeReport> {
    const done = this.gradeOnce(dir);
    this.inFlight.add(done);
    try {
      return await done;
    } finally {
      this.inFlight.delete(done);
    }
  }

  private async gradeOnce(dir: string): Promise<GradeReport> {
    const began = Date.now();
    let tar: Buffer;
    try {
      tar = await tarball(dir);
    } catch (error) {
      return this.notGradable(dir, message(error), began);
    }
    const avoid = new Set<string>();
    const losses: string[] = [];
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const slot = await this.acquire(avoid, `${basename(dir)}${attempt > 1 ? ` (attempt ${attempt})` : ''}`);
      const started = Date.now();
      try {
        const outcome = await this.attempt(dir, tar, slot);
        if ('report' in outcome) {
          const { report } = outcome;
          slot.reported++;
          slot.seconds.push((Date.now() - started) / 1000);
          return { ...report, submission: { ...report.submission, path: dir }, sandbox: { ...report.sandbox, description: `${report.sandbox.description}; swarm node ${slot.node.hostname}` } };
        }
        if ('failed' in outcome) {
          slot.reported++;
          return this.notGradable(dir, outcome.failed, began);
        }
        slot.lost++;
        avoid.add(slot.node.id);
        losses.push(outcome.lost);
        await this.refreshNodes();
        if (attempt < MAX_ATTEMPTS) this.progress(`  ${basename(dir)}: lost (${outcome.lost}); queued again`);
      } finally {
        this.release(slot);
      }
    }
    return this.notGradable(dir, `its grading was lost ${losses.length} times on the swarm: ${losses.join('; ')}`, began);
  }

  private notGradable(dir: string, reason: string, began: number): GradeReport {
    const { exercise } = this.options;
    const checks = exercise.rubric.checks.filter((c) => !this.options.only || this.options.only.includes(c.check));
    return {
      schemaVersion: GRADE_SCHEMA_VERSION,
      exercise: { id: exercise.id, title: exercise.rubric.title, model: exercise.rubric.model },
      submission: { path: dir, name: basename(dir), description: null },
      sandbox: { runtime: 'docker', isolated: true, description: `swarm ${this.runId}`, limits: DEFAULT_LIMITS },
      status: 'not-gradable',
      notGradableReason: reason,
      score: 0,
      maxScore: checks.reduce((sum, c) => sum + c.points, 0),
      checks: [],
      server: { listening: null, restarts: 0, output: [] },
      timeLimit: { seconds: this.options.timeLimitSeconds, ranOut: false },
      startedAt: new Date(began).toISOString(),
      durationSeconds: Math.round((Date.now() - began) / 100) / 10,
    };
  }

  /** Per node: gradings done, lost, and the median seconds of one: the batch's last lines. */
  summary(): string[] {
    return [...this.slots.values()].map((s) => {
      const sorted = [...s.seconds].sort((a, b) => a - b);
      const median = sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)].toFixed(1) : '-';
      return `node ${s.node.hostname}: ${s.reported} submission(s) graded or found not gradable, ${s.lost} grading(s) lost, median ${median} s per grading`;
    });
  }

  /**
   * Removes the batch from the swarm: stops every grading (no new attempt starts), removes its
   * jobs, waits for the gradings under way to give up, then runs a job on every node that removes
   * whatever they left there (label iolab.parent), and removes the configs, network and image
   * source. Idempotent: a second call waits for the first.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopping.abort();
      for (const wake of this.waiting.splice(0)) wake();
      await Promise.all([...this.jobs].map((job) => job.remove()));
      await Promise.allSettled([...this.inFlight]);
      if (this.image) {
        const nodes = (await swarmNodes(this.docker).catch(() => [])).length;
        const sweep = await this.run
          .createLabelled('the sweep of the nodes', () =>
            SwarmJob.start(this.docker, {
              name: `${this.runId}-clean`,
              image: this.image!.tag,
              command: ['iolab', 'clean', '--parent', this.runId],
              everyNode: true,
              labels: this.run.labels,
              dockerSocket: true,
            }),
          )
          .catch(() => null);
        await sweep?.ended(120_000, undefined, nodes).catch(() => {});
        await sweep?.remove();
      }
      await this.run.close();
    })();
    return this.closing;
  }
}

/** The grader's JSON report, if `text` is one (and nothing else); null otherwise. */
function parseReport(text: string): GradeReport | null {
  try {
    const parsed = GradeReportSchema.safeParse(JSON.parse(text));
    return parsed.success ? (parsed.data as GradeReport) : null;
  } catch {
    return null;
  }
}
