// The /proc probe follows a server's whole process tree: real Python servers that fork a process
// per connection (socketserver.ForkingTCPServer, a fork loop that lets the kernel reap its
// children) or start a thread per connection, real connections held open, real CPU burnt in a
// child. Nothing here stands in for the kernel.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcWindowSchema, type ProcWindow } from '../src/shared/results.js';
import { observeProcess } from '../src/tracer/observe.js';
import { parseProcStat, ProcProbe } from '../src/tracer/proc.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const servers: ChildProcess[] = [];
const sockets: Socket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
  // Each server leads a process group of its own: the group takes its forked children along.
  for (const server of servers.splice(0)) {
    try {
      process.kill(-server.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Handlers a server script can use: each writes one line when it has a connection, then holds it until the client closes. */
const HANDLERS = `
import os, signal, socket, socketserver, sys, time

def hold(conn):
    while conn.recv(1):
        pass

def greet(conn):
    conn.sendall(b'%d\\n' % os.getpid())
    hold(conn)

def burn(conn):
    # A second of this process's own CPU time (a forked child starts from zero), however long
    # that takes on a busy machine; then what it used, as the kernel counted it.
    while sum(os.times()[:2]) < 1.0:
        pass
    used = os.times()
    conn.sendall(b'%d %.2f\\n' % (os.getpid(), used[0] + used[1]))
    hold(conn)

def handler(work):
    return type('Handler', (socketserver.BaseRequestHandler,), {'handle': lambda self: work(self.request)})
`;

/** socketserver's forking server: a child per connection, reaped (waited for) by the server. */
const forking = (work: string) => `${HANDLERS}
server = socketserver.ForkingTCPServer(('127.0.0.1', 0), handler(${work}))
print(server.server_address[1], flush=True)
server.serve_forever()`;

/** A thread per connection, one process. */
const threaded = (work: string) => `${HANDLERS}
socketserver.ThreadingTCPServer.daemon_threads = True
server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), handler(${work}))
print(server.server_address[1], flush=True)
server.serve_forever()`;

/** The C idiom: SIGCHLD ignored, so the kernel reaps the children and no wait() ever returns them. */
const forkingUnwaited = (work: string) => `${HANDLERS}
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
listener = socket.create_server(('127.0.0.1', 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    if os.fork() == 0:
        listener.close()
        ${work}(conn)
        os._exit(0)
    conn.close()`;

/** Starts `python3 -c script` and resolves with its pid once it printed its port. */
function startPython(script: string): Promise<{ pid: number; port: number }> {
  const server = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  servers.push(server);
  return new Promise((resolve, reject) => {
    let output = '';
    server.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const line = /^(\d+)\n/.exec(output);
      if (line) resolve({ pid: server.pid!, port: Number(line[1]) });
    });
    server.once('error', reject);
    server.once('exit', (code) => reject(new Error(`python3 exited (${code}) before printing its port: ${output}`)));
  });
}

/** Opens a connection and resolves with the socket and the first line the server's handler wrote. */
function open(port: number): Promise<{ socket: Socket; line: string }> {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    let input = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      input += chunk;
      const end = input.indexOf('\n');
      if (end !== -1) resolve({ socket, line: input.slice(0, end) });
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`port ${port} closed the connection before writing a line`)));
  });
}

const openMany = (port: number, count: number) => Promise.all(Array.from({ length: count }, () => open(port)));

const cpuSeconds = (window: ProcWindow) => window.cpuUserSeconds + window.cpuSystemSeconds;

/** Resolves once the process is gone from /proc: exited and reaped, not a zombie. */
async function reaped(pid: number): Promise<void> {
  while (await readFile(`/proc/${pid}/stat`, 'utf8').then(() => true, () => false)) await sleep(20);
}

describe('ProcProbe follows the process tree', () => {
  it('sees the processes, threads and fds of a server that forks a process per connection, and the eBPF observer counts each child\'s calls', async () => {
    const server = await startPython(forking('greet'));
    const observer = await observeProcess(server.pid, { tracer: 'bpf' });
    await observer.startWindow();
    const held = await openMany(server.port, 5);
    const childPids = held.map(({ line }) => Number(line));
    const rootFds = (await readdir(`/proc/${server.pid}/fd`)).length;
    const { proc, trace } = await observer.stop();

    // The children are forked while traced: their calls are the server's. Each greets with one
    // sendto (socket.sendall) from its own process, and the server forks once per connection.
    expect(trace?.tracer).toBe('bpf');
    const window = [...trace!.window.serving, ...trace!.window.runtime];
    const calls = (name: string) => window.filter((s) => s.syscall === name).reduce((total, s) => total + s.calls, 0);
    expect(calls('sendto')).toBe(5);
    expect(calls('clone') + calls('clone3') + calls('fork')).toBe(5);
    expect(window.find((s) => s.syscall === 'sendto')!.threads).toBe(5);

    // Every connection has a process of its own, not the server's.
    expect(new Set(childPids).size).toBe(5);
    expect(childPids).not.toContain(server.pid);
    expect(observer.baseline.processesPeak).toBe(1);
    expect(ProcWindowSchema.parse(proc)).toEqual(proc);
    expect(proc.processesPeak).toBeGreaterThanOrEqual(6);
    expect(proc.threadsPeak).toBeGreaterThanOrEqual(6);
    // Each child holds its connection besides what the server itself holds.
    expect(proc.fdsPeak).toBeGreaterThanOrEqual(rootFds + 5);
  });

  it('counts the threads of a thread-per-connection server in its one process', async () => {
    const server = await startPython(threaded('greet'));
    const probe = await ProcProbe.start(server.pid, { intervalMs: 50 });
    const held = await openMany(server.port, 5);
    const window = await probe.stop();

    expect(held.map(({ line }) => Number(line))).toEqual(Array(5).fill(server.pid));
    expect(window.processesPeak).toBe(1);
    // the main thread and one per connection
    expect(window.threadsPeak).toBeGreaterThanOrEqual(6);
  });

  it('follows grandchildren too: a child that forks', async () => {
    // The root forks a child, the child forks a grandchild; "ready" once the grandchild runs.
    const server = spawn('python3', ['-c', `
import os, time
r, w = os.pipe()
if os.fork() == 0:
    if os.fork() == 0:
        os.write(w, b'g')
    time.sleep(60)
    os._exit(0)
os.read(r, 1)
print('ready', flush=True)
time.sleep(60)`], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.stdout!.setEncoding('utf8').on('data', (chunk: string) => chunk.includes('ready') && resolve());
      server.once('exit', (code) => reject(new Error(`python3 exited (${code}) before printing "ready"`)));
    });
    const window = await (await ProcProbe.start(server.pid!)).stop();

    expect(window.processesPeak).toBe(3);
    expect(window.threadsPeak).toBe(3);
  });

  it("counts a forked child's CPU in the tree's, while it runs and once the server reaped it", async () => {
    const server = await startPython(forking('burn'));
    const [untilAlive, untilReaped] = await Promise.all([ProcProbe.start(server.pid, { intervalMs: 50 }), ProcProbe.start(server.pid, { intervalMs: 50 })]);
    const { socket, line } = await open(server.port);
    const [childPid, childCpu] = line.split(' ').map(Number);
    const alive = await untilAlive.stop();
    socket.end();
    // ForkingTCPServer waits for its children between two polls (half a second each).
    await reaped(childPid);
    const after = await untilReaped.stop();

    expect(childCpu).toBeGreaterThanOrEqual(1);
    expect(alive.processesPeak).toBe(2);
    // The child's own CPU, then the same time as its parent's cutime/cstime: counted once, not twice.
    expect(cpuSeconds(alive)).toBeGreaterThanOrEqual(childCpu);
    expect(cpuSeconds(after)).toBeGreaterThanOrEqual(childCpu);
    expect(cpuSeconds(after)).toBeLessThan(childCpu + 0.5);
  });

  it('keeps the CPU of a child the kernel reaped unwaited (SIGCHLD ignored)', async () => {
    const server = await startPython(forkingUnwaited('burn'));
    const reapedTicks = async () => {
      const stat = parseProcStat(await readFile(`/proc/${server.pid}/stat`, 'utf8'));
      return stat.reapedChildrenUserTicks + stat.reapedChildrenSystemTicks;
    };
    // not 0: python3 may be a launcher (pyenv's shim) that ran and waited for a few commands
    const reapedBefore = await reapedTicks();
    const probe = await ProcProbe.start(server.pid, { intervalMs: 50 });
    const { socket, line } = await open(server.port);
    const [childPid, childCpu] = line.split(' ').map(Number);
    // The probe must sample the child after its loop ended: at 50 ms a sample, a second leaves
    // room for twenty, or for a few at a loaded machine's pace.
    await sleep(1000);
    socket.end();
    await reaped(childPid);
    const window = await probe.stop();

    // The kernel added nothing to the server's cutime: the child's time is what the probe last saw of it.
    expect(await reapedTicks()).toBe(reapedBefore);
    expect(window.processesPeak).toBe(2);
    expect(cpuSeconds(window)).toBeGreaterThanOrEqual(childCpu);
    expect(cpuSeconds(window)).toBeLessThan(childCpu + 0.5);
  });
});
