// A process's output read line by line (src/runtime/process.ts), as the runtimes read their
// servers, clients and the lab's observer: a long-lived source keeps only its last lines, and a
// wait for a line still finds the next one after many have been dropped.
import { describe, expect, it } from 'vitest';
import { LineProcess } from '../src/runtime/process.js';

describe('a LineProcess', () => {
  it('finds a line that comes after hundreds of others were dropped from the front', async () => {
    // 250 lines at once (more than are kept), a pause, then the one waited for.
    const source = new LineProcess('printer', 'sh', ['-c', 'seq 1 250; sleep 0.3; echo wanted; sleep 0.2; echo also-wanted']);
    try {
      await source.waitForLine('stdout', (line) => line === '250', 'the 250th line', 10_000);
      await expect(source.waitForLine('stdout', (line) => line === 'wanted', 'the wanted line', 10_000)).resolves.toBe('wanted');
      await expect(source.waitForLine('stdout', (line) => line.startsWith('also-'), 'the last line', 10_000)).resolves.toBe('also-wanted');
      expect(source.stdout.length).toBeLessThanOrEqual(200);
    } finally {
      await source.stop();
    }
  });

  it('writes to the stdin of a process started with one (a client told its target)', async () => {
    const source = new LineProcess('reader', 'sh', ['-c', 'read target; echo "got $target"'], { stdin: 'pipe' });
    source.child.stdin!.end('127.0.0.1:7000\n');
    await expect(source.waitForLine('stdout', (line) => line.startsWith('got '), 'its answer', 10_000)).resolves.toBe('got 127.0.0.1:7000');
    await source.exited;
  });
});
