// The kernel's own memory around one run: what the connections cost the kernel rather than the
// server's process. Read twice by the lab runner, in the controller: with the server idle, before
// any client connects, and again once every client's connections are established and warmed up
// (held, idle), just before the window. The difference is the connections' kernel memory, at both
// ends: client and server run on this one kernel, locally and in Docker alike (containers share
// the host's kernel), so each connection is two sockets.
//
// Three files, all machine-wide (proc(5)):
//   /proc/meminfo       Slab and SUnreclaim, kB: every slab cache together, with the slabs' free
//                       space; whatever else the machine did meanwhile is in it too.
//   /proc/slabinfo      per cache (slabinfo(5)): active objects and their size. Readable by root
//                       only; without it, only the meminfo figures are kept, with the reason.
//   /proc/net/sockstat  "TCP: ... mem N": pages held by TCP socket buffers (tcp_memory_allocated,
//                       global), about 0 for idle connections whose data was all read.
// None is namespaced (sockstat's counts of sockets in use are, its "mem" is not): in a container
// they show the host's. The controller reads them where it runs (on the host with the Docker
// runtime, whose engine is local), so a remote Docker engine's kernel is not what they show.
import { readFile } from 'node:fs/promises';
import type { KernelMemory } from '../shared/results.js';

const DEFAULT_PROC_ROOT = '/proc';

/** A cache whose objects grew or shrank by less than this many bytes between the readings is left out of the record (it is still in the total). */
export const CACHE_BYTES_KEPT = 16 * 1024;
/** The most caches a record keeps, largest change first: results.json stays small in every lab. */
export const CACHES_KEPT = 16;

/** One cache of /proc/slabinfo. */
export interface SlabCache {
  name: string;
  /** objects in use (slabinfo's active_objs). */
  activeObjects: number;
  /** bytes per object (objsize), the kernel's struct plus alignment. */
  objectBytes: number;
}

/** One reading of the kernel's memory. */
export interface KernelMemoryReading {
  /** performance.now() when read, ms. */
  atMs: number;
  /** /proc/meminfo Slab, kB (KiB). */
  slabKb: number;
  /** /proc/meminfo SUnreclaim, kB. */
  unreclaimableKb: number;
  /** /proc/slabinfo by cache name; null when it cannot be read (why: `cachesUnreadable`). */
  caches: Map<string, SlabCache> | null;
  cachesUnreadable: string | null;
  /** /proc/net/sockstat "TCP: ... mem", pages; null without that line. */
  tcpBufferPages: number | null;
}

/** Slab and SUnreclaim of /proc/meminfo, kB. Throws an Error naming the field it did not find. */
export function parseMeminfoSlab(text: string): { slabKb: number; unreclaimableKb: number } {
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (!match) throw new Error(`/proc/meminfo: no "${name}: N kB" line in ${JSON.stringify(text.slice(0, 200))}`);
    return Number(match[1]);
  };
  return { slabKb: field('Slab'), unreclaimableKb: field('SUnreclaim') };
}

/**
 * /proc/slabinfo version 2.1 (slabinfo(5)): "name active_objs num_objs objsize objperslab
 * pagesperslab : tunables ... : slabdata ...", after two header lines. Throws an Error for another
 * version or a line without numbers where they belong.
 */
export function parseSlabinfo(text: string): Map<string, SlabCache> {
  const lines = text.split('\n');
  if (!/^slabinfo - version: 2\.\d+/.test(lines[0] ?? '')) throw new Error(`/proc/slabinfo: not version 2.x: ${JSON.stringify(lines[0] ?? '')}`);
  const caches = new Map<string, SlabCache>();
  for (const line of lines.slice(1)) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const [name, active, , size] = line.trim().split(/\s+/);
    const activeObjects = Number(active);
    const objectBytes = Number(size);
    if (!Number.isInteger(activeObjects) || !Number.isInteger(objectBytes)) throw new Error(`/proc/slabinfo: a line without its numbers: ${JSON.stringify(line)}`);
    caches.set(name, { name, activeObjects, objectBytes });
  }
  return caches;
}

/** The "mem" of /proc/net/sockstat's TCP line, in pages; null when there is no such line. */
export function parseSockstatTcpPages(text: string): number | null {
  const match = /^TCP:.*\bmem (\d+)/m.exec(text);
  return match ? Number(match[1]) : null;
}

/** Reads the three files (see the header). Throws when /proc/meminfo cannot be read; slabinfo and sockstat may be missing. */
export async function readKernelMemory(procRoot = DEFAULT_PROC_ROOT): Promise<KernelMemoryReading> {
  const meminfo = parseMeminfoSlab(await readFile(`${procRoot}/meminfo`, 'utf8'));
  let caches: Map<string, SlabCache> | null = null;
  let cachesUnreadable: string | null = null;
  try {
    caches = parseSlabinfo(await readFile(`${procRoot}/slabinfo`, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    cachesUnreadable = code === 'EACCES' ? `${procRoot}/slabinfo is readable by root only` : `${procRoot}/slabinfo: ${(error as Error).message}`;
  }
  const sockstat = await readFile(`${procRoot}/net/sockstat`, 'utf8').catch(() => null);
  return { atMs: performance.now(), ...meminfo, caches, cachesUnreadable, tcpBufferPages: sockstat === null ? null : parseSockstatTcpPages(sockstat) };
}

/**
 * What changed from `before` to `held`: meminfo's Slab and SUnreclaim (KiB), every cache's active
 * objects times its object size (bytes; negative: freed meanwhile), summed over all caches and
 * kept per cache for the CACHES_KEPT that changed most (at least CACHE_BYTES_KEPT), and the TCP
 * buffer pages at both readings. A cache that appeared between the readings counts from 0.
 */
export function kernelMemoryGrowth(before: KernelMemoryReading, held: KernelMemoryReading, pageBytes = 4096): KernelMemory {
  let caches: KernelMemory['caches'] = null;
  let cacheBytes: number | null = null;
  if (before.caches && held.caches) {
    const changes = [...held.caches.values()].map((cache) => {
      const objects = cache.activeObjects - (before.caches!.get(cache.name)?.activeObjects ?? 0);
      return { name: cache.name, objectBytes: cache.objectBytes, objects, bytes: objects * cache.objectBytes };
    });
    cacheBytes = changes.reduce((total, change) => total + change.bytes, 0);
    caches = changes
      .filter((change) => Math.abs(change.bytes) >= CACHE_BYTES_KEPT)
      .sort((a, b) => Math.abs(b.bytes) - Math.abs(a.bytes) || a.name.localeCompare(b.name))
      .slice(0, CACHES_KEPT);
  }
  return {
    seconds: Math.round(held.atMs - before.atMs) / 1000,
    slabKb: held.slabKb - before.slabKb,
    unreclaimableKb: held.unreclaimableKb - before.unreclaimableKb,
    cacheBytes,
    caches,
    cachesUnreadable: held.cachesUnreadable ?? before.cachesUnreadable,
    tcpBufferPages: before.tcpBufferPages === null || held.tcpBufferPages === null ? null : { before: before.tcpBufferPages, held: held.tcpBufferPages },
    pageBytes,
  };
}
