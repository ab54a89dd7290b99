// The lab file: which models, under which clients, for how long, with which limits. YAML on disk
// (labs/NAME.yaml), validated here; a bad file names the field and what was expected.
import { z } from 'zod';
import { models } from '../servers/index.js';

const modelNames = models.map((model) => model.name);

export const ClientSpecSchema = z
  .object({
    /** shown in the report; defaults to MODE-INDEX. */
    name: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes').optional(),
    /** echo: ping-pong and verify; hold: keep connections idle while a probe asks. */
    mode: z.enum(['echo', 'hold']),
    connections: z.number().int().min(1).max(100_000),
    messageSize: z.number().int().min(1).max(16 * 1024 * 1024).default(64),
  })
  .strict();

export const LabSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes'),
    title: z.string().min(1),
    /** the course's claim this lab measures, in one or two sentences. */
    claim: z.string().min(1),
    description: z.string().optional(),
    /** part of the suite that `iolab run` (no lab named) and `npm start` run. */
    default: z.boolean().default(false),
    models: z
      .array(z.string().refine((name) => modelNames.includes(name), { message: `a model, one of: ${modelNames.join(', ')}` }))
      .min(1),
    /** seconds of load per run. */
    duration: z.number().positive().max(3600).default(3),
    /** measured runs per model, interleaved (A B C, A B C, ...); the report quotes medians. */
    repetitions: z.number().int().min(1).max(50).default(1),
    /** one more run per model with strace attached, for the syscall counts. */
    trace: z.boolean().default(true),
    /** RLIMIT_NOFILE (soft = hard) of the server process; unset: the runtime's default. */
    nofile: z.number().int().min(16).max(1_048_576).optional(),
    /** started in order; each one's connections are established before the next starts. */
    clients: z.array(ClientSpecSchema).min(1),
  })
  .strict();

export type Lab = z.infer<typeof LabSchema>;
export type ClientSpec = z.infer<typeof ClientSpecSchema>;
