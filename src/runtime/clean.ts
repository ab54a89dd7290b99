// `iolab clean`: what runs and gradings left on the Docker engine when they were killed before
// they could remove it (SIGKILL, a crash, a machine that went down). An engine may be shared by
// several users or sessions, so a run is removed only when its controller is gone (controller.ts):
// a run whose controller may be alive is left and named, and `iolab clean --run ID` removes it.
import type Docker from 'dockerode';
import { RuntimeUnavailableError } from '../errors.js';
import { PARENT_LABEL, removeLabelled, RUN_LABEL } from './containers.js';
import { controllerFromLabels, controllerState, type Controller } from './controller.js';
import { engineAvailable } from './docker-image.js';

/** What carries one run's label on the engine. */
export interface LabelledRun {
  runId: string;
  /** named by the labels of the first of its resources that name one; null: none does (an older iolab). */
  controller: Controller | null;
  containers: string[];
  networks: string[];
  images: string[];
  /** on a swarm manager: the run's services and configs (src/swarm/). */
  swarm: string[];
}

/** How many of each kind of resource. */
export interface ResourceCounts {
  containers: number;
  networks: number;
  images: number;
}

/** A run as `iolab clean` judged it: whether its controller is gone, and why. */
export interface JudgedRun extends LabelledRun {
  state: 'gone' | 'alive' | 'unknown';
  why: string;
}

/** Every run that has a container, network, image (or, on a swarm manager, service or config) on the engine, by run id. */
export async function labelledRuns(docker: Docker): Promise<LabelledRun[]> {
  const filters = { label: [RUN_LABEL] };
  type Specified = { Spec?: { Name?: string; Labels?: Record<string, string> } };
  const [containers, networks, images, services, configs] = await Promise.all([
    docker.listContainers({ all: true, filters }),
    docker.listNetworks({ filters }),
    docker.listImages({ filters }),
    // an engine that is no swarm manager refuses these: it has none
    docker.listServices({ filters }).catch(() => []) as Promise<Specified[]>,
    docker.listConfigs({ filters }).catch(() => []) as Promise<Specified[]>,
  ]);
  const runs = new Map<string, LabelledRun>();
  const add = (labels: Record<string, string> | undefined, kind: 'containers' | 'networks' | 'images' | 'swarm', name: string) => {
    const runId = labels?.[RUN_LABEL];
    if (!runId) return;
    let run = runs.get(runId);
    if (!run) runs.set(runId, (run = { runId, controller: null, containers: [], networks: [], images: [], swarm: [] }));
    run.controller ??= controllerFromLabels(labels);
    run[kind].push(name);
  };
  for (const c of containers) add(c.Labels, 'containers', c.Names[0]?.replace(/^\//, '') ?? c.Id);
  for (const n of networks) add(n.Labels, 'networks', n.Name);
  for (const i of images) add(i.Labels ?? undefined, 'images', i.RepoTags?.[0] ?? i.Id);
  for (const x of [...services, ...configs]) add(x.Spec?.Labels, 'swarm', x.Spec?.Name ?? '');
  return [...runs.values()].sort((a, b) => a.runId.localeCompare(b.runId));
}

/**
 * Removes the resources of every run whose controller is gone (controllerState) and leaves the
 * others. Returns the runs removed, with what was removed, and the runs left. Throws LabRunError
 * naming what the engine refused to remove.
 */
export async function cleanRuns(docker: Docker, here?: Controller): Promise<{ removed: (JudgedRun & { counts: ResourceCounts })[]; left: JudgedRun[] }> {
  const removed: (JudgedRun & { counts: ResourceCounts })[] = [];
  const left: JudgedRun[] = [];
  for (const run of await labelledRuns(docker)) {
    const judged = { ...run, ...(await controllerState(run.controller, docker, here)) };
    if (judged.state === 'gone') removed.push({ ...judged, counts: await removeLabelled(docker, run.runId) });
    else left.push(judged);
  }
  return { removed, left };
}

function countsText({ containers, networks, images, swarm }: ResourceCounts & { swarm?: number }): string {
  return `${containers} container(s), ${networks} network(s) and ${images} image(s)${swarm ? `, and ${swarm} swarm service(s) and config(s)` : ''}`;
}

function sum(counts: (ResourceCounts & { swarm?: number })[]): ResourceCounts & { swarm: number } {
  const total = { containers: 0, networks: 0, images: 0, swarm: 0 };
  for (const c of counts) {
    total.containers += c.containers;
    total.networks += c.networks;
    total.images += c.images;
    total.swarm += c.swarm ?? 0;
  }
  return total;
}

/** How long `clean --parent` waits for a batch's grading jobs on this node to stop. */
const GRADING_JOBS_STOP_MS = 60_000;

/**
 * Waits (at most GRADING_JOBS_STOP_MS) until no grading job of swarm batch `batchId` runs on this
 * node (their containers carry iolab.run=BATCH-ID and iolab.student): a grader being stopped may
 * still be creating containers, which the sweep must not miss.
 */
async function gradingJobsEnded(docker: Docker, batchId: string): Promise<void> {
  const deadline = Date.now() + GRADING_JOBS_STOP_MS;
  while (Date.now() < deadline) {
    const running = await docker.listContainers({ filters: { label: [`${RUN_LABEL}=${batchId}`, 'iolab.student'], status: ['running'] } });
    if (running.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/**
 * `iolab clean [--run ID]`: without a run id, cleanRuns; with one, that run's resources whatever
 * its state. Returns the lines to print: a line per run removed or left, and the totals. Throws
 * RuntimeUnavailableError when no engine answers, LabRunError when a removal is refused.
 */
export async function cleanCommand(docker: Docker, runId?: string, parent = false): Promise<string[]> {
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new RuntimeUnavailableError(`iolab clean: no Docker engine answers (${engine.reason})`);
  if (runId !== undefined) {
    if (parent) await gradingJobsEnded(docker, runId);
    const key = parent ? PARENT_LABEL : RUN_LABEL;
    const counts = await removeLabelled(docker, runId, key);
    if (counts.containers + counts.networks + counts.images + counts.swarm === 0) return [`nothing carries ${key}=${runId} on this engine: nothing removed`];
    return [`removed ${countsText(counts)} of run ${runId}`];
  }
  const { removed, left } = await cleanRuns(docker);
  const lines = [
    ...removed.map((run) => `removed run ${run.runId}: ${countsText(run.counts)} (${run.why})`),
    ...left.map((run) => `left run ${run.runId}: ${countsText({ containers: run.containers.length, networks: run.networks.length, images: run.images.length, swarm: run.swarm.length })} (${run.why})`),
  ];
  lines.push(`removed ${countsText(sum(removed.map((run) => run.counts)))} of ${removed.length} run(s) whose controller is gone`);
  if (left.length) {
    const counts = sum(left.map((run) => ({ containers: run.containers.length, networks: run.networks.length, images: run.images.length, swarm: run.swarm.length })));
    lines.push(`left ${countsText(counts)} of ${left.length} run(s) whose controller may be alive: iolab clean --run ID removes one`);
  }
  return lines;
}
