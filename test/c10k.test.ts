// The c10k lab: what an idle connection costs in user space and in the kernel, and its verdict.
// The parsers of the kernel's memory files and the per-connection arithmetic on hand-made figures
// (test/fixtures/measurements.ts); the c10k rule on hand-made runs that hold, do not hold, and
// cannot tell; and one short real run of the lab (`iolab run` on a copy of labs/c10k.yaml with
// a crowd of 0 and 500), whose report must carry the memory split and the verdicts. No timing is
// asserted anywhere.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ABOUT_FACTOR, FEW_KIB_PER_CONNECTION, PUBLISHED_KERNEL_KIB_PER_SOCKET } from '../src/analysis/claims.js';
import { connectionCosts, kernelGrowthKb, leastSquaresSlope, perConnectionGrowth } from '../src/analysis/connection-costs.js';
import { analyse } from '../src/analysis/index.js';
import { renderMarkdown } from '../src/report/index.js';
import { ResultsSchema, type ClientResult, type KernelMemory, type Measurement, type RunRecord, type VariantRecord } from '../src/shared/results.js';
import { kernelMemoryGrowth, parseMeminfoSlab, parseSlabinfo, parseSockstatTcpPages, readKernelMemory, type KernelMemoryReading } from '../src/tracer/kernel-memory.js';
import { client, holdResult, measurement, run, variant } from './fixtures/measurements.js';
import { runIolab } from './helpers.js';

const SLABINFO = `slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
tw_sock_TCP          224    224    256   16    1 : tunables    0    0    0 : slabdata     14     14      0
TCP                   79    156   2368   13    8 : tunables    0    0    0 : slabdata     12     12      0
sock_inode_cache     184    323    832   19    4 : tunables    0    0    0 : slabdata     17     17      0
`;

describe("the kernel's memory files", () => {
  it('parses /proc/meminfo, /proc/slabinfo and /proc/net/sockstat, and names what is missing', () => {
    expect(parseMeminfoSlab('MemTotal: 100 kB\nSlab:             781556 kB\nSReclaimable:     716444 kB\nSUnreclaim:        65112 kB\n')).toEqual({ slabKb: 781_556, unreclaimableKb: 65_112 });
    expect(() => parseMeminfoSlab('MemTotal: 100 kB\n')).toThrow(/no "Slab: N kB" line/);
    const caches = parseSlabinfo(SLABINFO);
    expect(caches.get('TCP')).toEqual({ name: 'TCP', activeObjects: 79, objectBytes: 2368 });
    expect(caches.size).toBe(3);
    expect(() => parseSlabinfo('slabinfo - version: 1.1\n')).toThrow(/not version 2/);
    expect(parseSockstatTcpPages('sockets: used 29\nTCP: inuse 2 orphan 0 tw 0 alloc 2 mem 56\nUDP: inuse 0 mem 256\n')).toBe(56);
    expect(parseSockstatTcpPages('sockets: used 29\n')).toBeNull();
  });

  it('keeps the growth of every cache in the total, and the caches that changed most by name', () => {
    const reading = (tcp: number, tw: number, slabKb: number, atMs: number): KernelMemoryReading => ({
      atMs,
      slabKb,
      unreclaimableKb: slabKb / 10,
      caches: new Map([
        ['TCP', { name: 'TCP', activeObjects: tcp, objectBytes: 2368 }],
        ['tw_sock_TCP', { name: 'tw_sock_TCP', activeObjects: tw, objectBytes: 256 }],
        ['filp', { name: 'filp', activeObjects: 100 + (tcp > 100 ? 1 : 0), objectBytes: 192 }],
      ]),
      cachesUnreadable: null,
      tcpBufferPages: 3,
    });
    const growth = kernelMemoryGrowth(reading(80, 1000, 1000, 0), reading(20_080, 0, 60_000, 2500));
    expect(growth.cacheBytes).toBe(20_000 * 2368 - 1000 * 256 + 192);
    // filp grew by one object, 192 bytes: in the total, too small to be listed.
    expect(growth.caches).toEqual([
      { name: 'TCP', objectBytes: 2368, objects: 20_000, bytes: 20_000 * 2368 },
      { name: 'tw_sock_TCP', objectBytes: 256, objects: -1000, bytes: -256_000 },
    ]);
    expect(growth).toMatchObject({ seconds: 2.5, slabKb: 59_000, tcpBufferPages: { before: 3, held: 3 } });
  });

  it('reads this machine: meminfo always; slabinfo as root, or says why not', async () => {
    const reading = await readKernelMemory();
    expect(reading.slabKb).toBeGreaterThan(0);
    if (reading.caches) expect(reading.caches.get('TCP')?.objectBytes).toBeGreaterThan(1000);
    else expect(reading.cachesUnreadable).toMatch(/slabinfo/);
  });
});

// ---- hand-made runs of a c10k lab ---------------------------------------------------------

const SMALL = 0;
const LARGE = 10_000;
const BASE_PSS_KB = 40_000;

interface Costs {
  /** user space, KiB per connection. */
  pssKb: number;
  /** the kernel, KiB per socket (2 per connection). */
  kernelKbPerSocket: number;
  probeP50Us?: number;
}

/** The kernel record of a run holding `connections` (the probe included) at `perSocketKb`, with a TIME_WAIT fall and /proc inodes that the figures must leave out. */
function kernelOf(connections: number, perSocketKb: number): KernelMemory {
  const sockets = Math.round(connections * 2 * perSocketKb * 1024);
  const tw = { name: 'tw_sock_TCP', objectBytes: 256, objects: -400, bytes: -102_400 };
  const proc = { name: 'proc_inode_cache', objectBytes: 696, objects: 2 * connections, bytes: 2 * connections * 696 };
  const dentry = { name: 'dentry', objectBytes: 192, objects: 4 * connections, bytes: 4 * connections * 192 };
  const tcp = { name: 'TCP', objectBytes: 2368, objects: 2 * connections, bytes: 2 * connections * 2368 };
  // The sockets' own bytes (TCP, inodes, files...) make `sockets`; the proc inodes' dentries are the other half of dentry.
  const caches = [tcp, proc, dentry, tw].filter((c) => Math.abs(c.bytes) >= 16 * 1024);
  const procBytes = connections > 0 ? proc.bytes + proc.objects * 192 : 0;
  return { seconds: 2, slabKb: (sockets + procBytes) / 1024, unreclaimableKb: 0, cacheBytes: sockets + procBytes + tw.bytes, caches, cachesUnreadable: null, tcpBufferPages: { before: 50, held: 52 }, pageBytes: 4096 };
}

function c10kRun(server: VariantRecord, idle: number, repetition: number, costs: Costs): RunRecord {
  const held = idle + 1;
  const result: ClientResult = holdResult(idle, 10, 10);
  result.probe!.latency.p50Us = costs.probeP50Us ?? 150;
  const record = run(server, [{ ...client('idle', result), mode: 'hold', connections: idle }], { sweepValue: idle, repetition, fds: 30 + held });
  record.baseline = { ...record.baseline!, pssKb: BASE_PSS_KB, peakRssKb: BASE_PSS_KB };
  record.proc = { ...record.proc!, pssKb: Math.round(BASE_PSS_KB + (held - 1) * costs.pssKb), peakRssKb: Math.round(BASE_PSS_KB + (held - 1) * costs.pssKb * 1.1) };
  record.limits = { ...record.limits!, nofileSoft: 20_000, nofileHard: 20_000 };
  record.kernel = kernelOf(held - 1, costs.kernelKbPerSocket);
  return record;
}

/** A c10k lab of these servers, each with its costs per repetition. */
function c10kLab(servers: [VariantRecord, Costs[]][]): Measurement {
  const runs = servers.flatMap(([server, reps]) => reps.flatMap((costs, repetition) => [c10kRun(server, SMALL, repetition, costs), c10kRun(server, LARGE, repetition, costs)]));
  return measurement(
    {
      name: 'c10k',
      variants: servers.map(([server]) => server),
      clients: [{ name: 'idle', mode: 'hold', connections: 0, messageSize: 64 }],
      sweep: { client: 'idle', connections: [SMALL, LARGE] },
      verdict: { rule: 'c10k', client: 'idle' },
      repetitions: servers[0][1].length,
      traceRuns: 0,
      nofile: 20_000,
    },
    runs,
  );
}

const at = (results: ReturnType<typeof analyse>, subject: string) => {
  const found = results.analysis.verdicts.find((v) => v.subject.startsWith(subject));
  if (!found) throw new Error(`no verdict about ${subject}: ${results.analysis.verdicts.map((v) => v.subject).join('; ')}`);
  return found;
};

describe('per-connection arithmetic', () => {
  it('fits a slope by least squares, and divides growth by the connections gained', () => {
    expect(leastSquaresSlope([{ x: 0, y: 1 }, { x: 10, y: 21 }, { x: 20, y: 41 }])).toBe(2);
    expect(leastSquaresSlope([{ x: 5, y: 1 }, { x: 5, y: 3 }])).toBeNull();
    expect(leastSquaresSlope([{ x: 0, y: 1 }])).toBeNull();
    // Against the smallest step's median (growth 10 at 1 connection): (30,010 − 10) / (10,001 − 1) = 3.
    const spread = perConnectionGrowth([{ connections: 10_001, value: 30_010 }, { connections: 10_001, value: 40_010 }], [{ connections: 1, value: 5 }, { connections: 1, value: 15 }]);
    expect(spread).toEqual({ median: 3.5, min: 3, max: 4, values: [3, 4] });
    expect(perConnectionGrowth([{ connections: 10, value: null }], [{ connections: 1, value: 1 }])).toBeNull();
  });

  it('gives user-space and kernel memory per connection, the kernel per socket, TIME_WAIT and /proc inodes left out', () => {
    const epoll = variant('epoll', 'epoll', {}, 20_000);
    const measured = c10kLab([[epoll, [{ pssKb: 2, kernelKbPerSocket: 4 }, { pssKb: 3, kernelKbPerSocket: 4.5 }]]]);
    // The kernel's growth of a run at 10,000: its sockets alone, 10,000 × 2 × 4 KiB.
    expect(kernelGrowthKb(c10kRun(epoll, LARGE, 0, { pssKb: 2, kernelKbPerSocket: 4 }), 'slabinfo')).toBe(80_000);
    const [costs] = connectionCosts(measured)!;
    expect(costs.socketsPerConnection).toBe(2);
    expect(costs.kernelFrom).toBe('slabinfo');
    expect(costs.steps.map((s) => [s.asked, s.connections, s.runs])).toEqual([[0, 1, 2], [10_000, 10_001, 2]]);
    expect(costs.perConnection!.pssKb!.values).toEqual([2, 3]);
    expect(costs.perConnection!.kernelKb!.values).toEqual([8, 9]);
    expect(costs.perConnection!.kernelPerSocketKb!.values).toEqual([4, 4.5]);
    // meminfo's Slab keeps the /proc inodes: more per connection than the slab objects' figure.
    expect(costs.perConnection!.slabKb!.median).toBeGreaterThan(costs.perConnection!.kernelKb!.median);
    expect(costs.slope.kernelKb).toBeCloseTo(8.5, 5);
    expect(costs.caches.find((c) => c.name === 'TCP')).toMatchObject({ objectsPerConnection: 2, bytesPerConnection: 4736 });
    // The socket buffers held, 52 pages of 4 KiB.
    expect(costs.steps[1].socketBuffersKb).toBe(208);
  });
});

describe('the c10k rule', () => {
  const [low, high] = [PUBLISHED_KERNEL_KIB_PER_SOCKET.low / ABOUT_FACTOR, PUBLISHED_KERNEL_KIB_PER_SOCKET.high * ABOUT_FACTOR];

  it('holds for an event-driven server at a few KiB a connection and about the published kernel figure; a thread per connection is not judged', () => {
    const results = analyse(
      c10kLab([
        [variant('epoll', 'epoll', {}, 20_000), [{ pssKb: 2, kernelKbPerSocket: 4 }, { pssKb: 2.5, kernelKbPerSocket: 4.2 }]],
        [variant('threaded', 'threaded', {}, 20_000), [{ pssKb: 80, kernelKbPerSocket: 4 }, { pssKb: 80, kernelKbPerSocket: 4 }]],
      ]),
    );
    // Valid results: every figure finite (no NaN), the schema's own check.
    expect(() => ResultsSchema.parse(results)).not.toThrow();
    const memory = at(results, 'epoll: 10,000 idle connections');
    expect(memory.verdict, memory.measurement).toBe('holds');
    expect(memory.parts.map((p) => p.claim)).toEqual([
      'holds 10,000 idle connections or more',
      `user space: a few KiB per connection (at most ${FEW_KIB_PER_CONNECTION} KiB)`,
      'kernel: about 2–3 KiB per socket, as published (within 2.0×)',
    ]);
    expect(memory.measurement).toMatch(/kernel memory per socket \[4\.0 KiB–4\.2 KiB\], within 1\.0 KiB–6\.0 KiB \(8\.2 KiB per connection over its 2 sockets/);
    expect(memory.figures.kernelPerSocketKb).toEqual([4, 4.2]);
    // Two repetitions a step: the latency comparison cannot tell, and says so with the figures.
    const latency = at(results, "epoll: the probe's wait");
    expect(latency.verdict).toBe('inconclusive');
    expect(latency.measurement).toMatch(/10,000 idle 150 µs p50 against 0 idle 150 µs p50 .*a verdict needs 4 repetitions each/);
    expect(at(results, 'threaded: not an event-driven server').verdict).toBe('inconclusive');
    // The report: the verdicts, and the memory split per connection.
    const report = renderMarkdown(results);
    expect(report).toContain('## What an idle connection costs');
    expect(report).toMatch(/\| epoll +\| +0 → 10,000 \| +2\.3 KiB \[2\.0 KiB–2\.5 KiB\] \|/);
    expect(report).toContain('per socket = per connection / 2');
  });

  it('does not hold when the kernel figure is far from the published one or a connection costs user space more than a few KiB', () => {
    const results = analyse(
      c10kLab([
        [variant('epoll', 'epoll', {}, 20_000), [{ pssKb: 2, kernelKbPerSocket: 12 }, { pssKb: 2, kernelKbPerSocket: 13 }]],
        [variant('coroutine', 'coroutine', {}, 20_000), [{ pssKb: 40, kernelKbPerSocket: 4 }, { pssKb: 41, kernelKbPerSocket: 4 }]],
      ]),
    );
    const kernel = at(results, 'epoll: 10,000').parts[2];
    expect(kernel.verdict).toBe('does not hold here');
    expect(kernel.measurement).toMatch(new RegExp(`outside ${low.toFixed(1)} KiB–${high.toFixed(1)} KiB`));
    const user = at(results, 'coroutine: 10,000').parts[1];
    expect(user.verdict).toBe('does not hold here');
    expect(user.measurement).toMatch(/PSS added \[40 KiB–41 KiB\], not at most 16 KiB/);
  });

  it('is inconclusive when the repetitions fall on both sides of a line; with 4 repetitions a step the latency is judged', () => {
    const straddles = analyse(c10kLab([[variant('uring', 'uring', {}, 20_000), [{ pssKb: 2, kernelKbPerSocket: 5.5 }, { pssKb: 2, kernelKbPerSocket: 6.5 }]]]));
    const memory = at(straddles, 'uring: 10,000');
    expect(memory.verdict).toBe('inconclusive');
    expect(memory.parts[2].measurement).toMatch(/the repetitions fall on both sides of the band 1\.0 KiB–6\.0 KiB/);
    const four = Array.from({ length: 4 }, (_, i) => ({ pssKb: 2, kernelKbPerSocket: 4, probeP50Us: 140 + i }));
    const judged = analyse(c10kLab([[variant('eventloop', 'eventloop', {}, 20_000), four]]));
    expect(at(judged, "eventloop: the probe's wait").verdict).toBe('holds');
  });
});

describe('the c10k lab, run', () => {
  it('`iolab run` with a small crowd writes a report with the memory split and the verdicts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'iolab-c10k-'));
    const lab = (await readFile(join(import.meta.dirname, '..', 'labs', 'c10k.yaml'), 'utf8'))
      .replace(/^models: .*$/m, 'models: [epoll, python-asyncio]')
      .replace(/^duration: .*$/m, 'duration: 0.5')
      .replace(/^repetitions: .*$/m, 'repetitions: 1')
      .replace(/^sweep: .*$/m, 'sweep: { client: idle, connections: [0, 500] }');
    const file = join(dir, 'c10k.yaml');
    await writeFile(file, lab);
    const outcome = await runIolab(['run', file, '--runtime', 'local', '--out', join(dir, 'out')]);
    expect(outcome.code, outcome.stderr).toBe(0);
    const results = ResultsSchema.parse(JSON.parse(await readFile(join(dir, 'out', 'c10k', 'latest', 'results.json'), 'utf8')));
    expect(results.runs.filter((r) => r.error)).toEqual([]);
    const report = await readFile(join(dir, 'out', 'c10k', 'latest', 'report.md'), 'utf8');
    expect(report).toContain('## What an idle connection costs');
    expect(report).toMatch(/user space: PSS .* kernel per connection .* kernel per socket/);
    for (const server of ['epoll', 'python-asyncio']) {
      const costs = results.analysis.connectionCosts!.find((c) => c.variant === server)!;
      // Every run read the kernel's memory, and the TCP cache shows a socket at each end.
      expect(costs.perConnection!.kernelPerSocketKb, server).not.toBeNull();
      expect(costs.perConnection!.pssKb, server).not.toBeNull();
      expect(results.runs.filter((r) => r.variant === server).every((r) => r.kernel)).toBe(true);
      const memory = results.analysis.verdicts.find((v) => v.subject.startsWith(`${server}: idle connections (500)`))!;
      expect(memory.parts[0], server).toMatchObject({ claim: 'holds every idle connection asked for (500)', verdict: 'holds' });
      expect(report).toContain(`| ${server}: idle connections (500) at a few KiB each`);
    }
  }, 120_000);
});
