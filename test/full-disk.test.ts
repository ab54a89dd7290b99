// A disk that fills while iolab writes its reports (a real one: a small tmpfs, mounted as root as
// CI runs the suite): the command says in one line which file and why, exits with the documented
// code, and leaves nothing half-written: no partial file, and every file under its real name whole.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/errors.js';
import { ResultsSchema } from '../src/shared/results.js';
import { labTimeoutMs, runIolab as iolab } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'results');

/** Room for a results.json and report.md of one-connection (about 72 KB), not for its report.html (about 860 KB). */
const DISK_SIZE = '256k';

const mounted: string[] = [];

/** A new, empty tmpfs of DISK_SIZE; unmounted after the tests, whatever their outcome. */
async function smallDisk(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'iolab-full-disk-'));
  mounted.push(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${DISK_SIZE}`, 'tmpfs', dir]);
  return dir;
}

afterAll(async () => {
  for (const dir of mounted) {
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' });
    } catch {
      // Still busy (a process of a failed test): detached now, freed when it lets go.
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      } catch {
        // never mounted
      }
    }
    await rmdir(dir).catch(() => {});
  }
});

/** Every file under `dir`, recursively, as paths. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

/**
 * What a report write that ran out of room at report.html must leave in `dir`: exit code 4, one
 * line naming DIR/report.html and the reason, no partial file under `disk`, results.json that
 * parses, report.md exactly what `iolab report --stdout` renders from it, and a report.html only
 * when one was there before (whole, and the line says so).
 */
async function expectFailedAtHtml(exit: { code: number | null; stderr: string }, disk: string, dir: string): Promise<string> {
  expect(exit.code, exit.stderr).toBe(ExitCode.runtimeUnavailable);
  const html = join(dir, 'report.html');
  const lines = exit.stderr.split('\n').filter((line) => line.includes('report.html') && line.includes('no space left on device'));
  expect(lines, exit.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^iolab: cannot write ${html.replace(/[.]/g, '\\.')}: no space left on device \\(ENOSPC\\); nothing was written under that name`));
  expect(exit.stderr, 'a stack').not.toMatch(/^\s+at /m);

  expect((await filesUnder(disk)).filter((file) => file.endsWith('.partial'))).toEqual([]);
  ResultsSchema.parse(JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')));
  const rendered = await iolab(['report', join(dir, 'results.json'), '--stdout']);
  expect(rendered.code, rendered.stderr).toBe(0);
  expect(await readFile(join(dir, 'report.md'), 'utf8')).toBe(rendered.stdout);

  const htmlThere = await stat(html).then(() => true, () => false);
  expect(lines[0].includes('already there'), lines[0]).toBe(htmlThere);
  if (htmlThere) expect(await readFile(html, 'utf8')).toMatch(/<\/html>\n$/);
  return lines[0];
}

describe('a full disk', () => {
  it('iolab report --html: report.html that does not fit is not written, report.md is whole, and one line says so', async () => {
    const disk = await smallDisk();
    await writeFile(join(disk, 'results.json'), gunzipSync(await readFile(join(FIXTURES, 'one-connection.json.gz'))));
    const exit = await iolab(['report', join(disk, 'results.json'), '--out', disk, '--html']);
    const line = await expectFailedAtHtml(exit, disk, disk);
    expect(line).not.toContain('already there');
    expect((await readdir(disk)).sort()).toEqual(['report.md', 'results.json']);
  });

  it(
    'iolab run: the run directory keeps results.json and report.md whole when report.html does not fit',
    async () => {
      const disk = await smallDisk();
      const exit = await iolab(['run', 'starvation', '--runtime', 'local', '--duration', '1', '--repetitions', '1', '--models', 'epoll', '--no-trace', '--out', disk]);
      const runs = (await readdir(join(disk, 'starvation'))).filter((name) => name !== 'latest');
      expect(runs, exit.stderr).toHaveLength(1);
      const runDir = join(disk, 'starvation', runs[0]);
      const line = await expectFailedAtHtml(exit, disk, runDir);
      expect(line).toContain('written whole beside it: results.json and report.md');
      // The measurement is on disk: the lab's one run, finished.
      const results = ResultsSchema.parse(JSON.parse(await readFile(join(runDir, 'results.json'), 'utf8')));
      expect(results.runs.filter((run) => run.phase === 'measure').map((run) => run.model)).toEqual(['epoll']);
    },
    labTimeoutMs(1, 1),
  );
});
