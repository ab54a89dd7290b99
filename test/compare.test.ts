// `iolab compare A B`: two real runs of a lab side by side. The starvation lab runs twice on the
// local runtime (4 repetitions each, so that differences are judged against the spread; run B
// with one server more), an experiment lab twice, and the comparisons are read back as Markdown
// parsed by a standard renderer (marked): every subject and verdict of both runs is there, every
// ratio is B's median over A's from the two files, a run compared with itself shows no change,
// and two labs, or a missing file, are refused with the codes of README.md. Then results of those
// runs altered by hand, for the paths a real run seldom takes: a verdict that changed, a figure
// that is 0 in A, too few repetitions.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { marked, type Token, type Tokens } from 'marked';
import { beforeAll, describe, expect, it } from 'vitest';
import { compareRuns } from '../src/analysis/run-comparison.js';
import { UsageError } from '../src/errors.js';
import { readResults } from '../src/report/index.js';
import { renderComparisonMarkdown } from '../src/report/compare-markdown.js';
import type { Results, Spread, SubjectFigures } from '../src/shared/results.js';
import { VERDICTS } from '../src/shared/verdicts.js';
import { labTimeoutMs, runIolab as iolab } from './helpers.js';

const IOLAB = join(import.meta.dirname, '..', 'bin', 'iolab.js');

/** Every results.json under `dir`, once each (a link such as `latest` names a run again). */
async function resultsFilesUnder(dir: string): Promise<string[]> {
  const entries = (await readdir(dir, { recursive: true })) as string[];
  const byRealPath = new Map<string, string>();
  for (const entry of entries.filter((e) => basename(e) === 'results.json')) {
    const file = join(dir, entry);
    const real = await realpath(file);
    if (!byRealPath.has(real)) byRealPath.set(real, file);
  }
  return [...byRealPath.values()];
}

/** The one results.json a lab run wrote under `dir`, wherever the output layout puts it. */
async function onlyResultsFile(dir: string): Promise<string> {
  const files = await resultsFilesUnder(dir);
  expect(files, `results.json files under ${dir}`).toHaveLength(1);
  return files[0];
}

/** A table of the Markdown as a renderer reads it: header and rows of cell text, markup removed. */
interface Table {
  header: string[];
  rows: string[][];
}

/** What the Markdown holds under each heading: its tables, list items and paragraphs, parsed by marked (GFM). */
interface Section {
  heading: string;
  depth: number;
  tables: Table[];
  items: string[];
  paragraphs: string[];
}

const plain = (text: string) => text.replace(/\*\*|`/g, '').replace(/\\\|/g, '|').trim();

function sectionsOf(markdown: string): Section[] {
  const sections: Section[] = [{ heading: '', depth: 0, tables: [], items: [], paragraphs: [] }];
  const current = () => sections[sections.length - 1];
  const walkList = (list: Tokens.List) => {
    for (const item of list.items) {
      current().items.push(plain(item.text));
    }
  };
  for (const token of marked.lexer(markdown) as Token[]) {
    if (token.type === 'heading') sections.push({ heading: plain(token.text), depth: token.depth, tables: [], items: [], paragraphs: [] });
    else if (token.type === 'table') {
      const t = token as Tokens.Table;
      current().tables.push({ header: t.header.map((c) => plain(c.text)), rows: t.rows.map((row) => row.map((c) => plain(c.text))) });
    } else if (token.type === 'list') walkList(token as Tokens.List);
    else if (token.type === 'paragraph') current().paragraphs.push(plain(token.text));
  }
  return sections;
}

function section(sections: readonly Section[], heading: string): Section {
  const found = sections.find((s) => s.heading === heading);
  if (!found) throw new Error(`no section "${heading}"; the sections: ${sections.map((s) => s.heading).join(' / ')}`);
  return found;
}

/** A figure table's row as an object: { figure: 'round trips/s', A, B, 'B/A', judgement }. */
function rowOf(table: Table, first: string): Record<string, string> {
  const row = table.rows.find((r) => r[0] === first);
  if (!row) throw new Error(`no row "${first}" in a table of ${table.rows.map((r) => r[0]).join(', ')}`);
  return { first: row[0], A: row[1], B: row[2], ratio: row[3], judgement: row[4] };
}

/** A printed ratio ("1.26×", "137×", "0.042×") against B/A computed here: equal at the precision printed. */
function expectRatio(cell: string, expected: number, what: string): void {
  expect(cell, what).toMatch(/^[\d,.]+×$/);
  const printed = Number(cell.replace(/[×,]/g, ''));
  expect(Number.isFinite(printed), what).toBe(true);
  const tolerance = expected >= 100 ? 0.5 : expected >= 0.1 ? 0.005 : expected * 0.05;
  expect(Math.abs(printed - expected), `${what}: printed ${cell}, B/A is ${expected}`).toBeLessThanOrEqual(tolerance + 1e-9);
}

/** What the judgement cell must say of two runs' repetitions, from their values: ranges apart with 4 a side, or not. */
function expectJudgement(cell: string, a: Spread, b: Spread, what: string): void {
  if (Math.min(a.values.length, b.values.length) < 4) {
    expect(cell, what).toMatch(/^inconclusive: /);
    return;
  }
  if (Math.min(...b.values) > Math.max(...a.values)) expect(cell, what).toMatch(/^higher in B, beyond the spread: every repetition above every one of A \(2\.9% by chance\)$/);
  else if (Math.max(...b.values) < Math.min(...a.values)) expect(cell, what).toMatch(/^lower in B, beyond the spread: every repetition below every one of A \(2\.9% by chance\)$/);
  else expect(cell, what).toMatch(/^within the spread: B − A is /);
}

/** The verdict table's rows, as "rule / subject" → [A, B, change]. */
function verdictRows(sections: readonly Section[]): Map<string, string[]> {
  const [table] = section(sections, 'Verdicts').tables;
  expect(table.header).toEqual(['rule', 'subject', 'A', 'B', 'change']);
  return new Map(table.rows.map((row) => [`${row[0]} / ${row[1]}`, row.slice(2)]));
}

function expectNothingUnmeasured(markdown: string): void {
  expect(markdown).not.toMatch(/NaN|Infinity|undefined|null|\[object/);
}

/** The Markdown converts to HTML with a standard renderer: every table a <table>, no table left as text. */
function expectRendersAsHtml(markdown: string): void {
  const tables = (marked.lexer(markdown) as Token[]).filter((t) => t.type === 'table').length;
  const html = marked.parse(markdown, { async: false, gfm: true });
  expect(tables).toBeGreaterThan(0);
  expect(html.match(/<table>/g)?.length).toBe(tables);
  expect(html).not.toMatch(/<p>\|/);
}

describe('iolab compare: two runs of the starvation lab', () => {
  let outA: string;
  let outB: string;
  let fileA: string;
  let fileB: string;
  let a: Results;
  let b: Results;
  let markdown: string;
  let sections: Section[];
  let out: string;
  let written: { code: number | null; stdout: string; stderr: string };

  beforeAll(async () => {
    [outA, outB] = [await mkdtemp(join(tmpdir(), 'iolab-compare-a-')), await mkdtemp(join(tmpdir(), 'iolab-compare-b-'))];
    const common = ['run', 'starvation', '--runtime', 'local', '--duration', '0.5', '--repetitions', '4'];
    const runA = await iolab([...common, '--models', 'blocking,select,epoll', '--out', outA]);
    expect(runA.code, runA.stderr).toBe(0);
    const runB = await iolab([...common, '--models', 'blocking,select,epoll,poll', '--out', outB]);
    expect(runB.code, runB.stderr).toBe(0);
    [fileA, fileB] = [await onlyResultsFile(outA), await onlyResultsFile(outB)];
    [a, b] = [await readResults(fileA), await readResults(fileB)];
    out = await mkdtemp(join(tmpdir(), 'iolab-compare-out-'));
    written = await iolab(['compare', fileA, fileB, '--out', out]);
    expect(written.code, written.stderr).toBe(0);
    markdown = await readFile(join(out, 'compare.md'), 'utf8');
    sections = sectionsOf(markdown);
  }, labTimeoutMs(4 * 3 + 4 * 4, 0.5));

  it('writes compare.md into --out and says where on stderr; --stdout prints the same text', async () => {
    expect(written.stderr).toContain(`starvation: wrote ${join(out, 'compare.md')}`);
    const printed = await iolab(['compare', fileA, fileB, '--stdout']);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toBe(markdown);
  });

  it('writes compare.md into the current directory by default', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'iolab-compare-cwd-'));
    const { stderr } = await promisify(execFile)(process.execPath, [IOLAB, 'compare', fileA, fileB], { cwd });
    expect(stderr).toContain(`wrote ${join(await realpath(cwd), 'compare.md')}`);
    expect(await readFile(join(cwd, 'compare.md'), 'utf8')).toBe(markdown);
  });

  it('takes a run directory as well as its results.json, and a lab\'s directory whose `latest` names its newest run', async () => {
    const printed = await iolab(['compare', dirname(fileA), dirname(fileB), '--stdout']);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toBe(markdown);
    // Wherever the output layout keeps `latest`: the directory that holds it.
    const latest = ((await readdir(outA, { recursive: true })) as string[]).filter((entry) => basename(entry) === 'latest');
    expect(latest, `a latest link under ${outA}`).toHaveLength(1);
    const labDir = join(outA, dirname(latest[0]));
    const viaLatest = await iolab(['compare', labDir, fileB, '--stdout']);
    expect(viaLatest.code, viaLatest.stderr).toBe(0);
    expect(viaLatest.stdout).toContain(`run A (\`${join(labDir, 'latest', 'results.json')}\`)`);
    // The same comparison but for A's name (tables padded to its length).
    const unpadded = (text: string) => text.replace(/ +/g, ' ').replace(/-{3,}/g, '---');
    expect(unpadded(viaLatest.stdout.replaceAll(join(labDir, 'latest', 'results.json'), fileA))).toBe(unpadded(markdown));
  });

  it('names both runs: lab, start, runtime, machine, tracer, duration and repetitions, and what differs', () => {
    expect(markdown.split('\n')[0]).toBe(`# ${a.lab.title}: two runs compared`);
    const [runs] = section(sections, 'The two runs').tables;
    const row = (name: string) => runs.rows.find((r) => r[0] === name)!.slice(1);
    expect(row('results')).toEqual([fileA, fileB]);
    expect(row('started')).toEqual([a.startedAt, b.startedAt]);
    expect(row('runtime')).toEqual(['local', 'local']);
    expect(row('host')).toEqual([a.environment.hostname, b.environment.hostname]);
    expect(row('kernel')).toEqual([a.environment.kernel, b.environment.kernel]);
    expect(row('CPUs')).toEqual([String(a.environment.cpus), String(b.environment.cpus)]);
    expect(row('tracer')).toEqual([a.environment.tracer, b.environment.tracer]);
    expect(row('duration of a run')).toEqual(['0.50 s', '0.50 s']);
    expect(row('repetitions')).toEqual(['4', '4']);
    // The same machine and settings, one run after the other.
    const paragraphs = section(sections, 'The two runs').paragraphs.join('\n');
    expect(paragraphs).toContain('The environment is the same in both runs');
    expect(paragraphs).toContain("The lab's settings are the same in both runs");
  });

  it('shows every subject: those of both runs each with its figures, the one of run B only listed', () => {
    const both = a.analysis.subjects.map((s) => s.subject);
    expect(both).toEqual(['blocking', 'select', 'epoll']);
    const headings = sections.filter((s) => s.depth === 3).map((s) => s.heading);
    expect(headings).toEqual(both);
    expect(section(sections, 'At a glance: round trips/s').tables[0].rows.map((r) => r[0])).toEqual(both);
    expect(section(sections, 'Servers of one run only').items).toEqual(['Only in A: none.', 'Only in B: poll.']);
    for (const subject of both) {
      const [table] = section(sections, subject).tables;
      expect(table.header).toEqual(['figure', 'A', 'B', 'B/A', 'beyond the run-to-run spread?']);
      expect(table.rows.map((r) => r[0])).toEqual(expect.arrayContaining(['round trips/s', 'server CPU', 'threads added', 'fds added', 'RSS added']));
    }
  });

  it("gives B/A as the ratio of the two files' medians, a finite number, or a dash with its reason", () => {
    // The holder's probe connection, answered by every server that serves more than one client.
    const probeP50 = (subject: SubjectFigures) => subject.measure?.clients.find((c) => c.name === 'holder')?.probe?.p50Us;
    expect(probeP50(a.analysis.subjects.find((s) => s.subject === 'epoll')!)).toBeGreaterThan(0);
    for (const sa of a.analysis.subjects) {
      const sb = b.analysis.subjects.find((s) => s.subject === sa.subject)!;
      const table = section(sections, sa.subject).tables[0];
      const notes = section(sections, sa.subject).paragraphs.join(' ');
      const checks: [string, number | null | undefined, number | null | undefined][] = [
        ['round trips/s', sa.measure?.throughput?.median, sb.measure?.throughput?.median],
        ['server CPU', sa.measure?.cpuPercent?.median, sb.measure?.cpuPercent?.median],
        ['latency p50', sa.measure?.latency?.p50Us, sb.measure?.latency?.p50Us],
        ['latency p99', sa.measure?.latency?.p99Us, sb.measure?.latency?.p99Us],
        ['probe latency p50', probeP50(sa), probeP50(sb)],
        ['serving syscalls per round trip', sa.trace?.servingPerRoundTrip?.median, sb.trace?.servingPerRoundTrip?.median],
      ];
      for (const [figure, inA, inB] of checks) {
        const what = `${sa.subject} ${figure}`;
        if ((inA === null || inA === undefined) && (inB === null || inB === undefined)) {
          expect(table.rows.some((r) => r[0] === figure), what).toBe(false);
          continue;
        }
        const row = rowOf(table, figure);
        if (inA && inB !== null && inB !== undefined) expectRatio(row.ratio, inB / inA, what);
        else {
          expect(row.ratio, what).toMatch(/^—[¹²³⁴⁵⁶⁷⁸⁹]+$/);
          expect(notes, what).toContain(`${row.ratio.slice(1)} ${figure}: ${inA === 0 ? (inB === 0 ? '0 in both runs' : '0 in A') : 'not measured in'}`);
        }
      }
    }
    // The blocking server never answers the asker: 0 round trips/s in both runs, no ratio.
    expect(rowOf(section(sections, 'blocking').tables[0], 'round trips/s').ratio).toMatch(/^—/);
    expectNothingUnmeasured(markdown);
  });

  it('says whether each difference is beyond the run-to-run spread, from the repetitions of both files', () => {
    for (const sa of a.analysis.subjects) {
      const sb = b.analysis.subjects.find((s) => s.subject === sa.subject)!;
      const table = section(sections, sa.subject).tables[0];
      expectJudgement(rowOf(table, 'round trips/s').judgement, sa.measure!.throughput!, sb.measure!.throughput!, `${sa.subject} round trips/s`);
      expectJudgement(rowOf(table, 'server CPU').judgement, sa.measure!.cpuPercent!, sb.measure!.cpuPercent!, `${sa.subject} server CPU`);
    }
  });

  it('has every verdict of both runs in the verdict table, as each run judged it', () => {
    const rows = verdictRows(sections);
    const keys = new Set([...a.analysis.verdicts, ...b.analysis.verdicts].map((v) => `${v.rule} / ${v.subject}`));
    expect([...rows.keys()].sort()).toEqual([...keys].sort());
    for (const [key, [inA, inB, change]] of rows) {
      const va = a.analysis.verdicts.find((v) => `${v.rule} / ${v.subject}` === key);
      const vb = b.analysis.verdicts.find((v) => `${v.rule} / ${v.subject}` === key);
      expect(inA, key).toBe(va?.verdict ?? 'not judged');
      expect(inB, key).toBe(vb?.verdict ?? 'not judged');
      expect(change, key).toBe(!va ? 'judged in B only' : !vb ? 'judged in A only' : va.verdict === vb.verdict ? 'unchanged' : 'changed');
    }
    expect(rows.get('starvation / poll')).toEqual(['not judged', b.analysis.verdicts.find((v) => v.subject === 'poll')!.verdict, 'judged in B only']);
  });

  it('reads as Markdown and converts to HTML with a standard renderer', () => {
    expectRendersAsHtml(markdown);
    const headings = sections.filter((s) => s.depth === 2).map((s) => s.heading);
    expect(headings).toEqual(['The two runs', 'Verdicts', 'At a glance: round trips/s', 'Per server', 'Servers of one run only']);
  });

  it('compared with itself: every ratio 1.00 (or none, of 0 or less), every difference 0 and within the spread, every verdict unchanged', async () => {
    const printed = await iolab(['compare', fileA, fileA, '--stdout']);
    expect(printed.code, printed.stderr).toBe(0);
    const self = sectionsOf(printed.stdout);
    for (const subject of a.analysis.subjects.map((s) => s.subject)) {
      const [table] = section(self, subject).tables;
      for (const row of table.rows.map((r) => rowOf(table, r[0]))) {
        const what = `${subject} ${row.first}`;
        // No ratio where the figure is 0, or below 0 (memory the server gave back during the window).
        if (row.ratio.startsWith('—')) expect(section(self, subject).paragraphs.join(' '), what).toMatch(new RegExp(`${row.ratio.slice(1)} ${row.first}: (0|below 0) in both runs, so B/A has no value`));
        else expect(row.ratio, what).toBe('1.00×');
        expect(row.judgement, what).toMatch(/^within the spread: B − A is 0; /);
      }
    }
    const verdicts = verdictRows(self);
    expect(verdicts.size).toBe(a.analysis.verdicts.length);
    for (const [key, [, , change]] of verdicts) expect(change, key).toBe('unchanged');
    expect(printed.stdout).toContain(`${a.analysis.verdicts.length} of ${a.analysis.verdicts.length} verdicts are the same in both runs.`);
    expect(section(self, 'The two runs').paragraphs.join('\n')).toContain('The environment is the same in both runs');
    expect(self.some((s) => s.heading === 'Servers of one run only')).toBe(false);
    expectNothingUnmeasured(printed.stdout);
  });

  it('refuses a file that cannot be read with the file named (exit 3)', async () => {
    const missing = join(tmpdir(), 'iolab-compare-no-such-dir', 'results.json');
    const gone = await iolab(['compare', fileA, missing]);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain(`iolab: ${missing}: cannot read it: ENOENT`);
    const empty = await mkdtemp(join(tmpdir(), 'iolab-compare-empty-'));
    const noResults = await iolab(['compare', empty, fileB]);
    expect(noResults.code).toBe(3);
    expect(noResults.stderr).toContain(`${join(empty, 'results.json')}: cannot read it: ENOENT`);
    const notJson = join(empty, 'broken.json');
    await writeFile(notJson, '{"schemaVersion": 2, ');
    const broken = await iolab(['compare', notJson, fileB]);
    expect(broken.code).toBe(3);
    expect(broken.stderr).toContain(`${notJson}: not JSON`);
  });

  describe('on results altered by hand', () => {
    const names = { a: 'A/results.json', b: 'B/results.json' };
    const epoll = (results: Results) => results.analysis.subjects.find((s) => s.subject === 'epoll')!;

    it('a changed verdict: marked changed, with what each run measured', () => {
      const altered = structuredClone(a);
      const verdict = altered.analysis.verdicts.find((v) => v.subject === 'select')!;
      const before = a.analysis.verdicts.find((v) => v.subject === 'select')!;
      verdict.verdict = VERDICTS.find((v) => v !== before.verdict)!;
      verdict.measurement = 'asker got 0 of 9 requests answered (altered by the test)';
      const text = renderComparisonMarkdown(compareRuns(a, altered, names));
      const parsed = sectionsOf(text);
      expect(verdictRows(parsed).get('starvation / select')).toEqual([before.verdict, verdict.verdict, 'changed']);
      for (const [key, [, , change]] of verdictRows(parsed)) if (key !== 'starvation / select') expect(change, key).toBe('unchanged');
      const items = section(parsed, 'Verdicts').items;
      expect(items).toContainEqual(expect.stringContaining(`starvation, select: ${before.verdict} in A, ${verdict.verdict} in B.`));
      expect(items.join('\n')).toContain(`A: ${before.measurement}`);
      expect(items.join('\n')).toContain('B: asker got 0 of 9 requests answered (altered by the test)');
      expectRendersAsHtml(text);
    });

    it('a figure that is 0 in A: no ratio, a dash and the reason; still judged against the spread', () => {
      const altered = structuredClone(a);
      epoll(altered).measure!.throughput = { median: 0, min: 0, max: 0, values: [0, 0, 0, 0] };
      const text = renderComparisonMarkdown(compareRuns(altered, b, names));
      const parsed = sectionsOf(text);
      const row = rowOf(section(parsed, 'epoll').tables[0], 'round trips/s');
      expect(row.A).toBe('0');
      expect(row.ratio).toBe('—¹');
      expect(section(parsed, 'epoll').paragraphs.join(' ')).toContain('¹ round trips/s: 0 in A, so B/A has no value.');
      expect(epoll(b).measure!.throughput!.min).toBeGreaterThan(0);
      expect(row.judgement).toBe('higher in B, beyond the spread: every repetition above every one of A (2.9% by chance)');
      const glance = rowOf(section(parsed, 'At a glance: round trips/s').tables[0], 'epoll');
      expect(glance.ratio).toMatch(/^—/);
      expect(section(parsed, 'At a glance: round trips/s').paragraphs.join(' ')).toContain("epoll's round trips/s: 0 in A, so B/A has no value.");
      expectNothingUnmeasured(text);
    });

    it('ten times the round trips in every repetition: 10.00×, beyond the spread', () => {
      const altered = structuredClone(a);
      const spread = epoll(a).measure!.throughput!;
      epoll(altered).measure!.throughput = { median: spread.median * 10, min: spread.min * 10, max: spread.max * 10, values: spread.values.map((v) => v * 10) };
      const row = rowOf(section(sectionsOf(renderComparisonMarkdown(compareRuns(a, altered, names))), 'epoll').tables[0], 'round trips/s');
      expect(row.ratio).toBe('10.00×');
      expect(row.judgement).toBe('higher in B, beyond the spread: every repetition above every one of A (2.9% by chance)');
    });

    it('too few repetitions, and a figure not measured in one run', () => {
      const altered = structuredClone(a);
      const spread = epoll(a).measure!.throughput!;
      epoll(altered).measure!.throughput = { median: spread.median, min: spread.median, max: spread.median, values: [spread.median] };
      epoll(altered).measure!.cpuPercent = null;
      const parsed = sectionsOf(renderComparisonMarkdown(compareRuns(altered, b, names)));
      const table = section(parsed, 'epoll').tables[0];
      expect(rowOf(table, 'round trips/s').judgement).toBe('inconclusive: 1 repetition in A, 4 in B (a verdict needs 4 a side)');
      expect(rowOf(table, 'server CPU').A).toBe('—');
      expect(rowOf(table, 'server CPU').judgement).toBe('not compared: not measured in A');
      expect(section(parsed, 'epoll').paragraphs.join(' ')).toContain('server CPU: not measured in A, so B/A has no value.');
    });

    it('memory given back in A (a growth below 0, computed again from its runs): no ratio, the growth with its sign', () => {
      const altered = structuredClone(a);
      const runs = altered.runs.filter((run) => run.variant === 'epoll' && run.phase === 'measure');
      expect(runs.length).toBe(4);
      for (const run of runs) run.baseline!.peakRssKb = run.proc!.peakRssKb + 100;
      const parsed = sectionsOf(renderComparisonMarkdown(compareRuns(altered, b, names)));
      const row = rowOf(section(parsed, 'epoll').tables[0], 'RSS added');
      expect(row.A).toBe('−100 KiB');
      expect(row.ratio).toMatch(/^—[¹²³⁴⁵⁶⁷⁸⁹]$/);
      expect(section(parsed, 'epoll').paragraphs.join(' ')).toContain(`${row.ratio.slice(1)} RSS added: below 0 in A, so B/A has no value.`);
      expect(row.judgement).toMatch(/^higher in B, beyond the spread: /);
    });

    it('an incomplete run: said in the header with its reason, whatever the reason holds', () => {
      const altered = structuredClone(b);
      altered.complete = false;
      altered.incompleteReason = 'measure run 3 of poll failed: exit | signal';
      const text = renderComparisonMarkdown(compareRuns(a, altered, names));
      const parsed = sectionsOf(text);
      const [runs] = section(parsed, 'The two runs').tables;
      expect(runs.rows.find((r) => r[0] === 'complete')!.slice(1)).toEqual(['yes', 'INCOMPLETE: measure run 3 of poll failed: exit | signal']);
      expect(text).toContain('> **Run B is INCOMPLETE**');
      expectRendersAsHtml(text);
    });

    it('runs of two labs: a usage error naming both', () => {
      const other = structuredClone(b);
      other.lab.name = 'fd-ceiling';
      expect(() => compareRuns(a, other, names)).toThrow(UsageError);
      expect(() => compareRuns(a, other, names)).toThrow(/A\/results\.json is a run of lab "starvation", B\/results\.json of lab "fd-ceiling"/);
    });
  });

  describe('an experiment lab', () => {
    let expA: string;
    let expB: string;
    let ea: Results;
    let eb: Results;

    beforeAll(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'iolab-compare-lab-'));
      const lab = join(dir, 'concurrent-client-short.yaml');
      await writeFile(
        lab,
        [
          'name: concurrent-client-short',
          'title: One thread, three slow servers',
          'claim: One at a time pays the sum of the waits; all at once with select about the longest.',
          'experiment: concurrent-client',
          'repetitions: 4',
          'parameters: { servers: 3, delayMs: 100 }',
          '',
        ].join('\n'),
      );
      const outs = [await mkdtemp(join(tmpdir(), 'iolab-compare-exp-a-')), await mkdtemp(join(tmpdir(), 'iolab-compare-exp-b-'))];
      for (const out of outs) {
        const ran = await iolab(['run', lab, '--runtime', 'local', '--out', out]);
        expect(ran.code, ran.stderr).toBe(0);
      }
      [expA, expB] = [await onlyResultsFile(outs[0]), await onlyResultsFile(outs[1])];
      [ea, eb] = [await readResults(expA), await readResults(expB)];
    }, labTimeoutMs(2 * 2 * 4, 0.3));

    it('compares its verdicts and each arm\'s time, CPU and round trips', async () => {
      const printed = await iolab(['compare', expA, expB, '--stdout']);
      expect(printed.code, printed.stderr).toBe(0);
      const parsed = sectionsOf(printed.stdout);
      const rows = verdictRows(parsed);
      expect([...rows.keys()].sort()).toEqual([...new Set([...ea.analysis.verdicts, ...eb.analysis.verdicts].map((v) => `${v.rule} / ${v.subject}`))].sort());
      for (const verdict of ea.analysis.verdicts) expect(rows.get(`${verdict.rule} / ${verdict.subject}`)![0]).toBe(verdict.verdict);
      const [runs] = section(parsed, 'The two runs').tables;
      expect(runs.rows.find((r) => r[0] === 'parameters')!.slice(1)).toEqual(['servers 3, delayMs 100', 'servers 3, delayMs 100']);
      for (const fa of ea.analysis.experiment!.arms) {
        const fb = eb.analysis.experiment!.arms.find((f) => f.arm === fa.arm)!;
        const [table] = section(parsed, fa.label).tables;
        expectRatio(rowOf(table, 'time').ratio, fb.wallSeconds!.median / fa.wallSeconds!.median, `${fa.label} time`);
        expectJudgement(rowOf(table, 'time').judgement, fa.wallSeconds!, fb.wallSeconds!, `${fa.label} time`);
        expectRatio(rowOf(table, 'one round trip').ratio, fb.fetchSeconds!.median / fa.fetchSeconds!.median, `${fa.label} one round trip`);
        expect(table.rows.map((r) => r[0])).toContain('CPU');
      }
      expect(section(parsed, 'At a glance: time').tables[0].rows.map((r) => r[0])).toEqual(ea.analysis.experiment!.arms.map((f) => f.label));
      expectRendersAsHtml(printed.stdout);
      expectNothingUnmeasured(printed.stdout);
    });

    it('refuses to compare runs of two labs, naming both (exit 2)', async () => {
      const refused = await iolab(['compare', fileA, expB]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`iolab: cannot compare runs of two different labs: ${fileA} is a run of lab "starvation", ${expB} of lab "concurrent-client-short"`);
    });
  });
});

describe('the ratio B/A as written', () => {
  it('reads 1.00× for no change, and never beside a difference beyond the spread', async () => {
    const { formatComparisonRatio } = await import('../src/report/compare-markdown.js');
    expect(formatComparisonRatio(1)).toBe('1.00×');
    expect(formatComparisonRatio(1.001)).toBe('1.00×');
    expect(formatComparisonRatio(1.001, true)).toBe('1.001×');
    expect(formatComparisonRatio(0.99996, true)).toBe('0.99996×');
    expect(formatComparisonRatio(2.5, true)).toBe('2.50×');
  });
});
