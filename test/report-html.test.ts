// report.html in a real browser (Debian's chromium through puppeteer-core): the default suite run
// for real, as `npm start` runs it but shorter, and every lab's page rendered from a real
// results.json of that lab (test/fixtures/results/LAB.json.gz, recorded on a 2-CPU VM). Each
// page must load offline with no console error, every chart must draw marks, the default labs
// must show a timeline per server, and a screenshot of each page lands next to it (report.png).
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartsOf } from '../src/report/charts.js';
import { escapeHtml } from '../src/report/html.js';
import { writeRendering } from '../src/report/index.js';
import { timelinesOf } from '../src/report/timelines.js';
import { ResultsSchema, type Results } from '../src/shared/results.js';
import { checkPage, startBrowser, type PageCheck } from './browser.js';
import { labTimeoutMs, runIolab } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'results');
const PAGE_TIMEOUT_MS = 60_000;

async function fixture(lab: string): Promise<Results> {
  return ResultsSchema.parse(JSON.parse(gunzipSync(await readFile(join(FIXTURES, `${lab}.json.gz`))).toString('utf8')));
}

/** Every results.json under `dir`, wherever the run layout puts it. */
async function resultsFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name === 'results.json').map((e) => join(e.parentPath, e.name));
}

function expectDrawn(check: PageCheck, results: Results): void {
  expect(check.errors, 'console errors').toEqual([]);
  expect(check.charts.length, 'charts on the page').toBeGreaterThan(0);
  for (const chart of check.charts) {
    expect(chart.failed, `${chart.id} failed`).toBeNull();
    expect(chart.rendered, `${chart.id} rendered`).toBe(true);
    expect(chart.marks, `${chart.id}'s marks`).toBeGreaterThan(0);
    expect(chart.nan, `${chart.id} draws at NaN`).toBe(false);
  }
  // Every verdict is on the page, with its measurement.
  for (const verdict of results.analysis.verdicts) expect(check.text).toContain(verdict.measurement.slice(0, 60));
}

let browser: Browser;
beforeAll(async () => {
  browser = await startBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

describe('report.html of the default suite, run for real', () => {
  let out: string;
  let exit: { code: number | null; stderr: string };
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'iolab-html-'));
    exit = await runIolab(['run', '--runtime', 'local', '--duration', '0.5', '--repetitions', '1', '--out', out]);
  }, labTimeoutMs(24, 0.5) + 30_000);

  it('writes report.html beside report.md for each default lab, with its charts, its timelines and every verdict', async () => {
    expect(exit.code, exit.stderr).toBe(0);
    const files = await resultsFiles(out);
    expect(files.length).toBe(2);
    for (const file of files) {
      const results = ResultsSchema.parse(JSON.parse(await readFile(file, 'utf8')));
      const html = file.replace(/results\.json$/, 'report.html');
      const check = await checkPage(browser, html, file.replace(/results\.json$/, 'report.png'), PAGE_TIMEOUT_MS);
      expectDrawn(check, results);
      expect((await stat(file.replace(/results\.json$/, 'report.png'))).size).toBeGreaterThan(10_000);
      // A timeline per server: the eBPF observer records one in each traced run.
      expect(results.environment.tracerKind).toBe('bpf');
      const timelines = check.charts.filter((c) => c.id.startsWith('timeline-'));
      expect(timelines.length, `${results.lab.name}'s timelines`).toBe(results.lab.variants.length);
      expect(timelinesOf(results).charts.map((c) => c.title)).toEqual(results.lab.variants.map((v) => v.label));
    }
  });
});

describe('report.html of every lab, from a real results.json of it', () => {
  let out: string;
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'iolab-html-labs-'));
  });

  const labs = ['busy-poll', 'c10k', 'concurrent-client', 'coroutines', 'fd-ceiling', 'idle-scan', 'latency-under-load', 'lt-vs-et', 'models', 'observer-effect', 'one-connection', 'python', 'starvation', 'switching', 'threads-vs-events', 'two-phases'];
  it('has a fixture for every lab of labs/', async () => {
    const names = (await readdir(join(import.meta.dirname, '..', 'labs'))).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, ''));
    expect(labs).toEqual(names.sort());
  });

  it.each(labs)('%s: loads offline with no console error; the claim has its chart; every chart draws marks', async (lab) => {
    const results = await fixture(lab);
    const dir = join(out, lab);
    await mkdir(dir, { recursive: true });
    const html = await writeRendering(results, dir, 'report.html');
    const check = await checkPage(browser, html, join(dir, 'report.png'), PAGE_TIMEOUT_MS);
    expectDrawn(check, results);
    // The claim's chart: each rule of the lab with verdicts has at least one chart of its own.
    const charts = chartsOf(results);
    for (const rule of new Set(results.analysis.verdicts.map((v) => v.rule))) {
      expect(charts.some((c) => c.rules.includes(rule)), `a chart for ${rule}`).toBe(true);
    }
    // A timeline per server where the runs recorded one; else the page says why instead of drawing an empty one.
    const timelines = check.charts.filter((c) => c.id.startsWith('timeline-')).length;
    if (results.runs.some((r) => r.trace?.timeline)) expect(timelines).toBe(results.lab.variants.length);
    else if (!results.experiment) expect(check.text).toContain('No timeline: timelines come from the eBPF observer');
  });

  it('shows text from results.json as text: a server log line with HTML runs nothing and reads as written', async () => {
    const results = await fixture('starvation');
    const hostile = '<img src=x onerror="console.error(\'ran\')"></script><script>console.error("ran")</script> [the log](javascript:console.error(1)) ![x](http://example.com/x.png)';
    results.analysis.failedRuns = [{ subject: results.analysis.subjects[0].subject, phase: 'measure', repetition: 0, error: hostile, clientErrors: [] }];
    results.analysis.verdicts[0].measurement = `${results.analysis.verdicts[0].measurement} ${hostile}`;
    results.lab.title = `${results.lab.title} </title><script>console.error("ran")</script>`;
    const dir = join(out, 'hostile');
    await mkdir(dir, { recursive: true });
    const html = await writeRendering(results, dir, 'report.html');
    const check = await checkPage(browser, html, join(dir, 'report.png'), PAGE_TIMEOUT_MS);
    expect(check.errors).toEqual([]);
    expect(check.text).toContain('<script>console.error("ran")</script>');
    const page = await readFile(html, 'utf8');
    expect(page).toContain(escapeHtml(hostile));
    // The failed run's error, through Markdown: no link of another scheme than http(s), no image to load.
    const body = page.slice(0, page.indexOf('<script>')); // the page before the inlined libraries
    expect(body).toContain('the log');
    expect(body).not.toMatch(/href="javascript:/i);
    expect(body).not.toMatch(/<img /i);
    expect(check.text).toContain('[the log](javascript:console.error(1))');
  });

  it('compare.html: two runs side by side as a page, every table of compare.md in it, no console error', async () => {
    const dir = join(out, 'compare');
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'results.json');
    await writeFile(file, JSON.stringify(await fixture('models')));
    const compared = await runIolab(['compare', file, file, '--out', dir]);
    expect(compared.code, compared.stderr).toBe(0);
    const markdown = await readFile(join(dir, 'compare.md'), 'utf8');
    const check = await checkPage(browser, join(dir, 'compare.html'), join(dir, 'compare.png'), PAGE_TIMEOUT_MS);
    expect(check.errors).toEqual([]);
    const tables = markdown.split('\n').filter((line, i, lines) => /^\|[ :|-]+\|$/.test(line) && lines[i - 1]?.startsWith('|')).length;
    expect(tables).toBeGreaterThan(2);
    expect((await readFile(join(dir, 'compare.html'), 'utf8')).match(/<table>/g)?.length).toBe(tables);
    expect(check.text).toContain('unchanged');
  });
});
