// The lab file of an experiment lab: a course experiment run as short Python scripts
// (src/experiments/), not a server under client load. It names its experiment and that
// experiment's parameters; everything else (the arms, the claims each arm is judged on) belongs to
// the experiment (src/labs/experiments.ts). YAML on disk, validated here: a bad field is named
// with its path and line, like a model lab's (src/labs/schema.ts).
//
//   name: switching
//   title: ...
//   claim: ...
//   experiment: switching
//   repetitions: 5
//   parameters: { jobs: 4, steps: 200000, waits: 3, waitMs: 100 }
import { basename } from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { z } from 'zod';
import { LabFileError } from '../errors.js';
import { EXPERIMENT_NAMES } from '../shared/experiments.js';
import { parseYamlFile } from '../shared/yaml-file.js';
import { MAX_REPETITIONS, type Lab } from './schema.js';

const Name = z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes');

/**
 * A wait shorter than this would be lost in the noise of a busy machine (timer slack, a few ms of
 * scheduling): the experiments compare sums of waits with single waits.
 */
const SHORTEST_WAIT_MS = 10;
/** The longest wait a lab may ask for: 10 s, so that a mistyped lab cannot hang for hours. */
const LONGEST_WAIT_MS = 10_000;

const common = {
  name: Name,
  title: z.string().min(1),
  /** the course's claim this lab measures, in the course's words. */
  claim: z.string().min(1),
  description: z.string().optional(),
  /** part of the suite that `iolab run` (no lab named) runs. */
  default: z.boolean().default(false),
  /** how often every arm runs, interleaved (A B C, A B C, ...); the report quotes medians. Comparisons need 4. */
  repetitions: z.number().int().min(1).max(MAX_REPETITIONS).default(5),
};

export const ConcurrentClientLabSchema = z
  .object({
    ...common,
    experiment: z.literal('concurrent-client'),
    parameters: z
      .object({
        /** K: how many slow servers the client fetches from. */
        servers: z.number().int().min(2).max(64).default(8),
        /** D: how long each server waits before it answers a request, ms. */
        delayMs: z.number().int().min(SHORTEST_WAIT_MS).max(LONGEST_WAIT_MS).default(200),
      })
      .strict()
      .default({}),
  })
  .strict();

export const SwitchingLabSchema = z
  .object({
    ...common,
    experiment: z.literal('switching'),
    parameters: z
      .object({
        /** N: the jobs every arm runs. */
        jobs: z.number().int().min(2).max(64).default(4),
        /** CPU-only jobs: steps of each job, with a switch after every step. */
        steps: z.number().int().min(1).max(2_000_000).default(200_000),
        /** jobs that wait on IO: round trips to the slow server each job makes, one after the other. */
        waits: z.number().int().min(1).max(100).default(3),
        /** W: how long the slow server waits before it answers each round trip, ms. */
        waitMs: z.number().int().min(SHORTEST_WAIT_MS).max(LONGEST_WAIT_MS).default(100),
      })
      .strict()
      .default({}),
  })
  .strict();

export const ExperimentLabSchema = z.discriminatedUnion('experiment', [ConcurrentClientLabSchema, SwitchingLabSchema], {
  errorMap: (issue, context) =>
    issue.code === 'invalid_union_discriminator' ? { message: `expected an experiment, one of: ${EXPERIMENT_NAMES.join(', ')}` } : { message: context.defaultError },
});

export type ConcurrentClientLab = z.infer<typeof ConcurrentClientLabSchema>;
export type SwitchingLab = z.infer<typeof SwitchingLabSchema>;
/** An experiment lab, validated, with its defaults filled in. */
export type ExperimentLab = z.infer<typeof ExperimentLabSchema>;

/** Whether a lab file's text declares an experiment (a top-level `experiment:`); false for text that is not YAML, left to the model lab's parser to explain. */
export function declaresExperiment(text: string): boolean {
  const document = parseDocument(text);
  return document.errors.length === 0 && isMap(document.contents) && document.has('experiment');
}

/**
 * Parses and validates the text of an experiment lab's file; `file` is used in errors only.
 * Throws LabFileError naming the file, each bad field's path and line, and what was expected.
 */
export function parseExperimentLab(text: string, file: string): ExperimentLab {
  const { value: lab, lineOf } = parseYamlFile(text, file, ExperimentLabSchema, 'lab fields (name, title, claim, experiment, parameters, ...)');
  const expectedName = basename(file).replace(/\.ya?ml$/, '');
  if (lab.name !== expectedName && file.endsWith('ml')) {
    const line = lineOf(['name']);
    throw new LabFileError(file, [`name: "${lab.name}" does not match the file name (expected "${expectedName}")${line ? ` (line ${line})` : ''}`]);
  }
  return lab;
}

/**
 * An experiment lab as the model labs' machinery sees it (what `iolab list`, the default suite and
 * LoadedLab.lab read): its name, title, claim and repetitions, with no servers and no clients.
 * What runs instead is LoadedLab.experiment (src/labs/experiment-runner.ts).
 */
export function experimentStandIn(experiment: ExperimentLab): Lab {
  return {
    name: experiment.name,
    title: experiment.title,
    claim: experiment.claim,
    description: experiment.description,
    default: experiment.default,
    models: [],
    clients: [],
    duration: 0,
    repetitions: experiment.repetitions,
    trace: false,
  };
}
