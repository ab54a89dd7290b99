// The `iolab` command. Expected failures print one line (a stack only with --verbose) and exit
// with the codes documented in README.md.
import { basename, dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type Yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ErrnoError, ExitCode, LabFileError, LabRunError, NotGradableError, OutputWriteError, ResultsFileError, RuntimeUnavailableError, UsageError } from './errors.js';
import type { LoadedLab, ServerChoice } from './labs/load.js';
import { StatusLine } from './progress.js';
import { CLIENT_START_SIGNAL as START_SIGNAL, type Runtime } from './runtime/runtime.js';

// yargs' CommonJS build: its help wraps at words (cliui with wrap-ansi), where the ES module build
// cuts lines in the middle of a word.
const yargs = createRequire(import.meta.url)('yargs') as typeof Yargs;

// Each command imports what it needs when it runs: a server or client process loads its own
// code only, so its start-up and memory stay small (and out of what the probe measures).

function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return ExitCode.usage;
  if (error instanceof LabFileError || error instanceof ResultsFileError) return ExitCode.labFile;
  // A file that cannot be written (a full disk, no permission): like a tool the runtime lacks, the
  // machine lacks what the command needs, and the message says what (README.md, "Exit codes").
  if (error instanceof RuntimeUnavailableError || error instanceof OutputWriteError) return ExitCode.runtimeUnavailable;
  if (error instanceof NotGradableError) return ExitCode.notGradable;
  return ExitCode.failure;
}

function fail(error: unknown, verbose: boolean): never {
  const known = [UsageError, LabFileError, ResultsFileError, RuntimeUnavailableError, LabRunError, ErrnoError, NotGradableError, OutputWriteError].some((type) => error instanceof type);
  // A progress line left on a terminal is cleared first (\r, erase the line).
  process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}iolab: ${error instanceof Error ? error.message : String(error)}\n`);
  if (verbose || !known) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
  process.exit(exitCodeOf(error));
}

function positiveNumber(name: string) {
  return (value: number | undefined) => {
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) throw new UsageError(`--${name} must be a positive number, got ${value}`);
    return value;
  };
}

/** The first line of stdin, trimmed. Throws UsageError when stdin ends first (`what` names it). */
async function firstLineOfStdin(what: string): Promise<string> {
  const { createInterface } = await import('node:readline');
  const lines = createInterface({ input: process.stdin });
  const line = await new Promise<string | null>((resolve) => {
    lines.once('line', resolve);
    lines.once('close', () => resolve(null));
  });
  lines.close();
  process.stdin.destroy();
  if (line === null) throw new UsageError(`${what}: stdin ended first`);
  return line.trim();
}

type RuntimeChoice = 'auto' | 'docker' | 'local';

/** The widest `--help` is wrapped to (a terminal's width when narrower). */
const HELP_WIDTH = 100;

/** How long a lab's client keeps its connections open after printing its result, if not stopped before. */
const CLIENT_HOLD_AFTER_RESULT_MS = 60_000;

/** auto: Docker when an engine answers, else local processes, said in one notice line. */
async function chooseRuntime(choice: RuntimeChoice, verbose: boolean, status = new StatusLine(), on: 'machine' | 'swarm' = 'machine'): Promise<Runtime> {
  const { LocalRuntime } = await import('./runtime/local.js');
  if (on === 'swarm' && choice === 'local') throw new UsageError('--on swarm runs the lab in Docker on the swarm\'s nodes: not with --runtime local');
  if (choice === 'local') return new LocalRuntime();
  const { engineAvailable } = await import('./runtime/docker-image.js');
  const { DockerRuntime } = await import('./runtime/docker.js');
  const { SwarmRuntime } = await import('./swarm/runtime.js');
  const runtime = new (on === 'swarm' ? SwarmRuntime : DockerRuntime)({
    onProgress: (line) => (verbose || !line.startsWith(' ')) && status.print(line),
    // The build's own output: every line with --verbose; else its current step, in place on a terminal.
    onBuildOutput: (line) => (verbose ? status.print(`  ${line}`) : /^Step \d+\/\d+ : /.test(line) && status.update(`  ${line}`)),
  });
  const engine = await engineAvailable(runtime.docker);
  if (engine.ok) return runtime;
  if (choice === 'docker' || on === 'swarm') throw new RuntimeUnavailableError(`${on === 'swarm' ? '--on swarm' : '--runtime docker'}: no Docker engine answers (${engine.reason})`);
  status.print(`iolab: no Docker engine answers (${engine.reason}): running the labs as local processes`);
  return new LocalRuntime();
}

async function runCommand(argv: {
  labs: string[];
  out: string;
  duration?: number;
  connections?: number;
  rate?: number;
  clients: number;
  runtime: RuntimeChoice;
  /** on this machine, or on the Docker swarm this engine manages (src/swarm/runtime.ts). */
  on: 'machine' | 'swarm';
  tracer: 'auto' | 'bpf' | 'strace';
  trace: boolean;
  repetitions?: number;
  verbose: boolean;
  choice: ServerChoice;
  /** a run directory (OUT/LAB/RUN-ID) of a killed or stopped run to continue (src/labs/journal.ts). */
  resume?: string;
}): Promise<number> {
  const { chooseServers, loadAllLabs, resolveLab, withRepetitions } = await import('./labs/load.js');
  const { suiteProgress } = await import('./progress.js');
  const { SandboxOwnServers } = await import('./grade/own-server.js');
  const { measuredRunCount, runLab } = await import('./labs/runner.js');
  const { analyse } = await import('./analysis/index.js');
  const { writeReport } = await import('./report/index.js');
  const { pointLatestAt, startRunDirectory } = await import('./report/runs.js');
  const { finishLabOutput } = await import('./report/run-index.js');
  const out = resolve(argv.out);
  // After each lab, whatever became of it: the index of every run in OUT, and the files given to
  // OUT's owner when the controller runs as root (compose).
  const finishLab = async (labDir: string, failedRunDir?: string) => {
    for (const problem of await finishLabOutput(out, labDir, failedRunDir)) status.print(`iolab: ${problem}`);
  };
  /** the lab under way: its run directory (OUT/LAB/RUN-ID, made as it starts). */
  let current: { labDir: string; dir: string } | null = null;
  const { checkResumable, labSettings } = await import('./labs/journal.js');
  const { readResults } = await import('./report/index.js');
  // --resume DIR: that run's results.json (its journal), and its lab unless one is named.
  const resuming = argv.resume === undefined ? null : { dir: resolve(argv.resume), previous: await readResults(join(resolve(argv.resume), 'results.json')) };
  if (resuming && argv.labs.length > 1) throw new UsageError(`--resume continues one run of one lab: name at most one lab (${argv.labs.join(', ')})`);
  const named: LoadedLab[] = resuming
    ? [await resolveLab(argv.labs[0] ?? resuming.previous.lab.file)]
    : argv.labs.length
    ? await Promise.all(argv.labs.map((name) => resolveLab(name)))
    : (await loadAllLabs()).filter((l) => l.lab.default);
  if (resuming && named[0]!.lab.name !== resuming.previous.lab.name) throw new UsageError(`--resume ${resuming.dir}: that is a run of lab ${resuming.previous.lab.name}, not of ${named[0]!.lab.name}`);
  if (named.length === 0) throw new UsageError('no lab to run: name one (see `iolab list`)');
  if (!argv.trace && argv.tracer !== 'auto') throw new UsageError(`--no-trace takes no syscall counts: drop --tracer ${argv.tracer}`);
  const loaded = named.map((lab) => chooseServers(lab, argv.choice)).map((lab) => (argv.repetitions === undefined ? lab : withRepetitions(lab, argv.repetitions)));

  const status = new StatusLine();
  /** What changes what a run measures: recorded in results.json, and the same on --resume. */
  const settingsOf = (lab: LoadedLab, runtimeName: string) =>
    labSettings(lab.file, {
      duration: argv.duration, connections: argv.connections, rate: argv.rate, clients: argv.clients, repetitions: argv.repetitions,
      tracer: argv.trace ? argv.tracer : 'none', models: argv.choice.models?.join(',') ?? null,
      server: argv.choice.server ? resolve(argv.choice.server.dir) : null, label: argv.choice.server?.label, as: argv.choice.server?.as,
      runtime: runtimeName, on: argv.on,
    });
  // Checked before anything starts (the lab image, a runtime): the runtime auto would choose is
  // the one the run was made on, or the check below says so.
  if (resuming) checkResumable(argv.resume!, resuming.previous, await settingsOf(loaded[0]!, String(resuming.previous.settings?.runtime ?? '')));
  const runtime = await chooseRuntime(argv.runtime, argv.verbose, status, argv.on);
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++interrupts > 1) process.exit(ExitCode.interrupted);
    status.print(`\n${signal}: stopping every server and client; the reports keep what was measured (again to quit at once)`);
    abort.abort(signal);
    // What this misses (a container being created right now) the close after the lab removes.
    runtime.close().catch(() => {});
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let incomplete = false;
  const noticed = new Set<string>();
  const notice = (line: string) => {
    if (!noticed.has(line)) status.print(line);
    noticed.add(line);
  };
  const onProgress = suiteProgress(loaded.map((lab) => ({ name: lab.lab.name, measuredRuns: measuredRunCount(lab) })), status);
  try {
    for (const lab of loaded) {
      if (abort.signal.aborted) break;
      const settings = await settingsOf(lab, runtime.name);
      if (resuming) checkResumable(argv.resume!, resuming.previous, settings);
      const run = (current = resuming
        ? { labDir: dirname(resuming.dir), id: basename(resuming.dir), dir: resuming.dir }
        : await startRunDirectory(out, lab.lab.name));
      if (resuming) {
        const kept = resuming.previous.experiment?.runs.length ?? resuming.previous.runs.length;
        status.print(`${lab.lab.name}: continuing ${run.dir}: ${kept} finished run(s) kept`);
      }
      const measured = await runLab(lab, runtime, {
        durationSeconds: argv.duration,
        connections: argv.connections,
        rate: argv.rate,
        clients: argv.clients,
        tracer: argv.trace ? argv.tracer : 'none',
        signal: abort.signal,
        onProgress,
        onNotice: notice,
        ownServers: new SandboxOwnServers({ onProgress: (line) => argv.verbose && status.print(line) }),
        settings,
        resume: resuming?.previous,
        // The journal: every finished run on disk before the next starts (src/labs/journal.ts).
        onRecorded: async (soFar) => {
          await writeReport(analyse(soFar), run.dir);
        },
      });
      const results = analyse(measured);
      const written = await writeReport(results, run.dir);
      await pointLatestAt(run.labDir, run.id);
      incomplete ||= !results.complete;
      status.print(`${lab.lab.name}: ${results.complete ? 'complete' : `INCOMPLETE (${results.incompleteReason})`}; wrote ${written.htmlFile}, ${written.reportFile} and ${written.resultsFile}`);
      current = null;
      await finishLab(run.labDir);
    }
  } finally {
    if (current) await finishLab(current.labDir, current.dir);
    await runtime.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (abort.signal.aborted) return ExitCode.interrupted;
  return incomplete ? ExitCode.incomplete : ExitCode.ok;
}

async function main(): Promise<void> {
  const verbose = process.argv.includes('--verbose');
  // `iolab models | head`: a reader that stops reading is not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(ExitCode.ok);
    throw error;
  });
  try {
    await yargs(hideBin(process.argv))
      .scriptName('iolab')
      .wrap(Math.min(HELP_WIDTH, process.stdout.columns || HELP_WIDTH))
      .usage('$0 <command>\n\nA lab environment for the network IO models: real servers, real load, real syscall counts.')
      .option('verbose', { type: 'boolean', default: false, describe: 'print stacks of errors' })
      .command(
        'run [labs..]',
        'run labs (by name or YAML path; none: the default suite) and write their reports',
        (y) =>
          y
            .positional('labs', { type: 'string', array: true, default: [] as string[], describe: 'lab names (see `iolab list`) or paths to lab files' })
            .option('out', { type: 'string', default: 'reports', describe: 'directory for reports: OUT/LAB/RUN-ID/ (report.md, results.json), OUT/LAB/latest (the newest), OUT/index.html' })
            .option('duration', { type: 'number', describe: 'seconds of load per run (overrides the lab)', coerce: positiveNumber('duration') })
            .option('connections', { type: 'number', describe: 'connections of every echo client (overrides the lab)', coerce: positiveNumber('connections') })
            .option('rate', { type: 'number', describe: 'requests per second per connection of every echo client, sent open-loop and timed from their scheduled send time (overrides the lab)', coerce: positiveNumber('rate') })
            .option('repetitions', { type: 'number', describe: 'measured runs of each server (overrides the lab; 1 to 50)' })
            .option('trace', { type: 'boolean', default: true, describe: 'count syscalls where the lab does; --no-trace: no counts (faster; the verdicts that need counts say so)' })
            .option('clients', { type: 'number', default: 1, describe: 'client processes (containers) for each client of the lab', coerce: positiveNumber('clients') })
            .option('runtime', {
              choices: ['auto', 'docker', 'local'] as const,
              default: 'auto' as const,
              describe: 'where servers and clients run: containers, local processes, or Docker when an engine answers',
            })
            .option('on', {
              choices: ['machine', 'swarm'] as const,
              default: 'machine' as const,
              describe: 'this machine, or the Docker swarm this engine manages: servers on this node, each client container on another (docs/swarm.md)',
            })
            .option('tracer', {
              choices: ['auto', 'bpf', 'strace'] as const,
              default: 'auto' as const,
              describe: 'how syscalls are counted: eBPF in the measured runs, strace in runs of their own, or eBPF where the machine allows it',
            })
            .option('models', { type: 'string', describe: 'only these servers, comma-separated: the lab\'s labels or any model (`iolab models`), e.g. select,python-select' })
            .option('server', { type: 'string', describe: 'add a server of your own beside the lab\'s: a directory as a graded submission (server.py, server.c, ..., iolab.yaml)' })
            .option('label', { type: 'string', describe: 'with --server: its name in the report (default: the directory\'s name)' })
            .option('as', { type: 'string', describe: 'with --server: the model it claims to be, which judges it (default: the model its syscalls fit)' })
            .option('resume', { type: 'string', describe: 'continue a run that was killed or stopped: its directory (OUT/LAB/RUN-ID); its finished runs are kept, the rest are made (same lab file and options, checked)' }),
        async (argv) => {
          if (Array.isArray(argv.resume)) throw new UsageError(`--resume given ${(argv.resume as unknown as string[]).length} times: once (one run directory)`);
          for (const name of ['server', 'label', 'as', 'models'] as const) {
            if (Array.isArray(argv[name])) throw new UsageError(`--${name} given ${(argv[name] as unknown as string[]).length} times: once (several servers of your own go in a lab file: models: [{ server: DIR }, ...])`);
          }
          if ((argv.label !== undefined || argv.as !== undefined) && argv.server === undefined) throw new UsageError('--label and --as describe a --server DIR: give one');
          process.exitCode = await runCommand({
            ...argv,
            labs: argv.labs as string[],
            clients: argv.clients!,
            choice: {
              ...(argv.models !== undefined && { models: argv.models.split(',').map((name) => name.trim()).filter(Boolean) }),
              ...(argv.server !== undefined && { server: { dir: argv.server, label: argv.label, as: argv.as } }),
            },
          });
        },
      )
      .command(
        'report <results>',
        'render report.md (and report.html, CSV) again from a results.json (the verdicts it holds, as they were judged)',
        (y) =>
          y
            .positional('results', { type: 'string', demandOption: true, describe: 'a results.json written by `iolab run`' })
            .option('out', { type: 'string', describe: 'directory for the report (default: beside the results file)' })
            .option('stdout', { type: 'boolean', default: false, describe: 'print the report (Markdown; with --html, the page) instead of writing it' })
            .option('html', { type: 'boolean', default: false, describe: 'also write report.html: the charts, the timelines and the tables in one self-contained page' })
            .option('csv', { type: 'boolean', default: false, describe: 'also write every table of the report as CSV: OUT/tables/NN-SECTION.csv' }),
        async (argv) => {
          const { readResults, RENDERINGS, writeRendering } = await import('./report/index.js');
          const results = await readResults(argv.results);
          const out = argv.out ?? dirname(resolve(argv.results));
          const markdown = RENDERINGS['report.md'](results);
          if (argv.csv) {
            const { writeTablesAsCsv } = await import('./report/csv.js');
            const files = await writeTablesAsCsv(markdown, join(out, 'tables'));
            process.stderr.write(`${results.lab.name}: wrote ${files.length} tables as CSV in ${join(out, 'tables')}\n`);
          }
          if (argv.stdout) {
            process.stdout.write(argv.html ? RENDERINGS['report.html'](results) : markdown);
            return;
          }
          for (const file of argv.html ? (['report.md', 'report.html'] as const) : (['report.md'] as const)) {
            process.stderr.write(`${results.lab.name}: wrote ${await writeRendering(results, out, file, file === 'report.md' ? markdown : undefined)}\n`);
          }
        },
      )
      .command(
        'compare <a> <b>',
        'compare two runs of one lab: every figure side by side, B/A, whether each difference is beyond the run-to-run spread, and every verdict, changed or not',
        (y) =>
          y
            .positional('a', { type: 'string', demandOption: true, describe: 'run A: a results.json, or the directory of a run that holds one' })
            .positional('b', { type: 'string', demandOption: true, describe: 'run B: the same, of the same lab' })
            .option('out', { type: 'string', default: '.', describe: 'directory for compare.md and compare.html' })
            .option('stdout', { type: 'boolean', default: false, describe: 'print the Markdown instead of writing compare.md' }),
        async (argv) => {
          const { readResults } = await import('./report/index.js');
          const { renderComparisonMarkdown, resultsFileOf, writeComparison } = await import('./report/compare.js');
          const { compareRuns } = await import('./analysis/run-comparison.js');
          const files = { a: await resultsFileOf(argv.a), b: await resultsFileOf(argv.b) };
          const [a, b] = [await readResults(files.a), await readResults(files.b)];
          const markdown = renderComparisonMarkdown(compareRuns(a, b, files));
          if (argv.stdout) {
            process.stdout.write(markdown);
            return;
          }
          const written = await writeComparison(markdown, `${a.lab.title}: two runs compared`, resolve(argv.out));
          process.stderr.write(`${a.lab.name}: wrote ${written.markdownFile} and ${written.htmlFile}\n`);
        },
      )
      .command('list', 'list the labs', {}, async () => {
        const { loadAllLabs } = await import('./labs/load.js');
        const labs = await loadAllLabs();
        const width = Math.max(...labs.map(({ lab }) => lab.name.length));
        for (const { lab } of labs) {
          process.stdout.write(`${lab.name.padEnd(width)}  ${lab.default ? '(default) ' : '          '}${lab.title}\n`);
        }
      })
      .command('models', 'list the IO models: what each declares of itself and the syscalls it must show', {}, async () => {
        const { models } = await import('./servers/index.js');
        const width = Math.max(...models.map((model) => model.name.length)) + 1;
        const pad = ''.padEnd(width);
        for (const model of models) {
          const { traits, fingerprint } = model;
          const required = fingerprint.required.map((names) => names.join('|')).join(', ');
          const waitsIn = fingerprint.waitsIn.length ? ` in ${fingerprint.waitsIn.join('|')}` : '';
          const readiness = traits.triggering ? `, ${traits.triggering}-triggered` : '';
          const serves = traits.concurrency === 'one' ? 'one client at a time' : traits.concurrency === 'pool' ? 'as many clients as its pool has threads' : 'every connection';
          process.stdout.write(
            `${model.name.padEnd(width)} ${model.summary}${model.program ? ` (${model.program.file}${model.twin ? `; twin of ${model.twin}` : ''})` : ''}\n` +
              `${pad} waits: ${traits.waits}${waitsIn}${readiness}${traits.coroutines ? ', coroutines' : ''}; a connection costs: ${traits.perConnection === 'none' ? 'no thread' : `a ${traits.perConnection}`}; serves ${serves}; fd ceiling: ${traits.fdCeiling}\n` +
              `${pad} shows: ${required}; never: ${fingerprint.forbidden.join(', ')}\n`,
          );
        }
      })
      .command(
        'server',
        'run one IO-model echo server in the foreground',
        (y) =>
          y
            .option('model', { type: 'string', demandOption: true, describe: 'the IO model (see `iolab models`)' })
            .option('host', { type: 'string', default: '0.0.0.0', describe: 'IPv4 address to listen on' })
            .option('port', { type: 'number', default: 7000, describe: 'TCP port (0: any free port)' })
            .option('threads', { type: 'number', describe: 'pool: worker threads (default 4)', coerce: positiveNumber('threads') })
            .option('blocking-call-ms', { type: 'number', describe: 'coroutine: a handler\'s hidden blocking call, in ms (default 0: none)' })
            .option('drain', { type: 'boolean', describe: 'epoll-et: read until EAGAIN on every event (default); --no-drain reads once per event, the classic edge-triggered bug' }),
        async (argv) => {
          const { findModel } = await import('./servers/index.js');
          const model = findModel(argv.model);
          if (model.program) {
            const { runProgramModel } = await import('./runtime/local.js');
            process.exitCode = await runProgramModel(model, argv.host, argv.port);
            return;
          }
          const { listenAndServe } = await import('./servers/listen.js');
          await listenAndServe(model, argv.host, argv.port, {
            ...(argv.threads !== undefined && { threads: argv.threads }),
            ...(argv.blockingCallMs !== undefined && { blockingCallMs: argv.blockingCallMs }),
            ...(argv.drain !== undefined && { drain: argv.drain }),
          });
        },
      )
      .command(
        'client',
        'run one load-generating client and print its result as JSON',
        (y) =>
          y
            .option('target', { type: 'string', demandOption: true, describe: 'HOST:PORT of the server; stdin: read it as a line from stdin, once started (labs start clients beside the server)' })
            .option('mode', { choices: ['echo', 'hold'] as const, default: 'echo' as const, describe: 'echo: ping-pong and verify; hold: idle connections and a probe' })
            .option('connections', { type: 'number', default: 1, describe: 'connections to open (hold: 0 keeps only the probe)' })
            .option('duration', { type: 'number', default: 3, describe: 'seconds', coerce: positiveNumber('duration') })
            .option('message-size', { type: 'number', default: 64, describe: 'bytes per request', coerce: positiveNumber('message-size') })
            .option('rate', { type: 'number', describe: 'echo: requests per second per connection, sent open-loop (each at its scheduled send time, latency timed from it); default: closed loop', coerce: positiveNumber('rate') })
            .option('wait-for-start', { type: 'boolean', default: false, describe: `once connected, wait for ${START_SIGNAL} before the measured window (labs start all clients at once)` })
            .option('start-gate', { type: 'string', describe: 'with --wait-for-start: wait for "start" from the gate at HOST:PORT instead of the signal (a lab on a swarm: src/clients/start-gate.ts)' }),
        async (argv) => {
          const { runClient } = await import('./clients/index.js');
          // Installed before connecting: the signal's default action would kill the process. A
          // signal handler does not keep Node's event loop alive; the timer does, until the start.
          const started = argv.startGate
            ? null
            : argv.waitForStart
            ? new Promise<void>((resolve) => {
                const keepAlive = setInterval(() => {}, 1000);
                process.once(START_SIGNAL, () => {
                  clearInterval(keepAlive);
                  resolve();
                });
              })
            : null;
          const target = argv.target === 'stdin' ? await firstLineOfStdin('the target (HOST:PORT) on stdin') : argv.target;
          const result = await runClient({
            target,
            mode: argv.mode,
            connections: argv.connections!,
            durationSeconds: argv.duration!,
            messageSize: argv.messageSize!,
            ...(argv.rate !== undefined && { rate: argv.rate }),
            onReady: async () => {
              const { joinStartGate } = await import('./clients/start-gate.js');
              // joined before the ready line: the controller opens the gate once every client is ready
              const gate = argv.startGate ? await joinStartGate(argv.startGate) : null;
              process.stderr.write(`ready connections=${argv.connections}\n`);
              await (gate?.started ?? started);
            },
            // In a lab, the result goes out at once and the connections stay open until the lab
            // has stopped observing and stops this client (at most CLIENT_HOLD_AFTER_RESULT_MS).
            onResult: async (outcome) => {
              process.stdout.write(`${JSON.stringify(outcome)}\n`);
              if (argv.waitForStart) await new Promise((resolve) => setTimeout(resolve, CLIENT_HOLD_AFTER_RESULT_MS));
            },
          });
          void result;
        },
      )
      .command(
        'clean',
        'remove the containers, networks and submission images that Docker runs and gradings whose process is gone left behind',
        (y) =>
          y
            .option('run', { type: 'string', describe: 'remove this run\'s (its iolab.run label), even if its process may still be running' })
            .option('parent', { type: 'string', describe: 'remove what the gradings of this swarm batch started on this node (label iolab.parent): the batch\'s last job runs it on every node' })
            .conflicts('run', 'parent'),
        async (argv) => {
          const Docker = (await import('dockerode')).default;
          const { cleanCommand } = await import('./runtime/clean.js');
          for (const line of await cleanCommand(new Docker(), argv.run ?? argv.parent, argv.parent !== undefined)) process.stdout.write(`${line}\n`);
        },
      )
      .command(
        'grade [submission]',
        'grade a student\'s server (or a class with --batch) by what it does in the kernel',
        (y) =>
          y
            .positional('submission', { type: 'string', describe: 'a directory with server.py, server.ts, server.js, a Dockerfile or iolab.yaml' })
            .option('exercise', { type: 'string', demandOption: true, describe: 'the exercise (see `iolab exercises`)' })
            .option('format', { choices: ['markdown', 'gradescope', 'junit', 'json'] as const, default: 'markdown' as const, describe: 'the output: feedback, Gradescope results.json, JUnit XML, or the grade as JSON' })
            .option('out', { type: 'string', describe: 'write the output (and grade.json) into this directory instead of stdout; --batch: default grades/' })
            .option('batch', { type: 'string', describe: 'grade every subdirectory of DIR (one per student): a gradebook CSV and feedback per student' })
            .option('jobs', { type: 'number', default: 2, describe: '--batch on this machine: submissions graded at the same time (--on swarm: see --jobs-per-node)', coerce: positiveNumber('jobs') })
            .option('on', { choices: ['machine', 'swarm'] as const, default: 'machine' as const, describe: '--batch: grade on this machine, or each submission as a job on a node of the Docker swarm this engine manages (docs/swarm.md)' })
            .option('jobs-per-node', { type: 'number', describe: '--on swarm: gradings at a time on each node (default: its CPUs)', coerce: positiveNumber('jobs-per-node') })
            .option('checks', { type: 'string', describe: 'only these checks of the rubric, comma-separated' })
            .option('time-limit', { type: 'number', default: 600, describe: 'seconds for one submission\'s grading; the checks finished by then keep their scores', coerce: positiveNumber('time-limit') })
            .option('runtime', { choices: ['docker', 'local'] as const, default: 'docker' as const, describe: 'docker: sandboxed containers; local: unisolated processes, for developing only' })
            .option('resume', { type: 'boolean', default: false, describe: '--batch: continue the batch that was killed or stopped in --out (its batch.json): the students graded there are kept, the others graded' }),
        async (argv) => {
          const { gradeCommand } = await import('./grade/command.js');
          if (argv.jobsPerNode !== undefined && !Number.isInteger(argv.jobsPerNode)) throw new UsageError(`--jobs-per-node must be a whole number of at least 1, got ${argv.jobsPerNode}`);
          const jobsPerNode = argv.jobsPerNode;
          process.exitCode = await gradeCommand({ ...argv, jobs: Math.floor(argv.jobs!), jobsPerNode, timeLimit: argv.timeLimit!, verbose }, async (exercise, only, onProgress) => {
            const { SwarmGrading } = await import('./swarm/grading.js');
            return new SwarmGrading({ exercise, only, timeLimitSeconds: argv.timeLimit!, jobsPerNode, onProgress });
          });
        },
      )
      .command('exercises', 'list the exercises that `iolab grade` grades', {}, async () => {
        const { loadAllExercises } = await import('./grade/rubric.js');
        const exercises = await loadAllExercises();
        const width = Math.max(...exercises.map((e) => e.id.length));
        for (const e of exercises) {
          process.stdout.write(`${e.id.padEnd(width)}  ${e.rubric.title} (model ${e.rubric.model}; ${e.rubric.checks.map((c) => c.check).join(', ')})\n`);
        }
      })
      .command(
        'observe',
        false, // the Docker runtime's sidecar; see src/tracer/observe.ts and src/tracer/listeners.ts
        (y) =>
          y
            .option('pid', { type: 'number', describe: 'the process to observe' })
            .option('tracer', { choices: ['bpf', 'strace'] as const, describe: 'attach a tracer for syscall counts' })
            .option('bpf-scope', { choices: ['process-tree', 'cgroup'] as const, default: 'process-tree' as const, describe: 'what the eBPF observer counts: the process tree of --pid, or its cgroup' })
            .option('check', { choices: ['bpf', 'strace'] as const, describe: 'instead: print whether this tracer can run here ({available, name|reason}) and exit' })
            .option('listening', { type: 'number', describe: 'instead: wait until a process here listens on this port, print where, and exit' })
            .option('timeout-ms', { type: 'number', default: 20_000, describe: 'with --listening: how long to wait' })
            .option('serve', { type: 'boolean', describe: 'instead: observe the servers named by JSON requests on stdin, one at a time (the Docker runtime\'s observer)' })
            .check((argv) => argv.pid !== undefined || argv.listening !== undefined || argv.check !== undefined || argv.serve === true || 'name --pid, --listening, --check or --serve'),
        async (argv) => {
          if (argv.listening !== undefined) {
            const { serveListenerWait } = await import('./tracer/listeners.js');
            await serveListenerWait(argv.listening, argv.timeoutMs);
            return;
          }
          if (argv.check !== undefined) {
            const { LocalRuntime } = await import('./runtime/local.js');
            process.stdout.write(`${JSON.stringify(await new LocalRuntime().tracer(argv.check))}\n`);
            return;
          }
          if (argv.serve) {
            const { serveObserverRequests } = await import('./tracer/observe.js');
            await serveObserverRequests();
            return;
          }
          const { serveObserver } = await import('./tracer/observe.js');
          await serveObserver(argv.pid!, { tracer: argv.tracer ?? null, bpfScope: argv.bpfScope });
        },
      )
      .command(
        'start-gate',
        false, // the start of a lab's window for clients on other nodes; see src/clients/start-gate.ts
        {},
        async () => {
          const { serveStartGate } = await import('./clients/start-gate.js');
          await serveStartGate(START_SIGNAL);
        },
      )
      .command(
        'swarm-image <action>',
        false, // how the lab image reaches a swarm's nodes; see src/swarm/images.ts
        (y) =>
          y
            .positional('action', { choices: ['serve', 'load'] as const, demandOption: true })
            .option('image', { type: 'string', demandOption: true, describe: 'the image\'s tag' })
            .option('from', { type: 'string', describe: 'load: the source\'s URL' })
            .option('id', { type: 'string', describe: 'load: the image\'s id (sha256:...)' }),
        async (argv) => {
          const { serveImage, loadImage } = await import('./swarm/images.js');
          if (argv.action === 'serve') await serveImage(argv.image);
          else if (!argv.from || !argv.id) throw new UsageError('swarm-image load: give --from URL and --id ID');
          else await loadImage(argv.from, argv.image, argv.id);
        },
      )
      .command(
        'reap',
        false, // a run's reaper container: removes the run when its controller dies; see src/runtime/reaper.ts
        (y) => y.option('run', { type: 'string', demandOption: true, describe: 'the run id (label iolab.run)' }),
        async (argv) => {
          const { reapWhenStdinEnds } = await import('./runtime/reaper.js');
          const { removeLabelled, RUN_LABEL } = await import('./runtime/containers.js');
          const Docker = (await import('dockerode')).default;
          const docker = new Docker();
          await reapWhenStdinEnds(argv.run, (keep) => removeLabelled(docker, argv.run, RUN_LABEL, keep));
        },
      )
      .command(
        'probe',
        false, // the grader's client container; see src/grade/probe.ts
        (y) =>
          y
            .option('target', { type: 'string', demandOption: true, describe: 'HOST:PORT of the server' })
            .option('request', { type: 'string', demandOption: true, describe: 'the probe, as JSON' }),
        async (argv) => {
          const { serveProbe } = await import('./grade/probe.js');
          const at = argv.target.lastIndexOf(':');
          await serveProbe(argv.request, { host: argv.target.slice(0, at), port: Number(argv.target.slice(at + 1)) });
        },
      )
      .demandCommand(1, 'name a command: run, report, compare, list, models, server, client, grade, exercises, clean')
      .strict()
      .fail((msg, error) => {
        if (error) throw error;
        throw new UsageError(msg);
      })
      .help()
      .parseAsync();
  } catch (error) {
    fail(error, verbose);
  }
}

await main();
