// The io_uring model beyond the contract: its syscall fingerprint under real load (the kernel
// accepts, receives and sends inside io_uring_enter, so strace sees none of accept4, recvfrom,
// sendto), 5,000 concurrent connections, a full fd table, and a machine that forbids io_uring.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/errors.js';
import { getNofileLimit } from '../src/libc/index.js';
import type { SyscallCount } from '../src/shared/results.js';
import { LocalRuntime } from '../src/runtime/local.js';
import { findModel } from '../src/servers/index.js';
import { connect, echo, Receiver, sleep, startTestServer, traceUnderLoad, type TestServer } from './helpers.js';

const REPOSITORY = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../bin/iolab.js', import.meta.url));
const calls = (syscalls: SyscallCount[], name: string) => syscalls.find((s) => s.syscall === name)?.calls ?? 0;
const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

describe('uring under load, counted by strace -f', () => {
  let syscalls: SyscallCount[];
  let roundTrips: number;
  let wrongReplies: number;
  beforeAll(async () => {
    const traced = await traceUnderLoad('uring', { connections: 8 });
    ({ syscalls, roundTrips } = traced);
    wrongReplies = traced.wrongReplies;
  });

  it('answers through io_uring_enter alone: no accept4, recvfrom, sendto or readiness wait', () => {
    expect(roundTrips).toBeGreaterThan(0);
    expect(wrongReplies).toBe(0);
    expect(calls(syscalls, 'io_uring_enter')).toBeGreaterThan(0);
    for (const name of ['accept4', 'recvfrom', 'sendto', 'epoll_wait', 'epoll_pwait', 'select', 'pselect6', 'poll', 'ppoll']) {
      expect(calls(syscalls, name), name).toBe(0);
    }
  });

  it('matches the fingerprint the model declares', () => {
    const { fingerprint } = findModel('uring');
    for (const alternatives of fingerprint.required) {
      expect(alternatives.some((name) => calls(syscalls, name) > 0), alternatives.join(' or ')).toBe(true);
    }
    for (const name of fingerprint.forbidden) expect(calls(syscalls, name), name).toBe(0);
  });
});

describe('uring with 5,000 concurrent connections', () => {
  const CONNECTIONS = 5000;
  let server: TestServer;
  const clients = new LocalRuntime();
  beforeAll(async () => {
    // The client raises its own soft limit to the hard one; the server gets 12,000 from prlimit.
    expect(getNofileLimit().hard, 'the test runner\'s hard nofile limit must leave room for 5,000 client sockets').toBeGreaterThan(CONNECTIONS + 100);
    server = await startTestServer('uring', 12_000);
  });
  afterAll(async () => {
    await clients.close();
    await server.close();
  });

  it('holds 5,000 idle connections and still answers a probe', async () => {
    const client = await clients.startClient({ name: 'crowd', mode: 'hold', connections: CONNECTIONS, messageSize: 64, durationSeconds: 2, target: server.server.target });
    await client.ready;
    await client.start();
    const result = await client.result;
    await client.stop(); // a lab's client keeps its connections until stopped
    expect(result.connected).toBe(CONNECTIONS);
    expect(result.connectErrors).toEqual({});
    expect(result.closedByServer).toBe(0);
    expect(result.probe?.answered).toBeGreaterThan(0);
    expect(result.probe?.answered).toBe(result.probe?.sent);
  });

  it('echoes on 5,000 busy connections at once, every reply right', async () => {
    const client = await clients.startClient({ name: 'busy', mode: 'echo', connections: CONNECTIONS, messageSize: 64, durationSeconds: 2, target: server.server.target });
    await client.ready;
    await client.start();
    const result = await client.result;
    await client.stop();
    expect(result.connected).toBe(CONNECTIONS);
    expect(result.roundTrips).toBeGreaterThan(0);
    expect(result.wrongReplies).toBe(0);
    expect(result.closedByServer).toBe(0);
    expect(server.server.alive()).toBe(true);
  });

  it('closes every connection its clients closed (the CLOSEs went through the ring)', async () => {
    // Both clients have been stopped: all 10,000 of their connections must be gone from the server.
    let fds = openFds(server.server.pid);
    for (let waited = 0; fds > 100 && waited < 100; waited++) {
      await sleep(100);
      fds = openFds(server.server.pid);
    }
    expect(fds).toBeLessThan(100);
  });
});

describe('uring with a full fd table', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('uring', 64);
  });
  afterAll(() => server.close());

  it('leaves connections queued while no fd is free, and serves them once others close', async () => {
    // Node itself holds about 20 fds: 60 connections do not all fit under 64.
    const sockets = await Promise.all(Array.from({ length: 60 }, () => connect(server.port)));
    const receivers = sockets.map((socket) => new Receiver(socket));
    for (const socket of sockets) socket.on('error', () => {});
    const replies = sockets.map((socket, i) => echo(socket, receivers[i], Buffer.from(`queued ${i}`)));
    expect((await replies[0]).toString()).toBe('QUEUED 0');
    await sleep(300);
    const waiting = receivers.filter((r) => r.received === 0).length;
    expect(waiting).toBeGreaterThan(0);
    const events = server.server.events();
    expect(events.counts['fd-exhausted']).toBeGreaterThanOrEqual(1);
    expect(events.first['fd-exhausted']).toMatch(/ACCEPT refused a connection: EMFILE/);

    // The first 30 leave: their fds free up, and every connection still waiting is served.
    const answered = await Promise.all(replies.slice(0, 30));
    for (const socket of sockets.slice(0, 30)) socket.destroy();
    const late = await Promise.all(replies.slice(30));
    expect([...answered, ...late].map(String)).toEqual(sockets.map((_, i) => `QUEUED ${i}`));
    expect(server.server.alive()).toBe(true);
    for (const socket of sockets) socket.destroy();
  });
});

// A real seccomp filter (the kernel's, not a mock) that answers io_uring_setup with EPERM, as
// newer Docker's default profile does: installed with prctl, then the server is exec'ed under it.
const DENY_IO_URING_THEN_EXEC = `
import koffi from 'koffi';
const libc = koffi.load('libc.so.6');
const SockFilter = koffi.struct('sock_filter', { code: 'uint16', jt: 'uint8', jf: 'uint8', k: 'uint32' });
const SockFprog = koffi.struct('sock_fprog', { len: 'uint16', filter: koffi.pointer(SockFilter) });
const prctl = libc.func('int prctl(int option, ...)');
const fcntl = libc.func('int fcntl(int fd, int cmd, ...)');
const execv = libc.func('int execv(const char *path, const char **argv)');
const filter = [
  { code: 0x20, jt: 0, jf: 0, k: 0 },                 // load the syscall number
  { code: 0x15, jt: 0, jf: 1, k: 425 },               // io_uring_setup?
  { code: 0x06, jt: 0, jf: 0, k: 0x00050000 | 1 },    // SECCOMP_RET_ERRNO | EPERM
  { code: 0x06, jt: 0, jf: 0, k: 0x7fff0000 },        // SECCOMP_RET_ALLOW
];
if (prctl(38 /* PR_SET_NO_NEW_PRIVS */, 'unsigned long', 1, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0) !== 0) throw new Error('PR_SET_NO_NEW_PRIVS failed');
if (prctl(22 /* PR_SET_SECCOMP */, 'unsigned long', 2 /* FILTER */, koffi.pointer(SockFprog), { len: filter.length, filter }) !== 0) throw new Error('PR_SET_SECCOMP failed');
for (const fd of [0, 1, 2]) fcntl(fd, 2 /* F_SETFD */, 'int', 0); // Node marks its stdio close-on-exec
const argv = process.argv.slice(1);
execv(argv[0], [...argv, null]);
throw new Error('execv failed: errno ' + koffi.errno());
`;

describe('uring where io_uring is forbidden', () => {
  it('exits with one line naming the cause and the runtime-unavailable code, no stack', async () => {
    const run = promisify(execFile);
    const args = ['--input-type=module', '-e', DENY_IO_URING_THEN_EXEC, process.execPath, CLI, 'server', '--model', 'uring', '--host', '127.0.0.1', '--port', '0'];
    const failure = await run(process.execPath, args, { cwd: REPOSITORY, timeout: 20_000 }).then(
      () => null,
      (error: { code: number; stderr: string; stdout: string }) => error,
    );
    expect(failure, 'the server must not keep running without io_uring').not.toBeNull();
    expect(failure!.code).toBe(ExitCode.runtimeUnavailable);
    const lines = failure!.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^iolab: uring: io_uring_setup failed: EPERM: blocked by .*seccomp/);
    // The ring is set up before the ready line: a server without io_uring never claims to listen.
    expect(failure!.stdout).not.toContain('listening on');
  });
});
