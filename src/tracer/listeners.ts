// Who listens where, read from /proc: the TCP sockets in LISTEN state of a network namespace
// (/proc/PID/net/tcp and tcp6) and the processes holding them (their fd links, "socket:[INODE]").
// The grader uses it to wait for a student's server and to tell why a client cannot reach it:
// bound to 127.0.0.1 only, or to another port than PORT, or never listening at all.
import { readdir, readFile, readlink } from 'node:fs/promises';
import { clockTicksPerSecond } from '../libc/index.js';
import { parseProcStat } from './proc.js';

export interface ListeningSocket {
  /** dotted IPv4 or IPv6 text: 0.0.0.0, 127.0.0.1, ::, ::1 ... */
  address: string;
  port: number;
  inode: number;
  /** the process holding it, when it is one of those looked at. */
  pid: number | null;
}

export interface ListenerReport {
  /** the socket on the expected port that every interface reaches, and its process. */
  listening: { pid: number; address: string; port: number } | null;
  /** every listening socket of the processes looked at. */
  sockets: ListeningSocket[];
  /** the processes and threads looked at, and their CPU time so far: a fork bomb, a spin. */
  processes: number;
  threads: number;
  cpuSeconds: number;
  /** false when the processes are gone. */
  running: boolean;
}

const LISTEN_STATE = '0A';

function ipv4(hex: string): string {
  // /proc shows the address as a little-endian 32-bit number.
  return [6, 4, 2, 0].map((at) => parseInt(hex.slice(at, at + 2), 16)).join('.');
}

function ipv6(hex: string): string {
  const groups: string[] = [];
  for (let word = 0; word < 4; word++) {
    // four little-endian 32-bit words
    const bytes = [6, 4, 2, 0].map((at) => hex.slice(word * 8 + at, word * 8 + at + 2));
    groups.push(bytes[0] + bytes[1], bytes[2] + bytes[3]);
  }
  const text = groups.map((g) => parseInt(g, 16).toString(16)).join(':');
  if (text === '0:0:0:0:0:0:0:0') return '::';
  if (text === '0:0:0:0:0:0:0:1') return '::1';
  const mapped = /^0:0:0:0:0:ffff:([0-9a-f]+):([0-9a-f]+)$/.exec(text);
  if (mapped) {
    const value = (parseInt(mapped[1], 16) << 16) | parseInt(mapped[2], 16);
    return `::ffff:${[24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.')}`;
  }
  return text;
}

/** The LISTEN rows of /proc/net/tcp or tcp6. */
export function parseListeningSockets(text: string, family: 4 | 6): Omit<ListeningSocket, 'pid'>[] {
  const sockets: Omit<ListeningSocket, 'pid'>[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10 || fields[3] !== LISTEN_STATE) continue;
    const [address, port] = fields[1].split(':');
    sockets.push({ address: family === 4 ? ipv4(address) : ipv6(address), port: parseInt(port, 16), inode: Number(fields[9]) });
  }
  return sockets;
}

/** Whether a client on another machine (another container) reaches a socket bound there. */
export function reachableFromOutside(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || !(address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));
}

/** Whether every interface answers: what "listen on all interfaces" means. */
export function allInterfaces(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

async function socketInodes(pid: number, procRoot: string): Promise<number[]> {
  const fds = await readdir(`${procRoot}/${pid}/fd`).catch(() => [] as string[]);
  const inodes: number[] = [];
  for (const fd of fds) {
    const link = await readlink(`${procRoot}/${pid}/fd/${fd}`).catch(() => '');
    const match = /^socket:\[(\d+)\]$/.exec(link);
    if (match) inodes.push(Number(match[1]));
  }
  return inodes;
}

/** Every process id under procRoot, or those of one process tree (a pid and its descendants). */
export async function processIds(procRoot = '/proc', root: number | null = null): Promise<number[]> {
  const pids = (await readdir(procRoot)).filter((name) => /^\d+$/.test(name)).map(Number);
  if (root === null) return pids;
  const parents = new Map<number, number>();
  for (const pid of pids) {
    const stat = await readFile(`${procRoot}/${pid}/stat`, 'utf8').catch(() => null);
    if (stat) parents.set(pid, parseProcStat(stat).parentPid);
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, parent] of parents) {
      if (!tree.has(pid) && tree.has(parent)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  return [...tree].filter((pid) => parents.has(pid));
}

/**
 * What `pids` listen on in the network namespace of `pids[0]`, and whether one of them listens on
 * `port` on every interface.
 */
export async function readListeners(pids: number[], port: number, procRoot = '/proc'): Promise<ListenerReport> {
  const report: ListenerReport = { listening: null, sockets: [], processes: 0, threads: 0, cpuSeconds: 0, running: false };
  const ticks = clockTicksPerSecond();
  // A socket held by several processes (workers forked after listen()) belongs to the eldest:
  // the holder whose parent does not hold it, so that the server's whole tree is observed.
  const holders = new Map<number, { pid: number; parentPid: number }[]>();
  for (const pid of pids) {
    const stat = await readFile(`${procRoot}/${pid}/stat`, 'utf8').catch(() => null);
    if (!stat) continue;
    const parsed = parseProcStat(stat);
    if (parsed.state === 'Z') continue;
    report.processes += 1;
    report.threads += parsed.threads;
    report.cpuSeconds += (parsed.userTicks + parsed.systemTicks) / ticks;
    for (const inode of await socketInodes(pid, procRoot)) holders.set(inode, [...(holders.get(inode) ?? []), { pid, parentPid: parsed.parentPid }]);
  }
  const owners = new Map<number, number>();
  for (const [inode, all] of holders) owners.set(inode, (all.find((h) => !all.some((o) => o.pid === h.parentPid)) ?? all[0]).pid);
  report.running = report.processes > 0;
  if (!report.running) return report;
  // every process looked at shares one network namespace: read it through a socket's owner
  const netPid = owners.values().next().value ?? pids[0];
  for (const [file, family] of [['tcp', 4], ['tcp6', 6]] as const) {
    const text = await readFile(`${procRoot}/${netPid}/net/${file}`, 'utf8').catch(() => '');
    for (const socket of parseListeningSockets(text, family)) {
      const pid = owners.get(socket.inode);
      if (pid !== undefined) report.sockets.push({ ...socket, pid });
    }
  }
  const good = report.sockets.find((s) => s.port === port && allInterfaces(s.address));
  if (good) report.listening = { pid: good.pid!, address: good.address, port };
  report.cpuSeconds = Math.round(report.cpuSeconds * 100) / 100;
  return report;
}

/** Polls readListeners until the server listens as asked, its processes are gone, or the time is up. */
export async function waitForListener(pidsOf: () => Promise<number[]>, port: number, timeoutMs: number, procRoot = '/proc'): Promise<ListenerReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const report = await readListeners(await pidsOf(), port, procRoot);
    if (report.listening || !report.running || Date.now() >= deadline) return report;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * `iolab observe --listening PORT`, in a sidecar sharing the server's PID namespace: waits for
 * the listener among every process there but itself, prints the ListenerReport, and exits.
 */
export async function serveListenerWait(port: number, timeoutMs: number): Promise<void> {
  const others = async () => (await processIds()).filter((pid) => pid !== process.pid);
  const report = await waitForListener(others, port, timeoutMs);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
