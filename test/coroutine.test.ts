// The coroutine model: many connections on one thread, no thread per connection, epoll underneath
// with one epoll_ctl per connection, and the stall one hidden blocking call causes for everyone.
import { readdirSync, readFileSync } from 'node:fs';
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
  /** x86_64 numbers of the calls the server's one thread can be seen in (/proc/PID/syscall). */
  const SLEEPING = new Set([35, 230]); // nanosleep, clock_nanosleep
  /** The call the server's thread is in now, by number; -1 when it is running (or between calls). */
  const callNow = (pid: number) => {
    const text = readFileSync(`/proc/${pid}/syscall`, 'utf8').trim();
    return text === 'running' ? -1 : Number(text.split(' ')[0]);
  };
  async function until(condition: () => boolean, what: string): Promise<void> {
    // Sized for a busy machine: a wait of a few ms on a quiet one.
    for (const deadline = Date.now() + 20_000; !condition(); await new Promise((resolve) => setTimeout(resolve, 1))) {
      if (Date.now() > deadline) throw new Error(`not seen in 20 s: ${what}`);
    }
  }

  /** A connects first (so it is the one whose handler may sleep), then B; each is answered once alone. */
  async function twoClients(options: Partial<ServeOptions>) {
    server = await startTestServer('coroutine', null, options);
    const a = await open(server.port);
    expect((await echo(a.socket, a.receiver, Buffer.from('a first'))).toString()).toBe('A FIRST');
    const b = await open(server.port);
    expect((await echo(b.socket, b.receiver, Buffer.from('b alone'))).toString()).toBe('B ALONE');
    return { a, b, pid: server.server.pid };
  }

  it("with blockingCallMs 200, B is answered only after A's handler wakes from nanosleep", async () => {
    const { a, b, pid } = await twoClients({ blockingCallMs: 200 });
    const order: string[] = [];
    const aReply = echo(a.socket, a.receiver, Buffer.from('a again')).then(() => order.push('a'));
    // B asks once A's handler is asleep in its blocking call: the one thread can do nothing else.
    await until(() => SLEEPING.has(callNow(pid)), "the server's thread in (clock_)nanosleep");
    const bReply = echo(b.socket, b.receiver, Buffer.from('b again')).then((reply) => {
      order.push('b');
      expect(reply.toString()).toBe('B AGAIN');
    });
    await Promise.all([aReply, bReply]);
    expect(order).toEqual(['a', 'b']);
  });

  it('without it, the thread never sleeps in a call: B is answered while A keeps asking', async () => {
    const { a, b, pid } = await twoClients({});
    let sleptInACall = false;
    const watch = setInterval(() => (sleptInACall ||= SLEEPING.has(callNow(pid))), 1);
    try {
      const aAsks = (async () => {
        for (let i = 0; i < 50; i++) expect((await echo(a.socket, a.receiver, Buffer.from(`a ${i}`))).toString()).toBe(`A ${i}`);
      })();
      for (let i = 0; i < 50; i++) expect((await echo(b.socket, b.receiver, Buffer.from(`b ${i}`))).toString()).toBe(`B ${i}`);
      await aAsks;
    } finally {
      clearInterval(watch);
    }
    expect(sleptInACall).toBe(false);
  });
});
