// Finding, reading and validating lab files. Errors name the file, the field path, the line and
// what was expected; a lab with any error does not run.
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabFileError, UsageError } from '../errors.js';
import { type Lab, LabSchema } from './schema.js';
import { parseYamlFile } from '../shared/yaml-file.js';

/** labs/ at the top of the package (this file is src/labs/ or dist/labs/). */
export const LABS_DIR = fileURLToPath(new URL('../../labs/', import.meta.url));

export interface LoadedLab {
  lab: Lab;
  file: string;
}

/** Parses and validates the text of a lab file; `file` is used in errors only. */
export function parseLab(text: string, file: string): Lab {
  const { value: lab, lineOf } = parseYamlFile(text, file, LabSchema, 'lab fields (name, title, claim, models, clients, ...)');
  const expectedName = basename(file).replace(/\.ya?ml$/, '');
  if (lab.name !== expectedName && file.endsWith('ml')) {
    const line = lineOf(['name']);
    throw new LabFileError(file, [`name: "${lab.name}" does not match the file name (expected "${expectedName}")${line ? ` (line ${line})` : ''}`]);
  }
  return lab;
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
