// Finding, reading and validating lab files. Errors name the file, the field path, the line and
// what was expected; a lab with any error does not run.
import { readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabFileError, UsageError } from '../errors.js';
import { models } from '../servers/index.js';
import { type Lab, LabSchema, variantsOf } from './schema.js';
import { parseYamlFile } from '../shared/yaml-file.js';
import { declaresExperiment, experimentStandIn, parseExperimentLab, type ExperimentLab } from './experiment-schema.js';

/** labs/ at the top of the package (this file is src/labs/ or dist/labs/). */
export const LABS_DIR = fileURLToPath(new URL('../../labs/', import.meta.url));

export interface LoadedLab {
  lab: Lab;
  file: string;
  /** an experiment lab's experiment (src/labs/experiment-schema.ts); `lab` is then its stand-in, with no servers and no clients. */
  experiment?: ExperimentLab;
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
  if (declaresExperiment(text)) {
    const experiment = parseExperimentLab(text, file);
    return { lab: experimentStandIn(experiment), file, experiment };
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

/** What the command line changes in a lab's servers (`iolab run LAB --models a,b --server DIR`). */
export interface ServerChoice {
  /** only these servers: each a label of the lab's, or a model of the registry (added with the lab's settings). */
  models?: string[];
  /** a server of one's own added beside the lab's: its directory (resolved from the working directory), label and the model it claims. */
  server?: { dir: string; label?: string; as?: string };
}

/**
 * The lab with the servers the command line chose. An added server of one's own gets the lab's
 * nofile or, when it claims a model the lab runs with a nofile of its own, that one (fd-ceiling's
 * select runs with 8,192: so does a server that claims to be select). Throws UsageError naming
 * what is wrong: an unknown model or label, a label taken, an unknown `as`.
 */
export function chooseServers(loaded: LoadedLab, choice: ServerChoice): LoadedLab {
  const { lab } = loaded;
  if (loaded.experiment && (choice.models || choice.server)) {
    throw new UsageError(`lab ${lab.name} is an experiment (${loaded.experiment.experiment}): it runs scripts, not servers; --models and --server do not apply to it`);
  }
  let entries = [...lab.models];
  const labels = variantsOf(lab).map((variant) => variant.label);
  const modelNames = models.map((model) => model.name);
  if (choice.models) {
    entries = choice.models.map((name) => {
      const index = labels.indexOf(name);
      if (index >= 0) return lab.models[index];
      if (modelNames.includes(name)) return name;
      throw new UsageError(`--models: ${JSON.stringify(name)} is neither a server of lab ${lab.name} (${labels.join(', ')}) nor a model (${modelNames.join(', ')})`);
    });
  }
  if (choice.server) {
    const { dir, label, as } = choice.server;
    if (as !== undefined && !modelNames.includes(as)) throw new UsageError(`--as: ${JSON.stringify(as)} is not a model; the models are: ${modelNames.join(', ')}`);
    if (label !== undefined && !/^[a-z][a-z0-9-]*$/.test(label)) throw new UsageError(`--label: ${JSON.stringify(label)}: lower-case letters, digits and dashes, starting with a letter`);
    const claimed = as === undefined ? undefined : variantsOf(lab).find((variant) => variant.model === as && !variant.own);
    const nofile = lab.nofile ?? claimed?.nofile ?? undefined;
    entries.push({ server: resolve(dir), ...(label !== undefined && { label }), ...(as !== undefined && { as }), ...(nofile !== undefined && nofile !== null && { nofile }) });
  }
  const chosen: Lab = { ...lab, models: entries };
  const taken = variantsOf(chosen).map((variant) => variant.label);
  const twice = taken.find((name, index) => taken.indexOf(name) !== index);
  if (twice) throw new UsageError(`two servers of lab ${lab.name} are named ${JSON.stringify(twice)}: give --label another name`);
  return { ...loaded, lab: chosen };
}
