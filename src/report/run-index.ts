// OUT/index.html and OUT/index.md: every lab in an output directory and every run of it, newest
// first, each with when it ran, for how long, on which runtime, whether it is complete (and why
// not), how many of its verdicts hold, do not hold and are inconclusive, and links to its
// reports. Read from the runs' results.json alone (readResults); a run whose results.json is
// missing or unreadable is listed with the error, never left out and never fatal.
import { access, lstat, readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { formatElapsed, table } from '../shared/format.js';
import { giveToOwnerOf } from '../shared/ownership.js';
import type { Results } from '../shared/results.js';
import type { Verdict } from '../shared/verdicts.js';
import { writeWhole } from '../shared/write-whole.js';
import { escapeHtml } from './html.js';
import { readResults } from './index.js';
import { clean, NONE } from './markdown-parts.js';
import { latestRunOf, runIdsOf, runIdTime } from './runs.js';

/** The files of a run that the index links to, when they are there. */
const REPORT_FILES = ['report.html', 'report.md'] as const;

/** What the index says of one run. */
export interface IndexedRun {
  /** the run directory's name; null for the results an older iolab wrote into the lab's directory itself. */
  id: string | null;
  /** the run's directory, relative to OUT, '/'-separated ("starvation/20261130T154012.345Z-a1b2"). */
  path: string;
  /** whether OUT/LAB/latest points at it. */
  latest: boolean;
  /** when it started, ISO 8601: from results.json, else from the run id; null when neither says. */
  startedAt: string | null;
  /** what results.json says; null when it could not be read (see error). */
  results: {
    title: string;
    finishedAt: string;
    runtime: string;
    complete: boolean;
    incompleteReason: string | null;
    verdicts: Record<Verdict, number>;
  } | null;
  /** why results.json could not be read (missing, not JSON, a field that does not fit), paths relative to OUT. */
  error: string | null;
  /** whether results.json is not there at all. */
  missing: boolean;
  /** the reports of REPORT_FILES that are in the run's directory. */
  reports: string[];
}

/** One lab's directory in the index. */
export interface IndexedLab {
  name: string;
  /** the lab's title, from its newest readable results.json. */
  title: string | null;
  runs: IndexedRun[];
  /** where OUT/LAB/latest points when that is none of the runs listed (a removed run); else null. */
  danglingLatest: string | null;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function summaryOf(results: Results): NonNullable<IndexedRun['results']> {
  const verdicts: Record<Verdict, number> = { holds: 0, 'does not hold here': 0, inconclusive: 0 };
  for (const verdict of results.analysis.verdicts) verdicts[verdict.verdict] += 1;
  return {
    title: results.lab.title,
    finishedAt: results.finishedAt,
    runtime: results.environment.runtime,
    complete: results.complete,
    incompleteReason: results.incompleteReason,
    verdicts,
  };
}

async function indexRun(out: string, lab: string, id: string | null, latest: string | null): Promise<IndexedRun> {
  const path = id === null ? lab : `${lab}/${id}`;
  const dir = join(out, path);
  let results: Results | null = null;
  let error: string | null = null;
  try {
    // A link is not followed: as root into another user's directory, it could name any file,
    // and an error message would quote it.
    if ((await lstat(join(dir, 'results.json')).catch(() => null))?.isSymbolicLink()) throw new Error('results.json is a symbolic link: not read');
    results = await readResults(join(dir, 'results.json'));
  } catch (failure) {
    error = (failure instanceof Error ? failure.message : String(failure)).split(`${out}/`).join('');
  }
  const reports: string[] = [];
  for (const file of REPORT_FILES) if (await exists(join(dir, file))) reports.push(file);
  return {
    id,
    path,
    latest: id !== null && id === latest,
    startedAt: results?.startedAt ?? (id === null ? null : (runIdTime(id)?.toISOString() ?? null)),
    results: results && summaryOf(results),
    error,
    missing: error !== null && !(await exists(join(dir, 'results.json'))),
    reports,
  };
}

/**
 * Reads every lab directory of `out` (one that holds run directories, or the results.json of an
 * older iolab) and every run in it, newest first; labs by name. Throws only when `out` itself
 * cannot be read.
 */
export async function collectRunIndex(out: string): Promise<IndexedLab[]> {
  const labs: IndexedLab[] = [];
  const entries = (await readdir(out, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  for (const name of entries) {
    const labDir = join(out, name);
    // A directory this process may not read (lost+found at a volume's root) is no lab of its.
    const ids = await runIdsOf(labDir).catch(() => null);
    if (ids === null) continue;
    const older = await exists(join(labDir, 'results.json'));
    if (ids.length === 0 && !older) continue;
    const latest = await latestRunOf(labDir).catch(() => null);
    const runs: IndexedRun[] = [];
    for (const id of ids) runs.push(await indexRun(out, name, id, latest));
    if (older) runs.push(await indexRun(out, name, null, latest));
    labs.push({
      name,
      title: runs.find((run) => run.results)?.results?.title ?? null,
      runs,
      danglingLatest: latest !== null && !ids.includes(latest) ? latest : null,
    });
  }
  return labs;
}

/** "2026-11-30 15:40:12 UTC" from an ISO 8601 time; the text itself when it is not one. */
function formatTime(iso: string | null): string {
  if (iso === null) return NONE;
  const time = new Date(iso);
  return Number.isNaN(time.getTime()) ? iso : `${time.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function tookOf(run: IndexedRun): string {
  if (!run.results || !run.startedAt) return NONE;
  const seconds = (Date.parse(run.results.finishedAt) - Date.parse(run.startedAt)) / 1000;
  return Number.isFinite(seconds) ? formatElapsed(seconds) : NONE;
}

/** The outcome column: complete, incomplete (why), or why the run could not be read. */
function outcomeOf(run: IndexedRun): string {
  if (!run.results) return `${run.missing ? 'no results.json (still running, or stopped before writing it)' : 'results.json unreadable'}: ${run.error}`;
  if (run.results.complete) return 'complete';
  return `incomplete${run.results.incompleteReason ? `: ${run.results.incompleteReason}` : ''}`;
}

function runName(run: IndexedRun): string {
  return run.id ?? '(written by an older iolab into the lab\'s directory)';
}

/** A relative link's target: each path segment percent-encoded, parentheses too (Markdown ends a link at ")"). */
function href(path: string): string {
  return path
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/\(/g, '%28').replace(/\)/g, '%29'))
    .join('/');
}

/** Text for a Markdown table cell: one line, no table break, no Markdown or HTML of its own. */
function markdownText(text: string): string {
  // Markdown's own characters first, then clean(): one line, "|" as "\\|" (escaped again, it would end the cell).
  return clean(text.replace(/[\\`*_[\]<>#!]/g, (c) => `\\${c}`));
}

const INTRO =
  "Every run of every lab in this directory, newest first. A lab's `latest` is a link to the run marked latest; " +
  'delete a run\'s directory to remove it (the index is written again after the next lab).';

/** OUT/index.md: a section per lab, a table of its runs. */
export function renderRunIndexMarkdown(labs: IndexedLab[]): string {
  const lines = ['# iolab runs', '', INTRO, ''];
  if (labs.length === 0) lines.push('No runs yet.', '');
  for (const lab of labs) {
    lines.push(`## ${markdownText(lab.name)}`, '');
    if (lab.title) lines.push(markdownText(lab.title), '');
    if (lab.danglingLatest) lines.push(`\`latest\` points at ${markdownText(lab.danglingLatest)}, which is not here.`, '');
    const rows = lab.runs.map((run) => [
      `${markdownText(runName(run))}${run.latest ? ' **(latest)**' : ''}`,
      formatTime(run.startedAt),
      tookOf(run),
      run.results ? markdownText(run.results.runtime) : NONE,
      markdownText(outcomeOf(run)),
      run.results ? String(run.results.verdicts.holds) : NONE,
      run.results ? String(run.results.verdicts['does not hold here']) : NONE,
      run.results ? String(run.results.verdicts.inconclusive) : NONE,
      run.reports.length ? run.reports.map((file) => `[${file}](${href(`${run.path}/${file}`)})`).join(' · ') : NONE,
    ]);
    lines.push(table(['run', 'started', 'took', 'runtime', 'outcome', 'holds', 'does not hold', 'inconclusive', 'reports'], rows, 'text'), '');
  }
  return `${lines.join('\n')}`;
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 96rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
td.n { text-align: right; }
td.nowrap { white-space: nowrap; }
tr.latest { background: #eef6ee; }
.incomplete, .unreadable { color: #a33; }
code { font-size: 0.95em; }
`;

/** OUT/index.html: the same as index.md, one self-contained page (inline CSS, nothing loaded from elsewhere). */
export function renderRunIndexHtml(labs: IndexedLab[]): string {
  const e = escapeHtml;
  const body: string[] = ['<h1>iolab runs</h1>', `<p>${e(INTRO).replace(/`([^`]*)`/g, '<code>$1</code>')}</p>`];
  if (labs.length === 0) body.push('<p>No runs yet.</p>');
  for (const lab of labs) {
    body.push(`<h2 id="${e(`lab-${lab.name}`)}">${e(lab.name)}</h2>`);
    if (lab.title) body.push(`<p>${e(lab.title)}</p>`);
    if (lab.danglingLatest) body.push(`<p><code>latest</code> points at ${e(lab.danglingLatest)}, which is not here.</p>`);
    body.push(
      '<table>',
      '<thead><tr><th>run</th><th>started</th><th>took</th><th>runtime</th><th>outcome</th><th>holds</th><th>does not hold</th><th>inconclusive</th><th>reports</th></tr></thead>',
      '<tbody>',
    );
    for (const run of lab.runs) {
      const outcomeClass = !run.results ? 'unreadable' : run.results.complete ? 'complete' : 'incomplete';
      const count = (verdict: Verdict) => `<td class="n">${run.results ? run.results.verdicts[verdict] : e(NONE)}</td>`;
      const links = run.reports.map((file) => `<a href="${e(href(`${run.path}/${file}`))}">${e(file)}</a>`).join(' · ');
      body.push(
        `<tr${run.latest ? ' class="latest"' : ''}>` +
          `<td class="nowrap"><code>${e(runName(run))}</code>${run.latest ? ' <strong>(latest)</strong>' : ''}</td>` +
          `<td class="nowrap">${e(formatTime(run.startedAt))}</td>` +
          `<td class="nowrap">${e(tookOf(run))}</td>` +
          `<td>${e(run.results?.runtime ?? NONE)}</td>` +
          `<td class="${outcomeClass}">${e(outcomeOf(run))}</td>` +
          count('holds') +
          count('does not hold here') +
          count('inconclusive') +
          `<td>${links || e(NONE)}</td>` +
          '</tr>',
      );
    }
    body.push('</tbody>', '</table>');
  }
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    // Nothing but this page's own style: no script, no resource from anywhere.
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>iolab runs</title>',
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    ...body,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/**
 * Writes OUT/index.html and OUT/index.md from the runs in `out` (collectRunIndex). Returns their
 * paths. Throws the fs error when `out` cannot be read, OutputWriteError naming the file that
 * cannot be written (each is whole or not written).
 */
export async function writeRunIndex(out: string): Promise<{ html: string; markdown: string }> {
  const labs = await collectRunIndex(out);
  const html = join(out, 'index.html');
  const markdown = join(out, 'index.md');
  await writeWhole(markdown, renderRunIndexMarkdown(labs));
  await writeWhole(html, renderRunIndexHtml(labs));
  return { html, markdown };
}

/**
 * What `iolab run` does after each lab, whatever became of it. A lab that failed (threw) before
 * anything was written into its run directory leaves no directory: `failedRunDir` is removed when
 * it is empty, and the lab's directory too when nothing else is in it. Then writes OUT/index.html
 * and OUT/index.md and, when the controller runs as root and OUT belongs to someone else
 * (compose's bind-mounted ./reports), gives the lab's directory, its runs and the index to OUT's
 * owner (src/shared/ownership.ts). Never throws: returns a line for each thing that failed, to be
 * printed, so that a lab's own outcome is not hidden by them.
 */
export async function finishLabOutput(out: string, labDir: string, failedRunDir?: string): Promise<string[]> {
  const problems: string[] = [];
  if (failedRunDir !== undefined) {
    // rmdir removes only an empty directory: whatever was written stays.
    for (const dir of [failedRunDir, labDir]) await rmdir(dir).catch(() => {});
  }
  const written = await writeRunIndex(out).catch((error: Error) => {
    problems.push(`the index of ${out} was not written: ${error.message}`);
    return null;
  });
  await giveToOwnerOf(out, [labDir, ...(written ? [written.html, written.markdown] : [])]).catch((error: Error) => {
    problems.push(`what was written under ${out} stays root's: ${error.message}`);
  });
  return problems;
}
