// Child processes that die with the process that started them, however it dies. A controller killed
// with SIGKILL runs no cleanup: its servers, clients and tracers (a bpftrace slows every system
// call of the machine while it runs) would live on, reparented to init. The kernel can see to it:
// prctl(2)'s PR_SET_PDEATHSIG sends a signal to a process when its parent thread ends, and the
// setting survives execve(2) (not that of a set-user-ID program). Node cannot set it between fork
// and exec, so util-linux's `setpriv --pdeathsig KILL -- COMMAND ARGS...` does: it sets it and
// execs COMMAND, which keeps setpriv's pid (an observer given that pid sees the command itself).
// Node spawns from its main thread, which lives as long as the process.
import { accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

/** An executable file named `name` on PATH (or `name` itself when it is a path, from `cwd`), or null. */
function findExecutable(name: string, cwd = '.'): string | null {
  const candidates = name.includes('/') ? [resolve(cwd, name)] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

let setpriv: string | null | undefined;

/**
 * The command line that runs `command` with `args` so that the kernel kills it (SIGKILL) when this
 * process ends: `setpriv --pdeathsig KILL -- COMMAND ARGS...` (setpriv(1), prctl(2)
 * PR_SET_PDEATHSIG); `cwd`: where the command will run, for a command given as a relative path. Unchanged where there is no setpriv (not Linux, no util-linux) or no such
 * command on PATH, so that spawning it fails as it would have (ENOENT). Never throws.
 */
export function diesWithThisProcess(command: string, args: readonly string[], cwd?: string): { command: string; args: string[] } {
  if (setpriv === undefined) setpriv = process.platform === 'linux' ? findExecutable('setpriv') : null;
  if (setpriv === null || findExecutable(command, cwd) === null) return { command, args: [...args] };
  return { command: setpriv, args: ['--pdeathsig', 'KILL', '--', command, ...args] };
}
