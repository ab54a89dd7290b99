// Who made a run's containers, networks and images: the controller (the `iolab run` or `iolab grade`
// process) named on each of them by labels, so that `iolab clean` on an engine shared by several
// users or sessions removes only what a controller that is gone left behind, never a live run.
//
// A controller is named by its host (os.hostname(): in a compose container, the container's id),
// its pid, the start time of that pid (field 22 of /proc/PID/stat, in clock ticks after boot: a pid
// that the kernel gave to another process since has another) and its pid namespace (a container
// on the host's network has the host's name but pids of its own).
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type Docker from 'dockerode';

/** The labels that name a run's controller, beside iolab.run. */
export const CONTROLLER_LABELS = {
  host: 'iolab.controller.host',
  pid: 'iolab.controller.pid',
  started: 'iolab.controller.started',
  pidNamespace: 'iolab.controller.pid-namespace',
} as const;

/** A controller process as its labels name it. */
export interface Controller {
  host: string;
  pid: number;
  /** the process's start time, clock ticks after boot (/proc/PID/stat field 22); null where there is no /proc. */
  started: string | null;
  /** /proc/PID/ns/pid's link ("pid:[4026531836]"); null where there is no /proc. */
  pidNamespace: string | null;
}

/**
 * The start time of process `pid`: field 22 of /proc/PID/stat (clock ticks after boot), as text;
 * null when no such process exists. Throws when /proc is not there (not Linux) or the line does
 * not read as a stat line.
 */
export function processStartTime(pid: number): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && existsProc()) return null;
    throw error;
  }
  // Field 2, the command, is in parentheses and may hold spaces or ')': fields 3.. follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const started = fields[22 - 3];
  if (started === undefined || !/^\d+$/.test(started)) throw new Error(`/proc/${pid}/stat: no start time in field 22: ${stat.slice(0, 200)}`);
  return started;
}

function existsProc(): boolean {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
}

let self: Controller | null = null;

/** This process as a controller (read once). */
export function thisController(): Controller {
  if (self === null) {
    let started: string | null = null;
    let pidNamespace: string | null = null;
    try {
      started = processStartTime(process.pid);
      pidNamespace = readlinkSync('/proc/self/ns/pid');
    } catch {
      // no /proc (not Linux): the pid alone names it
    }
    self = { host: hostname(), pid: process.pid, started, pidNamespace };
  }
  return self;
}

/** The labels naming `controller` (this process by default), to put on everything a run creates. */
export function controllerLabels(controller: Controller = thisController()): Record<string, string> {
  return {
    [CONTROLLER_LABELS.host]: controller.host,
    [CONTROLLER_LABELS.pid]: String(controller.pid),
    ...(controller.started !== null && { [CONTROLLER_LABELS.started]: controller.started }),
    ...(controller.pidNamespace !== null && { [CONTROLLER_LABELS.pidNamespace]: controller.pidNamespace }),
  };
}

/** The controller that labels name; null when they name none (made by an iolab from before these labels). */
export function controllerFromLabels(labels: Record<string, string> | undefined | null): Controller | null {
  const host = labels?.[CONTROLLER_LABELS.host];
  const pid = Number(labels?.[CONTROLLER_LABELS.pid]);
  if (!host || !Number.isInteger(pid) || pid <= 0) return null;
  return { host, pid, started: labels?.[CONTROLLER_LABELS.started] || null, pidNamespace: labels?.[CONTROLLER_LABELS.pidNamespace] || null };
}

/**
 * Whether a run's controller is still there:
 *   - gone: no controller labels (an older iolab); or on this host (same name and pid namespace)
 *     its pid is not running, or runs a process started at another time; or it ran in a
 *     container of this engine (its host name is the container's id or name) that is not running.
 *   - alive: its pid on this host runs the process that started then (or a process whose start
 *     time cannot be read: no /proc, or /proc mounted with hidepid); or its container runs.
 *   - unknown: on a host this engine does not know (another machine on a shared engine, or a
 *     container already removed): it may be alive.
 * `why` says it in words. Throws only on an engine error other than "no such container".
 */
export async function controllerState(
  controller: Controller | null,
  docker: Docker,
  here: Controller = thisController(),
): Promise<{ state: 'gone' | 'alive' | 'unknown'; why: string }> {
  if (controller === null) return { state: 'gone', why: 'it names no controller (made by an older iolab)' };
  const { host, pid } = controller;
  const sameNamespace = controller.pidNamespace === null || here.pidNamespace === null || controller.pidNamespace === here.pidNamespace;
  if (host === here.host && sameNamespace) {
    let started: string | null;
    try {
      started = processStartTime(pid);
    } catch {
      started = null; // no /proc here
    }
    if (started === null) {
      if (!pidExists(pid)) return { state: 'gone', why: `its controller, pid ${pid} on this host, has ended` };
      // A pid that kill(2) finds but /proc does not show (no /proc, or one mounted with hidepid):
      // it may be the controller.
      return { state: 'alive', why: `its controller, pid ${pid} on this host, may be running (its start time cannot be read here)` };
    }
    if (controller.started !== null && started !== controller.started) {
      return { state: 'gone', why: `its controller, pid ${pid} on this host, has ended (that pid is now another process's)` };
    }
    return { state: 'alive', why: `its controller, pid ${pid} on this host, is running` };
  }
  try {
    const container = (await docker.getContainer(host).inspect()) as { Name: string; State: { Running: boolean; Status: string } };
    const name = container.Name.replace(/^\//, '');
    if (container.State.Running) return { state: 'alive', why: `its controller, pid ${pid} in container ${name} of this engine, may be running (the container is)` };
    return { state: 'gone', why: `its controller ran in container ${name} of this engine, which is ${container.State.Status}` };
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
  }
  return { state: 'unknown', why: `its controller, pid ${pid} on host ${host}, which this engine does not know, may be alive` };
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
