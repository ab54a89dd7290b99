// The machine around a measurement: how busy its CPUs were and how much the hypervisor took
// (steal), from /proc/stat, and the load average from /proc/loadavg (both in proc(5)). The lab
// reads them around every window, so a report can say when the figures were taken on a machine
// busy with something else. /proc/stat is not namespaced: in a container it shows the host.
import { readFile } from 'node:fs/promises';
import type { HostLoad } from '../shared/results.js';

/** The "cpu" line of /proc/stat: clock ticks spent by all CPUs in each state since boot. */
export interface CpuTimes {
  busy: number;
  steal: number;
  total: number;
  cpus: number;
}

/** Parses /proc/stat: user nice system idle iowait irq softirq steal [guest guest_nice] (guest time is inside user). */
export function parseCpuTimes(text: string): CpuTimes {
  const lines = text.split('\n');
  const all = lines.find((line) => line.startsWith('cpu '));
  if (!all) throw new Error(`/proc/stat: no "cpu" line in ${JSON.stringify(text.slice(0, 200))}`);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = all.trim().split(/\s+/).slice(1, 9).map(Number);
  if ([user, nice, system, idle].some((n) => !Number.isFinite(n))) throw new Error(`/proc/stat: a "cpu" line without numbers: ${JSON.stringify(all)}`);
  const extra = (n: number | undefined) => (n !== undefined && Number.isFinite(n) ? n : 0);
  const busy = user + nice + system + extra(irq) + extra(softirq) + extra(steal);
  return {
    busy,
    steal: extra(steal),
    total: busy + idle + extra(iowait),
    cpus: lines.filter((line) => /^cpu\d+ /.test(line)).length,
  };
}

/** The 1-minute load average: the first field of /proc/loadavg. */
export function parseLoadAverage(text: string): number {
  const value = Number(text.trim().split(/\s+/)[0]);
  if (!Number.isFinite(value)) throw new Error(`/proc/loadavg: ${JSON.stringify(text)} does not start with a number`);
  return value;
}

/** Starts reading the machine's CPU times; `stop()` returns the load over the time in between. */
export async function startHostSample(procRoot = '/proc'): Promise<{ stop(): Promise<HostLoad> }> {
  const before = parseCpuTimes(await readFile(`${procRoot}/stat`, 'utf8'));
  return {
    async stop() {
      const after = parseCpuTimes(await readFile(`${procRoot}/stat`, 'utf8'));
      const loadAverage = parseLoadAverage(await readFile(`${procRoot}/loadavg`, 'utf8'));
      const elapsed = after.total - before.total;
      // Percent of one core: all CPUs' ticks over the window, divided by one CPU's share of them.
      const percentOfCore = (ticks: number) => (elapsed > 0 ? (ticks / elapsed) * after.cpus * 100 : 0);
      return {
        cpus: after.cpus,
        busyPercent: Math.round(percentOfCore(after.busy - before.busy) * 10) / 10,
        stealPercent: Math.round(percentOfCore(after.steal - before.steal) * 10) / 10,
        loadAverage,
      };
    },
  };
}
