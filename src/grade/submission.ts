// A student's submission: a directory holding one of (looked for in this order)
//   iolab.yaml   `command: ...` names how to start the server (a string runs under sh -c)
//   Dockerfile   built FROM the grading image (build argument IOLAB_IMAGE), run as its CMD
//   server.py    python3 server.py (Debian's /usr/bin/python3 where there is one: the Python models')
//   server.ts    transpiled to server.mjs (no type checking), node server.mjs
//   server.js    node server.js
//   Makefile     C (or makefile, GNUmakefile): `make` builds its first target, which must be ./server
//   server.c     C: gcc -O2 -D_FORTIFY_SOURCE=2 -Wall -pthread -o server server.c; ./server
// The server listens on the port in env PORT on every interface and speaks the echo protocol.
// The grader works on a copy (prepared here), never on the student's directory itself. A C server
// is built by the sandbox, where it runs (on this machine for the local sandbox, in the image
// build for Docker), always from source: a `server` binary or object files handed in are not
// copied. _FORTIFY_SOURCE=2 as Debian and Ubuntu build their packages: an FD_SET past
// FD_SETSIZE aborts ("*** bit out of range") as it would in a packaged program. A compile error
// is the student's mistake, named like a TypeScript syntax error: "server.c:LINE:COL: error: ...".
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import ts from 'typescript';
import { z } from 'zod';
import { LabFileError } from '../errors.js';
import { parseYamlFile } from '../shared/yaml-file.js';
import { pythonInterpreter } from '../servers/index.js';

/** The submission cannot be run as handed in: the student's mistake, graded as such. */
export class SubmissionError extends Error {
  override readonly name = 'SubmissionError';

  constructor(
    message: string,
    /** no server found (or a bad iolab.yaml), or one that does not compile (syntax, link, Makefile). */
    readonly mistake: 'no-server' | 'does-not-build' = 'no-server',
  ) {
    super(message);
  }
}

export type SubmissionKind = 'command' | 'dockerfile' | 'python' | 'typescript' | 'javascript' | 'c';

/** How a C server without a Makefile is built, in its directory. */
export const C_COMPILE = ['gcc', '-O2', '-D_FORTIFY_SOURCE=2', '-Wall', '-pthread', '-o', 'server', 'server.c'];
/** The names GNU make reads, in its order. */
const MAKEFILES = ['GNUmakefile', 'makefile', 'Makefile'];
/** How a C server with a Makefile is built: its first target, which must make ./server. */
export const C_MAKE = ['make'];
/** What a C server's build must leave behind, and what runs. */
export const C_BINARY = 'server';
/** What a Makefile that builds something else than ./server is told. */
export const NO_C_BINARY = 'make finished without building ./server: the first target of the Makefile must build the server as ./server';
/** Built from source: what a build leaves is not copied from the submission. */
const C_BUILD_PRODUCTS = (file: string) => file === C_BINARY || file.endsWith('.o');

export interface PreparedSubmission {
  /** the directory handed in. */
  source: string;
  /** the student's name in a batch: the directory's name. */
  name: string;
  kind: SubmissionKind;
  /** how the server is started; null for a Dockerfile (its CMD). */
  command: string[] | null;
  /** how the sandbox builds it in its directory before it runs (C: make, or gcc); null: nothing to build. */
  build: string[] | null;
  /** the prepared copy: what the sandbox runs (and, in Docker, the build context). */
  dir: string;
  /** its files, relative, '/'-separated. */
  files: string[];
  /** "server.py (Python)" */
  description: string;
  /** removes the prepared copy. */
  dispose(): Promise<void>;
}

const IolabYamlSchema = z
  .object({
    command: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
      errorMap: () => ({ message: 'expected the command that starts the server: a string, or a list of strings' }),
    }),
  })
  .strict();

/** Limits on what is copied: a submission is source code, not a dataset. */
const MAX_FILES = 2000;
const MAX_BYTES = 20 * 1024 * 1024;
const SKIPPED = new Set(['.git', 'node_modules', '__pycache__', '.venv', 'venv']);

async function listFiles(root: string, dir = root): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (SKIPPED.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await listFiles(root, path)));
    else if (entry.isFile()) files.push(relative(root, path).split('\\').join('/'));
  }
  return files;
}

/** Transpiles server.ts to ES module JavaScript; syntax errors are the student's and are named. */
export function transpileServer(source: string, file: string): string {
  const output = ts.transpileModule(source, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
  });
  const errors = (output.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    const first = errors[0];
    const where = first.file && first.start !== undefined ? first.file.getLineAndCharacterOfPosition(first.start) : null;
    const message = ts.flattenDiagnosticMessageText(first.messageText, '\n');
    throw new SubmissionError(`${file}${where ? `:${where.line + 1}:${where.character + 1}` : ''}: ${message}`, 'does-not-build');
  }
  return output.outputText;
}

/** gcc's "FILE:LINE:COL: error: ..." (or "fatal error"), the column left out with -fno-show-column. */
const COMPILE_ERROR = /^(.+?):(\d+)(?::(\d+))?: (?:fatal )?error: /;
const LINK_ERROR = /undefined reference to|multiple definition of|cannot find -l|ld returned \d+ exit status/;
const MAKEFILE_ERROR = /^(?:GNUmakefile|makefile|Makefile):\d+: \*\*\* /;
const MAKE_FAILED = /^make(?:\[\d+\])?: \*\*\* /;

/**
 * The student's mistake in the output of a failed C build (compiler, linker or make, in this
 * order), as the feedback shows it: the first compiler error with the source lines gcc prints
 * under it ("server.c:12:5: error: expected ';' before 'return'"), paths relative to the
 * submission (`buildDir` is where it was built). null when the output shows no such mistake: then
 * the build failed for a reason of the grader's (no compiler, killed), not the student's.
 */
export function buildMistake(output: string[], buildDir: string): string | null {
  const inSubmission = (line: string) => line.split(`${buildDir.replace(/\/+$/, '')}/`).join('').replace(/^\.\//, '');
  const compile = output.findIndex((line) => COMPILE_ERROR.test(line));
  if (compile >= 0) {
    // gcc's caret lines follow, indented: "    5 |     int x = (;" and "      |             ^"
    const context: string[] = [];
    for (const line of output.slice(compile + 1, compile + 4)) {
      if (!/^\s/.test(line)) break;
      context.push(line);
    }
    return [inSubmission(output[compile]), ...context].join('\n');
  }
  const link = output.findIndex((line) => LINK_ERROR.test(line));
  if (link >= 0) {
    // "/usr/bin/ld: /tmp/cc1.o: in function `main':" comes before "server.c:(.text+0x2c): undefined reference to `x'"
    const from = link > 0 && /\bld: .*in function/.test(output[link - 1]) ? link - 1 : link;
    return `linking failed: ${output.slice(from, link + 1).map(inSubmission).join('\n')}`;
  }
  const makefile = output.find((line) => MAKEFILE_ERROR.test(line));
  if (makefile) return inSubmission(makefile);
  const make = output.findIndex((line) => MAKE_FAILED.test(line));
  if (make >= 0) {
    // the line before "make: *** [Makefile:2: server] Error 127" is usually why: "/bin/sh: 1: clang: not found"
    const before = make > 0 ? output[make - 1] : '';
    const why = !MAKE_FAILED.test(before) && /not found|No such file|cannot|denied|error/i.test(before) ? [before] : [];
    return [...why, output[make]].map(inSubmission).join('\n');
  }
  if (output.includes(NO_C_BINARY)) return NO_C_BINARY;
  return null;
}

/**
 * Finds what the directory holds and prepares a copy to run. `command`: how to start it, whatever
 * the directory holds (a lab's `command: [...]`). Throws SubmissionError when it holds no server.
 */
export async function prepareSubmission(source: string, given?: string[]): Promise<PreparedSubmission> {
  let command: string[] | null = given ?? null;
  const info = await stat(source).catch(() => null);
  if (!info?.isDirectory()) throw new SubmissionError(`${source} is not a directory: hand in a directory with server.py, server.ts, server.js, server.c (or a Makefile), a Dockerfile or iolab.yaml`);
  const files = await listFiles(source);
  if (files.length > MAX_FILES) throw new SubmissionError(`${source} holds ${files.length} files; a submission may hold at most ${MAX_FILES}`);
  let bytes = 0;
  for (const file of files) bytes += (await stat(join(source, file))).size;
  if (bytes > MAX_BYTES) throw new SubmissionError(`${source} holds ${(bytes / 1048576).toFixed(1)} MB; a submission may hold at most ${MAX_BYTES / 1048576} MB`);

  const has = (name: string) => files.includes(name);
  let kind: SubmissionKind;
  let description: string;
  let build: string[] | null = null;
  if (given) {
    [kind, description] = ['command', `the command ${given.join(' ')}`];
  } else if (has('iolab.yaml')) {
    const file = join(source, 'iolab.yaml');
    try {
      const { command: given } = parseYamlFile(await readFile(file, 'utf8'), file, IolabYamlSchema, 'submission fields (command)').value;
      command = typeof given === 'string' ? ['sh', '-c', given] : given;
    } catch (error) {
      if (error instanceof LabFileError) throw new SubmissionError(error.message);
      throw error;
    }
    kind = 'command';
    description = `iolab.yaml (${command.join(' ')})`;
  } else if (has('Dockerfile')) {
    [kind, command, description] = ['dockerfile', null, 'Dockerfile'];
  } else if (has('server.py')) {
    // The python3 the Python models run on (Debian's, with gevent), not whichever is first on PATH.
    [kind, command, description] = ['python', [pythonInterpreter(), 'server.py'], 'server.py (Python)'];
  } else if (has('server.ts')) {
    [kind, command, description] = ['typescript', ['node', 'server.mjs'], 'server.ts (TypeScript)'];
  } else if (has('server.js')) {
    [kind, command, description] = ['javascript', ['node', 'server.js'], 'server.js (JavaScript)'];
  } else if (MAKEFILES.some(has)) {
    [kind, command, build, description] = ['c', [`./${C_BINARY}`], C_MAKE, `${MAKEFILES.find(has)} (C)`];
  } else if (has('server.c')) {
    [kind, command, build, description] = ['c', [`./${C_BINARY}`], C_COMPILE, 'server.c (C)'];
  } else {
    const seen = files.length ? `it holds ${files.slice(0, 8).join(', ')}${files.length > 8 ? ', ...' : ''}` : 'it is empty';
    throw new SubmissionError(`${source} has no server.py, server.ts, server.js, server.c, Makefile, Dockerfile or iolab.yaml (${seen})`);
  }
  // A C server is built from its source: no binary or object file of the student's machine runs.
  const copied = kind === 'c' ? files.filter((file) => !C_BUILD_PRODUCTS(file)) : files;

  const dir = await mkdtemp(join(tmpdir(), 'iolab-submission-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    for (const file of copied) await cp(join(source, file), join(dir, file));
    if (kind === 'typescript') {
      const text = await readFile(join(source, 'server.ts'), 'utf8');
      await writeFile(join(dir, 'server.mjs'), transpileServer(text, 'server.ts'));
      copied.push('server.mjs');
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  return { source, name: basename(source), kind, command, build, dir, files: copied, description, dispose };
}
