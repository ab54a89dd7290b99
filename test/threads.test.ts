// The two threaded models beyond the contract: thread per connection grows a thread for every
// client and loses it when the client leaves; the pool has K threads whatever the load, serves
// K clients and queues the rest. Threads are counted as the kernel sees them, in /proc/PID/task,
// and system calls by the real strace.
import { readdirSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFingerprint } from '../src/shared/model.js';
import type { SyscallCount } from '../src/shared/results.js';
import { findModel } from '../src/servers/index.js';
import { connect, echo, Receiver, sleep, startTestServer, traceUnderLoad, type TestServer } from './helpers.js';

const threadsOf = (pid: number) => readdirSync(`/proc/${pid}/task`).length;
const calls = (syscalls: SyscallCount[], name: string) => syscalls.find((s) => s.syscall === name)?.calls ?? 0;

async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`still not true after ${timeoutMs} ms: ${what}`);
    await sleep(20);
  }
}

async function connectMany(port: number, count: number): Promise<{ sockets: Socket[]; receivers: Receiver[] }> {
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) sockets.push(await connect(port));
  return { sockets, receivers: sockets.map((socket) => new Receiver(socket)) };
}

describe('threaded: a thread per connection', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('threaded');
  });
  afterAll(() => server.close());

  it('has a thread more for every held connection, and loses them when the clients leave', async () => {
    const N = 20;
    const idle = threadsOf(server.server.pid);
    const { sockets, receivers } = await connectMany(server.port, N);
    // A reply proves that connection's thread is up and serving.
    const replies = await Promise.all(sockets.map((socket, i) => echo(socket, receivers[i], Buffer.from(`held ${i}`))));
    replies.forEach((reply, i) => expect(reply.toString()).toBe(`HELD ${i}`));
    expect(threadsOf(server.server.pid)).toBeGreaterThanOrEqual(idle + N);

    for (const socket of sockets) socket.end();
    await waitFor(() => threadsOf(server.server.pid) <= idle, `the ${N} connection threads end (idle: ${idle} threads)`);
    expect(server.server.alive()).toBe(true);
  });
});

describe('strace counts of the threaded server under load', () => {
  const CONNECTIONS = 4;
  let traced: Awaited<ReturnType<typeof traceUnderLoad>>;
  beforeAll(async () => {
    traced = await traceUnderLoad('threaded', { connections: CONNECTIONS });
  });

  it('clones a thread for each connection and serves with recvfrom/sendto', () => {
    expect(traced.roundTrips).toBeGreaterThan(0);
    expect(calls(traced.syscalls, 'accept4')).toBeGreaterThanOrEqual(CONNECTIONS);
    expect(calls(traced.syscalls, 'clone') + calls(traced.syscalls, 'clone3')).toBeGreaterThanOrEqual(CONNECTIONS);
    expect(calls(traced.syscalls, 'recvfrom')).toBeGreaterThanOrEqual(traced.roundTrips);
    expect(calls(traced.syscalls, 'sendto')).toBeGreaterThanOrEqual(traced.roundTrips);
  });

  it('never calls select or poll, and matches the fingerprint it declares', () => {
    for (const name of ['select', 'pselect6', 'poll', 'ppoll']) expect(calls(traced.syscalls, name), name).toBe(0);
    expect(checkFingerprint(findModel('threaded').fingerprint, traced.syscalls, traced.roundTrips).verdict).toBe('matches');
  });
});

describe('pool with 4 threads', () => {
  const K = 4;
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('pool', null, { threads: K });
  });
  afterAll(() => server.close());

  it('answers exactly 4 of 6 clients; a waiting one is answered when an answered one leaves; no thread is added', async () => {
    const threads = threadsOf(server.server.pid);
    const { sockets, receivers } = await connectMany(server.port, 6);
    sockets.forEach((socket, i) => socket.write(`client ${i}`));
    const answered = () => receivers.filter((r) => r.received > 0);

    await waitFor(() => answered().length >= K, `${K} clients answered`);
    await sleep(300);
    expect(answered()).toHaveLength(K);
    expect(receivers.every((r) => !r.closed)).toBe(true);
    expect(threadsOf(server.server.pid)).toBe(threads);

    const leaving = receivers.indexOf(answered()[0]);
    sockets[leaving].end();
    await waitFor(() => answered().length === K + 1, 'a waiting client answered after one left');
    await sleep(300);
    expect(answered()).toHaveLength(K + 1);
    for (const r of answered()) expect(r.received).toBe(`client ${receivers.indexOf(r)}`.length);

    // Thirty more connections, all held: still the same threads.
    const more = await connectMany(server.port, 30);
    await sleep(200);
    expect(threadsOf(server.server.pid)).toBe(threads);
    for (const socket of [...sockets, ...more.sockets]) socket.destroy();
  });
});

describe('strace counts of the pool server under load', () => {
  // As many connections as threads: every client is served, so every thread shows its calls.
  const CONNECTIONS = 4;
  let traced: Awaited<ReturnType<typeof traceUnderLoad>>;
  beforeAll(async () => {
    traced = await traceUnderLoad('pool', { options: { threads: 4 }, connections: CONNECTIONS });
  });

  it('serves with recvfrom/sendto and hands connections over through futex', () => {
    expect(traced.roundTrips).toBeGreaterThan(0);
    expect(traced.unanswered).toBe(0);
    expect(calls(traced.syscalls, 'accept4')).toBeGreaterThanOrEqual(CONNECTIONS);
    expect(calls(traced.syscalls, 'futex')).toBeGreaterThan(0);
    expect(calls(traced.syscalls, 'recvfrom')).toBeGreaterThanOrEqual(traced.roundTrips);
    expect(calls(traced.syscalls, 'sendto')).toBeGreaterThanOrEqual(traced.roundTrips);
  });

  it('creates no thread while serving and never waits in a readiness call', () => {
    for (const name of ['clone', 'clone3', 'select', 'pselect6', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait']) expect(calls(traced.syscalls, name), name).toBe(0);
    expect(checkFingerprint(findModel('pool').fingerprint, traced.syscalls, traced.roundTrips).verdict).toBe('matches');
  });
});
