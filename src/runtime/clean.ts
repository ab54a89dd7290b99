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

/** Every run that has a container, network or image on the engine, by run id. */
export async function labelledRuns(docker: Docker): Promise<LabelledRun[]> {
  const filters = { label: [RUN_LABEL] };
  const [containers, networks, images] = await Promise.all([
    docker.listContainers({ all: true, filters }),
    docker.listNetworks({ filters }),
    docker.listImages({ filters }),
  ]);
  const runs = new Map<string, LabelledRun>();
  const add = (labels: Record<string, string> | undefined, kind: 'containers' | 'networks' | 'images', name: string) => {
    const runId = labels?.[RUN_LABEL];
    if (!runId) return;
    let run = runs.get(runId);
    if (!run) runs.set(runId, (run = { runId, controller: null, containers: [], networks: [], images: [] }));
    run.controller ??= controllerFromLabels(labels);
    run[kind].push(name);
  };
  for (const c of containers) add(c.Labels, 'containers', c.Names[0]?.replace(/^\//, '') ?? c.Id);
  for (const n of networks) add(n.Labels, 'networks', n.Name);
  for (const i of images) add(i.Labels ?? undefined, 'images', i.RepoTags?.[0] ?? i.Id);
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

function sum(counts: ResourceCounts[]): ResourceCounts {
  return counts.reduce((a, b) => ({ containers: a.containers + b.containers, networks: a.networks + b.networks, images: a.images + b.images }), { containers: 0, networks: 0, images: 0 });
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
    const key = parent ? PARENT_LABEL : RUN_LABEL;
    const counts = await removeLabelled(docker, runId, key);
    if (counts.containers + counts.networks + counts.images + counts.swarm === 0) return [`nothing carries ${key}=${runId} on this engine: nothing removed`];
    return [`removed ${countsText(counts)} of run ${runId}`];
  }
  const { removed, left } = await cleanRuns(docker);
  const lines = [
    ...removed.map((run) => `removed run ${run.runId}: ${countsText(run.counts)} (${run.why})`),
    ...left.map((run) => `left run ${run.runId}: ${countsText({ containers: run.containers.length, networks: run.networks.length, images: run.images.length })} (${run.why})`),
  ];
  lines.push(`removed ${countsText(sum(removed.map((run) => run.counts)))} of ${removed.length} run(s) whose controller is gone`);
  if (left.length) {
    const counts = sum(left.map((run) => ({ containers: run.containers.length, networks: run.networks.length, images: run.images.length })));
    lines.push(`left ${countsText(counts)} of ${left.length} run(s) whose controller may be alive: iolab clean --run ID removes one`);
  }
  return lines;
}
