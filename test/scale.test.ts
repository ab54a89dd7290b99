// The models that claim to scale hold 5,000 concurrent connections (past FD_SETSIZE, with nofile
// raised) and still answer a probe; the real load generator holds the connections. The probe asks
// for 5 s: a server that accepts one connection per wake-up (poll scans all 5,000 fds each time)
// may take a while to drain its backlog, and the probe is last in it.
import { afterAll, describe, expect, it } from 'vitest';
import { LocalRuntime } from '../src/runtime/local.js';

/** The course's claim: no ceiling below RLIMIT_NOFILE, and one thread watches them all. */
const SCALING_MODELS = ['poll', 'epoll', 'epoll-et', 'uring', 'coroutine', 'eventloop', 'python-epoll', 'python-asyncio'];
const CONNECTIONS = 5000;

const runtime = new LocalRuntime();
afterAll(() => runtime.close());

describe.each(SCALING_MODELS)('%s at 5,000 connections', (model) => {
  it(`holds ${CONNECTIONS} idle connections and still answers a probe`, async () => {
    const server = await runtime.startServer({ model, nofile: CONNECTIONS + 1000 });
    try {
      const client = await runtime.startClient({ name: 'crowd', mode: 'hold', connections: CONNECTIONS, messageSize: 64, durationSeconds: 5, target: server.target });
      await client.ready;
      const probe = await server.startProbe();
      await client.start();
      const result = await client.result;
      const window = await probe.stop();
      expect(result.connected).toBe(CONNECTIONS);
      expect(result.closedByServer).toBe(0);
      expect(result.probe!.answered).toBeGreaterThan(0);
      expect(result.probe!.answered).toBeGreaterThanOrEqual(result.probe!.sent - 1); // one may be in flight at the end
      expect(window.fdsPeak).toBeGreaterThan(CONNECTIONS);
      expect(server.alive()).toBe(true);
    } finally {
      await server.stop();
    }
  });
});
