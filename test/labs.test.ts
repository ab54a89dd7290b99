// Lab files: the shipped ones validate; a bad one is rejected with the file, the field path,
// the line and what was expected, and nothing runs.
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { LabFileError } from '../src/errors.js';
import { loadAllLabs, parseLab } from '../src/labs/load.js';
import { models } from '../src/servers/index.js';

const run = promisify(execFile);

const GOOD = `name: demo
title: Demo
claim: Something measurable.
models: [epoll]
clients:
  - mode: echo
    connections: 2
`;

function problems(text: string): string[] {
  try {
    parseLab(text, 'labs/demo.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(LabFileError);
    expect((error as LabFileError).file).toBe('labs/demo.yaml');
    return (error as LabFileError).problems;
  }
  throw new Error('the lab was accepted');
}

describe('lab files', () => {
  it('every shipped lab is valid, and the default suite holds models and starvation', async () => {
    const labs = await loadAllLabs();
    expect(labs.map((l) => l.lab.name)).toEqual(expect.arrayContaining(['models', 'starvation']));
    expect(labs.filter((l) => l.lab.default).map((l) => l.lab.name)).toEqual(expect.arrayContaining(['models', 'starvation']));
  });

  it('fills defaults for what a lab leaves out', () => {
    const lab = parseLab(GOOD, 'labs/demo.yaml');
    expect(lab).toMatchObject({ duration: 3, repetitions: 1, trace: true, default: false });
    expect(lab.clients[0].messageSize).toBe(64);
  });

  it('names an unknown model with the models that exist and the line', () => {
    expect(problems(GOOD.replace('[epoll]', '[epoll, kqueue]'))).toEqual([
      `models[1]: expected a model, one of: ${models.map((m) => m.name).join(', ')}; or a server of one's own, { server: DIR } (line 4)`,
    ]);
  });

  it('names a client field of the wrong type or value', () => {
    const text = GOOD.replace('mode: echo', 'mode: ping').replace('connections: 2', 'connections: two');
    expect(problems(text)).toEqual([
      expect.stringMatching(/^clients\[0\]\.mode: .*'echo' \| 'hold'.* \(line 6\)$/),
      'clients[0].connections: expected number, got string (line 7)',
    ]);
  });

  it('names missing and unknown fields', () => {
    expect(problems(GOOD.replace('claim: Something measurable.\n', 'claims: typo\n'))).toEqual([
      expect.stringMatching(/^claim: missing; expected string/),
      expect.stringMatching(/^\(top level\): unknown field\(s\) claims/),
    ]);
  });

  it('names a variant that repeats a label, and a sweep of a client that does not exist', () => {
    const text = GOOD.replace('models: [epoll]', 'models: [epoll, { model: epoll, nofile: 1024 }]\nsweep: { client: crowd, connections: [1, 2] }');
    expect(problems(text)).toEqual([
      'models[1]: expected a label of its own: "epoll" names two servers (give one a label) (line 4)',
      'sweep.client: expected the name of one of the lab\'s clients, not "crowd" (line 5)',
    ]);
  });

  it('names a verdict rule that does not exist, and a rule without the client it measures', () => {
    expect(problems(GOOD.replace('models: [epoll]', 'models: [epoll]\nverdict: speed'))).toEqual([
      expect.stringMatching(/^verdict: expected a verdict rule, one of: fingerprints, starvation, .* \(line 5\)$/),
    ]);
    expect(problems(GOOD.replace('models: [epoll]', 'models: [epoll]\nverdict: starvation'))).toEqual([
      'verdict: expected the rule and the client it measures, { rule: starvation, client: NAME }: the echo client that asks while another holds its connection (line 5)',
    ]);
    const named = GOOD.replace('  - mode: echo', '  - name: asker\n    mode: echo').replace('models: [epoll]', 'models: [epoll]\nverdict: { rule: busy-poll, client: asker }');
    expect(problems(named)).toEqual([
      'verdict.client: expected the name of one of the lab\'s hold clients (it has none): the one that holds the idle crowd and probes the latency; not "asker" (line 5)',
    ]);
    const lab = parseLab(named.replace('busy-poll', 'starvation'), 'labs/demo.yaml');
    expect(lab.verdict).toEqual([{ rule: 'starvation', client: 'asker' }]);
    expect(parseLab(GOOD.replace('models: [epoll]', 'models: [epoll]\nverdict: fingerprints'), 'labs/demo.yaml').verdict).toEqual([{ rule: 'fingerprints', client: null }]);
    // Several rules, each judging its part of the claim; a wrong one is named by its place.
    expect(parseLab(GOOD.replace('models: [epoll]', 'models: [epoll]\nverdict: [fingerprints, two-phases]'), 'labs/demo.yaml').verdict).toEqual([
      { rule: 'fingerprints', client: null },
      { rule: 'two-phases', client: null },
    ]);
    expect(problems(GOOD.replace('models: [epoll]', 'models: [epoll]\nverdict: [fingerprints, two-phase]'))).toEqual([
      expect.stringMatching(/^verdict\[1\]: expected a verdict rule, one of: fingerprints, .*two-phases.* \(line 5\)$/),
    ]);
  });

  it('names two clients of one name, an option a model does not take, and an option of the wrong type', () => {
    const twice = GOOD.replace('clients:\n', 'clients:\n  - { name: a, mode: hold, connections: 1 }\n').replace('  - mode: echo', '  - name: a\n    mode: echo');
    expect(problems(twice)).toEqual(['clients[1].name: expected a name of its own: "a" names two clients (line 7)']);
    const option = GOOD.replace('models: [epoll]', 'models: [{ model: epoll, options: { drain: false } }]');
    expect(problems(option)).toEqual(['models[0].options.drain: expected no option: epoll takes none (line 4)']);
    const typed = GOOD.replace('models: [epoll]', 'models: [{ model: coroutine, options: { blockingCallMs: x } }]');
    expect(problems(typed)).toEqual(['models[0].options.blockingCallMs: expected number, got string (line 4)']);
  });

  it('rejects a name that does not match the file, and broken YAML with its line', () => {
    expect(problems(GOOD.replace('name: demo', 'name: other'))).toEqual(['name: "other" does not match the file name (expected "demo") (line 1)']);
    expect(problems(`${GOOD}clients: [\n`)[0]).toMatch(/^YAML syntax: .*\(line \d+\)$/);
  });

  it('`iolab run` with a bad lab file prints one line naming it and exits 3 without running anything', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'iolab-lab-'));
    const file = join(dir, 'demo.yaml');
    await writeFile(file, GOOD.replace('connections: 2', 'connections: 0'));
    const outcome = await run(process.execPath, ['bin/iolab.js', 'run', file, '--runtime', 'local', '--out', join(dir, 'out')]).then(
      () => ({ code: 0, stderr: '' }),
      (error) => ({ code: error.code as number, stderr: error.stderr as string }),
    );
    expect(outcome.code).toBe(3);
    expect(outcome.stderr.trim().split('\n')).toEqual([`iolab: ${file}: clients[0].connections: expected at least 1 connection for an echo client (line 7)`]);
  });
});
