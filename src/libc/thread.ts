// Naming a thread: prctl(2) PR_SET_NAME sets the calling thread's name, the `comm` that
// /proc/PID/task/TID/comm, `ps -L` and `top -H` show (at most 15 bytes). iolab's servers name the
// threads that run a model's code `iolab:...`, so that the tracer can tell the model's calls from
// those of the language runtime's own threads (see src/tracer/strace-log.ts).
import { check, libc } from './call.js';

const c = {
  prctl: libc.func('int prctl(int option, ...)'),
};

/** prctl(2): the option that sets the calling thread's name. */
const PR_SET_NAME = 15;
/** The kernel keeps 16 bytes of a thread's name, its terminating NUL included. */
export const THREAD_NAME_MAX = 15;

/** Names the calling thread; a longer name is an error rather than silently cut. */
export function setThreadName(name: string): void {
  if (Buffer.byteLength(name) > THREAD_NAME_MAX) throw new RangeError(`thread name ${JSON.stringify(name)} is longer than ${THREAD_NAME_MAX} bytes`);
  check('prctl', c.prctl(PR_SET_NAME, 'str', name));
}
