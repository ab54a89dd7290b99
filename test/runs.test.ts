// Every run kept: `iolab run` writes each run of a lab into OUT/LAB/RUN-ID/, points OUT/LAB/latest
// at the newest, and lists every run of every lab in OUT/index.html and OUT/index.md. Run as root
// into a directory of another user's (compose's ./reports), everything it writes is that user's.
import { chown, cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { escapeHtml } from '../src/report/html.js';
import { collectRunIndex, writeRunIndex } from '../src/report/run-index.js';
import { newRunDirectoryId, pointLatestAt, RUN_ID_PATTERN, runIdTime, startRunDirectory } from '../src/report/runs.js';
import { giveToOwnerOf } from '../src/shared/ownership.js';
import { ResultsSchema } from '../src/shared/results.js';
import { labTimeoutMs, runIolab } from './helpers.js';

/**
 * What a root controller writes (compose's) goes to the owner of OUT: only root can give a file
 * away, so these tests run as root, as the rest of the suite does (the eBPF observer, Docker) and
 * as `bash .ci/run` runs it. Not root, they fail and say so.
 */
function expectRoot(): void {
  expect(process.getuid?.(), 'the ownership tests give files away (lchown), which only root may: run the tests as root, as bash .ci/run does').toBe(0);
}
/** nobody:nogroup, the owner given to the output directory. */
const OTHER = { uid: 65534, gid: 65534 };

/** Every file, directory and symlink under `dir` (itself included), with its owner, symlinks not followed. */
async function owners(dir: string): Promise<{ path: string; uid: number; gid: number }[]> {
  const found: { path: string; uid: number; gid: number }[] = [];
  const walk = async (path: string) => {
    const entry = await lstat(path);
    found.push({ path, uid: entry.uid, gid: entry.gid });
    if (entry.isDirectory()) for (const name of await readdir(path)) await walk(join(path, name));
  };
  await walk(dir);
  return found;
}

describe('run directories', () => {
  it('are named by the start time in UTC to the millisecond and a random suffix, sorting as the times do', () => {
    const at = new Date('2026-11-30T15:40:12.345Z');
    expect(newRunDirectoryId(at, 'a1b2')).toBe('20261130T154012.345Z-a1b2');
    expect(RUN_ID_PATTERN.test(newRunDirectoryId())).toBe(true);
    expect(runIdTime('20261130T154012.345Z-a1b2')).toEqual(at);
    expect(runIdTime('latest')).toBeNull();
    const times = ['2026-01-02T03:04:05.006Z', '2026-01-02T03:04:05.060Z', '2026-01-02T03:04:50.000Z', '2026-10-02T00:00:00.000Z', '2027-01-01T00:00:00.000Z'];
    const ids = times.map((time) => newRunDirectoryId(new Date(time)));
    expect([...ids].sort()).toEqual(ids);
  });

  it('gives each of many runs started in the same millisecond a directory of its own', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-runs-'));
    const at = new Date();
    // 300 names drawn from 65,536 suffixes: about one chance in two that two draw the same one.
    const runs = await Promise.all(Array.from({ length: 300 }, () => startRunDirectory(out, 'lab', at)));
    expect(new Set(runs.map((run) => run.id)).size).toBe(300);
    expect((await readdir(join(out, 'lab'))).length).toBe(300);
    expect(runs.every((run) => run.dir === join(out, 'lab', run.id) && run.labDir === join(out, 'lab'))).toBe(true);
  });

  it('latest is a relative symlink, replaced by a rename, with nothing left beside it', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-latest-'));
    const first = await startRunDirectory(out, 'lab');
    const second = await startRunDirectory(out, 'lab');
    await pointLatestAt(first.labDir, first.id);
    expect(await readlink(join(out, 'lab', 'latest'))).toBe(first.id);
    await pointLatestAt(second.labDir, second.id);
    expect(await readlink(join(out, 'lab', 'latest'))).toBe(second.id);
    expect((await readdir(join(out, 'lab'))).sort()).toEqual([first.id, second.id, 'latest'].sort());
    // Relative: the directory moved elsewhere keeps a working link.
    const moved = join(await mkdtemp(join(tmpdir(), 'iolab-moved-')), 'lab');
    await cp(join(out, 'lab'), moved, { recursive: true, verbatimSymlinks: true });
    expect((await stat(join(moved, 'latest'))).isDirectory()).toBe(true);
  });
});

describe('the ownership of what a root controller writes', () => {
  it('as root, gives files, directories and symlinks inside a directory of another user\'s to that user, never what a symlink points at', async () => {
    expectRoot();
    const out = await mkdtemp(join(tmpdir(), 'iolab-owner-'));
    await chown(out, OTHER.uid, OTHER.gid);
    const outside = join(await mkdtemp(join(tmpdir(), 'iolab-outside-')), 'root-only');
    await writeFile(outside, 'root\'s\n');
    await mkdir(join(out, 'lab', 'run', 'tables'), { recursive: true });
    await writeFile(join(out, 'lab', 'run', 'results.json'), '{}\n');
    await writeFile(join(out, 'lab', 'run', 'tables', '01.csv'), 'a\n');
    await symlink('run', join(out, 'lab', 'latest'));
    await symlink(outside, join(out, 'lab', 'outside'));
    expect(await giveToOwnerOf(out, [join(out, 'lab')])).toEqual(OTHER);
    for (const entry of await owners(out)) expect(entry, entry.path).toMatchObject(OTHER);
    // The symlink changed, not the file it points at outside the directory.
    expect(await stat(outside)).toMatchObject({ uid: 0, gid: 0 });
    await expect(giveToOwnerOf(out, [outside])).rejects.toThrow(/is not inside/);
  });

  it('does nothing in a directory that belongs to root, or when not root', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-owner-'));
    await writeFile(join(out, 'file'), 'x\n');
    expect(await giveToOwnerOf(out, [join(out, 'file')])).toBeNull();
    expect((await stat(join(out, 'file'))).uid).toBe(process.getuid?.());
  });
});

describe('two `iolab run` of a lab into one OUT', () => {
  let out: string;
  const exits: { code: number | null; stderr: string }[] = [];
  // The shortest lab there is: one server, one repetition of half a second, no syscall counts.
  const args = () => ['run', 'starvation', '--runtime', 'local', '--duration', '0.5', '--models', 'blocking', '--repetitions', '1', '--no-trace', '--out', out];

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'iolab-two-runs-'));
    // As compose's controller: root, writing into a directory that belongs to someone else.
    if (process.getuid?.() === 0) await chown(out, OTHER.uid, OTHER.gid);
    exits.push(await runIolab(args()));
    exits.push(await runIolab(args()));
  }, 2 * labTimeoutMs(1, 0.5));

  it('keeps both runs, each in its own directory, and latest points at the second', async () => {
    for (const exit of exits) expect(exit.code, exit.stderr).toBe(0);
    const ids = (await readdir(join(out, 'starvation'))).filter((name) => name !== 'latest').sort();
    expect(ids).toHaveLength(2);
    expect(ids.every((id) => RUN_ID_PATTERN.test(id))).toBe(true);
    // Each printed where it wrote: the first run into the first directory, the second into the second.
    expect(exits[0]!.stderr).toContain(join(out, 'starvation', ids[0]!, 'report.md'));
    expect(exits[1]!.stderr).toContain(join(out, 'starvation', ids[1]!, 'report.md'));
    const results = await Promise.all(ids.map(async (id) => ResultsSchema.parse(JSON.parse(await readFile(join(out, 'starvation', id, 'results.json'), 'utf8')))));
    expect(results.map((r) => r.complete)).toEqual([true, true]);
    expect(Date.parse(results[0]!.finishedAt)).toBeLessThanOrEqual(Date.parse(results[1]!.startedAt));
    expect(await readFile(join(out, 'starvation', ids[0]!, 'report.md'), 'utf8')).toContain(results[0]!.lab.title);
    expect(await readlink(join(out, 'starvation', 'latest'))).toBe(ids[1]);
    expect(await readFile(join(out, 'starvation', 'latest', 'results.json'), 'utf8')).toBe(await readFile(join(out, 'starvation', ids[1]!, 'results.json'), 'utf8'));
  });

  it('lists both in index.md and index.html, newest first, latest marked, with links that lead to the reports', async () => {
    const ids = (await readdir(join(out, 'starvation'))).filter((name) => name !== 'latest').sort().reverse();
    const markdown = await readFile(join(out, 'index.md'), 'utf8');
    const rows = markdown.split('\n').filter((line) => ids.some((id) => line.includes(id)));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain(`${ids[0]} **(latest)**`);
    expect(rows[1]).toContain(ids[1]);
    expect(rows[1]).not.toContain('latest');
    for (const row of rows) {
      expect(row).toMatch(/\| complete +\| 1 +\| 0 +\| 0 +\|/);
      expect(row).toMatch(/\| local +\|/);
      expect(row).toMatch(/\| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC +\|/);
    }
    const markdownLinks = [...markdown.matchAll(/\]\(([^)]+)\)/g)].map((m) => m[1]!);
    expect(markdownLinks.filter((link) => link.endsWith('/report.md'))).toEqual(ids.map((id) => `starvation/${id}/report.md`));

    const html = await readFile(join(out, 'index.html'), 'utf8');
    expect(html.indexOf(ids[0]!)).toBeLessThan(html.indexOf(ids[1]!));
    expect(html).toMatch(new RegExp(`<tr class="latest"><td class="nowrap"><code>${ids[0]}</code> <strong>\\(latest\\)</strong>`));
    const hrefs = [...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]!);
    expect(hrefs.filter((href) => href.endsWith('report.md'))).toEqual(ids.map((id) => `starvation/${id}/report.md`));
    // Relative links to files that are there; nothing loaded from anywhere else.
    for (const href of [...hrefs, ...markdownLinks]) {
      expect(href).not.toMatch(/^[a-z]+:|^\//);
      expect((await stat(join(out, decodeURIComponent(href)))).isFile(), href).toBe(true);
    }
    expect(html).not.toMatch(/<script|<link|src=|@import|url\(/i);
  });

  it('as root into a directory of another user\'s, leaves every file and directory it wrote to that user', async () => {
    expectRoot();
    const written = await owners(out);
    expect(written.length).toBeGreaterThanOrEqual(11); // OUT, 2 index files, the lab, latest, 2 runs of their reports and results
    for (const entry of written) expect(entry, entry.path).toMatchObject(OTHER);
  });

  it('lists a run whose results.json is missing or unreadable with why, and escapes every text it shows', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'iolab-index-'));
    await cp(out, copy, { recursive: true, verbatimSymlinks: true });
    const latest = join(copy, 'starvation', 'latest', 'results.json');
    // A run that never wrote its results, and one whose results.json is broken.
    await mkdir(join(copy, 'starvation', '20200101T000000.000Z-0001'));
    await mkdir(join(copy, 'starvation', '20200101T000000.000Z-0002'));
    await writeFile(join(copy, 'starvation', '20200101T000000.000Z-0002', 'results.json'), '{"schemaVersion": ');
    // A lab whose name, title and reason carry HTML and Markdown of their own.
    const hostile = '<img src=x onerror=alert(1)>';
    const results = JSON.parse(await readFile(latest, 'utf8'));
    results.lab.title = `<script>alert("title")</script> & more`;
    results.complete = false;
    results.incompleteReason = `${hostile} | a pipe\nand a line`;
    const evil = join(copy, 'x<b>&"y', '20210101T000000.000Z-0003');
    await mkdir(evil, { recursive: true });
    await writeFile(join(evil, 'results.json'), JSON.stringify(results));
    await writeFile(join(evil, 'report.md'), 'a report\n');
    // What an iolab from before run directories wrote: OUT/LAB/results.json and report.md.
    await cp(latest, join(copy, 'starvation', 'results.json'));
    await writeFile(join(copy, 'starvation', 'report.md'), 'an older report\n');
    await writeRunIndex(copy);

    const labs = await collectRunIndex(copy);
    const starvation = labs.find((lab) => lab.name === 'starvation')!;
    expect(starvation.runs.map((run) => run.id).slice(-3)).toEqual(['20200101T000000.000Z-0002', '20200101T000000.000Z-0001', null]);
    const [broken, missing, older] = starvation.runs.slice(-3);
    expect(older).toMatchObject({ path: 'starvation', latest: false, error: null, reports: ['report.md'] });
    expect(broken!.results).toBeNull();
    expect(broken!.error).toMatch(/^starvation\/20200101T000000\.000Z-0002\/results\.json: not JSON/);
    expect(missing!.error).toMatch(/results\.json: cannot read it: ENOENT/);
    expect(missing!.startedAt).toBe('2020-01-01T00:00:00.000Z');

    const html = await readFile(join(copy, 'index.html'), 'utf8');
    expect(html).toContain('results.json unreadable: starvation/20200101T000000.000Z-0002/results.json: not JSON');
    expect(html).toContain('no results.json (still running, or stopped before writing it)');
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('x<b>');
    expect(html).toContain(escapeHtml('<script>alert("title")</script> & more'));
    expect(html).toContain(`incomplete: ${escapeHtml(hostile)} | a pipe`);
    expect(html).toContain(`href="${escapeHtml('x%3Cb%3E%26%22y/20210101T000000.000Z-0003/report.md')}"`);
    const markdown = await readFile(join(copy, 'index.md'), 'utf8');
    expect(markdown).toMatch(/\| \(written by an older iolab into the lab's directory\) +\|.*\| complete +\|.*\[report\.md\]\(starvation\/report\.md\) +\|/);
    expect(markdown).toContain('incomplete: \\<img src=x onerror=alert(1)\\> \\| a pipe and a line');
    expect(markdown).toContain('](x%3Cb%3E%26%22y/20210101T000000.000Z-0003/report.md)');
    // Each table row is one line with the table's columns: no row broken by the text in it.
    for (const table of markdown.split('\n## ').slice(1)) {
      const lines = table.split('\n').filter((line) => line.startsWith('|'));
      const columns = (line: string) => line.replace(/\\\|/g, '').split('|').length;
      expect(new Set(lines.map(columns)).size, table).toBe(1);
    }
  });

  it('leaves no run directory for a lab that fails before writing anything, and lists the runs that are there', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'iolab-empty-server-'));
    await writeFile(join(empty, 'notes.txt'), 'no server here\n');
    const before = (await readdir(join(out, 'starvation'))).sort();
    const exit = await runIolab([...args(), '--server', empty]);
    expect(exit.code, exit.stderr).toBe(1);
    expect(exit.stderr).toMatch(/server \S+ cannot run/);
    expect((await readdir(join(out, 'starvation'))).sort()).toEqual(before);
    const index = await readFile(join(out, 'index.md'), 'utf8');
    expect(index.split('\n').filter((line) => /^\| \d{8}T/.test(line))).toHaveLength(2);
  }, labTimeoutMs(1, 0.5));
});
