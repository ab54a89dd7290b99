// How the lab image reaches every node of a swarm without a registry: save and load, carried by
// the swarm itself.
//
//   1. a source container on this (the manager's) node, on the run's attachable overlay network,
//      saves the image (`docker save`, through the engine's API) to a file, then serves that file
//      over HTTP on the overlay: `iolab swarm-image serve`;
//   2. a global job (one task per node) with its node's Docker socket: a node that already has the
//      image (same id) says so and does nothing; one that lacks it streams the file from the source
//      into its engine (`docker load`): `iolab swarm-image load`.
//
// Why not a registry: a registry service needs a port published on every node (the swarm's routing
// mesh, which needs IPVS in the node's kernel) or each node's daemon.json to trust a plain-HTTP
// registry at the manager's address. Save and load need neither: only the overlay network that a
// swarm has anyway. What it costs: each node that lacks the image receives all of it (no layer is
// shared), once per image version (see docs/swarm.md). A submission's image is never carried: it is
// built on the node that grades it (src/swarm/grading.ts).
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, get } from 'node:http';
import { hostname } from 'node:os';
import { pipeline } from 'node:stream/promises';
import Docker from 'dockerode';
import { LabRunError } from '../errors.js';
import type { RunContainers } from '../runtime/containers.js';
import { message } from '../runtime/containers.js';
import { swarmNodes } from './cluster.js';
import { DOCKER_SOCKET, SwarmJob } from './job.js';

/** The source's port on the overlay network. */
const SOURCE_PORT = 7100;
/** Where the source keeps the saved image. */
const SNAPSHOT = '/tmp/image.tar';
/** How long a node may take to receive and load the image (772 MB over a slow link). */
const LOAD_TIMEOUT_MS = 20 * 60_000;

/** What one node's load job printed: whether it had the image, or loaded it, in how long. */
export interface NodeImageReport {
  node: string;
  outcome: 'present' | 'loaded';
  bytes: number;
  seconds: number;
}

/**
 * `iolab swarm-image serve --image TAG`: saves image TAG from this node's engine to a file, prints
 * `serving BYTES` on stderr, and serves the file at http://HOST:7100/ until killed. Throws when the
 * engine has no such image.
 */
export async function serveImage(tag: string): Promise<void> {
  const docker = new Docker({ socketPath: DOCKER_SOCKET });
  const saved = (await docker.getImage(tag).get()) as unknown as NodeJS.ReadableStream;
  await pipeline(saved, createWriteStream(SNAPSHOT));
  const { size } = await stat(SNAPSHOT);
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/x-tar', 'content-length': size });
    createReadStream(SNAPSHOT).pipe(response);
  });
  await new Promise<void>((resolve) => server.listen(SOURCE_PORT, '0.0.0.0', resolve));
  process.stderr.write(`serving ${size}\n`);
}

/**
 * `iolab swarm-image load --from URL --image TAG --id ID`: on a node (its engine's socket mounted),
 * loads the image from the source unless the engine has TAG with image id ID already. Prints a
 * NodeImageReport as JSON on stdout. Throws when the source does not answer (after 60 s of tries)
 * or the engine refuses the load.
 */
export async function loadImage(from: string, tag: string, id: string): Promise<void> {
  const docker = new Docker({ socketPath: DOCKER_SOCKET });
  const node = ((await docker.info()) as { Name: string }).Name ?? hostname();
  const has = async () => ((await docker.getImage(tag).inspect().catch(() => null)) as { Id: string } | null)?.Id === id;
  const began = Date.now();
  const report = (outcome: NodeImageReport['outcome'], bytes: number) =>
    process.stdout.write(`${JSON.stringify({ node, outcome, bytes, seconds: (Date.now() - began) / 1000 } satisfies NodeImageReport)}\n`);
  if (await has()) return void report('present', 0);
  let bytes = 0;
  const response = await fetchWithRetries(from, 60_000);
  response.on('data', (chunk: Buffer) => (bytes += chunk.length));
  const loading = (await docker.loadImage(response as unknown as NodeJS.ReadableStream)) as unknown as NodeJS.ReadableStream;
  await new Promise((resolve, reject) => docker.modem.followProgress(loading, (error) => (error ? reject(error) : resolve(undefined))));
  if (!(await has())) throw new Error(`loaded ${bytes} bytes from ${from}, but this engine has no image ${tag} with id ${id}`);
  report('loaded', bytes);
}

function fetchWithRetries(url: string, withinMs: number): Promise<import('node:http').IncomingMessage> {
  const deadline = Date.now() + withinMs;
  return new Promise((resolve, reject) => {
    const attempt = () =>
      get(url, (response) => (response.statusCode === 200 ? resolve(response) : reject(new Error(`${url}: HTTP ${response.statusCode}`)))).on('error', (error) => {
        if (Date.now() > deadline) reject(new Error(`${url}: ${error.message}`));
        else setTimeout(attempt, 1000);
      });
    attempt();
  });
}

/**
 * Makes image `image` (tag and id) present on every ready node of the swarm: the source container
 * (in `run`, on overlay network `network`), then the global load job. Returns each node's report.
 * Throws LabRunError naming the node whose load failed, with the end of its output.
 */
export async function distributeImage(
  run: RunContainers,
  image: { tag: string; id: string },
  network: string,
  onProgress: (line: string) => void = () => {},
): Promise<NodeImageReport[]> {
  const docker = run.docker;
  const { container, output } = await run.start(
    'image-source',
    {
      Image: image.id,
      Cmd: ['iolab', 'swarm-image', 'serve', '--image', image.tag],
      HostConfig: { NetworkMode: network, Binds: [`${DOCKER_SOCKET}:${DOCKER_SOCKET}`] },
    },
    `the image source of ${image.tag}`,
  );
  let job: SwarmJob | null = null;
  const began = Date.now();
  try {
    const serving = await output.waitForLine('stderr', (line) => line.startsWith('serving '), 'its serving line', LOAD_TIMEOUT_MS);
    onProgress(`  image ${image.tag}: ${Math.round(Number(serving.split(' ')[1]) / 1e6)} MB saved in ${((Date.now() - began) / 1000).toFixed(1)} s, offered to every node`);
    const host = ((await container.inspect()) as { Name: string }).Name.replace(/^\//, '');
    // a global job places a task on every ready, active node (not on drained or paused ones)
    const nodes = await swarmNodes(docker);
    job = await run.createLabelled(`job ${run.runId}-image-load`, () => SwarmJob.start(docker, {
      name: `${run.runId}-image-load`,
      image: image.tag,
      command: ['iolab', 'swarm-image', 'load', '--from', `http://${host}:${SOURCE_PORT}/`, '--image', image.tag, '--id', image.id],
      everyNode: true,
      labels: run.labels,
      dockerSocket: true,
      networks: [network],
    }));
    const tasks = await job.ended(LOAD_TIMEOUT_MS, undefined, nodes.length);
    const logs = await job.logs();
    const reports = logs.stdout.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as NodeImageReport);
    const failed = tasks.filter((t) => t.state !== 'complete');
    if (failed.length) {
      throw new LabRunError(`the lab image did not reach ${failed.length} node(s) (${failed.map((t) => `${t.node}: ${t.state}${t.error ? `, ${t.error}` : ''}`).join('; ')}); the load job's output ends: ${logs.stderr.slice(-5).join(' | ')}`);
    }
    for (const r of reports) onProgress(`  image ${image.tag} on node ${r.node}: ${r.outcome === 'present' ? 'already there' : `loaded ${Math.round(r.bytes / 1e6)} MB in ${r.seconds.toFixed(1)} s`}`);
    return reports;
  } catch (error) {
    throw error instanceof LabRunError ? error : new LabRunError(`distributing the lab image ${image.tag}: ${message(error)}`);
  } finally {
    await job?.remove();
    await run.remove(container);
  }
}
