// The coroutine model: many connections on one thread, no thread per connection, epoll underneath
// with one epoll_ctl per connection, and the stall one hidden blocking call causes for everyone.
import { readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import type { SyscallCount } from '../src/shared/results.js';
import type { ServeOptions } from '../src/servers/model.js';
import { connect, echo, Receiver, startTestServer, traceUnderLoad, type TestServer } from './helpers.js';

const threadCount = (pid: number) => readdirSync(`/proc/${pid}/task`).length;
const calls = (syscalls: SyscallCount[], ...names: string[]) =>
  names.reduce((sum, name) => sum + (syscalls.find((s) => s.syscall === name)?.calls ?? 0), 0);

let server: TestServer | null = null;
let sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets = [];
  await server?.close();
  server = null;
});

async function open(port: number): Promise<{ socket: Socket; receiver: Receiver }> {
  const socket = await connect(port);
  sockets.push(socket);
  return { socket, receiver: new Receiver(socket) };
}

it('serves 100 connections at once without starting a single thread', async () => {
  server = await startTestServer('coroutine');
  const idle = threadCount(server.server.pid); // Node's own threads are there already
  const clients = await Promise.all(Array.from({ length: 100 }, () => open(server!.port)));
  const replies = await Promise.all(clients.map(({ socket, receiver }, i) => echo(socket, receiver, Buffer.from(`client ${i}`))));
  replies.forEach((reply, i) => expect(reply.toString()).toBe(`CLIENT ${i}`));
  expect(threadCount(server.server.pid)).toBeLessThanOrEqual(idle);
});

describe('strace counts of the coroutine server under load', () => {
  const CONNECTIONS = 16;

  it('waits in epoll_wait, registers each connection once, and makes no hidden blocking call', async () => {
    const { syscalls, roundTrips } = await traceUnderLoad('coroutine', { connections: CONNECTIONS });
    expect(roundTrips).toBeGreaterThan(0);
    expect(calls(syscalls, 'epoll_wait', 'epoll_pwait')).toBeGreaterThan(0);
    expect(calls(syscalls, 'recvfrom')).toBeGreaterThanOrEqual(roundTrips);
    expect(calls(syscalls, 'sendto')).toBeGreaterThanOrEqual(roundTrips);
    // One EPOLL_CTL_ADD per accepted connection, none per wait.
    expect(calls(syscalls, 'epoll_ctl')).toBeGreaterThan(0);
    expect(calls(syscalls, 'epoll_ctl')).toBeLessThanOrEqual(CONNECTIONS + 1);
    for (const name of ['select', 'pselect6', 'poll', 'ppoll', 'nanosleep', 'clock_nanosleep']) expect(calls(syscalls, name), name).toBe(0);
  });

  it('shows the hidden blocking call as clock_nanosleep with --blocking-call-ms', async () => {
    const { syscalls, roundTrips } = await traceUnderLoad('coroutine', { options: { blockingCallMs: 200 }, connections: 4 });
    expect(roundTrips).toBeGreaterThan(0);
    expect(calls(syscalls, 'nanosleep', 'clock_nanosleep')).toBeGreaterThan(0);
  });
});

describe('one coroutine that blocks stalls all the others', () => {
  /** A connects first (so it is the one whose handler may sleep), then both ask at the same moment. */
  async function secondClientWaitMs(options: Partial<ServeOptions>): Promise<{ waitedMs: number; order: string[] }> {
    server = await startTestServer('coroutine', null, options);
    const a = await open(server.port);
    expect((await echo(a.socket, a.receiver, Buffer.from('a first'))).toString()).toBe('A FIRST');
    const b = await open(server.port);
    expect((await echo(b.socket, b.receiver, Buffer.from('b alone'))).toString()).toBe('B ALONE');

    const order: string[] = [];
    const aReply = echo(a.socket, a.receiver, Buffer.from('a again')).then(() => order.push('a'));
    const sentAt = performance.now();
    const bReply = echo(b.socket, b.receiver, Buffer.from('b again')).then((reply) => {
      order.push('b');
      expect(reply.toString()).toBe('B AGAIN');
      return performance.now() - sentAt;
    });
    const [, waitedMs] = await Promise.all([aReply, bReply]);
    return { waitedMs, order };
  }

  it('with blockingCallMs 200, B is answered only after A\'s handler wakes from nanosleep', async () => {
    const { waitedMs, order } = await secondClientWaitMs({ blockingCallMs: 200 });
    expect(order).toEqual(['a', 'b']);
    expect(waitedMs).toBeGreaterThan(100); // coarse: the sleep is 200 ms
  });

  it('without it, B is answered at once while A is served too', async () => {
    const { waitedMs } = await secondClientWaitMs({});
    expect(waitedMs).toBeLessThan(100); // coarse: a loopback round trip takes well under 1 ms
  });
});
