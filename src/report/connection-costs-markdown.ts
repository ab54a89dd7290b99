// The report's section on what an idle connection costs (a lab that sweeps a hold client's crowd,
// such as c10k): memory in user space and in the kernel at each step, per connection, by slab
// cache, and the probe's latency. Rendered from analysis.connectionCosts alone, the same figures
// the c10k verdict judged (src/analysis/connection-costs.ts); nothing is computed here but the
// division of a stored per-connection figure into its stored sockets, as the verdict does.
import { formatCount, formatKibibytes, formatKibibytesSigned, formatMicroseconds, formatSeconds, table } from '../shared/format.js';
import type { ConnectionCosts, Results } from '../shared/results.js';
import { NONE, spreadCell } from './markdown-parts.js';

const orNone = <T>(value: T | null | undefined, format: (value: T) => string): string => (value === null || value === undefined ? NONE : format(value));

function stepsTable(costs: readonly ConnectionCosts[]): string {
  const header = ['server', 'idle asked', 'connected', 'PSS added', 'peak RSS added', 'kernel: slab objects added', 'kernel: meminfo Slab added', 'socket buffers held', 'probe p50', 'probe p99', 'warm-up'];
  const rows = costs.flatMap((cost) =>
    cost.steps.map((step) => [
      cost.variant,
      formatCount(step.asked),
      formatCount(step.connections),
      spreadCell(step.pssAddedKb, formatKibibytesSigned),
      spreadCell(step.rssAddedKb, formatKibibytesSigned),
      spreadCell(step.kernelAddedKb, formatKibibytesSigned),
      spreadCell(step.slabAddedKb, formatKibibytesSigned),
      orNone(step.socketBuffersKb, formatKibibytes),
      spreadCell(step.probeP50Us, formatMicroseconds),
      spreadCell(step.probeP99Us, formatMicroseconds),
      orNone(step.warmupSeconds, formatSeconds),
    ]),
  );
  return table(header, rows);
}

function perConnectionTable(costs: readonly ConnectionCosts[]): string | null {
  const with_ = costs.filter((cost) => cost.perConnection);
  if (with_.length === 0) return null;
  const header = ['server', 'from → to idle', 'user space: PSS', 'peak RSS', 'kernel per connection', 'kernel per socket', 'meminfo Slab per connection', 'PSS slope', 'kernel slope'];
  const rows = with_.map((cost) => {
    const per = cost.perConnection!;
    return [
      cost.variant,
      `${formatCount(per.from)} → ${formatCount(per.to)}`,
      spreadCell(per.pssKb, formatKibibytesSigned),
      spreadCell(per.rssKb, formatKibibytesSigned),
      spreadCell(per.kernelKb, formatKibibytesSigned),
      spreadCell(per.kernelPerSocketKb, formatKibibytesSigned),
      spreadCell(per.slabKb, formatKibibytesSigned),
      orNone(cost.slope.pssKb, formatKibibytesSigned),
      orNone(cost.slope.kernelKb, formatKibibytesSigned),
    ];
  });
  return table(header, rows);
}

function cachesTable(costs: readonly ConnectionCosts[]): string | null {
  const with_ = costs.filter((cost) => cost.caches.length > 0);
  if (with_.length === 0) return null;
  const names = [...new Set(with_.flatMap((cost) => cost.caches.map((cache) => cache.name)))];
  const sizeOf = (name: string) => with_.flatMap((cost) => cost.caches).find((cache) => cache.name === name)!.objectBytes;
  const largest = (name: string) => Math.max(...with_.map((cost) => Math.abs(cost.caches.find((c) => c.name === name)?.bytesPerConnection ?? 0)));
  const rows = names
    .sort((a, b) => largest(b) - largest(a) || a.localeCompare(b))
    .map((name) => [
      name,
      formatCount(sizeOf(name)),
      ...with_.map((cost) => {
        const cache = cost.caches.find((c) => c.name === name);
        return cache ? `${cache.objectsPerConnection.toFixed(2)} (${cache.bytesPerConnection < 0 ? '−' : ''}${formatCount(Math.abs(cache.bytesPerConnection))} B)` : NONE;
      }),
    ]);
  return table(['slab cache', 'object bytes', ...with_.map((cost) => `${cost.variant}: objects (bytes) per connection`)], rows);
}

/** The server's hard RLIMIT_NOFILE as read, when every server had the same one. */
function hardNofile(results: Results): number | null {
  const seen = [...new Set(results.analysis.subjects.flatMap((s) => (s.limits?.nofileHard !== null && s.limits?.nofileHard !== undefined ? [s.limits.nofileHard] : [])))];
  return seen.length === 1 ? seen[0] : null;
}

/** "## What an idle connection costs", or null when the analysis has no such figures. */
export function connectionCostsSection(results: Results): string | null {
  const costs = results.analysis.connectionCosts;
  if (!costs || costs.length === 0) return null;
  const [first] = costs;
  const largest = Math.max(...costs.flatMap((cost) => cost.steps.map((step) => step.asked)));
  const hard = hardNofile(results);
  const buffers = costs.flatMap((cost) => cost.steps.flatMap((step) => (step.socketBuffersKb === null ? [] : [step.socketBuffersKb])));
  const source =
    first.kernelFrom === 'slabinfo'
      ? 'the objects each slab cache gained (/proc/slabinfo: active objects × object size, summed over every cache; left out: TIME_WAIT sockets of earlier runs, tw_sock_*, which expire 60 s after their run, in the middle of a later one, and the inodes of /proc entries, proc_inode_cache, with a dentry each, which the kernel makes for every /proc/PID/fd/N that something on the machine lists: memory of /proc, not of the sockets; meminfo\'s Slab keeps everything)'
      : '/proc/meminfo Slab (/proc/slabinfo could not be read: it is root\'s only)';
  const notes = [
    `- User space: the server's process tree's PSS at the window's end, and its peak RSS, each beyond the idle server before any client (/proc/PID/smaps_rollup and status). Per connection: each run at the largest step against the smallest step's median, (growth − growth at the smallest) / (connections gained); [lowest–highest] over the repetitions. The slopes: least squares of growth against connections over every run of every step.`,
    `- Kernel: ${source}, read by the controller with the server idle before any client connects and again with every connection established, warmed up and idle, just before the window. These files are machine-wide and not namespaced: in Docker they show the host's kernel, which the containers share, and the controller reads them on the host. Whatever else the machine did between the two readings is in them too: the spread of the repetitions shows how much.`,
    `- Both ends of every connection are sockets of this one kernel (the client's and the server's), so a connection costs the kernel ${first.socketsPerConnection} sockets: per socket = per connection / ${first.socketsPerConnection}. The TCP cache's objects per connection (struct tcp_sock) show it: about ${first.socketsPerConnection} each.`,
    ...(buffers.length
      ? [`- Socket buffers: /proc/net/sockstat counted ${formatKibibytes(Math.max(...buffers))} at most of TCP buffer memory (its "mem", pages of 4 KiB, machine-wide) with the connections held: an idle connection whose data was all read holds no buffer; its cost is its structures.`]
      : []),
    `- The largest step, ${formatCount(largest)} idle connections and a probe, stays under ${hard !== null ? `the servers' hard RLIMIT_NOFILE, ${formatCount(hard)} here (/proc/PID/limits)` : 'the hard RLIMIT_NOFILE'}: each connection is an fd in the server and another in the client process, and each process has fds of its own besides.`,
  ];
  const parts = [
    `## What an idle connection costs\n\nAt each step of the idle crowd (${'`'}${first.client}${'`'}), medians over the repetitions [lowest–highest]:`,
    stepsTable(costs),
    perConnectionTable(costs) ? `Per connection, from the smallest step to the largest:\n\n${perConnectionTable(costs)}` : null,
    cachesTable(costs) ? `The slab caches that grew with the connections (largest step against smallest, median over runs; 2.00 objects per connection: one at each end):\n\n${cachesTable(costs)}` : null,
    notes.join('\n'),
  ];
  return parts.filter((p): p is string => p !== null).join('\n\n');
}
