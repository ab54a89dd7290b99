// Common mistakes, each made on purpose in a copy of the epoll-echo reference solution: the
// grader's tests hand these in and expect the verdict and hint each mistake deserves. A mistake
// is a list of edits (text to find in the reference, what replaces it), so that each one shows
// exactly what differs from a correct server.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXERCISES_DIR } from '../src/grade/rubric.js';

const REFERENCE = join(EXERCISES_DIR, 'epoll-echo', 'reference', 'server.py');

export const MISTAKES = {
  // catches nothing but BlockingIOError: a reset (ConnectionResetError) ends the whole process
  'crash-on-reset': [
    ['    except OSError:                  # ConnectionResetError, BrokenPipeError, ...: peer gone\n        close(fd)\n        return\n', ''],
  ],
  // unreachable from the grader's clients, which run in other containers
  'loopback-only': [['listener.bind(("0.0.0.0", port))', 'listener.bind(("127.0.0.1", port))']],
  // ignores PORT
  'wrong-port': [['port = int(os.environ.get("PORT", "7000"))', 'port = 8081 if os.environ["PORT"] == "8080" else 8080']],
  // epoll_wait with timeout 0: it never sleeps, even with nothing to do
  'busy-epoll': [['ep.poll():', 'ep.poll(0):']],
  // one read, taken for the whole message: the connection is closed after the first reply
  'single-read': [
    ['sock.recv(65536)', 'sock.recv(4096)'],
    ['                buf += data.upper()  # bytes.upper() changes ASCII a-z only; other bytes stay\n', '                buf += data.upper()\n                closing.add(fd)\n'],
  ],
  // debug output left on: a thread writes to stdout as fast as the pipe takes it
  'output-flood': [
    ['import socket\n', 'import socket\nimport sys\nimport threading\n\nthreading.Thread(target=lambda: [sys.stdout.write("debug: " + "x" * 1000 + "\\n") for _ in iter(int, 1)], daemon=True).start()\n'],
  ],
} as const satisfies Record<string, readonly (readonly [string, string])[]>;

export type Mistake = keyof typeof MISTAKES;

/** Writes DIR/server.py: the reference with the mistake made. Each edit must apply exactly once. */
export async function writeMistake(mistake: Mistake, dir: string): Promise<void> {
  let text = await readFile(REFERENCE, 'utf8');
  for (const [find, replace] of MISTAKES[mistake]) {
    const at = text.indexOf(find);
    if (at < 0 || text.indexOf(find, at + 1) >= 0) throw new Error(`${mistake}: ${JSON.stringify(find.slice(0, 60))} is not in ${REFERENCE} exactly once`);
    text = text.slice(0, at) + replace + text.slice(at + find.length);
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'server.py'), `# epoll-echo with one mistake made on purpose: ${mistake}\n${text}`);
}
