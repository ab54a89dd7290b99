// The exercises' Python starters and references run by hand, as a student first runs them: with
// no PORT in the environment they listen on the port their README names (7000).
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LineProcess } from '../src/runtime/process.js';

const EXERCISES = join(import.meta.dirname, '..', 'labs', 'exercises');
const exercises = (await readdir(EXERCISES, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
const { PORT: _unset, ...environment } = process.env;

describe('an exercise run by hand, with PORT unset', () => {
  it.each(exercises)('%s: its README names the default port, and its starter and reference listen on it', async (exercise) => {
    expect(await readFile(join(EXERCISES, exercise, 'README.md'), 'utf8')).toMatch(/`PORT` \(an environment variable; 7000 when it is unset/);
    // One at a time: each listens on 7000 (with SO_REUSEADDR, so the next one may follow at once).
    for (const kind of ['starter', 'reference']) {
      const server = new LineProcess(`${exercise}/${kind}`, '/usr/bin/python3', ['-B', 'server.py'], { cwd: join(EXERCISES, exercise, kind), env: environment });
      try {
        await expect(server.waitForLine('stdout', (line) => line.startsWith('listening on '), 'its listening line', 10_000)).resolves.toBe('listening on 0.0.0.0:7000');
      } finally {
        await server.stop();
      }
    }
  });
});
