// Server events: what a server tells the lab about the connections it could not take or keep,
// as one JSON line on stderr each (`{"event":"refused",...}`), so that the runtime counts them as
// they stream and no later stage has to match the wording of a log line. Every event also carries
// a `message` for a person watching `iolab server` in a terminal.
import { z } from 'zod';

export const ServerEventSchema = z.discriminatedUnion('event', [
  /** a connection accepted and closed at once because the model cannot watch its fd (select: fd >= FD_SETSIZE). */
  z.object({ event: z.literal('refused'), fd: z.number().int(), limit: z.literal('FD_SETSIZE'), message: z.string() }),
  /**
   * accept4 failed for want of an fd (EMFILE: the process's RLIMIT_NOFILE; ENFILE: the system's
   * fs.file-max): the connection stays queued in the kernel. Sent once per streak of failures.
   */
  z.object({ event: z.literal('fd-exhausted'), errno: z.enum(['EMFILE', 'ENFILE']), message: z.string() }),
  /** one connection's thread, or one of its operations, failed; that connection is closed, the server goes on. */
  z.object({ event: z.literal('connection-failed'), message: z.string() }),
  /** signal-driven IO: the realtime signal queue overflowed (SIGIO sent instead): readiness may have been lost. */
  z.object({ event: z.literal('signal-queue-overflow'), message: z.string() }),
]);
export type ServerEvent = z.infer<typeof ServerEventSchema>;
export type ServerEventKind = ServerEvent['event'];

/** The line a server writes for an event (without the newline). */
export function formatServerEvent(event: ServerEvent): string {
  return JSON.stringify(event);
}

/** The event a line holds, or null for any other line (a human's log line, a stack trace). */
export function parseServerEvent(line: string): ServerEvent | null {
  if (!line.startsWith('{"event":')) return null;
  try {
    const parsed = ServerEventSchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Events counted by kind over a run, with the message of the first of each kind. */
export const ServerEventCountsSchema = z.object({
  counts: z.record(z.string(), z.number().int().nonnegative()),
  first: z.record(z.string(), z.string()),
});
export type ServerEventCounts = z.infer<typeof ServerEventCountsSchema>;

export const NO_SERVER_EVENTS: ServerEventCounts = { counts: {}, first: {} };

/** Counts the events of a stream of server lines, every line of it (no line is dropped). */
export class ServerEventTally {
  private readonly counts: Record<string, number> = {};
  private readonly first: Record<string, string> = {};

  /** Reads one line; true when it was an event. */
  line(line: string): boolean {
    const event = parseServerEvent(line);
    if (!event) return false;
    this.counts[event.event] = (this.counts[event.event] ?? 0) + 1;
    this.first[event.event] ??= event.message;
    return true;
  }

  snapshot(): ServerEventCounts {
    return { counts: { ...this.counts }, first: { ...this.first } };
  }
}

/**
 * The events of one typical run among several: each kind's count is the median over the runs (a
 * run without that kind counts 0), and its first message is the first run's that has one.
 */
export function medianServerEvents(all: readonly ServerEventCounts[]): ServerEventCounts {
  const result: ServerEventCounts = { counts: {}, first: {} };
  const kinds = new Set(all.flatMap((events) => Object.keys(events.counts)));
  for (const kind of kinds) {
    const counts = all.map((events) => events.counts[kind] ?? 0).sort((a, b) => a - b);
    const middle = Math.floor(counts.length / 2);
    result.counts[kind] = Math.round(counts.length % 2 ? counts[middle] : (counts[middle - 1] + counts[middle]) / 2);
  }
  for (const events of all) for (const [kind, message] of Object.entries(events.first)) result.first[kind] ??= message;
  return result;
}

export function eventCount(events: ServerEventCounts, kind: ServerEventKind): number {
  return events.counts[kind] ?? 0;
}
