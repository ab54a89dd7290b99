// The readiness models beside select and level-triggered epoll: poll, edge-triggered epoll and
// Node's own event loop. Each is traced under real load and must show its own calls; the
// edge-triggered server strands data when its reader does not drain; poll serves fds that select
// has to refuse.
import { readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyscallCount } from '../src/shared/results.js';
import { RECEIVE_BUFFER_SIZE } from '../src/servers/echo.js';
import { findModel } from '../src/servers/index.js';
import { connect, echo, expectedEcho, lowercaseBytes, openConnections, Receiver, sleep, startTestServer, traceUnderLoad, type TestServer } from './helpers.js';

const CONNECTIONS = 8;

interface Traced {
  syscalls: SyscallCount[];
  roundTrips: number;
}

const calls = (traced: Traced, name: string) => traced.syscalls.find((s) => s.syscall === name)?.calls ?? 0;
const failures = (traced: Traced, name: string) => traced.syscalls.find((s) => s.syscall === name)?.errors ?? 0;

/** What `iolab models` and the report promise for this model is what strace saw. */
function expectFingerprint(model: string, traced: Traced): void {
  const { required, forbidden } = findModel(model).fingerprint;
  for (const anyOf of required) expect(anyOf.map((name) => calls(traced, name)).some((n) => n > 0), `one of ${anyOf.join(', ')}`).toBe(true);
  for (const name of forbidden) expect(calls(traced, name), name).toBe(0);
}

describe('poll under load, traced', () => {
  let traced: Traced;
  beforeAll(async () => {
    traced = await traceUnderLoad('poll', { connections: CONNECTIONS });
  });

  it('waits in poll (or ppoll) and copies with recvfrom and sendto', () => {
    expect(traced.roundTrips).toBeGreaterThan(0);
    expect(calls(traced, 'poll') + calls(traced, 'ppoll')).toBeGreaterThan(0);
    expect(calls(traced, 'recvfrom')).toBeGreaterThanOrEqual(traced.roundTrips);
    expect(calls(traced, 'sendto')).toBeGreaterThanOrEqual(traced.roundTrips);
    expectFingerprint('poll', traced);
  });

  it('never calls select or epoll', () => {
    for (const name of ['select', 'pselect6', 'epoll_wait', 'epoll_pwait', 'epoll_ctl']) expect(calls(traced, name), name).toBe(0);
  });
});

describe('edge-triggered epoll under load, traced', () => {
  let traced: Traced;
  beforeAll(async () => {
    traced = await traceUnderLoad('epoll-et', { connections: CONNECTIONS });
  });

  it('waits in epoll_wait and never calls select or poll', () => {
    expect(traced.roundTrips).toBeGreaterThan(0);
    expect(calls(traced, 'epoll_wait') + calls(traced, 'epoll_pwait')).toBeGreaterThan(0);
    expect(calls(traced, 'sendto')).toBeGreaterThanOrEqual(traced.roundTrips);
    expectFingerprint('epoll-et', traced);
  });

  it('registers each connection once for good: one epoll_ctl per accepted connection, however many round trips', () => {
    const accepted = calls(traced, 'accept4') - failures(traced, 'accept4');
    expect(accepted).toBe(CONNECTIONS);
    expect(calls(traced, 'epoll_ctl')).toBe(accepted);
    expect(traced.roundTrips).toBeGreaterThan(10 * accepted);
  });

  it('drains until EAGAIN: recvfrom fails with EAGAIN where a drain ends', () => {
    expect(failures(traced, 'recvfrom')).toBeGreaterThan(0);
    expect(calls(traced, 'recvfrom') - failures(traced, 'recvfrom')).toBeGreaterThanOrEqual(traced.roundTrips);
  });
});

describe("Node's event loop (eventloop) under load, traced", () => {
  let traced: Traced;
  beforeAll(async () => {
    traced = await traceUnderLoad('eventloop', { connections: CONNECTIONS });
  });

  it('waits in epoll_pwait and copies with read and write, not recvfrom and sendto', () => {
    expect(traced.roundTrips).toBeGreaterThan(0);
    expect(calls(traced, 'epoll_pwait')).toBeGreaterThan(0);
    expect(calls(traced, 'read')).toBeGreaterThanOrEqual(traced.roundTrips);
    expect(calls(traced, 'write') + calls(traced, 'writev')).toBeGreaterThanOrEqual(traced.roundTrips);
    expect(calls(traced, 'recvfrom')).toBe(0);
    expect(calls(traced, 'sendto')).toBe(0);
    expectFingerprint('eventloop', traced);
  });

  it('registers each connection with epoll_ctl a bounded number of times, not per round trip', () => {
    const accepted = calls(traced, 'accept4') - failures(traced, 'accept4');
    expect(accepted).toBe(CONNECTIONS);
    expect(calls(traced, 'epoll_ctl')).toBeGreaterThanOrEqual(accepted);
    expect(calls(traced, 'epoll_ctl')).toBeLessThanOrEqual(3 * accepted);
  });
});

/** Waits until the reply has stopped growing; returns how many bytes came back. */
async function settled(receiver: Receiver): Promise<number> {
  let last = -1;
  while (receiver.received !== last) {
    last = receiver.received;
    await sleep(500);
  }
  return last;
}

function write(socket: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve())));
}

function processState(pid: number): string {
  return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))![1];
}

/** Bytes the server's end of this connection holds unread: rx_queue in /proc/net/tcp. */
function unreadByServer(server: TestServer, socket: Socket): number {
  const port = (n: number) => `:${n.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const [, local, remote, , queues] = line.trim().split(/\s+/);
    if (local?.endsWith(port(server.port)) && remote?.endsWith(port(socket.localPort!))) return parseInt(queues.split(':')[1], 16);
  }
  throw new Error(`no server-side socket for client port ${socket.localPort} in /proc/net/tcp`);
}

/**
 * Runs `during` while the server process is stopped (a server busy elsewhere): whatever the client
 * sends meanwhile piles up in the socket, and raises ONE edge, seen when the server runs again.
 */
async function whileServerStopped(pid: number, during: () => Promise<void>): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  try {
    while (processState(pid) !== 'T') await sleep(5);
    await during();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

describe('edge-triggered epoll: a reader that does not drain strands data (lab lt-vs-et)', () => {
  let draining: TestServer;
  let readingOnce: TestServer;
  beforeAll(async () => {
    draining = await startTestServer('epoll-et');
    readingOnce = await startTestServer('epoll-et', null, { drain: false });
  });
  afterAll(async () => {
    await draining?.close();
    await readingOnce?.close();
  });

  /** Connects and completes one round trip, so the connection is accepted and registered. */
  async function openConnection(server: TestServer): Promise<{ socket: Socket; receiver: Receiver }> {
    const socket = await connect(server.port);
    const receiver = new Receiver(socket);
    expect((await echo(socket, receiver, Buffer.from('hello'))).toString()).toBe('HELLO');
    return { socket, receiver };
  }

  // 80 KiB: more than one recv (64 KiB) takes, less than a fresh socket's receive window.
  const burst = lowercaseBytes(80 * 1024, 3);

  it('a draining reader answers a burst that arrived at once whole', async () => {
    const { socket, receiver } = await openConnection(draining);
    await whileServerStopped(draining.server.pid, async () => {
      await write(socket, burst);
      while (unreadByServer(draining, socket) < burst.length) await sleep(5);
    });
    expect((await receiver.until(burst.length)).equals(expectedEcho(burst))).toBe(true);
    socket.destroy();
  });

  it('a reader that reads once per event answers 64 KiB of the burst; the rest waits for the next edge', async () => {
    const { socket, receiver } = await openConnection(readingOnce);
    await whileServerStopped(readingOnce.server.pid, async () => {
      await write(socket, burst);
      while (unreadByServer(readingOnce, socket) < burst.length) await sleep(5);
    });
    // One edge, one recv of one 64 KiB buffer: the other 16 KiB sit in the server's socket.
    expect(await settled(receiver)).toBe(RECEIVE_BUFFER_SIZE);

    // One more byte is a new edge: the next recv takes everything that was left, and the byte.
    const reply = receiver.until(burst.length + 1);
    socket.write('z');
    expect((await reply).equals(expectedEcho(Buffer.concat([burst, Buffer.from('z')])))).toBe(true);
    socket.destroy();
  });

  const large = lowercaseBytes(200 * 1024, 5);

  it('a draining reader echoes a 200 KiB write whole', async () => {
    const { socket, receiver } = await openConnection(draining);
    expect((await echo(socket, receiver, large)).equals(expectedEcho(large))).toBe(true);
    socket.destroy();
  });

  it('a reader that reads once per event leaves part of a 200 KiB write unanswered, and only that connection stalls', async () => {
    const { socket, receiver } = await openConnection(readingOnce);
    socket.write(large);
    const answered = await settled(receiver);
    expect(answered).toBeGreaterThan(0);
    expect(answered).toBeLessThan(large.length);
    expect(receiver.closed).toBe(false);

    const other = await openConnection(readingOnce);
    other.socket.destroy();
    expect(readingOnce.server.alive()).toBe(true);
    socket.destroy();
  });
});

describe('poll past FD_SETSIZE', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('poll', 2048);
  });
  afterAll(() => server.close());

  it('serves a connection on an fd above 1024, where select must refuse it', async () => {
    const { sockets, receivers } = await openConnections(server.port, 1100);
    const last = sockets.length - 1;
    expect((await echo(sockets[last], receivers[last], Buffer.from('last'))).toString()).toBe('LAST');
    expect((await echo(sockets[0], receivers[0], Buffer.from('first'))).toString()).toBe('FIRST');

    const serverFds = readdirSync(`/proc/${server.server.pid}/fd`).map(Number);
    expect(Math.max(...serverFds)).toBeGreaterThan(1024);
    expect(receivers.filter((r) => r.closed)).toHaveLength(0);

    // Closing connections in the middle moves other entries of the pollfd array: every remaining
    // connection must still get its own replies, and a new one is served.
    for (const socket of sockets.slice(300, 700)) socket.destroy();
    const remaining = [...sockets.keys()].filter((i) => i < 300 || i >= 700);
    const late = await connect(server.port);
    expect((await echo(late, new Receiver(late), Buffer.from('late'))).toString()).toBe('LATE');
    const replies = await Promise.all(remaining.map((i) => echo(sockets[i], receivers[i], Buffer.from(`client ${i}`))));
    replies.forEach((reply, k) => expect(reply.toString()).toBe(`CLIENT ${remaining[k]}`));
    expect(server.server.log()).toEqual([]);
    late.destroy();
    for (const socket of sockets) socket.destroy();
  }, 60_000);
});
