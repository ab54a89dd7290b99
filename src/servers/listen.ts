// Opens the listening socket every model serves on and announces it. The ready line is what a
// runtime waits for: `listening on HOST:PORT model=NAME pid=PID runtime=node-vX.Y.Z`.
import { writeSync } from 'node:fs';
import * as libc from '../libc/index.js';
import { setThreadName } from '../libc/thread.js';
import { DEFAULT_SERVE_OPTIONS, SERVING_THREAD_PREFIX, type ServeOptions, type TypeScriptModel } from './model.js';

/** Large enough for thousands of simultaneous connects; the kernel caps it at net.core.somaxconn. */
const BACKLOG = 4096;

export async function listenAndServe(model: TypeScriptModel, host: string, port: number, options: Partial<ServeOptions> = {}): Promise<void> {
  const listener = libc.socket();
  libc.setIntOption(listener, libc.SOL_SOCKET, libc.SO_REUSEADDR, 1);
  libc.bind(listener, host, port);
  libc.listen(listener, BACKLOG);
  const serveOptions = { ...DEFAULT_SERVE_OPTIONS, ...options };
  // Listening first: clients that connect during the model's start-up wait in the backlog.
  await model.prepare?.(serveOptions);
  // This thread runs the model from here on: named, the tracer counts its calls as the model's and
  // those of Node's own threads apart (threads started by prepare() name themselves).
  setThreadName(`${SERVING_THREAD_PREFIX}main`);
  writeSync(1, `listening on ${host}:${libc.localPort(listener)} model=${model.name} pid=${process.pid} runtime=node-${process.version}\n`);
  await model.serve(listener, serveOptions);
}

/** Parses a ready line; null when the line is something else. `runtime`: "node v18.19.0", or null when not announced. */
export function parseReadyLine(line: string): { host: string; port: number; model: string; pid: number; runtime: string | null } | null {
  const match = /^listening on (\S+):(\d+) model=(\S+) pid=(\d+)(?: runtime=(\S+))?$/.exec(line.trim());
  if (!match) return null;
  return { host: match[1], port: Number(match[2]), model: match[3], pid: Number(match[4]), runtime: match[5]?.replace('-', ' ') ?? null };
}
