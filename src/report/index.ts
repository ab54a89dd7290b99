// Writing and reading a lab's results: results.json (the data, validated against the schema) and
// report.md (rendered from it). The report is always rendered from the parsed results, so what a
// reader sees is exactly what a later `readResults` will get back.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ZodError } from 'zod';
import { fieldPath, ResultsFileError } from '../errors.js';
import { renderMarkdown } from './markdown.js';
import { RESULTS_SCHEMA_VERSION, ResultsSchema, type Results } from './results.js';

export { deriveFigures } from './derive.js';
export type { LabFigures, ModelFigures } from './derive.js';
export { claimVerdicts, observe, type Observation } from './observations.js';
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

export async function readResults(file: string): Promise<Results> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    if (error instanceof SyntaxError) throw new ResultsFileError(file, null, `not JSON: ${error.message}`);
    throw error;
  }
  const version = (json as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (typeof version === 'number' && version !== RESULTS_SCHEMA_VERSION) {
    throw new ResultsFileError(file, 'schemaVersion', `written with results schema ${version}; this iolab reads schema ${RESULTS_SCHEMA_VERSION}`);
  }
  const parsed = ResultsSchema.safeParse(json);
  if (!parsed.success) {
    const { field, problem } = firstIssue(parsed.error);
    throw new ResultsFileError(file, field, problem);
  }
  return parsed.data;
}
