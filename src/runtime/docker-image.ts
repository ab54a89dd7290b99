// The lab image, for the Docker runtime: find it or build it from docker/Dockerfile, and tell
// whether a Docker engine answers at all.
//
// The image is tagged iolab:VERSION-HASH, where HASH is a short digest of the files the
// Dockerfile copies from the build context (read from its COPY lines), so a changed source gets a
// new image and an unchanged one is reused. The build context sent to the engine is exactly those
// files. Inside a container of the image (compose's `lab` service) the same files are at
// /opt/iolab, so the controller there computes the same tag; and when that tag is not yet in the
// engine it reuses the image it runs in, which holds those very files (see docker/README.md).
import { createHash } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { RuntimeUnavailableError } from '../errors.js';
import { formatElapsed } from '../shared/format.js';

/** The image docker/Dockerfile builds FROM (its BASE_IMAGE default); never pulled where no registry answers. */
export const BASE_IMAGE = 'debian:bookworm-slim';
export const IMAGE_REPOSITORY = 'iolab';
/** The Dockerfile, relative to the build context. */
export const DOCKERFILE = 'docker/Dockerfile';
/** The repository's root: the build context (/opt/iolab inside the image). */
export const CONTEXT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where the image records the hash of the context it was built from (written by the Dockerfile). */
const BAKED_CONTEXT_HASH = '/etc/iolab/context-hash';
/** Labels on every image ensureImage builds. */
export const IMAGE_LABELS = { version: 'org.iolab.version', contextHash: 'org.iolab.context-hash' } as const;

export interface BuildContext {
  /** the package version (package.json). */
  version: string;
  /** 12 hex digits of a SHA-256 over the paths and contents of `files`. */
  hash: string;
  /** the context's files, relative to the root, '/'-separated, sorted: what the Dockerfile copies, and the Dockerfile. */
  files: string[];
  /** the tag ensureImage uses by default: iolab:VERSION-HASH. */
  tag: string;
  /** the image the Dockerfile builds FROM (debian:bookworm-slim). */
  baseImage: string;
}

/**
 * The sources of the Dockerfile's COPY instructions that copy from the build context (not those
 * with --from=STAGE). Plain paths only: a wildcard would make the hash depend on what the glob
 * matches, so it is refused rather than guessed.
 */
export function dockerfileCopySources(dockerfile: string): string[] {
  const sources: string[] = [];
  for (const instruction of instructionsOf(dockerfile)) {
    const match = /^(COPY|ADD)\s+(.*)$/i.exec(instruction);
    if (!match) continue;
    const rest = match[2]!.trim();
    let words: string[];
    if (rest.startsWith('[')) {
      words = JSON.parse(rest) as string[];
    } else {
      words = rest.split(/\s+/);
      if (words.some((word) => word.startsWith('--from'))) continue;
      words = words.filter((word) => !word.startsWith('--'));
    }
    if (words.length < 2) throw new RuntimeUnavailableError(`${DOCKERFILE}: cannot read the instruction "${instruction}"`);
    for (const source of words.slice(0, -1)) {
      if (/[*?[]/.test(source) || /^[a-z]+:\/\//i.test(source)) {
        throw new RuntimeUnavailableError(`${DOCKERFILE}: "${instruction}": only plain paths can be hashed for the image tag, not ${source}`);
      }
      sources.push(posix.normalize(source).replace(/^(\.\/)+|\/+$/g, ''));
    }
  }
  return sources;
}

function instructionsOf(dockerfile: string): string[] {
  return dockerfile
    .split(/\r?\n/)
    .filter((line) => !line.trim().startsWith('#'))
    .join('\n')
    .replace(/\\\r?\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
}

/** The image the Dockerfile's first stage builds FROM, with the ARG defaults declared before it substituted. */
export function dockerfileBaseImage(dockerfile: string): string {
  const defaults = new Map<string, string>();
  for (const instruction of instructionsOf(dockerfile)) {
    const arg = /^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?/i.exec(instruction);
    if (arg) defaults.set(arg[1]!, (arg[2] ?? '').replace(/^(["'])(.*)\1$/, '$2'));
    const from = /^FROM\s+(?:--\S+\s+)*(\S+)/i.exec(instruction);
    if (from) return from[1]!.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, name: string) => defaults.get(name) ?? '');
  }
  throw new RuntimeUnavailableError(`${DOCKERFILE}: no FROM instruction`);
}

async function filesUnder(root: string, entry: string): Promise<string[]> {
  const info = await stat(join(root, entry)).catch(() => null);
  if (!info) throw new RuntimeUnavailableError(`${DOCKERFILE} copies ${entry}, which is not in ${root}`);
  if (!info.isDirectory()) return [entry];
  const found: string[] = [];
  for (const dirent of await readdir(join(root, entry), { withFileTypes: true })) {
    const child = `${entry}/${dirent.name}`;
    if (dirent.isDirectory()) found.push(...(await filesUnder(root, child)));
    else if (dirent.isFile()) found.push(child);
  }
  return found;
}

/** The build context of the lab image at `root` (by default this repository, or /opt/iolab in the image). */
export async function readBuildContext(root: string = CONTEXT_ROOT): Promise<BuildContext> {
  const dockerfile = await readFile(join(root, DOCKERFILE), 'utf8').catch(() => {
    throw new RuntimeUnavailableError(`cannot build the iolab image: ${join(root, DOCKERFILE)} is missing`);
  });
  const entries = [...new Set([...dockerfileCopySources(dockerfile), DOCKERFILE])];
  const files = [...new Set((await Promise.all(entries.map((entry) => filesUnder(root, entry)))).flat())].sort();
  const digest = createHash('sha256');
  for (const file of files) {
    const content = await readFile(join(root, file));
    digest.update(`${file}\0${content.length}\0`).update(content);
  }
  const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
  const hash = digest.digest('hex').slice(0, 12);
  return { version, hash, files, tag: `${IMAGE_REPOSITORY}:${version}-${hash}`, baseImage: dockerfileBaseImage(dockerfile) };
}

export interface EnsureImageOptions {
  /** the image to use or build; default iolab:VERSION-HASH of the build context. */
  tag?: string;
  /** build even when the image exists. */
  rebuild?: boolean;
  /** what ensureImage does, a line each ("building TAG ...", "built TAG in 5m12s"); without onBuildOutput, also each line of the build's output. */
  onProgress?: (line: string) => void;
  /** each line of the build's output, as it comes ("Step 3/31 : RUN ..."); the whole of it is also in the log file a failure names. */
  onBuildOutput?: (line: string) => void;
  /** stops a build in progress. */
  signal?: AbortSignal;
  /** the build context's root; default this repository (/opt/iolab in the image). */
  contextRoot?: string;
}

export interface EnsuredImage {
  tag: string;
  /** the image id (sha256:...). */
  id: string;
  /** true when this call built it, false when it was there already. */
  built: boolean;
}

async function imageId(docker: Docker, name: string): Promise<string | null> {
  try {
    return (await docker.getImage(name).inspect()).Id;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return null;
    throw new RuntimeUnavailableError(`cannot inspect the image ${name}: ${(error as Error).message}`);
  }
}

/**
 * The id of the image this process runs in, when it runs in a container of the lab image built
 * from the context with this hash (the image records that hash at build time); else null.
 */
async function ownImageWithHash(docker: Docker, hash: string): Promise<string | null> {
  const baked = (await readFile(BAKED_CONTEXT_HASH, 'utf8').catch(() => '')).trim();
  if (baked !== hash) return null;
  // The engine bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf from the container's
  // own directory, named by the container's full id.
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const id = /\/containers\/([0-9a-f]{64})\/(?:hostname|hosts|resolv\.conf)\s/.exec(mountinfo)?.[1];
  if (!id) return null;
  try {
    return (await docker.getContainer(id).inspect()).Image;
  } catch {
    return null; // a container of another engine than the one we talk to
  }
}

function splitTag(tag: string): { repo: string; tag: string } {
  const colon = tag.lastIndexOf(':');
  return colon > tag.lastIndexOf('/') ? { repo: tag.slice(0, colon), tag: tag.slice(colon + 1) } : { repo: tag, tag: 'latest' };
}

/** Where Debian keeps the CA certificates an administrator added (a TLS-intercepting proxy's). */
const LOCAL_CERTIFICATES = '/usr/local/share/ca-certificates';

/**
 * The build stages run `npm ci`: what this machine trusts, they must trust too, or a proxy that
 * re-signs HTTPS fails the build. Copies the machine's locally added CAs into
 * docker/ca-certificates/ (gitignored; see docker/README.md), as .ci/run does.
 */
async function trustLocalCertificates(root: string): Promise<void> {
  const names = await readdir(LOCAL_CERTIFICATES).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith('.crt'))) {
    const target = join(root, 'docker', 'ca-certificates', name);
    const wanted = await readFile(join(LOCAL_CERTIFICATES, name));
    const present = await readFile(target).catch(() => null);
    if (!present?.equals(wanted)) await writeFile(target, wanted).catch(() => {});
  }
}

/** One event of the engine's build stream (classic builder). */
interface BuildEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string };
}

export interface BuildRequest {
  /** the directory sent as the build context, and the files of it to send ('/'-separated, relative). */
  context: string;
  files: string[];
  tag: string;
  /** the Dockerfile, relative to the context. */
  dockerfile: string;
  labels?: Record<string, string>;
  buildArgs?: Record<string, string>;
  /** the network of RUN steps: 'none' for a build that must not reach out. Default: the engine's. */
  network?: 'none';
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export type BuildOutcome =
  | { ok: true; id: string }
  | { ok: false; step: string; failure: string; lastLines: string[]; log: string[] };

/** Builds an image with the classic builder and follows its output; a failure says at which step. */
export async function buildImage(docker: Docker, request: BuildRequest): Promise<BuildOutcome> {
  const lastLines: string[] = [];
  const log: string[] = [];
  let step = 'before the first step';
  let failure: string | null = null;
  let builtId: string | null = null;
  const line = (text: string) => {
    if (/^Step \d+\/\d+ : /.test(text)) step = text;
    lastLines.push(text);
    log.push(text);
    if (lastLines.length > 15) lastLines.shift();
    request.onProgress?.(text);
  };
  try {
    const stream = await docker.buildImage(
      { context: request.context, src: request.files },
      {
        t: request.tag,
        dockerfile: request.dockerfile,
        rm: true,
        forcerm: true,
        ...(request.labels && { labels: request.labels }),
        ...(request.buildArgs && { buildargs: request.buildArgs }),
        ...(request.network && { networkmode: request.network }),
        ...(request.signal && { abortSignal: request.signal }),
      },
    );
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (error: Error | null) => (error ? reject(error) : resolve()),
        // followProgress passes {"error": ...} events on as progress, not as an error: check each.
        (event: BuildEvent) => {
          // The classic builder wraps a step's stderr in colour codes: drop them.
          const text = event.stream?.replace(/\x1b\[[0-9;]*m/g, '');
          if (text) for (const part of text.split('\n')) if (part.trim()) line(part.trimEnd());
          if (event.status) line(event.status);
          if (event.aux?.ID) builtId = event.aux.ID;
          if (event.error || event.errorDetail) {
            failure = event.errorDetail?.message ?? event.error ?? 'unknown error';
            line(`ERROR: ${failure}`);
          }
        },
      );
    });
  } catch (error) {
    failure = request.signal?.aborted ? 'the build was interrupted' : (error as Error).message;
  }
  if (failure === null) {
    const id = builtId ?? (await imageId(docker, request.tag));
    if (id) return { ok: true, id };
    failure = `the build ended without producing ${request.tag}`;
  }
  return { ok: false, step, failure, lastLines, log };
}

/**
 * Finds the lab image or builds it from docker/Dockerfile. Build output goes to onProgress line by
 * line; a failed build throws RuntimeUnavailableError naming the step that failed and the last
 * lines of output (and, when the base image is missing, how to get it).
 */
export async function ensureImage(docker: Docker, options: EnsureImageOptions = {}): Promise<EnsuredImage> {
  await trustLocalCertificates(options.contextRoot ?? CONTEXT_ROOT);
  const context = await readBuildContext(options.contextRoot);
  const tag = options.tag ?? context.tag;
  if (!options.rebuild) {
    const existing = await imageId(docker, tag);
    if (existing) return { tag, id: existing, built: false };
    if (options.tag === undefined) {
      const own = await ownImageWithHash(docker, context.hash);
      if (own) {
        await docker.getImage(own).tag(splitTag(tag));
        options.onProgress?.(`using the image this controller runs in (${own.slice(7, 19)}), tagged ${tag}`);
        return { tag, id: own, built: false };
      }
    }
  }

  const onProgress = options.onProgress ?? (() => {});
  onProgress(`building ${tag} from ${join(options.contextRoot ?? CONTEXT_ROOT, DOCKERFILE)} (${context.files.length} files)`);
  const startedAt = performance.now();
  const build = await buildImage(docker, {
    context: options.contextRoot ?? CONTEXT_ROOT,
    files: context.files,
    tag,
    dockerfile: DOCKERFILE,
    labels: { [IMAGE_LABELS.version]: context.version, [IMAGE_LABELS.contextHash]: context.hash },
    onProgress: options.onBuildOutput ?? onProgress,
    signal: options.signal,
  });
  if (build.ok) {
    onProgress(`built ${tag} in ${formatElapsed((performance.now() - startedAt) / 1000)}`);
    return { tag, id: build.id, built: true };
  }
  if (options.signal?.aborted) throw new RuntimeUnavailableError(`building ${tag} was interrupted`);
  const { step, failure, lastLines } = build;
  const base = context.baseImage;
  const baseMissing = (await imageId(docker, base).catch(() => null)) === null;
  const bootstrap = base === BASE_IMAGE ? 'docker/bootstrap-base.sh' : `BASE_IMAGE=${base} docker/bootstrap-base.sh`;
  let hint = baseMissing
    ? `\nThe base image ${base} is not in the engine and could not be pulled: run ${bootstrap} ` +
      `(builds it from Debian's packages, no registry needed), or \`docker pull ${base}\` where a registry is reachable.`
    : '';
  const untrusted = /SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_UNTRUSTED/.test(lastLines.join('\n'));
  if (untrusted) {
    hint +=
      '\nnpm in the build does not trust the certificate the registry answered with (a TLS-intercepting proxy?): ' +
      'put the proxy\'s CA certificate (PEM, *.crt) in docker/ca-certificates/ and build again (see docker/README.md).';
  }
  const logFile = join(tmpdir(), `iolab-build-${tag.replace(/[^\w.-]+/g, '_')}.log`);
  const logged = await writeFile(logFile, `${build.log.join('\n')}\n`).then(() => true, () => false);
  throw new RuntimeUnavailableError(
    `building the iolab image ${tag} failed at ${step}: ${failure}${hint}\nlast lines of the build${logged ? ` (all ${build.log.length} in ${logFile})` : ''}:\n  ${lastLines.join('\n  ')}`,
  );
}

export type EngineStatus = { ok: true; version: string } | { ok: false; reason: string };

/** Whether a Docker engine answers on `docker`'s socket or host within `timeoutMs`, and its version. */
export async function engineAvailable(docker: Docker, timeoutMs = 3000): Promise<EngineStatus> {
  const modem = docker.modem as { socketPath?: string | (() => unknown); host?: string; port?: number | string };
  // docker-modem 5 finds its socket lazily: socketPath is then a function, not a path to print.
  const socket = typeof modem.socketPath === 'string' ? modem.socketPath : modem.socketPath ? (process.env.DOCKER_HOST ?? '/var/run/docker.sock') : null;
  const where = socket ?? `${modem.host}:${modem.port}`;
  try {
    // dockerode passes abortSignal on to the request; its typings do not declare the option.
    const versionWithOptions = docker.version as unknown as (options: { abortSignal: AbortSignal }) => Promise<Docker.DockerVersion>;
    const version = await versionWithOptions.call(docker, { abortSignal: AbortSignal.timeout(timeoutMs) });
    return { ok: true, version: version.Version };
  } catch (error) {
    const { code, statusCode, message, name } = error as NodeJS.ErrnoException & { statusCode?: number };
    const reason =
      code === 'ENOENT' ? `no Docker engine: ${where} does not exist (is dockerd running?)`
      : code === 'EACCES' ? `no permission to use ${where} (root, or a member of the docker group, may)`
      : code === 'ECONNREFUSED' ? `no Docker engine listens on ${where} (is dockerd running?)`
      : name === 'AbortError' || name === 'TimeoutError' || code === 'ABORT_ERR'
        ? `the Docker engine at ${where} did not answer within ${timeoutMs} ms`
      : `the Docker engine at ${where} does not answer: ${statusCode ? `HTTP ${statusCode}: ` : ''}${message}`;
    return { ok: false, reason };
  }
}
