// The lab image on a real Docker engine: ensureImage builds it once and reuses it, what is inside
// (iolab with its twelve models, Node 18, strace, python3 with gevent), an echo server in a
// container answering from the host, the controller in a container reusing its own image, and
// compose.yaml as docker-compose reads it. No engine, no pass: these tests fail without one
// (.ci/run installs and starts it).
import { execFile } from 'node:child_process';
import { chown, cp, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RuntimeUnavailableError } from '../src/errors.js';
import { EXERCISES_DIR } from '../src/grade/rubric.js';
import { models } from '../src/servers/index.js';
import {
  CONTEXT_ROOT,
  dockerfileBaseImage,
  dockerfileCopySources,
  engineAvailable,
  ensureImage,
  readBuildContext,
  type EnsuredImage,
} from '../src/runtime/docker-image.js';
import { connect, echo, expectedEcho, labTimeoutMs, lowercaseBytes, Receiver } from './helpers.js';

const run = promisify(execFile);
const docker = new Docker();
const BUILD_TIMEOUT = 10 * 60_000;
const TEST_LABEL = { 'org.iolab.test': 'docker-image' };
/** nobody:nogroup: the owner of the host directories compose writes into, as a user's ./reports would be theirs. */
const HOST_USER = { uid: 65534, gid: 65534 };

/** Every entry under `dir` (itself included) whose owner is not `owner`, symlinks not followed. */
async function notOwnedBy(dir: string, owner: { uid: number; gid: number }): Promise<string[]> {
  const wrong: string[] = [];
  const walk = async (path: string) => {
    const entry = await lstat(path);
    if (entry.uid !== owner.uid || entry.gid !== owner.gid) wrong.push(`${path} (${entry.uid}:${entry.gid})`);
    if (entry.isDirectory()) for (const name of await readdir(path)) await walk(join(path, name));
  };
  await walk(dir);
  return wrong;
}

/** A container of `image` running `command` to its end: exit code and demultiplexed output. */
async function runInImage(image: string, command: string[], options: Partial<Docker.ContainerCreateOptions> = {}) {
  const container = await docker.createContainer({ Image: image, Cmd: command, Labels: TEST_LABEL, ...options });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    // Without a TTY the engine frames each chunk: [stream, 0, 0, 0, size (4 bytes, big-endian)].
    const out = { stdout: '', stderr: '' };
    for (let at = 0; at + 8 <= raw.length; ) {
      const size = raw.readUInt32BE(at + 4);
      const text = raw.subarray(at + 8, at + 8 + size).toString();
      if (raw[at] === 2) out.stderr += text;
      else out.stdout += text;
      at += 8 + size;
    }
    return { exitCode: StatusCode, ...out };
  } finally {
    await container.remove({ force: true });
  }
}

async function imageExists(name: string): Promise<boolean> {
  return docker
    .getImage(name)
    .inspect()
    .then(() => true)
    .catch(() => false);
}

let image: EnsuredImage;
const firstBuildLines: string[] = [];
const firstBuildProgress: string[] = [];
/** Why there is no image to test: every test fails with it (a failed beforeAll would only skip them). */
let setupError: Error | null = null;

beforeAll(async () => {
  const engine = await engineAvailable(docker, 5000);
  if (!engine.ok) {
    setupError = new Error(`these tests need a Docker engine and none answers: ${engine.reason}. Run .ci/run, or install docker.io and start dockerd.`);
    return;
  }
  // rebuild: the first call always builds (from the engine's layer cache when it has one).
  image = await ensureImage(docker, { rebuild: true, onProgress: (line) => firstBuildProgress.push(line), onBuildOutput: (line) => firstBuildLines.push(line) }).catch((error: Error) => {
    setupError = error;
    return image;
  });
}, BUILD_TIMEOUT);

/** A build context of iolab's package.json and `dockerfile` as docker/Dockerfile, for `use`, removed after. */
async function withDockerfile(dockerfile: string, use: (context: string) => Promise<void>): Promise<void> {
  const context = await mkdtemp(join(tmpdir(), 'iolab-dockerfile-'));
  try {
    await cp(join(CONTEXT_ROOT, 'package.json'), join(context, 'package.json'));
    await mkdir(join(context, 'docker'));
    await writeFile(join(context, 'docker', 'Dockerfile'), dockerfile);
    await use(context);
  } finally {
    await rm(context, { recursive: true, force: true });
  }
}

/** In a describe whose tests need the engine and the image. */
function needsTheImage(): void {
  beforeEach(() => {
    if (setupError) throw setupError;
  });
}

describe('the image tag follows the sources the Dockerfile copies', () => {
  it('hashes what docker/Dockerfile copies from the context, and nothing else', async () => {
    const context = await readBuildContext();
    expect(context.baseImage).toBe('debian:bookworm-slim');
    expect(context.tag).toMatch(/^iolab:0\.\d+\.\d+-[0-9a-f]{12}$/);
    expect(context.files).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'bin/iolab.js', 'labs/models.yaml', 'src/cli.ts', 'docker/Dockerfile']));
    expect(context.files.filter((file) => /^(test|node_modules|dist|reports|\.git)\//.test(file))).toEqual([]);
  });

  it('changes when a copied source changes, not when another file does', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'iolab-context-'));
    try {
      for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'bin', 'labs', 'src', 'docker']) {
        await cp(join(CONTEXT_ROOT, entry), join(copy, entry), { recursive: true });
      }
      const before = await readBuildContext(copy);
      await writeFile(join(copy, 'README.md'), 'not copied into the image\n');
      expect((await readBuildContext(copy)).tag).toBe(before.tag);
      await writeFile(join(copy, 'src', 'servers', 'epoll.ts'), '// a student edited the epoll server\n', { flag: 'a' });
      expect((await readBuildContext(copy)).tag).not.toBe(before.tag);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it('reads COPY sources and the base image as docker build does', () => {
    const dockerfile = [
      'ARG BASE_IMAGE=debian:bookworm-slim',
      'FROM ${BASE_IMAGE} AS build',
      'COPY --chown=0:0 package.json \\',
      '     package-lock.json ./',
      '# COPY ignored/ ./',
      'COPY --from=build /opt/dist ./dist',
      'COPY ["src", "./src"]',
      'FROM ${BASE_IMAGE}',
    ].join('\n');
    expect(dockerfileCopySources(dockerfile)).toEqual(['package.json', 'package-lock.json', 'src']);
    expect(dockerfileBaseImage(dockerfile)).toBe('debian:bookworm-slim');
    expect(() => dockerfileCopySources('FROM x\nCOPY src/*.ts ./\n')).toThrow(RuntimeUnavailableError);
  });
});

describe('ensureImage', () => {
  needsTheImage();

  it('builds the image, streaming the build output apart from its two lines of progress, with no warning of npm', () => {
    expect(image.built).toBe(true);
    expect(image.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(firstBuildLines.some((line) => /^Step 1\/\d+ : ARG BASE_IMAGE=debian:bookworm-slim/.test(line))).toBe(true);
    expect(firstBuildLines.some((line) => /Successfully built/.test(line))).toBe(true);
    expect(firstBuildProgress).toEqual([expect.stringMatching(/^building iolab:\S+ from \S+Dockerfile \(\d+ files\)$/), expect.stringMatching(/^built iolab:\S+ in \d+(m\d\d)?s$/)]);
    // Every dependency installed in the image runs on the image's Node (no EBADENGINE), and npm warns of nothing else.
    expect(firstBuildLines.filter((line) => /npm (WARN|warn)|EBADENGINE/.test(line))).toEqual([]);
  });

  it('reuses it when the sources have not changed', async () => {
    const lines: string[] = [];
    const again = await ensureImage(docker, { onProgress: (line) => lines.push(line) });
    expect(again).toEqual({ tag: image.tag, id: image.id, built: false });
    expect(lines).toEqual([]);
  });

  it('labels it with the version and the context hash', async () => {
    const context = await readBuildContext();
    const labels = (await docker.getImage(image.tag).inspect()).Config.Labels;
    expect(labels).toMatchObject({ 'org.iolab.version': context.version, 'org.iolab.context-hash': context.hash });
  });

  it('names the failing step and its last lines of output when the build fails', async () => {
    await withDockerfile('FROM debian:bookworm-slim\nRUN echo checking the toolchain && echo no compiler here >&2 && exit 3\n', async (context) => {
      const error = await ensureImage(docker, { contextRoot: context, tag: 'iolab-test/broken:1' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RuntimeUnavailableError);
      const message = (error as Error).message;
      expect(message).toMatch(/failed at Step 2\/\d+ : RUN echo checking the toolchain/);
      expect(message).toContain('returned a non-zero code: 3');
      expect(message).toContain('no compiler here');
      expect(message).not.toContain('\x1b[');
      expect(await imageExists('iolab-test/broken:1')).toBe(false);
    });
  });

  it('says how to get the base image when it is missing and cannot be pulled', async () => {
    await withDockerfile('ARG BASE_IMAGE=iolab-test/no-such-base:1\nFROM ${BASE_IMAGE}\nRUN true\n', async (context) => {
      const error = await ensureImage(docker, { contextRoot: context }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RuntimeUnavailableError);
      const message = (error as Error).message;
      expect(message).toMatch(/failed at Step 2\/\d+ : FROM \$\{BASE_IMAGE\}/);
      expect(message).toContain('The base image iolab-test/no-such-base:1 is not in the engine');
      expect(message).toContain('BASE_IMAGE=iolab-test/no-such-base:1 docker/bootstrap-base.sh');
      expect(message).toContain('docker pull iolab-test/no-such-base:1');
    });
  }, 120_000);
});

describe('engineAvailable', () => {
  needsTheImage();

  it('gives the engine version when one answers', async () => {
    const status = await engineAvailable(docker);
    expect(status.ok).toBe(true);
    if (status.ok) expect(status.version).toMatch(/^\d+\.\d+/);
  });

  it('says why when nothing listens on the socket, or nothing answers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'iolab-socket-'));
    const silent = createServer(() => {}); // accepts, never answers
    try {
      const absent = await engineAvailable(new Docker({ socketPath: join(dir, 'absent.sock') }));
      expect(absent).toEqual({ ok: false, reason: expect.stringContaining(`${join(dir, 'absent.sock')} does not exist`) });
      await new Promise<void>((resolve) => silent.listen(join(dir, 'silent.sock'), resolve));
      const mute = await engineAvailable(new Docker({ socketPath: join(dir, 'silent.sock') }), 300);
      expect(mute).toEqual({ ok: false, reason: expect.stringContaining('did not answer within 300 ms') });
    } finally {
      silent.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('inside the lab image', () => {
  needsTheImage();

  it('iolab lists the IO models, the Python ones among them, and runs one', async () => {
    const { exitCode, stdout, stderr } = await runInImage(image.tag, ['iolab', 'models']);
    expect(exitCode, stderr).toBe(0);
    const listed = stdout.split('\n').filter((line) => /^\S/.test(line)).map((line) => line.split(/\s+/)[0]);
    expect(listed).toEqual(models.map((model) => model.name));
    expect(listed).toContain('python-gevent');
  });

  it("has Debian's Node 18, strace, python3 with gevent, ps, ip and prlimit", async () => {
    const script = 'node --version; strace -V | head -1; python3 -c "import gevent; print(\'gevent\', gevent.__version__)"; for tool in ps ip prlimit; do command -v $tool; done';
    const { exitCode, stdout, stderr } = await runInImage(image.tag, ['sh', '-c', script]);
    expect(exitCode, stderr).toBe(0);
    expect(stdout).toMatch(/^v18\./);
    expect(stdout).toMatch(/strace -- version \d/);
    expect(stdout).toMatch(/gevent \d/);
    expect(stdout).toMatch(/\/ps\n.*\/ip\n.*\/prlimit\n/);
  });

  it('a controller in a container of the image reuses that image rather than building one', async () => {
    // As compose's lab service does: the image it runs is the build of the files it holds. The
    // default tag is taken away for the test, so only that path can find the image.
    const ownTag = `iolab-test/own-image:${process.pid}`;
    const [repo, tag] = image.tag.split(':') as [string, string];
    await docker.getImage(image.id).tag({ repo: 'iolab-test/own-image', tag: String(process.pid) });
    try {
      await docker.getImage(image.tag).remove();
      const script =
        "const { default: Docker } = await import('dockerode');" +
        "const { ensureImage } = await import('/opt/iolab/dist/runtime/docker-image.js');" +
        'console.log(JSON.stringify(await ensureImage(new Docker())));';
      const { exitCode, stdout, stderr } = await runInImage(ownTag, ['node', '--input-type=module', '-e', script], {
        WorkingDir: '/opt/iolab',
        HostConfig: { Binds: ['/var/run/docker.sock:/var/run/docker.sock'] },
      });
      expect(exitCode, stderr).toBe(0);
      expect(JSON.parse(stdout)).toEqual({ tag: image.tag, id: image.id, built: false });
      expect(await imageExists(image.tag)).toBe(true);
    } finally {
      if (!(await imageExists(image.tag))) await docker.getImage(image.id).tag({ repo, tag });
      await docker.getImage(ownTag).remove();
    }
  }, 120_000);
});

// uring runs with the runtime's seccomp profile, as the Docker runtime starts it: Docker 20.10's
// default profile allows io_uring, newer releases' do not.
const seccompForUring = `seccomp=${readFileSync(join(CONTEXT_ROOT, 'docker', 'seccomp-io-uring.json'), 'utf8')}`;

describe.each([
  { model: 'epoll', securityOptions: [] as string[] },
  { model: 'uring', securityOptions: [seccompForUring] },
])('an $model echo server in a container (testcontainers)', ({ model, securityOptions }) => {
  needsTheImage();
  // The reaper (Ryuk) image cannot be pulled here; the test stops its container itself.
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  let container: import('testcontainers').StartedTestContainer | undefined;

  beforeAll(async () => {
    if (setupError) return;
    const { GenericContainer, Wait } = await import('testcontainers');
    container = await new GenericContainer(image.tag)
      .withCommand(['iolab', 'server', '--model', model, '--host', '0.0.0.0', '--port', '7000'])
      .withExposedPorts(7000)
      .withSecurityOpt(...securityOptions)
      .withLabels(TEST_LABEL)
      .withWaitStrategy(Wait.forLogMessage(/listening on/))
      .withStartupTimeout(60_000)
      .start();
  }, 120_000);

  afterAll(async () => {
    await container?.stop();
  });

  it('answers the echo protocol from the host through the mapped port', async () => {
    const socket = await connect(container!.getMappedPort(7000));
    try {
      const receiver = new Receiver(socket);
      const message = lowercaseBytes(4096);
      expect((await echo(socket, receiver, message)).equals(expectedEcho(message))).toBe(true);
      const everyByte = Buffer.from(Array.from({ length: 256 }, (_, byte) => byte));
      expect((await echo(socket, receiver, everyByte)).equals(expectedEcho(everyByte))).toBe(true);
    } finally {
      socket.destroy();
    }
  });
});

describe('compose.yaml', () => {
  async function compose(args: string[], env: NodeJS.ProcessEnv = {}) {
    const options = { cwd: CONTEXT_ROOT, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 };
    const standalone = await run('docker-compose', ['version', '--short']).then(() => true, () => false);
    if (standalone) return run('docker-compose', args, options);
    const plugin = await run('docker', ['compose', 'version']).then(() => true, () => false);
    if (plugin) return run('docker', ['compose', ...args], options);
    throw new Error('neither docker-compose nor the docker compose plugin is installed (.ci/run installs docker-compose)');
  }

  it('is accepted by docker-compose config, with the lab, grade and shell services on one image', async () => {
    const { stdout } = await compose(['config']);
    expect(stdout).toMatch(/^services:\n/m);
    expect(stdout).toMatch(/^ {2}lab:\n/m);
    expect(stdout).toMatch(/^ {2}grade:\n/m);
    expect(stdout).toMatch(/^ {2}shell:\n/m);
    expect(stdout.match(/image: iolab:compose/g)).toHaveLength(3);
    expect(stdout).toContain('dockerfile: docker/Dockerfile');
    expect(stdout).toContain('/var/run/docker.sock:/var/run/docker.sock');
  });

  it('`docker-compose up lab` runs the labs in containers and writes the reports on the host', async () => {
    const reports = await mkdtemp(join(tmpdir(), 'iolab-compose-'));
    // The host directory belongs to a user; the controller in the container runs as root.
    await chown(reports, HOST_USER.uid, HOST_USER.gid);
    // coroutines: 3 servers × (4 measured + 1 traced) runs, one of the smaller labs.
    const env = { IOLAB_LABS: 'coroutines', IOLAB_DURATION: '0.5', IOLAB_REPORTS: reports };
    try {
      await compose(['up', '--build', '--exit-code-from', 'lab', 'lab'], env);
      const results = JSON.parse(await readFile(join(reports, 'coroutines', 'latest', 'results.json'), 'utf8'));
      expect(results.complete).toBe(true);
      expect(results.environment.runtime).toBe('docker');
      expect(results.analysis.verdicts.length).toBe(3);
      expect(await readFile(join(reports, 'coroutines', 'latest', 'report.md'), 'utf8')).toContain('## Claim');
      expect(await readFile(join(reports, 'index.md'), 'utf8')).toContain('## coroutines');
      // Everything it wrote is the user's, not root's.
      expect(await notOwnedBy(reports, HOST_USER)).toEqual([]);
    } finally {
      await compose(['down', '--remove-orphans'], env).catch(() => {});
    }
    // The compose image's build (its layers mostly cached from the tests above), then the lab.
  }, 300_000 + labTimeoutMs(15, 0.5, 20));

  it('`docker-compose run grade --batch` grades the submissions directory into the grades directory', async () => {
    const submissions = await mkdtemp(join(tmpdir(), 'iolab-compose-submissions-'));
    const grades = await mkdtemp(join(tmpdir(), 'iolab-compose-grades-'));
    await chown(grades, HOST_USER.uid, HOST_USER.gid);
    await cp(join(EXERCISES_DIR, 'epoll-echo', 'reference'), join(submissions, 'bob'), { recursive: true });
    const env = { IOLAB_SUBMISSIONS: submissions, IOLAB_GRADES: grades };
    try {
      await compose(['run', '--rm', 'grade', '--batch', '/work/submissions', '--exercise', 'epoll-echo', '--checks', 'echo,fingerprint', '--out', '/work/grades'], env);
      const gradebook = await readFile(join(grades, 'gradebook.csv'), 'utf8');
      expect(gradebook.split('\n')[1]).toMatch(/^bob,graded,35,35,/);
      expect(await readFile(join(grades, 'bob', 'feedback.md'), 'utf8')).toContain('Graded in a container');
      expect(await notOwnedBy(grades, HOST_USER)).toEqual([]);
    } finally {
      await compose(['down', '--remove-orphans'], env).catch(() => {});
    }
  }, 600_000);

  it('passes IOLAB_LABS and IOLAB_DURATION from the shell to the lab command', async () => {
    const { stdout } = await compose(['config'], { IOLAB_LABS: 'starvation models', IOLAB_DURATION: '1' });
    expect(stdout).toMatch(/IOLAB_LABS: starvation models/);
    expect(stdout).toMatch(/IOLAB_DURATION: '1'/);
  });
});
