// Finding, reading and validating lab files. Errors name the file, the field path, the line and
// what was expected; a lab with any error does not run.
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, LineCounter, parseDocument } from 'yaml';
import type { ZodIssue } from 'zod';
import { fieldPath, LabFileError, UsageError } from '../errors.js';
import { type Lab, LabSchema } from './schema.js';

/** labs/ at the top of the package (this file is src/labs/ or dist/labs/). */
export const LABS_DIR = fileURLToPath(new URL('../../labs/', import.meta.url));

export interface LoadedLab {
  lab: Lab;
  file: string;
}

function describeIssue(issue: ZodIssue, lineOf: (path: (string | number)[]) => number | null): string {
  const field = fieldPath(issue.path) || '(top level)';
  const line = lineOf(issue.path);
  let message = issue.message;
  if (issue.code === 'invalid_type' && issue.received === 'undefined') message = `missing; expected ${issue.expected}`;
  else if (issue.code === 'invalid_type') message = `expected ${issue.expected}, got ${issue.received}`;
  else if (issue.code === 'unrecognized_keys') message = `unknown field(s) ${issue.keys.join(', ')}`;
  else if (issue.code === 'custom') message = `expected ${issue.message}`;
  return `${field}: ${message}${line ? ` (line ${line})` : ''}`;
}

/** Parses and validates the text of a lab file; `file` is used in errors only. */
export function parseLab(text: string, file: string): Lab {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (document.errors.length > 0) {
    throw new LabFileError(
      file,
      document.errors.map((error) => `YAML syntax: ${error.message.split('\n')[0]} (line ${lines.linePos(error.pos[0]).line})`),
    );
  }
  if (!isMap(document.contents)) throw new LabFileError(file, ['expected a mapping of lab fields (name, title, claim, models, clients, ...)']);

  const lineOf = (path: (string | number)[]): number | null => {
    for (let depth = path.length; depth >= 0; depth--) {
      const node = document.getIn(path.slice(0, depth), true) as { range?: [number, number, number] } | undefined;
      if (node?.range) return lines.linePos(node.range[0]).line;
    }
    return null;
  };
  const parsed = LabSchema.safeParse(document.toJS());
  if (!parsed.success) throw new LabFileError(file, parsed.error.issues.map((issue) => describeIssue(issue, lineOf)));

  const expectedName = basename(file).replace(/\.ya?ml$/, '');
  if (parsed.data.name !== expectedName && file.endsWith('ml')) {
    throw new LabFileError(file, [`name: "${parsed.data.name}" does not match the file name (expected "${expectedName}")${lineOf(['name']) ? ` (line ${lineOf(['name'])})` : ''}`]);
  }
  return parsed.data;
}

export async function loadLabFile(file: string): Promise<LoadedLab> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new LabFileError(file, [`cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`]);
  }
  return { lab: parseLab(text, file), file };
}

/** Every lab in labs/, validated. One bad file fails the whole listing, naming the file. */
export async function loadAllLabs(dir = LABS_DIR): Promise<LoadedLab[]> {
  const files = (await readdir(dir)).filter((name) => /\.ya?ml$/.test(name)).sort();
  return Promise.all(files.map((name) => loadLabFile(join(dir, name))));
}

/** A lab named on the command line: a name from labs/ or a path to a YAML file. */
export async function resolveLab(nameOrPath: string, dir = LABS_DIR): Promise<LoadedLab> {
  if (/\.ya?ml$/.test(nameOrPath) || nameOrPath.includes('/')) return loadLabFile(nameOrPath);
  const all = await loadAllLabs(dir);
  const found = all.find((loaded) => loaded.lab.name === nameOrPath);
  if (!found) throw new UsageError(`unknown lab ${JSON.stringify(nameOrPath)}; the labs are: ${all.map((l) => l.lab.name).join(', ')}`);
  return found;
}
