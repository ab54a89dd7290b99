// What an idle connection costs a server, from a lab that sweeps a hold client's crowd (c10k):
// memory in user space (the server's process tree: PSS at the window's end, and peak RSS, each
// beyond the idle server), memory in the kernel (slab growth with the connections held, both
// ends' sockets: src/tracer/kernel-memory.ts), and the probe's latency at each step. Pure
// functions of the runs: analyse() stores their result in results.json (analysis.connectionCosts),
// and the c10k rule (claims.ts) judges the same figures, so the report, the verdict and the file
// give one number for each fact.
import type { ClientResult, ConnectionCosts, ConnectionCostStep, Measurement, RunRecord, Spread } from '../shared/results.js';
import { connectionsOf, grown, median, resultsOf, runsOf, spreadOf, subjectsOf } from './figures.js';

/**
 * Sockets per connection in the kernel figures: the client's and the server's. Both run on the
 * kernel whose memory is read (locally; in Docker the containers share the host's kernel), so a
 * connection's kernel memory is two sockets' worth. A client on another machine would make it 1.
 */
export const SOCKETS_PER_CONNECTION = 2;

/**
 * Slab caches of connections closed before the run, left out of its kernel growth: TIME_WAIT
 * sockets (struct inet_timewait_sock, caches tw_sock_TCP and tw_sock_TCPv6) of an earlier run's
 * connections, which the kernel keeps 60 s (TCP_TIMEWAIT_LEN, include/net/tcp.h) and frees in the
 * middle of a later run, a fall that is not this run's doing.
 */
export const CLOSED_CONNECTION_CACHES = /^tw_sock_/;

/**
 * The inodes of /proc entries (proc_inode_cache), each with its dentry, left out of a run's kernel
 * growth too: the kernel makes one for each /proc/PID/fd/N that something lists (a process
 * monitor of the machine, `ls -l /proc/PID/fd`, lsof), two per connection once the client's and
 * the server's fds are listed. They are memory of /proc, made by whoever looks, not of the
 * sockets; the cache table still shows them.
 */
export const PROC_INODE_CACHE = 'proc_inode_cache';

/** A cache whose growth per connection is below this many bytes (either way) is not listed. */
const LISTED_CACHE_BYTES = 16;

/**
 * The least-squares slope of y against x (Δy per unit of x) over the points; null with fewer than
 * two distinct x or a non-finite value. Pure arithmetic: ((x − x̄)·(y − ȳ)) summed over
 * ((x − x̄)²) summed.
 */
export function leastSquaresSlope(points: readonly { x: number; y: number }[]): number | null {
  const finite = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (finite.length < 2) return null;
  const meanX = finite.reduce((total, p) => total + p.x, 0) / finite.length;
  const meanY = finite.reduce((total, p) => total + p.y, 0) / finite.length;
  const spreadX = finite.reduce((total, p) => total + (p.x - meanX) ** 2, 0);
  if (spreadX === 0) return null;
  return finite.reduce((total, p) => total + (p.x - meanX) * (p.y - meanY), 0) / spreadX;
}

/**
 * Growth per connection of each run at the largest step against the smallest: (its value − the
 * median value at the smallest) / (its connections − the median connections at the smallest).
 * Runs where either is unknown, or that held no more connections than the smallest step, are left
 * out; null when none is left or the smallest step has no value.
 */
export function perConnectionGrowth(largest: readonly { connections: number; value: number | null }[], smallest: readonly { connections: number; value: number | null }[]): Spread | null {
  const base = smallest.filter((s): s is { connections: number; value: number } => s.value !== null && Number.isFinite(s.value));
  if (base.length === 0) return null;
  const baseValue = median(base.map((s) => s.value));
  const baseConnections = median(base.map((s) => s.connections));
  const each = largest.flatMap((run) => (run.value !== null && Number.isFinite(run.value) && run.connections > baseConnections ? [(run.value - baseValue) / (run.connections - baseConnections)] : []));
  return spreadOf(each);
}

/**
 * The kernel's growth of a run, KiB: slab objects (/proc/slabinfo), TIME_WAIT sockets of earlier
 * runs (CLOSED_CONNECTION_CACHES) and /proc's inodes with their dentries (PROC_INODE_CACHE) left
 * out; or /proc/meminfo Slab, all of it. null when the run has no reading.
 */
export function kernelGrowthKb(run: RunRecord, from: ConnectionCosts['kernelFrom']): number | null {
  const kernel = run.kernel;
  if (!kernel) return null;
  if (from === 'meminfo') return kernel.slabKb;
  if (kernel.cacheBytes === null || kernel.caches === null) return null;
  const closed = kernel.caches.filter((cache) => CLOSED_CONNECTION_CACHES.test(cache.name)).reduce((total, cache) => total + cache.bytes, 0);
  const procInodes = kernel.caches.find((cache) => cache.name === PROC_INODE_CACHE);
  const dentryBytes = kernel.caches.find((cache) => cache.name === 'dentry')?.objectBytes ?? 0;
  const proc = procInodes ? procInodes.bytes + procInodes.objects * dentryBytes : 0;
  return (kernel.cacheBytes - closed - proc) / 1024;
}

function probeOf(run: RunRecord, client: string): ClientResult['probe'] {
  return resultsOf(run, client).find((result) => result.probe && result.probe.latency.count > 0)?.probe ?? null;
}

/** Connections a run held for the client: its crowd and its probe, every replica. */
function heldBy(run: RunRecord, client: string): number {
  return resultsOf(run, client).reduce((total, result) => total + connectionsOf(result), 0);
}

function stepOf(asked: number, runs: readonly RunRecord[], client: string, kernelFrom: ConnectionCosts['kernelFrom']): ConnectionCostStep {
  const present = (values: (number | null)[]) => values.filter((v): v is number => v !== null && Number.isFinite(v));
  const buffers = present(runs.map((run) => (run.kernel?.tcpBufferPages ? (run.kernel.tcpBufferPages.held * run.kernel.pageBytes) / 1024 : null)));
  const warmups = present(runs.flatMap((run) => resultsOf(run, client).map((result) => result.warmup.seconds)));
  return {
    asked,
    connections: runs.length ? median(runs.map((run) => heldBy(run, client))) : 0,
    runs: runs.length,
    pssAddedKb: spreadOf(present(runs.map((run) => grown(run, 'pssKb')))),
    rssAddedKb: spreadOf(present(runs.map((run) => grown(run, 'peakRssKb')))),
    kernelAddedKb: spreadOf(present(runs.map((run) => kernelGrowthKb(run, kernelFrom)))),
    slabAddedKb: spreadOf(present(runs.map((run) => kernelGrowthKb(run, 'meminfo')))),
    socketBuffersKb: buffers.length ? median(buffers) : null,
    probeP50Us: spreadOf(present(runs.map((run) => probeOf(run, client)?.latency.p50Us ?? null))),
    probeP99Us: spreadOf(present(runs.map((run) => probeOf(run, client)?.latency.p99Us ?? null))),
    warmupSeconds: warmups.length ? median(warmups) : null,
  };
}

/** The caches that grew with the connections, largest step against smallest: medians over runs of (growth − median growth at the smallest) / (connections gained). */
function cachesPerConnection(largest: readonly RunRecord[], smallest: readonly RunRecord[], client: string): ConnectionCosts['caches'] {
  const withCaches = (runs: readonly RunRecord[]) => runs.filter((run) => run.kernel?.caches);
  const [large, small] = [withCaches(largest), withCaches(smallest)];
  if (large.length === 0 || small.length === 0) return [];
  const names = [...new Set(large.flatMap((run) => run.kernel!.caches!.map((cache) => cache.name)))];
  const baseConnections = median(small.map((run) => heldBy(run, client)));
  const of = (run: RunRecord, name: string) => run.kernel!.caches!.find((cache) => cache.name === name);
  return names
    .flatMap((name) => {
      const objectBytes = large.map((run) => of(run, name)?.objectBytes).find((size) => size !== undefined) ?? 0;
      const baseObjects = median(small.map((run) => of(run, name)?.objects ?? 0));
      const perRun = large.flatMap((run) => {
        const gained = heldBy(run, client) - baseConnections;
        return gained > 0 ? [((of(run, name)?.objects ?? 0) - baseObjects) / gained] : [];
      });
      if (perRun.length === 0) return [];
      const objectsPerConnection = median(perRun);
      const bytesPerConnection = objectsPerConnection * objectBytes;
      return Math.abs(bytesPerConnection) >= LISTED_CACHE_BYTES ? [{ name, objectBytes, objectsPerConnection, bytesPerConnection }] : [];
    })
    .sort((a, b) => Math.abs(b.bytesPerConnection) - Math.abs(a.bytesPerConnection) || a.name.localeCompare(b.name));
}

/**
 * What a connection costs each server of a lab that sweeps a hold client's crowd (see the
 * header); undefined for any other lab. Every figure in KiB (per connection: KiB per connection;
 * the kernel's also per socket, over SOCKETS_PER_CONNECTION) or µs; a figure nothing measured is
 * null, never NaN.
 */
export function connectionCosts(results: Measurement): ConnectionCosts[] | undefined {
  const sweep = results.lab.sweep;
  const client = sweep && results.lab.clients.find((c) => c.name === sweep.client && c.mode === 'hold');
  if (!sweep || !client) return undefined;
  const measured = results.runs.filter((run) => run.phase === 'measure');
  // Per-cache objects where every measured run could read them; else meminfo's Slab.
  const kernelFrom: ConnectionCosts['kernelFrom'] = measured.some((run) => run.kernel) && measured.every((run) => !run.kernel || run.kernel.cacheBytes !== null) ? 'slabinfo' : 'meminfo';
  const rows = subjectsOf(results);
  return results.lab.variants.map((variant): ConnectionCosts => {
    const steps = [...sweep.connections]
      .sort((a, b) => a - b)
      .map((asked) => ({ asked, runs: runsOf(results, rows.find((row) => row.variant.label === variant.label && row.sweepValue === asked)!, 'measure') }));
    const [smallest, largest] = [steps[0], steps[steps.length - 1]];
    const points = (value: (run: RunRecord) => number | null) =>
      steps.flatMap((step) => step.runs.flatMap((run) => {
        const y = value(run);
        return y === null ? [] : [{ x: heldBy(run, client.name), y }];
      }));
    const growth = (runs: readonly RunRecord[], value: (run: RunRecord) => number | null) => runs.map((run) => ({ connections: heldBy(run, client.name), value: value(run) }));
    const per = (value: (run: RunRecord) => number | null) => perConnectionGrowth(growth(largest.runs, value), growth(smallest.runs, value));
    const kernelKb = per((run) => kernelGrowthKb(run, kernelFrom));
    const perSocket = (spread: Spread | null): Spread | null => spreadOf(spread?.values.map((v) => v / SOCKETS_PER_CONNECTION) ?? []);
    return {
      variant: variant.label,
      model: variant.model,
      client: client.name,
      socketsPerConnection: SOCKETS_PER_CONNECTION,
      kernelFrom,
      steps: steps.map((step) => stepOf(step.asked, step.runs, client.name, kernelFrom)),
      perConnection:
        steps.length < 2
          ? null
          : {
              from: smallest.asked,
              to: largest.asked,
              pssKb: per((run) => grown(run, 'pssKb')),
              rssKb: per((run) => grown(run, 'peakRssKb')),
              kernelKb,
              kernelPerSocketKb: perSocket(kernelKb),
              slabKb: per((run) => kernelGrowthKb(run, 'meminfo')),
            },
      slope: {
        pssKb: leastSquaresSlope(points((run) => grown(run, 'pssKb'))),
        kernelKb: leastSquaresSlope(points((run) => kernelGrowthKb(run, kernelFrom))),
        slabKb: leastSquaresSlope(points((run) => kernelGrowthKb(run, 'meminfo'))),
      },
      caches: steps.length < 2 ? [] : cachesPerConnection(largest.runs, smallest.runs, client.name),
    };
  });
}
