// A server of one's own in a lab (`iolab run LAB --server DIR [--as MODEL]`, `server:` in a lab
// file): it runs beside the models under the same clients, limits and observer, on both runtimes,
// and is judged as the model it claims or classified by the calls the kernel saw it make. The
// server here is a Python select server as the course writes one (test/fixtures/own-servers/).
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { analyse } from '../src/analysis/index.js';
import { SandboxOwnServers } from '../src/grade/own-server.js';
import { chooseServers, resolveLab, type ServerChoice } from '../src/labs/load.js';
import { runLab } from '../src/labs/runner.js';
import type { Lab } from '../src/labs/schema.js';
import { RUN_LABEL } from '../src/runtime/containers.js';
import { DockerRuntime } from '../src/runtime/docker.js';
import { LocalRuntime } from '../src/runtime/local.js';
import type { Runtime } from '../src/runtime/runtime.js';
import type { Results } from '../src/shared/results.js';
import { expectHolds, expectNotContradicted, labTimeoutMs, runIolab, submissionDir } from './helpers.js';

const SELECT_SERVER = join(import.meta.dirname, 'fixtures', 'own-servers', 'select-server');
const FORK_SERVER = join(import.meta.dirname, 'fixtures', 'own-servers', 'fork-server');

/** Runs lab `name` with the servers the command line would choose and `changes`; every run must succeed. */
async function runWith(name: string, choice: ServerChoice, changes: Partial<Lab>, runtime: Runtime): Promise<Results> {
  const loaded = chooseServers(await resolveLab(name), choice);
  const measured = await runLab({ ...loaded, lab: { ...loaded.lab, ...changes } }, runtime, { ownServers: new SandboxOwnServers() });
  expect(measured.runs.filter((run) => run.error).map((run) => `${run.variant}: ${run.error}`), 'runs that failed').toEqual([]);
  return analyse(measured);
}

const verdictOf = (results: Results, subject: RegExp) => {
  const found = results.analysis.verdicts.filter((v) => subject.test(v.subject));
  expect(found.map((v) => v.subject), `verdicts on ${subject}`).toHaveLength(1);
  return found[0];
};

describe('a server of its own on the local runtime', () => {
  it('fd-ceiling --server DIR --as select: beside select, it stops at FD_SETSIZE with the nofile of select', async () => {
    const runtime = new LocalRuntime();
    try {
      const results = await runWith('fd-ceiling', { models: ['select'], server: { dir: SELECT_SERVER, as: 'select' } }, { sweep: { client: 'crowd', connections: [512, 2048] }, duration: 0.5 }, runtime);
      const own = results.lab.variants.find((v) => v.label === 'select-server')!;
      expect(own.own).toMatchObject({ claims: 'select', description: expect.stringContaining('server.py (Python)') });
      expect(own.nofile, "the nofile of the lab's select").toBe(8192);
      expect(own.declared?.name).toBe('select');
      const verdict = verdictOf(results, /^select-server:/);
      expect(verdict.subject).toBe('select-server: stops at FD_SETSIZE (1,024)');
      expectHolds(verdict);
      expect(verdict.figures.refusals, 'connections it closed past FD_SETSIZE').toBeGreaterThan(0);
      expectHolds(verdictOf(results, /^select:/));
    } finally {
      await runtime.close();
    }
  }, labTimeoutMs(4, 0.5));

  it('models --server DIR with no model claimed: classified by its syscalls as select, and judged as select', async () => {
    const runtime = new LocalRuntime();
    try {
      const results = await runWith('models', { models: ['select', 'epoll'], server: { dir: SELECT_SERVER } }, { duration: 1, repetitions: 1 }, runtime);
      const own = results.lab.variants.find((v) => v.label === 'select-server')!;
      expect(own.own?.claims).toBeNull();
      expect(own.own?.fits, 'the models its calls fit').toContain('select');
      expect(own.own?.fits).not.toContain('epoll');
      expect(own.declared?.name).toBe(own.own?.fits?.[0]);
      const fingerprint = results.analysis.verdicts.find((v) => v.rule === 'fingerprints' && v.subject === 'select-server')!;
      expect(fingerprint.parts[0].claim).toMatch(/^fits a model's fingerprint: select/);
      expectHolds(fingerprint);
      for (const verdict of results.analysis.verdicts.filter((v) => v.rule === 'two-phases')) expectNotContradicted(verdict);
    } finally {
      await runtime.close();
    }
  }, labTimeoutMs(3, 1));

  it('takes server: and command: in a lab file (paths from its directory), says which server cannot run and why, runs the others, and marks the lab incomplete', async () => {
    const dir = await submissionDir({});
    const lab = (models: string[], extra: string[] = []) =>
      ['name: own', 'title: Servers of their own beside a model', 'claim: Each server echoes.', 'models:', ...models.map((m) => `  - ${m}`), 'duration: 0.5', ...extra, 'clients: [{ mode: echo, connections: 2 }]', ''].join('\n');
    await cp(SELECT_SERVER, join(dir, 'select-server'), { recursive: true });
    await mkdir(join(dir, 'empty'));
    await writeFile(join(dir, 'empty', 'notes.txt'), 'no server here\n');
    await mkdir(join(dir, 'elsewhere'));
    await writeFile(join(dir, 'elsewhere', 'server.py'), 'import socket, time\ns = socket.socket()\ns.bind(("0.0.0.0", 0))\ns.listen()\ntime.sleep(60)\n');
    const reports = join(dir, 'reports');

    // A server that never listens on PORT fails its runs with why; the others run; the lab is incomplete.
    await writeFile(
      join(dir, 'own.yaml'),
      lab(
        ['epoll', '{ server: ./select-server, label: by-command, command: python3 server.py, as: select }', '{ server: ./elsewhere, label: elsewhere }', '{ server: ./select-server, label: unclaimed }'],
        ['trace: false', 'verdict: fingerprints'],
      ),
    );
    const run = await runIolab(['run', join(dir, 'own.yaml'), '--runtime', 'local', '--out', reports]);
    expect(run.code, run.stderr).toBe(5);
    expect(run.stderr).toMatch(/by-command measure #1 \d[\d,]* round trips\/s/);
    expect(run.stderr).toMatch(/elsewhere measure #1 FAILED: server elsewhere: it listens on port \d+, not on PORT=\d+/);
    expect(run.stderr).toMatch(/epoll measure #1 \d[\d,]* round trips\/s/);
    const report = await readFile(join(reports, 'own', 'latest', 'report.md'), 'utf8');
    expect(report).toContain('`by-command` is a server of its own: the command sh -c python3 server.py from');
    // Claiming no model in a lab that counts no syscalls: nothing classifies it, and the report says so.
    expect(report).toMatch(/\| unclaimed +\| \*\*inconclusive\*\* \| this lab counts no syscalls \(trace: false\), so nothing classifies it: give the model it claims to be \(as: MODEL, --as MODEL\)/);
    expect(report).toContain('`unclaimed` is a server of its own: server.py (Python) from');

    // A directory that is not there, or that holds no server: said before anything runs.
    await writeFile(join(dir, 'missing.yaml'), lab(['epoll', '{ server: ./nope }']).replace('name: own', 'name: missing'));
    const missing = await runIolab(['run', join(dir, 'missing.yaml'), '--runtime', 'local', '--out', reports]);
    expect(missing.code, missing.stderr).toBe(3);
    expect(missing.stderr).toMatch(/missing\.yaml: models\[1\]\.server: \.\/nope: no such directory/);
    expect(missing.stderr).not.toMatch(/measure #1/);
    await writeFile(join(dir, 'empty.yaml'), lab(['epoll', '{ server: ./empty }']).replace('name: own', 'name: empty'));
    const empty = await runIolab(['run', join(dir, 'empty.yaml'), '--runtime', 'local', '--out', reports]);
    expect(empty.code, empty.stderr).toBe(1);
    expect(empty.stderr).toMatch(/lab empty: server empty cannot run: \S+\/empty has no server\.py, server\.ts, server\.js, server\.c, Makefile, Dockerfile or iolab\.yaml \(it holds notes\.txt\)/);
    expect(empty.stderr).not.toMatch(/measure #1/);

    // The command line: a model's name is no label, an option is given once, --as names a model.
    const badModel = await runIolab(['run', 'one-connection', '--server', SELECT_SERVER, '--as', 'selct']);
    expect(badModel.code).toBe(2);
    expect(badModel.stderr).toMatch(/--as: "selct" is not a model; the models are: blocking, /);
    const modelLabel = await runIolab(['run', 'one-connection', '--server', SELECT_SERVER, '--label', 'select']);
    expect(modelLabel.code).toBe(2);
    expect(modelLabel.stderr).toMatch(/--label: "select" is a model's name/);
    const twice = await runIolab(['run', 'one-connection', '--server', SELECT_SERVER, '--server', SELECT_SERVER]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/--server given 2 times: once/);
    const nowhere = await runIolab(['run', 'one-connection', '--server', join(dir, 'nope')]);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toMatch(/--server ".*nope": no such directory/);
  }, 180_000);

  it('classifies by traits too (a process per connection is the fork model), and a server that echoes wrongly does not speak the protocol', async () => {
    const dir = await submissionDir({});
    await cp(FORK_SERVER, join(dir, 'fork-server'), { recursive: true });
    await mkdir(join(dir, 'no-upper'));
    // Echoes without upper-casing: every reply is wrong.
    await writeFile(join(dir, 'no-upper', 'server.py'), (await readFile(join(SELECT_SERVER, 'server.py'), 'utf8')).replace('data.upper()', 'data'));
    await writeFile(
      join(dir, 'classify.yaml'),
      ['name: classify', 'title: t', 'claim: c', 'models: [epoll, { server: ./fork-server }, { server: ./no-upper }]', 'duration: 0.5', 'verdict: fingerprints', 'clients: [{ mode: echo, connections: 4 }]', ''].join('\n'),
    );
    const loaded = await resolveLab(join(dir, 'classify.yaml'));
    const runtime = new LocalRuntime();
    let results: Results;
    try {
      results = analyse(await runLab(loaded, runtime, { ownServers: new SandboxOwnServers() }));
    } finally {
      await runtime.close();
    }
    const fork = results.lab.variants.find((v) => v.label === 'fork-server')!;
    // Its calls alone fit nonblocking too (accept4, recvfrom, no readiness call): its processes decide.
    expect(fork.own?.fits).toEqual(['python-fork']);
    expect(fork.own?.evidence).toMatch(/it added [\d.]+ processes or more per open connection/);
    expectHolds(results.analysis.verdicts.find((v) => v.subject === 'fork-server')!);
    const wrong = results.analysis.verdicts.find((v) => v.subject === 'no-upper: speaks the echo protocol')!;
    expect(wrong.verdict).toBe('does not hold here');
    expect(wrong.measurement).toMatch(/repl(y was|ies were) wrong/);
  }, labTimeoutMs(3, 0.5));
});

describe('a server of its own on the Docker runtime', () => {
  it('fd-ceiling --server DIR --as select: built and confined as a graded submission, on the lab network; nothing left behind', async () => {
    const runtime = new DockerRuntime();
    let results: Results;
    try {
      results = await runWith('fd-ceiling', { models: ['select'], server: { dir: SELECT_SERVER, as: 'select' } }, { sweep: { client: 'crowd', connections: [2048] }, duration: 0.5 }, runtime);
    } finally {
      await runtime.close();
    }
    expect(results.environment.runtime).toBe('docker');
    const verdict = verdictOf(results, /^select-server:/);
    expectHolds(verdict);
    expect(verdict.figures.refusals).toBeGreaterThan(0);
    expectHolds(verdictOf(results, /^select:/));
    // The lab's nofile for select, inside the sandbox's container, as the observer read it.
    expect(results.runs.find((run) => run.variant === 'select-server')?.limits?.nofileSoft).toBe(8192);
    const docker = new Docker();
    const left = await docker.listContainers({ all: true, filters: { label: [RUN_LABEL] } });
    const images = await docker.listImages({ filters: { reference: ['iolab-submission:*'] } });
    expect(left.map((c) => c.Names[0]).filter((name) => name.includes('iolab-grade')), 'sandbox containers left').toEqual([]);
    expect(images.flatMap((i) => i.RepoTags ?? []), 'submission images left').toEqual([]);
  }, labTimeoutMs(2, 0.5, 60) + 180_000);
});
