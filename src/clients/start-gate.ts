// The start of a lab's measured window for clients that no signal reaches: on a swarm, a client
// container runs on another node, where the controller cannot signal it. The controller starts a
// gate beside the server instead (`iolab start-gate`, on the run's overlay network) and signals the
// gate; each client connects to the gate before it says it is ready, and starts its window when the
// gate writes "start". On one machine the clients get the signal itself (CLIENT_START_SIGNAL).
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

/** The gate's port on the run's network. */
export const START_GATE_PORT = 7200;

/**
 * `iolab start-gate`: listens on START_GATE_PORT; on each `signal` writes "start" to every client
 * connected since the last one and closes them. Runs until killed.
 */
export async function serveStartGate(signal: NodeJS.Signals): Promise<void> {
  const waiting = new Set<Socket>();
  const server = createServer((socket) => {
    waiting.add(socket);
    socket.on('error', () => waiting.delete(socket));
    socket.on('close', () => waiting.delete(socket));
  });
  process.on(signal, () => {
    for (const socket of waiting) socket.end('start\n');
    waiting.clear();
  });
  await new Promise<void>((resolve) => server.listen(START_GATE_PORT, '0.0.0.0', resolve));
  process.stderr.write(`gate listening on ${START_GATE_PORT}\n`);
}

/**
 * A client's side: connects to the gate at `target` (HOST:PORT). Resolves, once connected, to
 * `started`, a promise of the start (wrapped: an async function would wait for it). Throws when the
 * gate cannot be reached; `started` rejects when the gate closes without writing "start".
 */
export async function joinStartGate(target: string): Promise<{ started: Promise<void> }> {
  const at = target.lastIndexOf(':');
  const socket = connect({ host: target.slice(0, at), port: Number(target.slice(at + 1)) });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const started = new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: socket });
    lines.once('line', (line) => (line === 'start' ? resolve() : reject(new Error(`the start gate ${target} wrote "${line}", not "start"`))));
    lines.once('close', () => reject(new Error(`the start gate ${target} closed before the start`)));
  });
  return { started };
}
