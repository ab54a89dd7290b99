// A controller killed with SIGKILL, for real, against a real Docker engine: during a lab and during
// a class batch. Within 10 s nothing of its runs is left on the engine (its reaper container
// removed them: src/runtime/reaper.ts), every run or grading that had finished is on disk (the
// journal: src/labs/journal.ts, src/grade/batch.ts), the report says "interrupted (controller
// killed)", and `--resume` finishes the rest: the same runs, in the same order, as a full run.
// No engine is a failure here, not a skip: .ci/run installs and starts one.
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/errors.js';
import { CONTROLLER_LABELS } from '../src/runtime/controller.js';
import { engineAvailable } from '../src/runtime/docker-image.js';
import { runIolab, signalAfter } from './helpers.js';

const docker = new Docker();
const EXERCISES_DIR = join(import.meta.dirname, '..', 'labs', 'exercises');
/** The deadline the reaper is held to: nothing of a killed controller's runs after this. */
const REAPED_WITHIN_MS = 10_000;

/** What the engine holds of the controller `pid` of this host: containers, networks and images, by name. */
async function leftBy(pid: number): Promise<string[]> {
  const filters = { label: [`${CONTROLLER_LABELS.pid}=${pid}`, `${CONTROLLER_LABELS.host}=${hostname()}`] };
  const [containers, networks, images] = await Promise.all([docker.listContainers({ all: true, filters }), docker.listNetworks({ filters }), docker.listImages({ filters })]);
  return [
    ...containers.map((c) => `container ${c.Names[0]} (${c.State})`),
    ...networks.map((n) => `network ${n.Name}`),
    ...images.map((i) => `image ${i.RepoTags?.[0] ?? i.Id}`),
  ];
}

/** Polls `left` until it lists nothing or REAPED_WITHIN_MS after `killedAt` have passed; returns what it lists then. */
async function leftAfterKill(killedAt: number, left: () => Promise<string[]> | string[]): Promise<string[]> {
  for (;;) {
    const now = await left();
    if (now.length === 0 || Date.now() - killedAt >= REAPED_WITHIN_MS) return now;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * Runs `iolab ARGS` and kills it with SIGKILL `delayMs` after its stderr first matches `pattern`;
 * expects it killed. Returns its pid (the id of its process group) and when it was killed.
 */
async function killedAfter(args: string[], pattern: RegExp, delayMs: number): Promise<{ pid: number; killedAt: number }> {
  const kill = signalAfter(pattern, delayMs, 'SIGKILL');
  const killed = await runIolab(args, kill.watch);
  expect(killed.code, killed.stderr).toBeNull();
  expect(kill.at, `killed ${delayMs} ms after ${pattern}`).toBeGreaterThan(0);
  return { pid: killed.pid, killedAt: kill.at };
}

/** The run directory a killed `iolab run models --out OUT` left (its only one), and its results.json. */
async function killedRun(out: string): Promise<{ dir: string; journal: { runs: Array<Record<string, unknown>>; [key: string]: unknown } }> {
  const [id] = (await readdir(join(out, 'models'))).filter((name) => name !== 'latest');
  const dir = join(out, 'models', id!);
  return { dir, journal: JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) };
}

/** A run's key in the plan, "variant#repetition", for each run of a results.json. */
function planOrder(runs: Array<Record<string, unknown>>): string[] {
  return runs.map((run) => `${run.variant}#${run.repetition}`);
}

/** Every file under `dir` whose name says it was being written (a write cut short). */
async function partialFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter((name) => name.endsWith('.partial'));
}

/** The headings of a report.md: its shape, whatever the numbers. */
function headings(markdown: string): string[] {
  return markdown.split('\n').filter((line) => line.startsWith('#'));
}

/** The live processes (zombies left out) of process group `group`: "PID COMMAND" each. */
function processesOfGroup(group: number): string[] {
  let lines: string[];
  try {
    lines = execFileSync('ps', ['-o', 'pid=,stat=,args=', '-g', String(group)], { encoding: 'utf8' }).trim().split('\n');
  } catch {
    return []; // ps exits 1 when it lists none
  }
  return lines.map((line) => line.trim().split(/\s+/)).filter(([, state]) => state !== undefined && !state.startsWith('Z')).map(([pid, , ...args]) => `${pid} ${args.join(' ').slice(0, 100)}`);
}

beforeAll(async () => {
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new Error(`no Docker engine answers (${engine.reason}): .ci/run installs and starts one`);
}, 60_000);

describe('a Docker lab whose controller is killed', () => {
  it('leaves nothing on the engine, keeps its finished runs, and --resume finishes it as a full run would', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-journal-lab-'));
    const args = ['run', 'models', '--runtime', 'docker', '--models', 'epoll,select', '--repetitions', '2', '--duration', '2', '--out', out];
    // Killed a second into its third run: two runs finished, one in flight.
    const killed = await killedAfter(args, /\[2\/4\]/, 1000);
    expect(await leftAfterKill(killed.killedAt, () => leftBy(killed.pid)), 'what the killed controller left on the engine').toEqual([]);

    const { dir, journal } = await killedRun(out);
    expect(journal.complete).toBe(false);
    expect(journal.incompleteReason).toBe('interrupted (controller killed) after 2 of 4 runs');
    expect(planOrder(journal.runs)).toEqual(['epoll#0', 'select#0']);
    expect(journal.runs.every((run) => run.error === null)).toBe(true);
    expect(await readFile(join(dir, 'report.md'), 'utf8')).toContain('interrupted (controller killed) after 2 of 4 runs');
    expect(await partialFiles(out)).toEqual([]);

    // Other settings: refused, naming each.
    const other = await runIolab([...args.map((arg) => (arg === '2' ? '3' : arg)), '--resume', dir]);
    expect(other.code, other.stderr).toBe(ExitCode.usage);
    expect(other.stderr).toMatch(/--resume .*: not the same lab and settings as that run.*duration: 3 now, 2 in that run.*repetitions: 3 now, 2 in that run/);

    const resumed = await runIolab([...args, '--resume', dir]);
    expect(resumed.code, resumed.stderr).toBe(ExitCode.ok);
    expect(resumed.stderr).toContain(`continuing ${dir}: 2 finished run(s) kept`);
    const results = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8'));
    expect(results.complete, results.incompleteReason).toBe(true);
    expect(planOrder(results.runs)).toEqual(['epoll#0', 'select#0', 'epoll#1', 'select#1']);
    expect(results.runs.slice(0, 2), 'the kept runs, as they were measured').toEqual(journal.runs);
    expect(results.startedAt).toBe(journal.startedAt);
    expect(results.resumed).toEqual([{ at: expect.any(String), kept: 2 }]);
    expect(await leftBy(resumed.pid)).toEqual([]);

    // The same report as a full run of the same command.
    const full = await runIolab(args);
    expect(full.code, full.stderr).toBe(ExitCode.ok);
    const fullDir = join(out, 'models', 'latest');
    const fullResults = JSON.parse(await readFile(join(fullDir, 'results.json'), 'utf8'));
    expect(results.runs.map((run: { variant: string }) => run.variant)).toEqual(fullResults.runs.map((run: { variant: string }) => run.variant));
    expect(results.analysis.verdicts.map((v: { rule: string; subject: string }) => `${v.rule} ${v.subject}`)).toEqual(fullResults.analysis.verdicts.map((v: { rule: string; subject: string }) => `${v.rule} ${v.subject}`));
    expect(headings(await readFile(join(dir, 'report.md'), 'utf8'))).toEqual(headings(await readFile(join(fullDir, 'report.md'), 'utf8')));
  }, 600_000);
});

describe('a lab on local processes whose controller is killed', () => {
  it('takes its servers, clients and tracer with it, keeps its finished runs, and --resume finishes it', async () => {
    const out = await mkdtemp(join(tmpdir(), 'iolab-journal-local-'));
    const args = ['run', 'models', '--runtime', 'local', '--models', 'epoll,select', '--repetitions', '2', '--duration', '3', '--out', out];
    // runIolab starts it in a process group of its own: its pid is the group's id.
    // Killed during its second run.
    const killed = await killedAfter(args, /\[1\/4\]/, 1500);
    expect(await leftAfterKill(killed.killedAt, () => processesOfGroup(killed.pid)), 'the processes the killed controller started').toEqual([]);

    const { dir, journal } = await killedRun(out);
    expect(journal.incompleteReason).toBe('interrupted (controller killed) after 1 of 4 runs');
    const resumed = await runIolab([...args, '--resume', dir]);
    expect(resumed.code, resumed.stderr).toBe(ExitCode.ok);
    const results = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8'));
    expect(planOrder(results.runs)).toEqual(['epoll#0', 'select#0', 'epoll#1', 'select#1']);
    expect(results.runs[0]).toEqual(journal.runs[0]);
  }, 300_000);
});

describe('a class batch whose controller is killed', () => {
  it('leaves nothing on the engine, keeps every finished grading, and --resume grades the rest', async () => {
    const classDir = await mkdtemp(join(tmpdir(), 'iolab-journal-class-'));
    for (const student of ['ann', 'ben', 'cy']) await cp(join(EXERCISES_DIR, 'epoll-echo', 'reference'), join(classDir, student), { recursive: true });
    const out = await mkdtemp(join(tmpdir(), 'iolab-journal-grades-'));
    const args = ['grade', '--batch', classDir, '--exercise', 'epoll-echo', '--checks', 'echo', '--jobs', '1', '--out', out];
    // Killed half a second after its first grading finished: the second under way (a grading
    // takes seconds: its image is built, its server started, probed and removed).
    const killed = await killedAfter(args, /\[1\/3\]/, 500);
    expect(await leftAfterKill(killed.killedAt, () => leftBy(killed.pid)), 'what the killed controller left on the engine').toEqual([]);

    const journal = JSON.parse(await readFile(join(out, 'batch.json'), 'utf8'));
    expect(journal).toMatchObject({ complete: false, incompleteReason: 'interrupted (controller killed) after 1 of 3 gradings', finished: 1, students: 3 });
    const gradebook = await readFile(join(out, 'gradebook.csv'), 'utf8');
    expect(gradebook).toMatch(/^ann,graded,\d+,\d+,/m);
    expect(gradebook.trim().split('\n')).toHaveLength(2);
    const ann = await readFile(join(out, 'ann', 'grade.json'), 'utf8');
    expect(await stat(join(out, 'ben', 'grade.json')).catch(() => null), 'the grading in flight is not recorded').toBeNull();
    expect(await partialFiles(out)).toEqual([]);

    const other = await runIolab([...args.map((arg) => (arg === 'echo' ? 'echo,binary' : arg)), '--resume']);
    expect(other.code, other.stderr).toBe(ExitCode.usage);
    expect(other.stderr).toMatch(/--resume: .*batch\.json is of another batch: checks: \["echo","binary"\] now, \["echo"\] in that batch/);

    const resumed = await runIolab([...args, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(ExitCode.ok);
    expect(resumed.stderr).toContain('1 of 3 gradings kept, 2 to grade');
    const finished = await readFile(join(out, 'gradebook.csv'), 'utf8');
    for (const student of ['ann', 'ben', 'cy']) expect(finished).toMatch(new RegExp(`^${student},graded,(\\d+),\\1,`, 'm'));
    expect(await readFile(join(out, 'ann', 'grade.json'), 'utf8'), 'the kept grading, untouched').toBe(ann);
    expect(JSON.parse(await readFile(join(out, 'batch.json'), 'utf8'))).toMatchObject({ complete: true, incompleteReason: null, finished: 3, resumed: [{ kept: 1 }] });
    expect(await leftBy(resumed.pid)).toEqual([]);
  }, 600_000);
});
