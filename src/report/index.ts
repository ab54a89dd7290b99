// Writing and reading a lab's results: results.json (the measurement and its analysis, validated
// against the schema) and report.md (rendered from it). The report is always rendered from the
// parsed results, so what a reader sees is exactly what a later `iolab report` renders again.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ZodError } from 'zod';
import { fieldPath, ResultsFileError } from '../errors.js';
import { RESULTS_SCHEMA_VERSION, ResultsSchema, type Results } from '../shared/results.js';
import { renderMarkdown } from './markdown.js';

export { renderMarkdown } from './markdown.js';
export { ResultsFileError };

function firstIssue(error: ZodError): { field: string; problem: string } {
  const issue = error.issues[0];
  return { field: fieldPath(issue.path) || '(the whole file)', problem: issue.message };
}

/** Written beside, then renamed: an interrupted write never leaves half a file under the real name. */
async function writeWhole(file: string, text: string): Promise<void> {
  const partial = `${file}.partial`;
  await writeFile(partial, text);
  await rename(partial, file);
}

/**
 * Writes DIR/results.json, then DIR/report.md rendered from it (creating DIR). Throws when the
 * results do not fit the schema, before writing anything.
 */
export async function writeReport(results: Results, dir: string): Promise<{ resultsFile: string; reportFile: string }> {
  const parsed = ResultsSchema.safeParse(results);
  if (!parsed.success) {
    const { field, problem } = firstIssue(parsed.error);
    throw new Error(`results of lab ${JSON.stringify(results.lab?.name)} do not fit the results schema, not written: ${field}: ${problem}`);
  }
  await mkdir(dir, { recursive: true });
  const resultsFile = join(dir, 'results.json');
  const reportFile = join(dir, 'report.md');
  // The data first: if rendering fails, the measurement is still on disk.
  await writeWhole(resultsFile, `${JSON.stringify(parsed.data, null, 2)}\n`);
  await writeWhole(reportFile, renderMarkdown(parsed.data));
  return { resultsFile, reportFile };
}

/** Writes report.md from results already on disk (into `dir`), as `iolab report` does. */
export async function writeMarkdown(results: Results, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const reportFile = join(dir, 'report.md');
  await writeWhole(reportFile, renderMarkdown(results));
  return reportFile;
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
