// Signal-driven IO, beyond the contract: what strace shows under load (signalfd reads, no
// readiness call; fcntl at each accept), and the overflow of the realtime signal queue, where the
// kernel falls back to a plain SIGIO without an fd and the server must still answer everyone.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientResultSchema, type ClientResult, type SyscallCount } from '../src/shared/results.js';
import { checkFingerprint } from '../src/shared/model.js';
import { LineProcess } from '../src/runtime/process.js';
import { parseReadyLine } from '../src/servers/listen.js';
import { sigio } from '../src/servers/sigio.js';
import { traceUnderLoad } from './helpers.js';

const CLI = fileURLToPath(new URL('../bin/iolab.js', import.meta.url));
const calls = (syscalls: SyscallCount[], name: string) => syscalls.find((s) => s.syscall === name)?.calls ?? 0;

describe('strace counts of the sigio server under load', () => {
  const CONNECTIONS = 8;
  let syscalls: SyscallCount[];
  let roundTrips: number;
  beforeAll(async () => {
    ({ syscalls, roundTrips } = await traceUnderLoad('sigio', { connections: CONNECTIONS }));
  });

  it('waits in read(2) of its signalfd and copies with recvfrom/sendto, one pair per round trip at least', () => {
    expect(roundTrips).toBeGreaterThan(0);
    expect(calls(syscalls, 'read')).toBeGreaterThan(0);
    expect(calls(syscalls, 'recvfrom')).toBeGreaterThanOrEqual(roundTrips);
    expect(calls(syscalls, 'sendto')).toBeGreaterThanOrEqual(roundTrips);
  });

  it('arms each accepted connection with fcntl (F_SETSIG, F_SETOWN_EX, F_SETFL)', () => {
    expect(calls(syscalls, 'accept4')).toBeGreaterThanOrEqual(CONNECTIONS);
    expect(calls(syscalls, 'fcntl')).toBeGreaterThanOrEqual(3 * CONNECTIONS);
  });

  it('never calls a readiness API, and matches the fingerprint it declares', () => {
    for (const name of ['select', 'pselect6', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait']) expect(calls(syscalls, name), name).toBe(0);
    expect(checkFingerprint(sigio.fingerprint, syscalls, roundTrips).verdict).toBe('matches');
  });
});

describe('sigio when the realtime signal queue overflows', () => {
  // Queued signals are limited per user by RLIMIT_SIGPENDING; at 8, 200 busy connections fill the
  // queue at once and the kernel sends plain SIGIOs (no fd) instead of the realtime signal.
  const PENDING_SIGNALS = 8;
  const CONNECTIONS = 200;
  let server: LineProcess;
  let result: ClientResult;

  beforeAll(async () => {
    server = new LineProcess('server model=sigio (tiny RLIMIT_SIGPENDING)', 'prlimit', [
      `--sigpending=${PENDING_SIGNALS}:${PENDING_SIGNALS}`, '--',
      process.execPath, CLI, 'server', '--model', 'sigio', '--host', '127.0.0.1', '--port', '0',
    ]);
    const ready = parseReadyLine(await server.waitForLine('stdout', (l) => parseReadyLine(l) !== null, 'its ready line', 15_000))!;
    const client = new LineProcess(`client of ${CONNECTIONS} connections`, process.execPath, [
      CLI, 'client', '--target', `127.0.0.1:${ready.port}`, '--connections', String(CONNECTIONS), '--duration', '2',
    ]);
    try {
      result = ClientResultSchema.parse(JSON.parse(await client.waitForLine('stdout', (l) => l.startsWith('{'), 'its JSON result', 40_000)));
    } finally {
      await client.stop();
    }
  }, 60_000);
  afterAll(() => server?.stop());

  it('logs the fallback to plain SIGIO', () => {
    expect(server.stderr.some((line) => /realtime signal queue full \(RLIMIT_SIGPENDING=8\).*plain SIGIO/.test(line))).toBe(true);
  });

  it('still answers every request of every connection, correctly', () => {
    expect(result.connected).toBe(CONNECTIONS);
    expect(result.roundTrips).toBeGreaterThan(CONNECTIONS);
    expect(result.wrongReplies).toBe(0);
    expect(result.closedByServer).toBe(0);
    // A dropped event never rescanned would strand its connection's request for good.
    expect(result.unanswered).toBeLessThanOrEqual(2);
    expect(server.running).toBe(true);
  });
});
