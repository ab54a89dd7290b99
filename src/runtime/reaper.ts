// The reaper: what removes a run's containers, networks and images when its controller (the
// `iolab run` or `iolab grade` process) dies, however it dies: SIGKILL, the OOM killer, a closed
// terminal, a CI job's timeout. Ctrl-C needs none of this: the controller cleans up itself.
//
// One small container per run, of the lab image, with the engine's socket, started before anything
// else of the run. Its lifeline is its standard input:
//   1. the controller creates it with stdin open and "once" (OpenStdin, StdinOnce), attaches to
//      that stdin through the engine's API, starts it, and never writes to it;
//   2. when the controller's process ends, the kernel closes its connection to the engine, and the
//      engine closes the container's stdin (StdinOnce: "close stdin after one attached client
//      disconnects", the Engine API's ContainerCreate);
//   3. the reaper reads end-of-file, removes everything labelled with the run (removeLabelled), and
//      again each second until, 3 s on, two sweeps in a row find nothing: a request in flight when
//      the controller died (a container being created, an image build the engine is cancelling)
//      may still make something labelled with the run. Then it exits; the engine removes it
//      (AutoRemove).
// A run that ends normally removes everything else first, then its reaper, then lets the lifeline go.
//
// Why not a TCP connection to a published port (testcontainers' Ryuk)? A port must be reachable
// from the controller: not so when the controller is itself a container (compose's lab service) on
// another network. Why not polling the controller's pid? A container sees the host's pids only in
// the host's PID namespace, and a controller in a container has pids of its own. The attach stream
// needs only what the controller has anyway: the engine's API.
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';

/** The role label of a run's reaper container. */
export const REAPER_ROLE = 'reaper';
/** Between two sweeps: what a request in flight when the controller died made meanwhile. */
const SWEEP_INTERVAL_MS = 1_000;
/** The reaper sweeps at least this long after the first sweep, until two in a row find nothing. */
const SWEEP_SETTLE_MS = 3_000;
/** and at most this long: a run whose resources keep coming back is left to `iolab clean`. */
const SWEEP_LIMIT_MS = 30_000;

/** Where the engine's socket is on the engine's host: what the reaper mounts. */
function engineSocket(docker: Docker): string {
  const path = (docker.modem as { socketPath?: unknown }).socketPath;
  return typeof path === 'string' && path !== '' ? path : '/var/run/docker.sock';
}

/**
 * Starts run `runId`'s reaper from `image` (the lab image's id), labelled with `labels` (the run's,
 * with iolab.role=reaper), named RUN-ID-reaper-ORDINAL, and holds its lifeline. Resolves once it runs; the
 * returned function lets the lifeline go (the reaper then sweeps the run and exits). Throws the
 * engine's error when it cannot be created or started.
 */
export async function startReaper(docker: Docker, image: string, runId: string, labels: Record<string, string>, ordinal = 1): Promise<{ container: Docker.Container; release: () => void }> {
  const container = await docker.createContainer({
    name: `${runId}-${REAPER_ROLE}-${ordinal}`,
    Image: image,
    Cmd: ['iolab', 'reap', '--run', runId],
    Labels: { ...labels, 'iolab.role': REAPER_ROLE },
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    HostConfig: {
      AutoRemove: true,
      NetworkMode: 'none',
      Binds: [`${engineSocket(docker)}:/var/run/docker.sock`],
      Memory: 128 * 1024 * 1024,
    },
  });
  // Attached before it starts, so that no moment of its life is without the lifeline.
  const lifeline = (await container.attach({ stream: true, stdin: true, hijack: true })) as Duplex & { unref?: () => void };
  lifeline.on('error', () => {});
  // The lifeline alone never keeps the controller's process alive.
  lifeline.unref?.();
  await container.start();
  return { container, release: () => lifeline.destroy() };
}

/** What a sweep removed, as removeLabelled (containers.ts) counts it. */
type Sweep = (keep: (containerId: string) => boolean) => Promise<{ containers: number; networks: number; images: number; swarm: number }>;

/**
 * `iolab reap --run ID`, inside the reaper container: waits for the end of stdin, then sweeps the
 * run (`sweep`: removeLabelled of iolab.run=ID) keeping its own container, every
 * SWEEP_INTERVAL_MS until, SWEEP_SETTLE_MS on, two sweeps in a row removed nothing (at most
 * SWEEP_LIMIT_MS). Prints a line per sweep that removed something or failed, and one at the end.
 * Resolves when done; never throws.
 */
export async function reapWhenStdinEnds(runId: string, sweep: Sweep): Promise<void> {
  // Stopped by the engine (a restart stops every container): gone at once, sweeping nothing. As
  // its container's pid 1, it would otherwise ignore SIGTERM and live on until the SIGKILL.
  process.on('SIGTERM', () => process.exit(143));
  await new Promise<void>((resolve) => {
    process.stdin.on('end', resolve).on('close', resolve).on('error', () => resolve());
    process.stdin.resume();
  });
  // In a container, the host name is the container's short id: the reaper does not remove itself.
  const self = hostname();
  const began = Date.now();
  let sweeps = 0;
  let emptyInARow = 0;
  while (Date.now() - began < SWEEP_LIMIT_MS && (emptyInARow < 2 || Date.now() - began < SWEEP_SETTLE_MS)) {
    if (sweeps++ > 0) await new Promise((resolve) => setTimeout(resolve, SWEEP_INTERVAL_MS));
    const removed = await sweep((id) => id.startsWith(self)).catch((error: Error) => error);
    const count = removed instanceof Error ? -1 : removed.containers + removed.networks + removed.images + removed.swarm;
    emptyInARow = count === 0 ? emptyInARow + 1 : 0;
    if (removed instanceof Error) process.stdout.write(`reaper: run ${runId}: ${removed.message}\n`);
    else if (count > 0) process.stdout.write(`reaper: run ${runId}: removed ${removed.containers} container(s), ${removed.networks} network(s), ${removed.images} image(s), ${removed.swarm} swarm service(s) and config(s)\n`);
  }
  process.stdout.write(`reaper: run ${runId}: ${emptyInARow >= 2 ? 'nothing of it is left' : `still sweeping ${SWEEP_LIMIT_MS / 1000} s on; \`iolab clean\` removes what is left`} (${sweeps} sweeps)\n`);
}
