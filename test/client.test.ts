// The load generator against real servers on loopback: the C reference server (compiled here)
// for a correct one, and tiny node:net servers in child processes for servers that misbehave in
// the ways a student's server does. Children, not in-process servers: the client holds this
// thread while it measures, so a server on the same event loop would barely run.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE_VARIABLE } from '../src/clients/echo-uring.js';
import { parseTarget, runClient, type ClientOptions } from '../src/clients/index.js';
import { UsageError } from '../src/errors.js';
import * as libc from '../src/libc/index.js';
import { ClientResultSchema } from '../src/shared/results.js';

interface ChildServer {
  target: string;
  stop(): void;
}

/** Starts a server process and waits for its "listening on 127.0.0.1:PORT" line. */
function startServer(command: string, args: string[]): Promise<ChildServer> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (127\.0\.0\.1:\d+)/.exec(output);
      if (match) resolve({ target: match[1], stop: () => child.kill() });
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${command} exited (${code}) before listening: ${output}`)));
  });
}

/** A node:net server in a child process; `onConnection` is the body of (socket) => { ... }. */
function startNodeServer(onConnection: string): Promise<ChildServer> {
  const script = `
    const server = require('node:net').createServer((socket) => { socket.on('error', () => {}); ${onConnection} });
    server.listen(0, '127.0.0.1', () => console.log('listening on 127.0.0.1:' + server.address().port));`;
  return startServer(process.execPath, ['-e', script]);
}

/** A port on which nothing listens (it did a moment ago, so nobody else has taken it yet). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const buildDir = mkdtempSync(join(tmpdir(), 'iolab-client-test-'));
const servers: ChildServer[] = [];
let echoServer: ChildServer;

beforeAll(async () => {
  const binary = join(buildDir, 'echo-server');
  execFileSync('gcc', ['-O2', '-o', binary, fileURLToPath(new URL('../bench/echo-server.c', import.meta.url))]);
  echoServer = await startServer(binary, ['0']);
  servers.push(echoServer);
});

afterAll(() => {
  for (const server of servers) server.stop();
  rmSync(buildDir, { recursive: true, force: true });
});

async function run(options: Partial<ClientOptions> & { target: string }) {
  const result = await runClient({ connections: 8, durationSeconds: 0.5, mode: 'echo', ...options });
  // What the CLI prints must be what results.json accepts.
  expect(() => ClientResultSchema.parse(result)).not.toThrow();
  return result;
}

async function misbehavingServer(onConnection: string): Promise<string> {
  const server = await startNodeServer(onConnection);
  servers.push(server);
  return server.target;
}

/**
 * A server that answers correctly but in pieces of `piece` bytes, 1 ms apart (each its own TCP
 * segment), so that the client must put every reply together from several receives.
 */
const PIECEWISE_SERVER = (piece: number) => `
  socket.setNoDelay(true);
  let queue = Promise.resolve();
  socket.on('data', (data) => {
    const reply = Buffer.from(data.toString('latin1').toUpperCase(), 'latin1');
    for (let i = 0; i < reply.length; i += ${piece}) {
      const part = reply.subarray(i, i + ${piece});
      queue = queue.then(() => new Promise((resolve) => setTimeout(() => { socket.write(part); resolve(); }, 1)));
    }
  });`;

/**
 * A server that echoes the first two `messageSize`-byte messages of a connection correctly (the
 * warm-up's and the window's first), then gets one byte wrong in each: the one at `position`.
 */
const WRONG_FROM_THE_THIRD_SERVER = (messageSize: number, position: number) => `
  let offset = 0;
  socket.on('data', (data) => {
    const reply = Buffer.from(data.toString('latin1').toUpperCase(), 'latin1');
    for (let i = 0; i < reply.length; i++) {
      const at = offset + i;
      if (at >= 2 * ${messageSize} && at % ${messageSize} === ${position}) reply[i] = 0x21;
    }
    offset += reply.length;
    socket.write(reply);
  });`;

/** A server that echoes the first two 64-byte messages of a connection, then closes it. */
const CLOSES_AT_THE_THIRD_SERVER = `
  let offset = 0;
  socket.on('data', (data) => {
    if (offset >= 2 * 64) return socket.destroy();
    offset += data.length;
    socket.write(data.toString('latin1').toUpperCase(), 'latin1');
  });`;

// Both engines of the measured window: io_uring (this machine allows it) and the epoll loop that
// runs where io_uring is unavailable, each forced through the environment variable.
describe.each(['io_uring', 'epoll'] as const)('echo mode on %s', (engine) => {
  let previous: string | undefined;
  beforeAll(() => {
    previous = process.env[ENGINE_VARIABLE];
    process.env[ENGINE_VARIABLE] = engine;
  });
  afterAll(() => {
    if (previous === undefined) delete process.env[ENGINE_VARIABLE];
    else process.env[ENGINE_VARIABLE] = previous;
  });

  it('ping-pongs against a correct server, every reply checked and timed', async () => {
    let readyCalls = 0;
    const result = await run({ target: echoServer.target, onReady: () => void readyCalls++ });
    expect(result.engine).toBe(engine);
    expect(readyCalls).toBe(1);
    expect(result.connected).toBe(8);
    expect(result.roundTrips).toBeGreaterThan(0);
    expect(result.wrongReplies).toBe(0);
    expect(result.closedByServer).toBe(0);
    expect(result.unanswered).toBeLessThanOrEqual(8);
    expect(result.requestsSent).toBe(result.roundTrips + result.answeredAfterWindow + result.unanswered);
    expect(result.latency.count).toBe(result.roundTrips);
    expect(result.latency.p50Us).toBeGreaterThan(0);
    expect(result.durationSeconds).toBeGreaterThanOrEqual(0.5);
  });

  it('sends and checks 256 KiB messages, which take many partial sends and receives', async () => {
    const result = await run({ target: echoServer.target, connections: 2, messageSize: 256 * 1024 });
    expect(result.roundTrips).toBeGreaterThan(0);
    expect(result.wrongReplies).toBe(0);
    expect(result.closedByServer).toBe(0);
  });

  it('puts together replies that arrive in pieces', async () => {
    const target = await misbehavingServer(PIECEWISE_SERVER(16));
    const result = await run({ target, connections: 4 });
    expect(result.roundTrips).toBeGreaterThan(0);
    expect(result.wrongReplies).toBe(0);
    expect(result.closedByServer).toBe(0);
  });

  // The warm-up (on epoll whatever the engine) is answered correctly: these wrong replies and
  // closes happen in the window, on the engine under test.
  it('finds a wrong byte in a reply of the window', async () => {
    const target = await misbehavingServer(WRONG_FROM_THE_THIRD_SERVER(64, 40));
    const result = await run({ target, connections: 4 });
    expect(result.warmup.answered).toBe(4);
    expect(result.roundTrips).toBe(4);
    expect(result.wrongReplies).toBe(4);
  });

  it('finds one wrong byte deep inside a 256 KiB reply', async () => {
    const messageSize = 256 * 1024;
    const target = await misbehavingServer(WRONG_FROM_THE_THIRD_SERVER(messageSize, 200_000));
    const result = await run({ target, connections: 2, messageSize });
    expect(result.roundTrips).toBe(2);
    expect(result.wrongReplies).toBe(2);
  });

  it('counts connections the server closes in the window', async () => {
    const target = await misbehavingServer(CLOSES_AT_THE_THIRD_SERVER);
    const result = await run({ target, connections: 4 });
    expect(result.roundTrips).toBe(4);
    expect(result.closedByServer).toBe(4);
    expect(result.wrongReplies).toBe(0);
  });

  it('resolves a host name', async () => {
    const port = echoServer.target.split(':')[1];
    const result = await run({ target: `localhost:${port}`, connections: 1, durationSeconds: 0.2 });
    expect(result.roundTrips).toBeGreaterThan(0);
    expect(result.target).toBe(`localhost:${port}`);
  });

  it('counts replies that are not upper-cased as wrong and drops those connections', async () => {
    const target = await misbehavingServer('socket.pipe(socket);');
    const result = await run({ target });
    expect(result.wrongReplies).toBe(8);
    expect(result.roundTrips).toBe(0);
  });

  it('keeps its deadline against a server that accepts but never replies', async () => {
    const target = await misbehavingServer('');
    const result = await run({ target });
    expect(result.connected).toBe(8);
    expect(result.roundTrips).toBe(0);
    expect(result.unanswered).toBe(8);
    expect(result.durationSeconds).toBeGreaterThanOrEqual(0.5);
    expect(result.durationSeconds).toBeLessThan(2);
  });

  it('counts connections the server closes', async () => {
    const target = await misbehavingServer("socket.once('data', () => socket.destroy());");
    const result = await run({ target });
    expect(result.closedByServer).toBe(8);
    expect(result.roundTrips).toBe(0);
  });

  it('counts refused connects by errno code', async () => {
    const result = await run({ target: `127.0.0.1:${await freePort()}`, connections: 20 });
    expect(result.connectErrors).toEqual({ ECONNREFUSED: 20 });
    expect(result.connected).toBe(0);
  });
});

describe('choosing the engine', () => {
  it('drives the connections through io_uring where the machine allows it (this one does)', async () => {
    const previous = process.env[ENGINE_VARIABLE];
    delete process.env[ENGINE_VARIABLE];
    try {
      expect((await run({ target: echoServer.target, connections: 4, durationSeconds: 0.2 })).engine).toBe('io_uring');
    } finally {
      if (previous !== undefined) process.env[ENGINE_VARIABLE] = previous;
    }
  });

  it(`rejects an unknown ${ENGINE_VARIABLE}`, async () => {
    const previous = process.env[ENGINE_VARIABLE];
    process.env[ENGINE_VARIABLE] = 'kqueue';
    try {
      await expect(run({ target: echoServer.target, connections: 1 })).rejects.toThrow(UsageError);
    } finally {
      if (previous === undefined) delete process.env[ENGINE_VARIABLE];
      else process.env[ENGINE_VARIABLE] = previous;
    }
  });
});

describe('connecting', () => {
  it('gives up on handshakes that a full listen backlog never completes', async () => {
    // A listener that never accepts: the kernel completes backlog + 1 handshakes, then drops SYNs.
    const listener = libc.socket();
    try {
      libc.bind(listener, '127.0.0.1', 0);
      libc.listen(listener, 1);
      const result = await run({ target: `127.0.0.1:${libc.localPort(listener)}`, mode: 'hold', connections: 20, durationSeconds: 0.2, connectTimeoutSeconds: 0.5 });
      expect(result.connectErrors.ETIMEDOUT).toBeGreaterThan(0);
      // 20 idle connections, then the probe's: each one either connected or timed out.
      expect(result.connected + (result.probe ? 1 : 0) + result.connectErrors.ETIMEDOUT).toBe(21);
      expect(result.notes.join('\n')).toMatch(/not established/);
    } finally {
      libc.close(listener);
    }
  });
});

describe('hold mode', () => {
  it('holds idle connections while the probe is answered', async () => {
    const result = await run({ target: echoServer.target, mode: 'hold', connections: 50 });
    expect(result.connected).toBe(50);
    expect(result.probe!.answered).toBeGreaterThan(0);
    expect(result.roundTrips).toBe(result.probe!.answered);
    expect(result.wrongReplies).toBe(0);
  });

  it("counts each crowd connection the server closes once, and keeps them apart from the probe's", async () => {
    // Closes the first 5 connections at once (as a select server closes what it cannot watch) and echoes on the rest.
    const target = await misbehavingServer(
      "globalThis.n = (globalThis.n ?? 0) + 1; if (globalThis.n <= 5) socket.destroy(); else socket.on('data', (d) => socket.write(d.toString('latin1').toUpperCase(), 'latin1'));",
    );
    const result = await run({ target, mode: 'hold', connections: 10 });
    expect(result.connected).toBe(10);
    expect(result.closedByServer).toBe(5);
    expect(result.probe!.answered, JSON.stringify(result.notes)).toBeGreaterThan(0);
    expect(result.wrongReplies).toBe(0);
  });

  it('reports the probe unanswered when the server never replies', async () => {
    const target = await misbehavingServer('');
    const result = await run({ target, mode: 'hold', connections: 5 });
    expect(result.connected).toBe(5);
    expect(result.probe).toMatchObject({ sent: 1, answered: 0 });
    expect(result.unanswered).toBe(1);
  });
});

describe('parseTarget', () => {
  it('splits host and port', () => {
    expect(parseTarget('server:7000')).toEqual({ host: 'server', port: 7000 });
  });

  it.each(['7000', 'server', 'server:', ':7000', 'server:0', 'server:70000', 'server:7o00', 'a:b:7000'])(
    'rejects %j with a UsageError that names it',
    (target) => {
      expect(() => parseTarget(target)).toThrow(UsageError);
      expect(() => parseTarget(target)).toThrow(JSON.stringify(target));
    },
  );

  it('rejects a bad option before connecting', async () => {
    await expect(runClient({ target: '127.0.0.1:7000', connections: 0, durationSeconds: 1, mode: 'echo' })).rejects.toThrow(UsageError);
  });
});
