// A student's submission: a directory holding one of (looked for in this order)
//   iolab.yaml   `command: ...` names how to start the server (a string runs under sh -c)
//   Dockerfile   built FROM the grading image (build argument IOLAB_IMAGE), run as its CMD
//   server.py    python3 server.py
//   server.ts    transpiled to server.mjs (no type checking), node server.mjs
//   server.js    node server.js
// The server listens on the port in env PORT on every interface and speaks the echo protocol.
// The grader works on a copy (prepared here), never on the student's directory itself.
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import ts from 'typescript';
import { z } from 'zod';
import { LabFileError } from '../errors.js';
import { parseYamlFile } from '../shared/yaml-file.js';

/** The submission cannot be run as handed in: the student's mistake, graded as such. */
export class SubmissionError extends Error {
  override readonly name = 'SubmissionError';
}

export type SubmissionKind = 'command' | 'dockerfile' | 'python' | 'typescript' | 'javascript';

export interface PreparedSubmission {
  /** the directory handed in. */
  source: string;
  /** the student's name in a batch: the directory's name. */
  name: string;
  kind: SubmissionKind;
  /** how the server is started; null for a Dockerfile (its CMD). */
  command: string[] | null;
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
    throw new SubmissionError(`${file}${where ? `:${where.line + 1}:${where.character + 1}` : ''}: ${message}`);
  }
  return output.outputText;
}

/** Finds what the directory holds and prepares a copy to run. Throws SubmissionError when it holds no server. */
export async function prepareSubmission(source: string): Promise<PreparedSubmission> {
  const info = await stat(source).catch(() => null);
  if (!info?.isDirectory()) throw new SubmissionError(`${source} is not a directory: hand in a directory with server.py, server.ts, server.js, a Dockerfile or iolab.yaml`);
  const files = await listFiles(source);
  if (files.length > MAX_FILES) throw new SubmissionError(`${source} holds ${files.length} files; a submission may hold at most ${MAX_FILES}`);
  let bytes = 0;
  for (const file of files) bytes += (await stat(join(source, file))).size;
  if (bytes > MAX_BYTES) throw new SubmissionError(`${source} holds ${(bytes / 1048576).toFixed(1)} MB; a submission may hold at most ${MAX_BYTES / 1048576} MB`);

  const has = (name: string) => files.includes(name);
  let kind: SubmissionKind;
  let command: string[] | null;
  let description: string;
  if (has('iolab.yaml')) {
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
    [kind, command, description] = ['python', ['python3', 'server.py'], 'server.py (Python)'];
  } else if (has('server.ts')) {
    [kind, command, description] = ['typescript', ['node', 'server.mjs'], 'server.ts (TypeScript)'];
  } else if (has('server.js')) {
    [kind, command, description] = ['javascript', ['node', 'server.js'], 'server.js (JavaScript)'];
  } else {
    const seen = files.length ? `it holds ${files.slice(0, 8).join(', ')}${files.length > 8 ? ', ...' : ''}` : 'it is empty';
    throw new SubmissionError(`${source} has no server.py, server.ts, server.js, Dockerfile or iolab.yaml (${seen})`);
  }

  const dir = await mkdtemp(join(tmpdir(), 'iolab-submission-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    for (const file of files) await cp(join(source, file), join(dir, file));
    if (kind === 'typescript') {
      const text = await readFile(join(source, 'server.ts'), 'utf8');
      await writeFile(join(dir, 'server.mjs'), transpileServer(text, 'server.ts'));
      files.push('server.mjs');
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  return { source, name: basename(source), kind, command, dir, files, description, dispose };
}
