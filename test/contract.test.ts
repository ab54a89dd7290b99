// The contract every IO model keeps, run against each model in the registry: the echo protocol,
// large messages, many clients, peers that reset. Models that serve one client at a time are
// held to exactly that.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SERVE_OPTIONS, models } from '../src/servers/index.js';
import { connect, echo, expectedEcho, lowercaseBytes, openConnections, Receiver, sleep, startTestServer, type TestServer } from './helpers.js';

describe.each(models.map((model) => [model.name]))('model %s', (name) => {
  const concurrency = models.find((m) => m.name === name)!.traits.concurrency;
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(name);
  });
  afterAll(() => server.close());

  it('echoes text upper-cased and every other byte unchanged', async () => {
    const socket = await connect(server.port);
    const receiver = new Receiver(socket);
    expect((await echo(socket, receiver, Buffer.from('Hello, World! abc xyz 123\n'))).toString()).toBe('HELLO, WORLD! ABC XYZ 123\n');
    const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(await echo(socket, receiver, everyByte)).toEqual(expectedEcho(everyByte));
    socket.destroy();
  });

  it('echoes a 256 KiB message whole and in order', async () => {
    const socket = await connect(server.port);
    const receiver = new Receiver(socket);
    const message = lowercaseBytes(256 * 1024, 7);
    const reply = await echo(socket, receiver, message);
    expect(reply.equals(expectedEcho(message))).toBe(true);
    socket.destroy();
  });

  it('keeps serving after a peer resets its connection, even with a reply in flight', async () => {
    // A reset with 4 MiB of unread reply: the server's send fails (EPIPE/ECONNRESET) mid-reply.
    const victim = await connect(server.port);
    victim.on('error', () => {});
    const paused = new Receiver(victim);
    victim.pause();
    victim.write(lowercaseBytes(4 * 1024 * 1024));
    await sleep(100);
    victim.resetAndDestroy();
    void paused;

    const quiet = await connect(server.port);
    quiet.on('error', () => {});
    quiet.resetAndDestroy();
    await sleep(50);

    const socket = await connect(server.port);
    const receiver = new Receiver(socket);
    expect((await echo(socket, receiver, Buffer.from('still there?'))).toString()).toBe('STILL THERE?');
    socket.destroy();
    expect(server.server.alive()).toBe(true);
  });

  it('with idle connections held, answers a probe, or (serving one or K at a time) answers it once they leave', async () => {
    const IDLE = 20;
    const idle = await Promise.all(Array.from({ length: IDLE }, () => connect(server.port)));
    await sleep(100); // the server has accepted the idle crowd before the probe arrives
    const probe = await connect(server.port);
    const receiver = new Receiver(probe);
    const reply = echo(probe, receiver, Buffer.from('anyone there?'));
    if (concurrency !== 'all') {
      // Every thread (or the only one) is waiting on an idle client: the probe waits too.
      await sleep(300);
      expect(receiver.received).toBe(0);
      for (const socket of idle) socket.end();
    }
    expect((await reply).toString()).toBe('ANYONE THERE?');
    for (const socket of [...idle, probe]) socket.destroy();
  });

  const CLIENTS = 50;
  if (concurrency !== 'all') {
    // One thread serves one client; a pool of K threads serves K.
    const atOnce = concurrency === 'one' ? 1 : DEFAULT_SERVE_OPTIONS.threads;
    it(`serves ${CLIENTS} concurrent clients ${atOnce} at a time, the next one as soon as one leaves`, async () => {
      const { sockets, receivers } = await openConnections(server.port, CLIENTS);
      const replies = sockets.map((socket, i) => echo(socket, receivers[i], Buffer.from(`client ${i}`)));
      for (let i = 0; i < CLIENTS; i++) {
        // Queued first come, first served: once clients 0..i-1 have left, clients i..i+atOnce-1
        // hold the server and are answered, and nobody after them is.
        for (let j = i; j < Math.min(i + atOnce, CLIENTS); j++) expect((await replies[j]).toString()).toBe(`CLIENT ${j}`);
        await sleep(i === 0 ? 200 : 5);
        expect(receivers.slice(i + atOnce).every((r) => r.received === 0)).toBe(true);
        sockets[i].end();
      }
    });
  } else {
    it(`serves ${CLIENTS} concurrent clients at once`, async () => {
      const sockets = await Promise.all(Array.from({ length: CLIENTS }, () => connect(server.port)));
      const receivers = sockets.map((socket) => new Receiver(socket));
      // Every client is answered, twice, while all of them hold their connections open.
      for (const round of [1, 2]) {
        const replies = await Promise.all(sockets.map((socket, i) => echo(socket, receivers[i], Buffer.from(`client ${i} round ${round}`))));
        replies.forEach((reply, i) => expect(reply.toString()).toBe(`CLIENT ${i} ROUND ${round}`));
      }
      for (const socket of sockets) socket.destroy();
    });
  }
});

describe('select and FD_SETSIZE', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('select', 2048);
  });
  afterAll(() => server.close());

  it('refuses a connection whose fd would be >= 1024, logs why, and keeps serving the others', async () => {
    const { sockets, receivers } = await openConnections(server.port, 1100);
    // The server accepts in order; ask the first and the last connection something.
    const first = await echo(sockets[0], receivers[0], Buffer.from('first'));
    expect(first.toString()).toBe('FIRST');
    await sleep(300);
    const refused = receivers.filter((r) => r.closed).length;
    expect(refused).toBeGreaterThan(0);
    const events = server.server.events();
    expect(events.counts.refused).toBeGreaterThanOrEqual(1);
    expect(events.first.refused).toMatch(/refused connection on fd 10\d\d: an fd_set holds fds < FD_SETSIZE=1024/);
    expect(receivers[receivers.length - 1].closed).toBe(true);

    // Connections below the ceiling are still served; freeing fds lets new ones in again.
    for (const socket of sockets.slice(500, 700)) socket.destroy();
    await sleep(200);
    const late = await connect(server.port);
    const lateReply = await echo(late, new Receiver(late), Buffer.from('late'));
    expect(lateReply.toString()).toBe('LATE');
    const middle = await echo(sockets[100], receivers[100], Buffer.from('middle'));
    expect(middle.toString()).toBe('MIDDLE');
    expect(server.server.alive()).toBe(true);
    for (const socket of sockets) socket.destroy();
    late.destroy();
  }, 60_000);
});
