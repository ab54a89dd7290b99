// The lab file: which models, under which clients, for how long, with which limits. YAML on disk
// (labs/NAME.yaml), validated here; a bad file names the field and what was expected.
import { z } from 'zod';
import { models } from '../servers/index.js';
import { isVerdictRule, VERDICT_RULE_NAMES, VERDICT_RULES } from '../shared/verdicts.js';

const modelNames = models.map((model) => model.name);

/** The most measured runs per server a lab may ask for (its `repetitions`, or --repetitions). */
export const MAX_REPETITIONS = 50;

export const ClientSpecSchema = z
  .object({
    /** shown in the report; defaults to MODE-INDEX. */
    name: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes').optional(),
    /** echo: ping-pong and verify; hold: keep connections idle while a probe asks. */
    mode: z.enum(['echo', 'hold']),
    /** hold may have 0: the probe alone. */
    connections: z.number().int().min(0).max(100_000),
    messageSize: z.number().int().min(1).max(16 * 1024 * 1024).default(64),
    /**
     * echo only: requests per second per connection, sent open-loop, each at its scheduled send
     * time and timed from it (src/clients/rate.ts); absent: closed loop, each request as soon as
     * the last reply came.
     */
    rate: z.number().positive('requests per second per connection, above 0').max(100_000, 'at most 100,000 requests per second per connection').optional(),
  })
  .strict()
  .refine((client) => client.mode !== 'echo' || client.connections >= 1, {
    message: 'at least 1 connection for an echo client',
    path: ['connections'],
  })
  .refine((client) => client.mode === 'echo' || client.rate === undefined, {
    message: 'a rate is for an echo client (open-loop requests); a hold client sends none',
    path: ['rate'],
  });

const VerdictSpec = z
  .union([z.string(), z.object({ rule: z.string(), client: z.string() }).strict()])
  .transform((verdict) => (typeof verdict === 'string' ? { rule: verdict, client: null } : verdict));

/** A model's name; a path is a server of one's own, given as { server: PATH }. */
const ModelName = z.string().refine((name) => modelNames.includes(name), (name) => ({
  message: /[/.]/.test(name)
    ? `a model's name; a server of one's own is { server: ${name} } (optionally with as: MODEL)`
    : `a model, one of: ${modelNames.join(', ')}; or a server of one's own, { server: DIR }`,
}));

const Label = z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes');
const VariantCommon = {
  /** how the report names it; defaults to the model's name (a server of one's own: its directory's). */
  label: Label.optional(),
  /** overrides the lab's nofile for this variant. */
  nofile: z.number().int().min(16).max(1_048_576).optional(),
  /**
   * runs this server's measured runs under this tracer (none: untraced), whatever the lab's
   * tracer: a lab that measures what a tracer does to the server it watches.
   */
  tracer: z.enum(['none', 'bpf', 'strace']).optional(),
};

export const ModelVariantSchema = z
  .object({
    model: ModelName,
    ...VariantCommon,
    options: z
      .object({
        threads: z.number().int().min(1).max(1024).optional(),
        blockingCallMs: z.number().int().min(0).max(60_000).optional(),
        drain: z.boolean().optional(),
      })
      .strict()
      .default({}),
  })
  .strict();

/**
 * A server of one's own: `server: DIR`, a directory in the form of a graded submission
 * (src/grade/submission.ts: server.py, server.c, server.ts/js, a Makefile, a Dockerfile or
 * iolab.yaml), or `command: [...]`, run in `server`'s directory or else the lab file's. Relative
 * paths are the lab file's. `as`: the model it claims to be, whose fingerprint and traits judge it;
 * without it, the lab classifies it by its fingerprint.
 */
export const ServerVariantSchema = z
  .object({
    server: z.string().min(1).optional(),
    /** a list of words, or one string run by sh -c (as in a submission's iolab.yaml). */
    command: z
      .union([z.array(z.string().min(1)).min(1), z.string().min(1)])
      .transform((command) => (typeof command === 'string' ? ['sh', '-c', command] : command))
      .optional(),
    as: ModelName.optional(),
    ...VariantCommon,
    label: Label.refine((label) => !modelNames.includes(label), { message: "a name of its own, not a model's (the report would read it as that model)" }).optional(),
  })
  .strict()
  .refine((variant) => variant.server !== undefined || variant.command !== undefined, { message: "server: DIR or command: [...], for a server of one's own" });

/**
 * One server of a lab: a model of the registry (it has `model:`), or a server of one's own. Chosen
 * by that key, so that an error names the field that is wrong rather than "invalid input".
 */
export const VariantSchema = z.record(z.unknown()).transform((entry, context) => {
  if ('model' in entry && ('server' in entry || 'command' in entry)) {
    const other = 'server' in entry ? 'server' : 'command';
    context.addIssue({ code: 'custom', path: [other], message: `no ${other} beside model: a model of the registry is { model: NAME }, a server of one's own { ${other}: ..., as: NAME }` });
    return z.NEVER;
  }
  const parsed = 'model' in entry ? ModelVariantSchema.safeParse(entry) : ServerVariantSchema.safeParse(entry);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) context.addIssue(issue as z.IssueData);
  return z.NEVER;
});

export const LabSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes'),
    title: z.string().min(1),
    /** the course's claim this lab measures, in one or two sentences. */
    claim: z.string().min(1),
    description: z.string().optional(),
    /** part of the suite that `iolab run` (no lab named) and `npm start` run. */
    default: z.boolean().default(false),
    /**
     * the servers to compare: a model's name, a variant of a model with its own options or nofile,
     * or a server of one's own ({ server: DIR, as: select }).
     */
    models: z.array(z.union([ModelName, VariantSchema])).min(1),
    /**
     * run every model once per value: the named client's connection count takes each value in
     * turn (an idle crowd growing from 0 to 4,000, a load sweeping past 1,024 connections).
     */
    sweep: z
      .object({
        client: z.string(),
        connections: z.array(z.number().int().min(0).max(100_000)).min(1),
      })
      .strict()
      .optional(),
    /**
     * the rule in src/analysis/claims.ts that turns the measurements into a verdict on the claim,
     * and the client it measures: `{ rule: starvation, client: asker }`, or just the rule's name
     * for a rule that measures no client in particular (fingerprints); or a list of rules, each
     * judging its part of the claim (`[fingerprints, two-phases]`).
     */
    verdict: z
      .union([VerdictSpec, z.array(VerdictSpec).min(1)])
      .transform((verdict) => (Array.isArray(verdict) ? verdict : [verdict]))
      .optional(),
    /** seconds of load per run. */
    duration: z.number().positive().max(3600).default(3),
    /** measured runs per model, interleaved (A B C, A B C, ...); the report quotes medians. */
    repetitions: z.number().int().min(1).max(MAX_REPETITIONS).default(1),
    /**
     * whether the lab counts syscalls. With the eBPF observer (--tracer bpf, the default where the
     * machine allows it) every measured run is counted and this only says yes or no. With strace,
     * which stops the server at every call, the counts come from runs of their own after the
     * measured ones: true is one per model, false none; a number, for a lab whose verdict
     * compares syscall counts (a comparison needs several runs per server to know the spread).
     */
    trace: z.union([z.boolean(), z.number().int().min(1).max(20)]).default(true),
    /** RLIMIT_NOFILE (soft = hard) of the server process; unset: the runtime's default. */
    nofile: z.number().int().min(16).max(1_048_576).optional(),
    /** started in order; each one's connections are established before the next starts. */
    clients: z.array(ClientSpecSchema).min(1),
  })
  .strict()
  .superRefine((lab, context) => {
    const labels = variantsOf(lab).map((variant) => variant.label);
    labels.forEach((label, index) => {
      if (labels.indexOf(label) !== index) {
        context.addIssue({ code: 'custom', path: ['models', index], message: `a label of its own: "${label}" names two servers (give one a label)` });
      }
    });
    if (lab.sweep && !lab.clients.some((client) => client.name === lab.sweep!.client)) {
      context.addIssue({ code: 'custom', path: ['sweep', 'client'], message: `the name of one of the lab's clients, not "${lab.sweep.client}"` });
    }
    lab.verdict?.forEach((verdict, index) => checkVerdict(verdict, lab.clients, context, lab.verdict!.length > 1 ? ['verdict', index] : ['verdict']));
    const names = lab.clients.map((client, index) => client.name ?? `${client.mode}-${index + 1}`);
    names.forEach((name, index) => {
      if (names.indexOf(name) !== index) {
        context.addIssue({ code: 'custom', path: ['clients', index, 'name'], message: `a name of its own: "${name}" names two clients` });
      }
    });
    lab.models.forEach((entry, index) => {
      if (typeof entry === 'string' || !('model' in entry)) return;
      const takes = models.find((m) => m.name === entry.model)?.options ?? [];
      for (const option of Object.keys(entry.options)) {
        if (!(takes as readonly string[]).includes(option)) {
          const which = takes.length ? `one of the options ${entry.model} takes (${takes.join(', ')})` : `no option: ${entry.model} takes none`;
          context.addIssue({ code: 'custom', path: ['models', index, 'options', option], message: which });
        }
      }
    });
  });

/** The verdict names a rule that exists and, when the rule measures a client, a client of the lab in the mode it needs. */
function checkVerdict(verdict: { rule: string; client: string | null }, clients: ClientSpec[], context: z.RefinementCtx, at: (string | number)[]): void {
  if (!isVerdictRule(verdict.rule)) {
    const path = verdict.client === null ? at : [...at, 'rule'];
    context.addIssue({ code: 'custom', path, message: `a verdict rule, one of: ${VERDICT_RULE_NAMES.join(', ')}` });
    return;
  }
  const needs = VERDICT_RULES[verdict.rule].client;
  const modeClients = (mode: string) => clients.filter((c) => c.mode === mode && c.name).map((c) => c.name!);
  if (needs === null) {
    if (verdict.client !== null) context.addIssue({ code: 'custom', path: [...at, 'client'], message: `no client: the rule ${verdict.rule} measures none` });
    return;
  }
  const candidates = modeClients(needs.mode);
  const example = candidates[0] ?? 'NAME';
  if (verdict.client === null) {
    context.addIssue({
      code: 'custom',
      path: at,
      message: `the rule and the client it measures, { rule: ${verdict.rule}, client: ${example} }: the ${needs.mode} client that ${needs.role}`,
    });
    return;
  }
  const client = clients.find((c) => c.name === verdict.client);
  if (!client || client.mode !== needs.mode) {
    context.addIssue({
      code: 'custom',
      path: [...at, 'client'],
      message: `the name of one of the lab's ${needs.mode} clients (${candidates.length ? candidates.join(', ') : 'it has none'}): the one that ${needs.role}; not "${verdict.client}"`,
    });
    return;
  }
  if ('openLoop' in needs && needs.openLoop && client.rate === undefined) {
    const index = clients.indexOf(client);
    context.addIssue({ code: 'custom', path: ['clients', index, 'rate'], message: `a rate (requests per second per connection): the rule ${verdict.rule} judges latency under an open-loop load, and ${verdict.client} is closed-loop without one` });
  }
}

export type Lab = z.infer<typeof LabSchema>;

/** How many traced runs per server a lab asks for (its `trace`). */
export function traceRunsOf(lab: Pick<Lab, 'trace'>): number {
  return lab.trace === true ? 1 : lab.trace === false ? 0 : lab.trace;
}
/** A server of one's own, as a lab file gives it (paths as written, not yet resolved). */
export interface OwnServer {
  /** its directory, as given (relative: to the lab file's directory), or null. */
  dir: string | null;
  /** how it starts, or null: as its directory's files say (src/grade/submission.ts). */
  command: string[] | null;
  /** the model it claims to be, or null: classified by its fingerprint. */
  as: string | null;
}

export type Variant = {
  label: string;
  /** the model it runs or, for a server of one's own, the model it claims to be (`as`), else its label. */
  model: string;
  nofile: number | null;
  options: z.infer<typeof ModelVariantSchema>['options'];
  /** its own tracer for its measured runs (none: untraced); null: the lab's. */
  tracer: 'none' | 'bpf' | 'strace' | null;
  /** a server of one's own; null for a model of the registry. */
  own: OwnServer | null;
};

/** The label of a server of one's own without one: its directory's name, or its command's program, as a label. */
function ownLabel(dir: string | undefined, command: string[] | undefined): string {
  const base = dir ? (dir.replace(/\/+$/, '').split('/').pop() ?? 'server') : (command?.[command.length - 1]?.split('/').pop() ?? 'server');
  const label = base.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '').replace(/-+$/, '') || 'own-server';
  // A directory named like a model (./select) must not read as that model in the report.
  return modelNames.includes(label) ? `${label}-own` : label;
}

/** The lab's servers as variants: a plain model name is the model with the lab's settings. */
export function variantsOf(lab: Pick<Lab, 'models' | 'nofile'>): Variant[] {
  return lab.models.map((entry): Variant => {
    if (typeof entry === 'string') return { label: entry, model: entry, nofile: lab.nofile ?? null, options: {}, tracer: null, own: null };
    const common = { nofile: entry.nofile ?? lab.nofile ?? null, tracer: entry.tracer ?? null };
    if ('model' in entry) return { ...common, label: entry.label ?? entry.model, model: entry.model, options: entry.options, own: null };
    const label = entry.label ?? ownLabel(entry.server, entry.command);
    return { ...common, label, model: entry.as ?? label, options: {}, own: { dir: entry.server ?? null, command: entry.command ?? null, as: entry.as ?? null } };
  });
}
export type ClientSpec = z.infer<typeof ClientSpecSchema>;
