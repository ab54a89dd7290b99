// Finding, reading and validating lab files. Errors name the file, the field path, the line and
// what was expected; a lab with any error does not run.
import { statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabFileError, UsageError } from '../errors.js';
import { models } from '../servers/index.js';
import { type Lab, LabSchema, MAX_REPETITIONS, variantsOf } from './schema.js';
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

/**
 * The lab with `repetitions` measured runs per server (--repetitions N) instead of its own: an
 * experiment lab's arms likewise. Throws UsageError unless N is an integer from 1 to 50.
 */
export function withRepetitions(loaded: LoadedLab, repetitions: number): LoadedLab {
  if (!Number.isInteger(repetitions) || repetitions < 1 || repetitions > MAX_REPETITIONS) {
    throw new UsageError(`--repetitions must be a whole number from 1 to ${MAX_REPETITIONS}, got ${repetitions}`);
  }
  return {
    ...loaded,
    lab: { ...loaded.lab, repetitions },
    ...(loaded.experiment && { experiment: { ...loaded.experiment, repetitions } }),
  };
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
 * The nofile of a server of one's own added to `lab`: the lab's; else that of the model it claims
 * where the lab runs that model with a nofile of its own (fd-ceiling's select: 8,192); else the one
 * most of the lab's servers run with (fd-ceiling: 8,192); else none (the runtime's default).
 */
function nofileOf(lab: Lab, as: string | undefined): { nofile?: number } {
  if (lab.nofile !== undefined) return { nofile: lab.nofile };
  const variants = variantsOf(lab).filter((variant) => !variant.own);
  const claimed = variants.find((variant) => variant.model === as && variant.nofile !== null)?.nofile;
  if (claimed) return { nofile: claimed };
  const counts = new Map<number, number>();
  for (const variant of variants) if (variant.nofile !== null) counts.set(variant.nofile, (counts.get(variant.nofile) ?? 0) + 1);
  const most = [...counts].sort((a, b) => b[1] - a[1])[0];
  return most && most[1] * 2 > variants.length ? { nofile: most[0] } : {};
}

/**
 * The lab with the servers the command line chose. An added server of one's own gets a nofile as
 * nofileOf says. Throws UsageError naming what is wrong: an unknown model or label, a label taken
 * or a model's name, an unknown `as`, a directory that is not there.
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
    if (dir.trim() === '' || !statSync(resolve(dir), { throwIfNoEntry: false })?.isDirectory()) {
      throw new UsageError(`--server ${JSON.stringify(dir)}: no such directory; give the directory that holds your server (server.py, server.c, server.js, a Makefile, a Dockerfile or iolab.yaml)`);
    }
    if (as !== undefined && !modelNames.includes(as)) throw new UsageError(`--as: ${JSON.stringify(as)} is not a model; the models are: ${modelNames.join(', ')}`);
    if (label !== undefined && !/^[a-z][a-z0-9-]*$/.test(label)) throw new UsageError(`--label: ${JSON.stringify(label)}: lower-case letters, digits and dashes, starting with a letter`);
    // A model's name would read as that model in the report.
    if (label !== undefined && modelNames.includes(label)) throw new UsageError(`--label: ${JSON.stringify(label)} is a model's name; give your server a name of its own`);
    entries.push({ server: resolve(dir), ...(label !== undefined && { label }), ...(as !== undefined && { as }), ...nofileOf(lab, as) });
  }
  const chosen: Lab = { ...lab, models: entries };
  const taken = variantsOf(chosen).map((variant) => variant.label);
  const twice = taken.find((name, index) => taken.indexOf(name) !== index);
  if (twice) throw new UsageError(`two servers of lab ${lab.name} are named ${JSON.stringify(twice)}: give --label another name`);
  return { ...loaded, lab: chosen };
}
