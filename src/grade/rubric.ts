// An exercise (labs/exercises/ID/): the task a student reads (README.md), starters, a reference
// solution, and rubric.yaml: which model's fingerprint the server must show and the checks that
// score it, each with its points. Validated here; a bad rubric names the file, field and line.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { LabFileError, UsageError } from '../errors.js';
import { LABS_DIR } from '../labs/load.js';
import { parseYamlFile } from '../shared/yaml-file.js';
import { models } from '../servers/index.js';

export const EXERCISES_DIR = join(LABS_DIR, 'exercises');

const points = z.number().positive().max(1000);
const seconds = z.number().positive().max(60);
const connections = z.number().int().min(1).max(5000);

/** The checks a rubric can list. Each kind appears at most once in a rubric. */
export const CheckSpecSchema = z.discriminatedUnion('check', [
  z.object({ check: z.literal('echo'), points }).strict(),
  z.object({ check: z.literal('large-message'), points, bytes: z.number().int().min(1024).max(16 << 20).default(64 * 1024) }).strict(),
  z.object({ check: z.literal('binary'), points }).strict(),
  z.object({ check: z.literal('concurrent'), points, clients: connections.default(50) }).strict(),
  z.object({ check: z.literal('disconnect'), points }).strict(),
  z.object({ check: z.literal('churn'), points, cycles: z.number().int().min(10).max(100_000).default(1000) }).strict(),
  z
    .object({
      check: z.literal('fingerprint'),
      points,
      /** connections echoing while strace counts (1 for a server that serves one at a time). */
      connections: connections.default(8),
      /** connections open but silent beside them: a busy loop sweeps them in vain. */
      idle: z.number().int().min(0).max(5000).default(8),
      seconds: seconds.default(2),
      /** the non-blocking exercise: most accept4/recvfrom calls must fail with EAGAIN. */
      eagainStorm: z.boolean().default(false),
    })
    .strict(),
  z.object({ check: z.literal('no-busy-loop'), points, idle: connections.default(20), seconds: seconds.default(2), maxCpuPercent: z.number().positive().default(25) }).strict(),
  z.object({ check: z.literal('busy-poll'), points, idle: connections.default(20), seconds: seconds.default(2), minCpuPercent: z.number().positive().default(50) }).strict(),
  /** the rubric's thread budget, checked with `connections` clients held open. */
  z.object({ check: z.literal('threads-per-connection'), points, connections: connections.default(50) }).strict(),
  z.object({ check: z.literal('select-ceiling'), points, connections: z.number().int().min(1030).max(5000).default(1100) }).strict(),
]);
export type CheckSpec = z.infer<typeof CheckSpecSchema>;
export type CheckKind = CheckSpec['check'];
export const CHECK_KINDS = CheckSpecSchema.options.map((option) => option.shape.check.value) as CheckKind[];

const modelNames = models.map((model) => model.name);

/**
 * The threads and processes the exercise's model may use, checked while the fingerprint check's
 * connections are open (and by a threads-per-connection check, when the rubric lists one):
 *   threads    one: one thread serves every connection (a runtime's few helper threads aside);
 *              per-connection: a thread for each connection
 *   processes  one: no process beside the server's own; per-connection: a process (fork) each
 */
export const BudgetSchema = z
  .object({
    threads: z.enum(['one', 'per-connection']),
    processes: z.enum(['one', 'per-connection']),
  })
  .strict();
export type Budget = z.infer<typeof BudgetSchema>;

export const RubricSchema = z
  .object({
    exercise: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes'),
    title: z.string().min(1),
    /** the model whose declared fingerprint (src/servers/MODEL.ts) the server must show. */
    model: z.string().refine((name) => modelNames.includes(name), { message: `a model, one of: ${modelNames.join(', ')}` }),
    budget: BudgetSchema,
    checks: z.array(CheckSpecSchema).min(1),
  })
  .strict()
  .superRefine((rubric, context) => {
    const seen = new Set<string>();
    rubric.checks.forEach((check, index) => {
      if (seen.has(check.check)) context.addIssue({ code: 'custom', path: ['checks', index, 'check'], message: `each check once; ${check.check} is listed twice` });
      seen.add(check.check);
    });
  });
export type Rubric = z.infer<typeof RubricSchema>;

export interface Exercise {
  id: string;
  dir: string;
  rubric: Rubric;
  /** the sum of the checks' points. */
  maxScore: number;
}

export function parseRubric(text: string, file: string, id: string | null = null): Rubric {
  const { value: rubric, lineOf } = parseYamlFile(text, file, RubricSchema, 'rubric fields (exercise, title, model, budget, checks)');
  if (id !== null && rubric.exercise !== id) {
    const line = lineOf(['exercise']);
    throw new LabFileError(file, [`exercise: "${rubric.exercise}" does not match its directory (expected "${id}")${line ? ` (line ${line})` : ''}`]);
  }
  return rubric;
}

export async function loadExercise(id: string, root = EXERCISES_DIR): Promise<Exercise> {
  const dir = join(root, id);
  const file = join(dir, 'rubric.yaml');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    const known = await listExerciseIds(root);
    throw new UsageError(`unknown exercise ${JSON.stringify(id)}; the exercises are: ${known.join(', ')}`);
  }
  const rubric = parseRubric(text, file, id);
  return { id, dir, rubric, maxScore: rubric.checks.reduce((sum, check) => sum + check.points, 0) };
}

export async function listExerciseIds(root = EXERCISES_DIR): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  const ids: string[] = [];
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    if (await stat(join(root, entry.name, 'rubric.yaml')).catch(() => null)) ids.push(entry.name);
  }
  return ids;
}

/** Every exercise, validated: one bad rubric fails the listing, naming its file. */
export async function loadAllExercises(root = EXERCISES_DIR): Promise<Exercise[]> {
  return Promise.all((await listExerciseIds(root)).map((id) => loadExercise(id, root)));
}
