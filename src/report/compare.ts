// The files of `iolab compare A B`: where a run's results.json is (a file, or a run's directory),
// and compare.md and compare.html (the same, as a page) written whole. The comparison itself is made by the analysis
// (analysis/run-comparison.ts) and rendered by compare-markdown.ts.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeWhole } from '../shared/write-whole.js';
import { htmlPage, markdownToHtml } from './html.js';

export { renderComparisonMarkdown } from './compare-markdown.js';

/** The names of the comparison written into the output directory: Markdown, and the same as an HTML page. */
export const COMPARISON_FILE = 'compare.md';
export const COMPARISON_PAGE = 'compare.html';

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

/**
 * The results.json a command-line argument names: the path itself when it is not a directory
 * (readResults then says what is wrong with it: missing, not JSON, not the schema); in a
 * directory, DIR/results.json, or DIR/latest/results.json where a lab's directory keeps its runs
 * with `latest` the newest. A directory with neither gives DIR/results.json, which readResults
 * reports as missing (ResultsFileError, naming it).
 */
export async function resultsFileOf(path: string): Promise<string> {
  const isDirectory = await stat(path).then((s) => s.isDirectory(), () => false);
  if (!isDirectory) return path;
  const direct = join(path, 'results.json');
  if (await isFile(direct)) return direct;
  const latest = join(path, 'latest', 'results.json');
  return (await isFile(latest)) ? latest : direct;
}

/**
 * Writes DIR/compare.md and DIR/compare.html (creating DIR), each whole or not at all (written
 * beside, then renamed); `title` is the page's title, plain text. Returns both paths. Throws
 * OutputWriteError naming the file that cannot be written (compare.md whole when compare.html fails).
 */
export async function writeComparison(markdown: string, title: string, dir: string): Promise<{ markdownFile: string; htmlFile: string }> {
  const markdownFile = join(dir, COMPARISON_FILE);
  const htmlFile = join(dir, COMPARISON_PAGE);
  await writeWhole(markdownFile, markdown);
  await writeWhole(htmlFile, htmlPage(title, markdownToHtml(markdown)));
  return { markdownFile, htmlFile };
}
