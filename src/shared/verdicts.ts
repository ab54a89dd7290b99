// The verdict rules a lab may name, what each needs from the lab, and the shape of a verdict in
// results.json. The rules themselves live in src/analysis/claims.ts; this list sits at the bottom
// of the import graph so that a lab file can be checked without loading the analysis.
import { z } from 'zod';

export interface VerdictRuleNeeds {
  /** the client whose figures the rule judges, the mode it must have and what it does ("asks while ..."); null: none. */
  client: { mode: 'echo' | 'hold'; role: string; openLoop?: boolean } | null;
}

export const VERDICT_RULES = {
  fingerprints: { client: null },
  starvation: { client: { mode: 'echo', role: 'asks while another holds its connection' } },
  'fd-ceiling': { client: { mode: 'hold', role: 'opens the crowd of idle connections the server must hold' } },
  'idle-scan': { client: { mode: 'echo', role: 'keeps one connection busy beside the idle crowd (the cost is per its round trip)' } },
  'one-connection': { client: { mode: 'echo', role: 'ping-pongs on its one connection' } },
  'threads-vs-events': { client: { mode: 'echo', role: 'opens the crowd of connections that cost threads or not' } },
  'lt-vs-et': { client: { mode: 'echo', role: 'sends messages larger than one read' } },
  'busy-poll': { client: { mode: 'hold', role: 'holds the idle crowd and probes the latency' } },
  coroutines: { client: { mode: 'echo', role: 'is served beside the one blocking coroutine' } },
  'two-phases': { client: null },
  'observer-effect': { client: null },
  c10k: { client: { mode: 'hold', role: 'holds the idle crowd the lab sweeps (up to the nofile limit) and probes the latency' } },
  'latency-under-load': { client: { mode: 'echo', role: 'offers every server the same open-loop load (its rate)', openLoop: true } },
} as const satisfies Record<string, VerdictRuleNeeds>;

export type VerdictRuleName = keyof typeof VERDICT_RULES;
export const VERDICT_RULE_NAMES = Object.keys(VERDICT_RULES) as VerdictRuleName[];

export function isVerdictRule(name: string): name is VerdictRuleName {
  return Object.hasOwn(VERDICT_RULES, name);
}

export const VERDICTS = ['holds', 'does not hold here', 'inconclusive'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** A figure a verdict rests on: a number, a word, the values of several repetitions, or null (not measured). */
export const FigureSchema = z.union([z.number().finite(), z.string(), z.array(z.number().finite()), z.null()]);

/** One judgement of a claim (or of one part of it), with the figures it rests on. */
export const ClaimPartSchema = z.object({
  /** what is claimed, in the course's words: "spins: at least 60% of a core with idle clients". */
  claim: z.string(),
  verdict: z.enum(VERDICTS),
  /** what was measured, one sentence with its numbers; for an inconclusive one, why. */
  measurement: z.string(),
});
export type ClaimPart = z.infer<typeof ClaimPartSchema>;

export const ClaimVerdictSchema = z.object({
  /** the rule that judged (src/analysis/claims.ts). */
  rule: z.string(),
  /** the server, the pair or the sweep the verdict is about. */
  subject: z.string(),
  /** holds only when every part holds; does not hold when a part does not; else inconclusive. */
  verdict: z.enum(VERDICTS),
  /** the parts' measurements joined: what the report prints beside the verdict. */
  measurement: z.string(),
  parts: z.array(ClaimPartSchema),
  /** the figures behind it, by name. */
  figures: z.record(z.string(), FigureSchema),
});
export type ClaimVerdict = z.infer<typeof ClaimVerdictSchema>;

/** A verdict of several parts: every part must hold; one that does not hold decides. */
export function combineVerdicts(verdicts: readonly Verdict[]): Verdict {
  if (verdicts.length === 0) return 'inconclusive';
  if (verdicts.includes('does not hold here')) return 'does not hold here';
  if (verdicts.includes('inconclusive')) return 'inconclusive';
  return 'holds';
}
