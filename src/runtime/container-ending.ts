// How a container ended, in the words a student reads in a run's record or a grading's feedback,
// from the engine's own record of it (its inspect once wait() has returned): killed by the
// kernel's OOM killer at its memory limit, killed by a signal (Docker reports a process that
// signal N killed as exit code 128+N), removed while it ran, or an exit code of its own.
import { constants } from 'node:os';
import type Docker from 'dockerode';

/** What a container removed while it ran (by `docker rm -f`, or by its run's teardown) ended as. */
export const CONTAINER_REMOVED = 'its container was removed';

const MIB = 1024 * 1024;

/** A memory limit in bytes as people write it: "256 MiB", "2 GiB". */
export function formatMemoryLimit(bytes: number): string {
  if (bytes % (1024 * MIB) === 0) return `${bytes / (1024 * MIB)} GiB`;
  if (bytes % MIB === 0) return `${bytes / MIB} MiB`;
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

/**
 * "killed by the kernel's OOM killer: it reached its memory limit (256 MiB)"; with no limit
 * (null, 0), the machine itself ran out of memory.
 */
export function oomKilledSentence(memoryLimitBytes: number | null): string {
  return memoryLimitBytes
    ? `killed by the kernel's OOM killer: it reached its memory limit (${formatMemoryLimit(memoryLimitBytes)})`
    : "killed by the kernel's OOM killer: the machine ran out of memory (it had no memory limit)";
}

/** The name of the signal whose death Docker reports as `exitCode` (128+N: "SIGKILL" for 137), or null. */
export function signalOfExitCode(exitCode: number): string | null {
  if (exitCode <= 128) return null;
  return Object.entries(constants.signals).find(([, number]) => number === exitCode - 128)?.[0] ?? null;
}

/** What inspect says of a container that has stopped: the fields read here. */
export interface StoppedContainer {
  State: { Status?: string; OOMKilled: boolean; ExitCode: number; Error?: string };
  HostConfig?: { Memory?: number };
}

/**
 * How a stopped container ended: a number for an exit code of its own (the caller words it,
 * "exited with code 1"), else the sentence: "killed by SIGKILL (exit code 137)", the OOM
 * killer's with the limit, CONTAINER_REMOVED. The engine's error (a program it could not start)
 * is added to the exit code's sentence.
 */
export function describeStopped(details: StoppedContainer): number | string {
  const { State: state } = details;
  if (state.Status === 'removing') return CONTAINER_REMOVED;
  const engineError = state.Error ? ` (the engine: ${state.Error})` : '';
  if (state.OOMKilled) {
    const oom = oomKilledSentence(details.HostConfig?.Memory ?? null);
    // The OOM killer took one of its processes, and the container's program ended otherwise.
    return signalOfExitCode(state.ExitCode) === 'SIGKILL' ? oom : `exited with code ${state.ExitCode} after one of its processes was ${oom}`;
  }
  const signal = signalOfExitCode(state.ExitCode);
  if (signal) return `killed by ${signal} (exit code ${state.ExitCode})${engineError}`;
  return engineError ? `exited with code ${state.ExitCode}${engineError}` : state.ExitCode;
}

/**
 * How `container` ended once wait() has returned `statusCode`, from its inspect: see
 * describeStopped. A container the engine no longer knows (404): CONTAINER_REMOVED. An engine
 * that does not answer: the status code wait() gave.
 */
export async function containerEnding(container: Docker.Container, statusCode: number): Promise<number | string> {
  try {
    return describeStopped((await container.inspect()) as StoppedContainer);
  } catch (error) {
    return (error as { statusCode?: number }).statusCode === 404 ? CONTAINER_REMOVED : statusCode;
  }
}
