// Gradescope's results.json, as its documentation specifies it
// (https://gradescope-autograders.readthedocs.io/en/latest/specs/, "Output format"): written here
// from that page, independently of src/grade/formats.ts, so that a test can hold the grader's
// output to it. Unknown fields are refused.
import { z } from 'zod';

const Visibility = z.enum(['hidden', 'after_due_date', 'after_published', 'visible']);
const OutputFormat = z.enum(['text', 'html', 'simple_format', 'md', 'ansi']);

export const GradescopeTestSchema = z
  .object({
    score: z.number().optional(),
    max_score: z.number().optional(),
    status: z.enum(['passed', 'failed']).optional(),
    name: z.string().optional(),
    name_format: OutputFormat.optional(),
    number: z.string().optional(),
    output: z.string().optional(),
    output_format: OutputFormat.optional(),
    tags: z.array(z.string()).optional(),
    visibility: Visibility.optional(),
    extra_data: z.record(z.unknown()).optional(),
  })
  .strict();

export const GradescopeResultsSchema = z
  .object({
    score: z.number().optional(),
    execution_time: z.number().optional(),
    output: z.string().optional(),
    output_format: OutputFormat.optional(),
    test_output_format: OutputFormat.optional(),
    test_name_format: OutputFormat.optional(),
    visibility: Visibility.optional(),
    stdout_visibility: Visibility.optional(),
    extra_data: z.record(z.unknown()).optional(),
    tests: z.array(GradescopeTestSchema).optional(),
    leaderboard: z.array(z.object({ name: z.string(), value: z.union([z.number(), z.string()]), order: z.enum(['asc', 'desc']).optional() }).strict()).optional(),
  })
  .strict()
  // "score: optional, but required if not on each test case below"
  .refine((results) => results.score !== undefined || !results.tests || results.tests.every((t) => t.score !== undefined), {
    message: 'score is required unless every test has one',
  });
