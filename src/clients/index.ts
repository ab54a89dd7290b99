// The load generator. It opens many TCP connections from ONE thread and drives them over the C
// library (src/libc), never with Node's net module: measured here, a net echo loop managed about
// 30k round trips/s at 64 connections where an epoll loop over koffi managed about 100k; the
// echo window runs on io_uring where the kernel allows it (echo-uring.ts: a batch of sends and
// receives per io_uring_enter), which drives 0.9-1.0 of a C generator at 1 and 64 connections,
// else on that epoll loop (0.7-0.8 at 64): the client must never be what limits a measurement
// (bench/client-ceiling.md, bench/generator.sh).
//
//   echo  every connection ping-pongs requests and checks each reply (throughput, latency);
//         with a rate, open-loop: each request at its scheduled send time (rate.ts)
//   hold  the connections sit idle while one probe connection asks now and then
//
// The caller (the CLI) prints the result; nothing here writes to stdout.
import { lookup } from 'node:dns/promises';
import { UsageError } from '../errors.js';
import type { ClientResult } from '../shared/results.js';
import { runEcho } from './echo.js';
import { runHold } from './hold.js';
import { runOpenLoop } from './rate.js';
import type { ClientSettings } from './run.js';

export interface ClientOptions {
  /** "host:port"; a host name is resolved (IPv4) before the first connect. */
  target: string;
  connections: number;
  /** The measured window, from onReady on. */
  durationSeconds: number;
  mode: 'echo' | 'hold';
  /** Bytes per request (default 64). */
  messageSize?: number;
  /**
   * echo only: requests per second per connection, sent open-loop at scheduled times and timed
   * from them (src/clients/rate.ts); absent: closed loop, each request as soon as the last reply.
   */
  rate?: number;
  /** How long opening all connections may take; those still connecting then count as ETIMEDOUT (default 10). */
  connectTimeoutSeconds?: number;
  /** Called once every connection has connected or failed; the measured window starts when it returns (or its promise resolves). */
  onReady?: () => void | Promise<void>;
  /**
   * Called with the result while the connections are still open; they are closed when it returns
   * (or its promise resolves). A lab prints the result and keeps them open until it has stopped
   * observing the server, so that the server's reaction to the closes is not counted in the window.
   */
  onResult?: (result: ClientResult) => void | Promise<void>;
}

const DEFAULT_MESSAGE_SIZE = 64;
const DEFAULT_CONNECT_TIMEOUT_SECONDS = 10;
/** Echo keeps a request and an expected reply per connection: beyond this, refuse rather than swap. */
const MAX_ECHO_BUFFER_BYTES = 2 * 1024 ** 3;
/** An open-loop connection sends at most this many requests a second (one every 10 µs): beyond it the schedule is finer than the client's timer. */
const MAX_RATE_PER_CONNECTION = 100_000;

export async function runClient(options: ClientOptions): Promise<ClientResult> {
  const { host, port } = parseTarget(options.target);
  const checked = checkOptions(options);
  const settings: ClientSettings = { ...checked, address: { ip: await resolveIPv4(host, options.target), port } };
  if (settings.mode === 'echo') return settings.rate !== null ? runOpenLoop(settings) : runEcho(settings);
  return runHold(settings);
}

/** "host:port" → its parts; a UsageError that names the value when it is not that. */
export function parseTarget(target: string): { host: string; port: number } {
  const match = /^([^:\s]+):(\d{1,5})$/.exec(target);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new UsageError(`bad target ${JSON.stringify(target)}: expected HOST:PORT with an IPv4 address or a host name and a port from 1 to 65535, e.g. 127.0.0.1:7000`);
  }
  return { host: match[1], port };
}

async function resolveIPv4(host: string, target: string): Promise<string> {
  try {
    return (await lookup(host, { family: 4 })).address;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new UsageError(`cannot resolve the host of target ${JSON.stringify(target)} to an IPv4 address: ${code}`);
  }
}

/** The options with their defaults filled in; a UsageError listing every value that does not fit. */
function checkOptions(options: ClientOptions): Omit<ClientSettings, 'address'> {
  const settings = {
    mode: options.mode,
    target: options.target,
    connections: options.connections,
    durationSeconds: options.durationSeconds,
    messageSize: options.messageSize ?? DEFAULT_MESSAGE_SIZE,
    rate: options.rate ?? null,
    connectTimeoutSeconds: options.connectTimeoutSeconds ?? DEFAULT_CONNECT_TIMEOUT_SECONDS,
    onReady: options.onReady ?? (() => {}),
    onResult: options.onResult ?? (() => {}),
  };
  const problems: string[] = [];
  const minimumConnections = settings.mode === 'echo' ? 1 : 0; // hold with 0: the probe alone
  if (settings.mode !== 'echo' && settings.mode !== 'hold') problems.push(`mode ${JSON.stringify(settings.mode)} is neither echo nor hold`);
  if (!Number.isInteger(settings.connections) || settings.connections < minimumConnections) {
    problems.push(`connections must be an integer >= ${minimumConnections}, not ${settings.connections}`);
  }
  if (!(settings.durationSeconds > 0) || !Number.isFinite(settings.durationSeconds)) problems.push(`durationSeconds must be a positive number, not ${settings.durationSeconds}`);
  if (!Number.isInteger(settings.messageSize) || settings.messageSize < 1) problems.push(`messageSize must be an integer >= 1, not ${settings.messageSize}`);
  if (settings.rate !== null) {
    if (settings.mode !== 'echo') problems.push(`a rate is for echo clients (open-loop requests), not ${settings.mode}`);
    else if (!(settings.rate > 0) || !Number.isFinite(settings.rate) || settings.rate > MAX_RATE_PER_CONNECTION) {
      problems.push(`rate must be a number of requests per second per connection above 0 and at most ${MAX_RATE_PER_CONNECTION.toLocaleString('en-US')}, not ${settings.rate}`);
    }
  }
  if (!(settings.connectTimeoutSeconds > 0)) problems.push(`connectTimeoutSeconds must be a positive number, not ${settings.connectTimeoutSeconds}`);
  if (settings.mode === 'echo' && 2 * settings.messageSize * settings.connections > MAX_ECHO_BUFFER_BYTES) {
    const mebibytes = Math.round((2 * settings.messageSize * settings.connections) / 1024 ** 2);
    problems.push(`${settings.connections} connections × ${settings.messageSize}-byte messages would need ${mebibytes} MiB of buffers (at most ${MAX_ECHO_BUFFER_BYTES / 1024 ** 2})`);
  }
  if (problems.length > 0) throw new UsageError(`client: ${problems.join('; ')}`);
  return settings;
}
