// The grade of one submission: one versioned schema, written as grade.json and read by every
// output format (Markdown feedback, Gradescope, JUnit) and by the batch's gradebook.
import { z } from 'zod';

export const GRADE_SCHEMA_VERSION = 1;

export const HintSchema = z.object({
  /** a stable name: loopback-only, wrong-port, never-listens, crash-on-reset, single-read, ... */
  id: z.string(),
  text: z.string(),
});
export type Hint = z.infer<typeof HintSchema>;

export const CheckResultSchema = z.object({
  check: z.string(),
  title: z.string(),
  points: z.number().nonnegative(),
  maxPoints: z.number().positive(),
  passed: z.boolean(),
  /** what the grader found, in the course's terms. */
  feedback: z.string(),
  /** the measurements behind it: syscall counts, CPU, threads, bytes. */
  evidence: z.array(z.string()),
  hints: z.array(HintSchema),
});
export type CheckResult = z.infer<typeof CheckResultSchema>;

/** The limits a sandboxed server runs under, for the report and the feedback. */
export const SandboxLimitsSchema = z.object({
  memoryMb: z.number(),
  cpus: z.number(),
  /** processes and threads together (the pids cgroup counts both). */
  pids: z.number(),
  nofile: z.number(),
  tmpfsMb: z.number(),
  readOnlyRoot: z.boolean(),
  capabilities: z.string(),
  noNewPrivileges: z.boolean(),
  network: z.string(),
  user: z.string(),
});
export type SandboxLimits = z.infer<typeof SandboxLimitsSchema>;

export const GradeReportSchema = z.object({
  schemaVersion: z.literal(GRADE_SCHEMA_VERSION),
  exercise: z.object({ id: z.string(), title: z.string(), model: z.string() }),
  submission: z.object({ path: z.string(), name: z.string(), description: z.string().nullable() }),
  sandbox: z.object({
    runtime: z.enum(['docker', 'local']),
    isolated: z.boolean(),
    description: z.string(),
    limits: SandboxLimitsSchema.nullable(),
  }),
  /** not-gradable: the grader could not grade (engine, image build, its own failure); never a zero. */
  status: z.enum(['graded', 'not-gradable']),
  notGradableReason: z.string().nullable(),
  score: z.number().nonnegative(),
  maxScore: z.number().positive(),
  checks: z.array(CheckResultSchema),
  server: z.object({
    /** where it listened, when it did. */
    listening: z.object({ address: z.string(), port: z.number() }).nullable(),
    /** times the grader started it again after it exited. */
    restarts: z.number().int().nonnegative(),
    /** the last lines of its output (up to 20), shown with the feedback when a check failed. */
    output: z.array(z.string()),
  }),
  /** the limit on the whole grading; ranOut: the checks after it say "not run", the ones before keep their scores. */
  timeLimit: z.object({ seconds: z.number().positive(), ranOut: z.boolean() }),
  startedAt: z.string(),
  durationSeconds: z.number().nonnegative(),
});
export type GradeReport = z.infer<typeof GradeReportSchema>;
