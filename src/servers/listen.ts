// Opens the listening socket every model serves on and announces it. The ready line is what a
// runtime waits for: `listening on HOST:PORT model=NAME pid=PID`.
import { writeSync } from 'node:fs';
import * as libc from '../libc/index.js';
import { DEFAULT_SERVE_OPTIONS, type ServeOptions, type ServerModel } from './model.js';

/** Large enough for thousands of simultaneous connects; the kernel caps it at net.core.somaxconn. */
const BACKLOG = 4096;

export async function listenAndServe(model: ServerModel, host: string, port: number, options: Partial<ServeOptions> = {}): Promise<void> {
  const listener = libc.socket();
  libc.setIntOption(listener, libc.SOL_SOCKET, libc.SO_REUSEADDR, 1);
  libc.bind(listener, host, port);
  libc.listen(listener, BACKLOG);
  const serveOptions = { ...DEFAULT_SERVE_OPTIONS, ...options };
  // Listening first: clients that connect during the model's start-up wait in the backlog.
  await model.prepare?.(serveOptions);
  writeSync(1, `listening on ${host}:${libc.localPort(listener)} model=${model.name} pid=${process.pid}\n`);
  await model.serve(listener, serveOptions);
}

/** Parses a ready line; null when the line is something else. */
export function parseReadyLine(line: string): { host: string; port: number; model: string; pid: number } | null {
  const match = /^listening on (\S+):(\d+) model=(\S+) pid=(\d+)$/.exec(line.trim());
  if (!match) return null;
  return { host: match[1], port: Number(match[2]), model: match[3], pid: Number(match[4]) };
}
