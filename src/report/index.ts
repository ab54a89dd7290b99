// Writing and reading a lab's results: results.json (the measurement and its analysis, validated
// against the schema) and report.md (rendered from it). The report is always rendered from the
// parsed results, so what a reader sees is exactly what a later `iolab report` renders again.
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import stringify from 'json-stringify-pretty-compact';
import type { ZodError } from 'zod';
import { fieldPath, OutputWriteError, ResultsFileError } from '../errors.js';
import { RESULTS_SCHEMA_VERSION, ResultsSchema, type Results } from '../shared/results.js';
import { writeWhole } from '../shared/write-whole.js';
import { renderHtml } from './html.js';
import { renderMarkdown } from './markdown.js';

export { renderHtml } from './html.js';
export { renderMarkdown } from './markdown.js';
export { ResultsFileError };
export { writeWhole };

function firstIssue(error: ZodError): { field: string; problem: string } {
  const issue = error.issues[0];
  return { field: fieldPath(issue.path) || '(the whole file)', problem: issue.message };
}

/** The widest line of results.json that holds an array or object on one line. */
const RESULTS_LINE_LENGTH = 120;

/**
 * Writes DIR/results.json, then DIR/report.md and DIR/report.html rendered from it (creating
 * DIR), each whole or not at all (writeWhole). Throws when the results do not fit the schema,
 * before writing anything; OutputWriteError naming the file that could not be written (a full
 * disk): the files before it are whole and the message names them, the ones after it are not
 * written (whatever an earlier write left under their names stays as it was).
 */
export async function writeReport(results: Results, dir: string): Promise<{ resultsFile: string; reportFile: string; htmlFile: string }> {
  const parsed = ResultsSchema.safeParse(results);
  if (!parsed.success) {
    const { field, problem } = firstIssue(parsed.error);
    throw new Error(`results of lab ${JSON.stringify(results.lab?.name)} do not fit the results schema, not written: ${field}: ${problem}`);
  }
  const resultsFile = join(dir, 'results.json');
  // The data first: if rendering fails, the measurement is still on disk.
  // Indented, with each array or object that fits in a line on one line: a timeline's segments
  // stay one per line, where JSON.stringify(_, null, 2) would spread each over seven.
  await writeWhole(resultsFile, `${stringify(parsed.data, { maxLength: RESULTS_LINE_LENGTH })}\n`);
  const written = [resultsFile];
  try {
    const reportFile = await writeRendering(parsed.data, dir, 'report.md');
    written.push(reportFile);
    const htmlFile = await writeRendering(parsed.data, dir, 'report.html');
    return { resultsFile, reportFile, htmlFile };
  } catch (error) {
    if (!(error instanceof OutputWriteError)) throw error;
    throw new OutputWriteError(error.path, error.code, error.reason, error.previousKept, written.map((file) => basename(file)));
  }
}

/** The renderings of a lab's results, by file name. */
export const RENDERINGS = { 'report.md': renderMarkdown, 'report.html': renderHtml } as const;
export type Rendering = keyof typeof RENDERINGS;

/**
 * Writes one rendering (report.md or report.html) of results already on disk into `dir` (creating
 * it), whole or not at all, as `iolab report` does (`text`: the rendering when the caller has it
 * already); returns its path. Throws OutputWriteError naming it when it cannot be written.
 */
export async function writeRendering(results: Results, dir: string, file: Rendering, text = RENDERINGS[file](results)): Promise<string> {
  const path = join(dir, file);
  await writeWhole(path, text);
  return path;
}

/**
 * Reads and validates a results.json. Throws ResultsFileError naming the file and the first bad
 * field: not JSON, a schema version this iolab cannot read, or a field that does not fit.
 */
export async function readResults(file: string): Promise<Results> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    if (error instanceof SyntaxError) throw new ResultsFileError(file, null, `not JSON: ${error.message}`);
    const code = (error as NodeJS.ErrnoException).code;
    throw new ResultsFileError(file, null, `cannot read it: ${code ?? (error as Error).message}`);
  }
  const version = (json as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (typeof version === 'number' && version < RESULTS_SCHEMA_VERSION) {
    throw new ResultsFileError(
      file,
      'schemaVersion',
      `written with results schema ${version}, which kept no verdicts (they were judged anew at each rendering); this iolab reads schema ${RESULTS_SCHEMA_VERSION}: run the lab again`,
    );
  }
  if (typeof version === 'number' && version > RESULTS_SCHEMA_VERSION) {
    throw new ResultsFileError(file, 'schemaVersion', `written with results schema ${version} by a newer iolab; this iolab reads schema ${RESULTS_SCHEMA_VERSION}`);
  }
  const parsed = ResultsSchema.safeParse(json);
  if (!parsed.success) {
    const { field, problem } = firstIssue(parsed.error);
    throw new ResultsFileError(file, field, problem);
  }
  return parsed.data;
}
