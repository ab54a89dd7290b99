// Test helpers: real servers started by the local runtime, and plain node:net sockets to talk to
// them (the tests check the servers, so their own client need not be fast).
import { spawn } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { LocalRuntime } from '../src/runtime/local.js';
import type { SyscallCount } from '../src/report/results.js';
import type { RunningServer, ServerSpec } from '../src/runtime/runtime.js';

export interface TestServer {
  server: RunningServer;
  port: number;
  close(): Promise<void>;
}

export async function startTestServer(model: string, nofile: number | null = null, options: ServerSpec['options'] = {}): Promise<TestServer> {
  const runtime = new LocalRuntime();
  const server = await runtime.startServer({ model, nofile, options });
  return { server, port: Number(server.target.split(':')[1]), close: () => runtime.close() };
}

export function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port, noDelay: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** What the echo protocol must send back: the same bytes with ASCII a-z upper-cased. */
export function expectedEcho(data: Buffer): Buffer {
  return Buffer.from(data.map((byte) => (byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte)));
}

/** Collects everything a socket receives; `until(n)` resolves once n bytes are in. */
export class Receiver {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiting: { n: number; resolve: (b: Buffer) => void } | null = null;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.check();
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => (this.closed = true));
  }

  get received(): number {
    return this.length;
  }

  private check(): void {
    if (this.waiting && this.length >= this.waiting.n) {
      const { n, resolve } = this.waiting;
      this.waiting = null;
      const all = Buffer.concat(this.chunks);
      this.chunks = [all.subarray(n)];
      this.length -= n;
      resolve(all.subarray(0, n));
    }
  }

  until(n: number): Promise<Buffer> {
    return new Promise((resolve) => {
      this.waiting = { n, resolve };
      this.check();
    });
  }
}

export async function echo(socket: Socket, receiver: Receiver, data: Buffer): Promise<Buffer> {
  const reply = receiver.until(data.length);
  socket.write(data);
  return reply;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function lowercaseBytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = 0x61 + (x % 26);
  }
  return out;
}

/**
 * A server of `model` under echo load from the real client for 1 s, with strace attached before
 * the clients connect (so each connection's set-up is counted too): what strace counted.
 */
export async function traceUnderLoad(
  model: string,
  { connections = 4, options = {} }: { connections?: number; options?: ServerSpec['options'] } = {},
): Promise<{ syscalls: SyscallCount[]; roundTrips: number; unanswered: number }> {
  const runtime = new LocalRuntime();
  try {
    const server = await runtime.startServer({ model, nofile: null, options });
    const tracer = await server.startTracer();
    const client = await runtime.startClient({ name: 'load', mode: 'echo', connections, messageSize: 64, durationSeconds: 1, target: server.target });
    await client.ready;
    await client.start();
    const result = await client.result;
    return { syscalls: await tracer.stop(), roundTrips: result.roundTrips, unanswered: result.unanswered };
  } finally {
    await runtime.close();
  }
}

/** Opens `count` connections one after the other (in accept order), each with its Receiver. */
export async function openConnections(port: number, count: number): Promise<{ sockets: Socket[]; receivers: Receiver[] }> {
  const sockets: Socket[] = [];
  const receivers: Receiver[] = [];
  for (let i = 0; i < count; i++) {
    const socket = await connect(port);
    socket.on('error', () => {});
    sockets.push(socket);
    receivers.push(new Receiver(socket));
  }
  return { sockets, receivers };
}

const IOLAB = join(import.meta.dirname, '..', 'bin', 'iolab.js');

/**
 * Runs the `iolab` command to its end. `onStderr` sees its stderr so far each time more comes,
 * with a way to signal it. It runs in a process group of its own, so that a test can find
 * everything it started.
 */
/** A runIolab stderr watcher that sends SIGINT `delayMs` after the output first matches `pattern`; `sent` says whether it did. */
export function interruptAfter(pattern: RegExp, delayMs: number) {
  const interrupt = {
    sent: false,
    watch: (stderr: string, kill: (signal: NodeJS.Signals) => void): void => {
      if (interrupt.sent || !pattern.test(stderr)) return;
      interrupt.sent = true;
      setTimeout(() => kill('SIGINT'), delayMs);
    },
  };
  return interrupt;
}

export function runIolab(
  args: string[],
  onStderr?: (text: string, kill: (signal: NodeJS.Signals) => void) => void,
): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [IOLAB, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      onStderr?.(stderr, (signal) => child.kill(signal));
    });
    child.on('close', (code) => resolve({ code, stdout, stderr, pid: child.pid! }));
  });
}
