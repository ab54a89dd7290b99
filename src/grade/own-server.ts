// A server of one's own in a lab (`server: DIR`, `command: [...]`, `iolab run LAB --server DIR`):
// run the way a graded submission runs, by the grader's sandboxes, then handed to the lab runner
// as any other server. Locally (LocalSandbox) it runs as this user, unconfined, with the lab's
// nofile; in Docker (DockerSandbox) it is built into an image FROM the lab image, with no network
// for the build, and runs as nobody with every capability dropped, a read-only root and limits on
// memory and processes, on the lab's network where the lab's clients reach it. Unlike a grading,
// it gets every CPU of the machine (a model gets no CPU limit either: the lab compares them), and
// the lab's nofile (else the sandbox's 4,096).
import { cpus } from 'node:os';
import { DockerRuntime } from '../runtime/docker.js';
import type { OwnServers, OwnServerSpec, PreparedOwnServer, RunningServer, Runtime } from '../runtime/runtime.js';
import { NO_SERVER_EVENTS } from '../shared/server-events.js';
import { exitSentence } from './checks.js';
import { DockerSandbox } from './docker-sandbox.js';
import { explainNotListening, LISTEN_TIMEOUT_MS } from './grade.js';
import { LocalSandbox } from './local-sandbox.js';
import { DEFAULT_LIMITS, type GradeSandbox, type SandboxLimits, type SandboxedServer, type ServerState } from './sandbox.js';
import { prepareSubmission, SubmissionError } from './submission.js';

/** What a lab's server of its own may use in Docker: a grading's confinement, without its CPU limit. */
export function labLimits(nofile: number | null): SandboxLimits {
  return { ...DEFAULT_LIMITS, cpus: cpus().length, memoryMb: 2048, pids: 4096, nofile: nofile ?? DEFAULT_LIMITS.nofile, network: "the lab's network" };
}

/** The last lines of a server's output, for an error. */
const tail = (state: ServerState) => (state.output.length ? `; its output ends: ${state.output.slice(-3).join(' | ')}` : '');

/** A started sandboxed server as the lab runner sees a server: found listening, observed by its pid. */
async function asLabServer(label: string, server: SandboxedServer, port: number, pidsLimit: number | null): Promise<RunningServer> {
  const report = await server.waitListening(LISTEN_TIMEOUT_MS);
  let state = await server.state();
  if (!report.listening || !state.running) {
    const { feedback } = explainNotListening(report, state, port, pidsLimit);
    await server.stop();
    // The grader's wording, said of a lab's server.
    const said = feedback.replace(/^your server/, 'it').replace("the grader's clients", "the lab's clients");
    throw new Error(`server ${label}: ${said}${state.running ? tail(state) : ''}`);
  }
  const pid = report.listening.pid;
  const refresh = async () => {
    state = await server.state().catch(() => state);
    return state;
  };
  return {
    model: label,
    pid,
    target: server.address(),
    runtime: null,
    log: () => state.output,
    events: () => NO_SERVER_EVENTS,
    alive: async () => (await refresh()).running,
    ending: async () => {
      const now = await refresh();
      return now.running ? null : exitSentence(now).replace(/^your server/, 'it');
    },
    observe: (options) => server.observe(pid, options),
    stop: async () => {
      await refresh();
      await server.stop();
    },
  };
}

/**
 * Servers of one's own for the lab runner, built and confined by the grader's sandboxes: a
 * DockerSandbox on the Docker runtime (on its lab network), a LocalSandbox on the local one.
 * prepare() throws an Error naming the server: no server in its directory, a compile error, no
 * Docker engine.
 */
export class SandboxOwnServers implements OwnServers {
  constructor(private readonly options: { onProgress?: (line: string) => void } = {}) {}

  async prepare(spec: OwnServerSpec, runtime: Runtime): Promise<PreparedOwnServer> {
    const where = spec.dir ?? spec.labDir;
    let submission;
    try {
      submission = await prepareSubmission(where, spec.command ?? undefined);
    } catch (error) {
      if (error instanceof SubmissionError) throw new Error(error.message);
      throw error;
    }
    const limits = labLimits(spec.nofile);
    const sandbox: GradeSandbox =
      runtime instanceof DockerRuntime
        ? new DockerSandbox({ limits, network: await runtime.labNetwork(), onProgress: this.options.onProgress })
        : new LocalSandbox({ nofile: spec.nofile });
    try {
      await sandbox.prepare(submission);
    } catch (error) {
      await sandbox.close();
      await submission.dispose();
      throw new Error(`${spec.label} (${where}): ${(error as Error).message}`);
    }
    return {
      description: `${submission.description} from ${spec.dir ?? spec.labDir}`,
      start: async () => asLabServer(spec.label, await sandbox.start(), sandbox.port, sandbox.limits?.pids ?? null),
      dispose: async () => {
        await sandbox.close();
        await submission.dispose();
      },
    };
  }
}
