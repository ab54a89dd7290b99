// The grader's client side: what a check does to a student's server over TCP, and what it saw.
// A probe runs in a client container of the grading network (`iolab probe --request JSON`) or,
// on the local runtime, in the grader's own process. It uses Node's net module: the probe is
// not the subject here, the student's server is.
//
// Protocol of `iolab probe`: `ready` on stderr once its connections are up (for the probes that
// hold connections while the grader observes the server), then one JSON ProbeOutcome on stdout.
import { connect as netConnect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { z } from 'zod';
import { raiseNofileToHard } from '../libc/index.js';
import { formatCount } from '../shared/format.js';
import { upperCaseInPlace } from '../servers/echo.js';

export const ProbeRequestSchema = z.discriminatedUnion('probe', [
  z.object({ probe: z.literal('echo') }),
  z.object({ probe: z.literal('large-message'), bytes: z.number().int().positive() }),
  z.object({ probe: z.literal('binary') }),
  z.object({ probe: z.literal('concurrent'), clients: z.number().int().positive() }),
  z.object({ probe: z.literal('disconnect') }),
  z.object({ probe: z.literal('churn'), cycles: z.number().int().positive() }),
  /** connections opened, each asked once, then held silent for `seconds` after `ready`. */
  z.object({ probe: z.literal('hold'), connections: z.number().int().nonnegative(), seconds: z.number().positive() }),
  /** `connections` echo back and forth for `seconds` beside `idle` silent ones. */
  z.object({ probe: z.literal('load'), connections: z.number().int().positive(), idle: z.number().int().nonnegative(), seconds: z.number().positive() }),
  /** past FD_SETSIZE: `connections` opened and asked once; then the first ones asked again. */
  z.object({ probe: z.literal('ceiling'), connections: z.number().int().positive() }),
]);
export type ProbeRequest = z.infer<typeof ProbeRequestSchema>;

export const ProbeOutcomeSchema = z.object({
  probe: z.string(),
  ok: z.boolean(),
  /** one sentence in the course's terms: what the probe did and what the server did. */
  summary: z.string(),
  /** the numbers behind the summary. */
  facts: z.record(z.union([z.number(), z.string(), z.boolean(), z.null()])),
});
export type ProbeOutcome = z.infer<typeof ProbeOutcomeSchema>;

export interface Target {
  host: string;
  port: number;
}

const CONNECT_TIMEOUT_MS = 5000;
const REPLY_TIMEOUT_MS = 5000;
const LARGE_REPLY_TIMEOUT_MS = 15_000;
/** How many times the disconnect probe's close-then-reset round is made (5 clients each). */
const CLOSE_THEN_RESET_TIMES = 6;

/** The echo protocol's reply to `bytes`: ASCII a-z upper-cased, everything else unchanged. */
export function expectedReply(bytes: Buffer): Buffer {
  const reply = Buffer.from(bytes);
  upperCaseInPlace(reply, reply.length);
  return reply;
}


/** A connection and everything it received, with how (and whether) it ended. */
class Conversation {
  private chunks: Buffer[] = [];
  private received = 0;
  /** 'closed' when the server closed (FIN), 'reset' on RST, another error's code otherwise. */
  ended: string | null = null;
  /** how many bytes the last exchange got back */
  lastReplyBytes = 0;
  private wake: (() => void) | null = null;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.received += chunk.length;
      this.wake?.();
    });
    socket.on('end', () => this.end('closed'));
    socket.on('error', (error: NodeJS.ErrnoException) => this.end(error.code === 'ECONNRESET' ? 'reset' : (error.code ?? error.message)));
    socket.on('close', () => this.end('closed'));
  }

  private end(how: string): void {
    this.ended ??= how;
    this.wake?.();
  }

  /** Waits until `bytes` have arrived in all, the connection ends, or the time is up. */
  async waitFor(bytes: number, timeoutMs: number): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.received < bytes && this.ended === null && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, Math.max(1, deadline - Date.now())).unref();
      });
      this.wake = null;
    }
    return this.take();
  }

  /** everything received so far, and forget it. */
  private take(): Buffer {
    const all = Buffer.concat(this.chunks);
    this.chunks = [];
    this.received = 0;
    return all;
  }

  /** sends `bytes` and waits for the reply of the same length; a description of what went wrong, or null. */
  async exchange(bytes: Buffer, timeoutMs = REPLY_TIMEOUT_MS): Promise<string | null> {
    this.socket.write(bytes);
    const reply = await this.waitFor(bytes.length, timeoutMs);
    this.lastReplyBytes = reply.length;
    return compareReply(bytes, reply, this.ended, timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }

  reset(): void {
    this.socket.resetAndDestroy();
  }
}

function show(bytes: Buffer): string {
  const text = JSON.stringify(bytes.subarray(0, 40).toString('latin1'));
  return bytes.length > 40 ? `${text.slice(0, -1)}..." (${formatCount(bytes.length)} bytes)` : text;
}

/** null when `reply` is the protocol's answer to `sent`; else what was wrong, in a sentence. */
export function compareReply(sent: Buffer, reply: Buffer, ended: string | null, timeoutMs: number): string | null {
  const wanted = expectedReply(sent);
  const prefix = reply.subarray(0, wanted.length);
  const differsAt = prefix.findIndex((byte, i) => byte !== wanted[i]);
  if (differsAt >= 0) {
    const unchanged = reply.subarray(0, sent.length).equals(sent.subarray(0, reply.length));
    const detail = unchanged ? ': the bytes came back unchanged, but the protocol upper-cases a-z' : '';
    return `sent ${show(sent)}, expected ${show(wanted)}, got ${show(reply)}: first difference at byte ${formatCount(differsAt)}${detail}`;
  }
  if (reply.length > wanted.length) return `sent ${formatCount(sent.length)} bytes and got ${formatCount(reply.length)} back: more than was sent`;
  if (reply.length < wanted.length) {
    const got = reply.length === 0 ? 'no reply' : `${formatCount(reply.length)} of them back`;
    const how =
      ended === 'closed' ? ', then the server closed the connection'
      : ended === 'reset' ? ', then the server reset the connection'
      : ended ? `, then the connection failed (${ended})`
      : ` within ${timeoutMs / 1000} s`;
    return `sent ${formatCount(sent.length)} bytes and got ${got}${how}`;
  }
  return null;
}

async function open(target: Target, timeoutMs = CONNECT_TIMEOUT_MS): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: target.host, port: target.port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no connection to the server (port ${target.port}) within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new Conversation(socket));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to the server (port ${target.port}): ${error.code ?? error.message}`));
    });
  });
}

/** Opens `n` connections, at most `inFlight` handshakes at a time; failures are counted, not thrown. */
async function openMany(target: Target, n: number, inFlight = 100): Promise<{ open: Conversation[]; failed: number; firstError: string | null }> {
  const opened: Conversation[] = [];
  let failed = 0;
  let firstError: string | null = null;
  const limit = pLimit(inFlight);
  await Promise.all(
    Array.from({ length: n }, () =>
      limit(async () => {
        try {
          opened.push(await open(target));
        } catch (error) {
          failed++;
          firstError ??= (error as Error).message;
        }
      }),
    ),
  );
  return { open: opened, failed, firstError };
}

/** Deterministic bytes: lower-case letters (which the server must upper-case) mixed with every other byte value. */
function testBytes(length: number, seed = 12345): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    bytes[i] = i % 3 === 0 ? 0x61 + (state % 26) : state & 0xff;
  }
  return bytes;
}

function outcome(probe: string, ok: boolean, summary: string, facts: ProbeOutcome['facts'] = {}): ProbeOutcome {
  return { probe, ok, summary, facts };
}

async function echoProbe(target: Target): Promise<ProbeOutcome> {
  const conversation = await open(target);
  try {
    const first = Buffer.from('hello, iolab! 123\n');
    const problem = await conversation.exchange(first);
    if (problem) return outcome('echo', false, problem);
    const second = Buffer.from('a second message on the same connection\n');
    const again = await conversation.exchange(second);
    if (again) return outcome('echo', false, `the first message came back right; the second, on the same connection: ${again}`);
    return outcome('echo', true, 'two messages on one connection came back upper-cased, byte for byte');
  } finally {
    conversation.close();
  }
}

async function largeMessageProbe(target: Target, bytes: number): Promise<ProbeOutcome> {
  const conversation = await open(target);
  try {
    const message = testBytes(bytes);
    const problem = await conversation.exchange(message, LARGE_REPLY_TIMEOUT_MS);
    const received = conversation.lastReplyBytes;
    if (problem) return outcome('large-message', false, problem, { sent: bytes, ended: conversation.ended, received });
    return outcome('large-message', true, `a ${formatCount(bytes)}-byte message came back whole, upper-cased`, { sent: bytes });
  } finally {
    conversation.close();
  }
}

async function binaryProbe(target: Target): Promise<ProbeOutcome> {
  const conversation = await open(target);
  try {
    const message = Buffer.alloc(1024, 0).map((_, i) => i % 256);
    const problem = await conversation.exchange(Buffer.from(message));
    if (problem) return outcome('binary', false, problem);
    return outcome('binary', true, 'all 256 byte values came back, only a-z changed');
  } finally {
    conversation.close();
  }
}

async function concurrentProbe(target: Target, clients: number): Promise<ProbeOutcome> {
  const { open: conversations, failed, firstError } = await openMany(target, clients);
  try {
    // Everybody asks at once, while everybody is connected.
    const results = await Promise.all(conversations.map((c, i) => c.exchange(Buffer.from(`client ${i} says hi\n`), 10_000)));
    const answered = results.filter((problem) => problem === null).length;
    const firstProblem = results.find((problem) => problem !== null) ?? firstError;
    const facts = { clients, connected: conversations.length, answered };
    if (answered === clients) return outcome('concurrent', true, `answered all ${clients} clients while all ${clients} were connected`, facts);
    const connectNote = failed ? `; ${failed} could not connect (${firstError})` : '';
    return outcome('concurrent', false, `answered ${answered} of ${clients} clients while all were connected${connectNote}; the first failure: ${firstProblem}`, facts);
  } finally {
    for (const c of conversations) c.close();
  }
}

/** A fresh client still gets its answer: null, or what went wrong. */
async function stillAnswers(target: Target): Promise<string | null> {
  try {
    const conversation = await open(target);
    try {
      return await conversation.exchange(Buffer.from('are you still there?\n'));
    } finally {
      conversation.close();
    }
  } catch (error) {
    return (error as Error).message;
  }
}

async function disconnectProbe(target: Target): Promise<ProbeOutcome> {
  const rounds: { name: string; said: string; run: () => Promise<void> }[] = [
    {
      // The request, the FIN and the RST reach the server together: the server's socket is in
      // CLOSE_WAIT when the reset comes, so its reply's write fails with EPIPE, and raises
      // SIGPIPE unless the server ignores it or sends with MSG_NOSIGNAL (tcp_reset(), send(2)).
      name: 'close-then-reset',
      said: `${CLOSE_THEN_RESET_TIMES} times 5 clients sent 32 KiB, closed their side (FIN) and at once reset (RST), before any reply`,
      run: async () => {
        // The reset must follow the FIN before the server has answered: made at once, and
        // several times over, since the first time this process runs this code it runs it slowest.
        const request = testBytes(32 * 1024);
        for (let time = 0; time < CLOSE_THEN_RESET_TIMES; time++) {
          const { open: conversations } = await openMany(target, 5);
          await Promise.all(conversations.map((c) => new Promise<void>((resolve) => c.socket.end(request, () => resolve(c.reset())))));
        }
      },
    },
    {
      name: 'close',
      said: '5 clients connected and closed without sending',
      run: async () => void (await openMany(target, 5)).open.forEach((c) => c.socket.end()),
    },
    {
      name: 'close-before-reply',
      said: '5 clients sent 16 KiB and closed before reading the reply',
      run: async () => {
        for (const c of (await openMany(target, 5)).open) c.socket.end(testBytes(16 * 1024));
      },
    },
    {
      name: 'reset',
      said: '5 clients connected and reset (RST) without sending',
      run: async () => void (await openMany(target, 5)).open.forEach((c) => c.reset()),
    },
    {
      name: 'reset-mid-reply',
      said: '5 clients sent 256 KiB and reset their connection (RST) while the reply was coming',
      run: async () => {
        const { open: conversations } = await openMany(target, 5);
        for (const c of conversations) c.socket.write(testBytes(256 * 1024));
        await Promise.all(conversations.map((c) => c.waitFor(1, 2000)));
        for (const c of conversations) c.reset();
      },
    },
  ];
  for (const round of rounds) {
    await round.run();
    await sleep(300);
    const problem = await stillAnswers(target);
    if (problem) {
      return outcome('disconnect', false, `after ${round.said}, a new client was not answered: ${problem}`, { brokenBy: round.name });
    }
  }
  return outcome('disconnect', true, 'clients that closed, and clients that reset before or during the reply, ended only their own connections: the next client was answered', {
    brokenBy: null,
  });
}

async function churnProbe(target: Target, cycles: number): Promise<ProbeOutcome> {
  let done = 0;
  let failed = 0;
  let firstError: string | null = null;
  const limit = pLimit(4);
  const cycle = async (index: number) => {
    // A server that stopped answering would make every remaining cycle wait for its timeout.
    if (failed >= 20) return;
    try {
      const conversation = await open(target);
      const problem = await conversation.exchange(Buffer.from(`cycle ${index}\n`));
      conversation.close();
      if (problem) throw new Error(problem);
      done++;
    } catch (error) {
      failed++;
      firstError ??= `cycle ${index + 1}: ${(error as Error).message}`;
    }
  };
  await Promise.all(Array.from({ length: cycles }, (_, index) => limit(cycle, index)));
  const facts = { cycles, completed: done, failed };
  if (done === cycles) return outcome('churn', true, `${formatCount(cycles)} connect / echo / close cycles all completed`, facts);
  const stopped = done + failed < cycles ? ` (stopped after ${failed} failures)` : '';
  return outcome('churn', false, `${formatCount(done)} of ${formatCount(cycles)} connect / echo / close cycles completed${stopped}; the first failure: ${firstError}`, facts);
}

/** Asks each conversation once (all at once); for each, whether it was answered within the time. */
async function askEach(conversations: Conversation[], timeoutMs: number): Promise<boolean[]> {
  const results = await Promise.all(conversations.map((c, i) => c.exchange(Buffer.from(`hold ${i}\n`), timeoutMs)));
  return results.map((problem) => problem === null);
}

async function holdProbe(target: Target, connections: number, seconds: number, ready: () => void): Promise<ProbeOutcome> {
  const { open: conversations, failed, firstError } = await openMany(target, connections);
  try {
    // Each asks once, so that the server has really taken every connection in (a blocking
    // server answers only the first; the others wait in its backlog, which is its model).
    const answered = (await askEach(conversations, 3000)).filter(Boolean).length;
    ready();
    await sleep(seconds * 1000);
    const facts = { connections, connected: conversations.length, answered };
    const connectNote = failed ? `; ${failed} could not connect (${firstError})` : '';
    return outcome('hold', conversations.length === connections, `held ${conversations.length} silent connections for ${seconds} s (${answered} answered their first message)${connectNote}`, facts);
  } finally {
    for (const c of conversations) c.close();
  }
}

async function loadProbe(target: Target, connections: number, idle: number, seconds: number, ready: () => void): Promise<ProbeOutcome> {
  // The busy ones first: a server that serves one connection at a time serves one of them.
  const busy = await openMany(target, connections);
  const quiet = await openMany(target, idle);
  ready();
  let roundTrips = 0;
  /** the echoing connections that got at least one answer. */
  let answered = 0;
  let firstProblem: string | null = busy.firstError;
  const deadline = Date.now() + seconds * 1000;
  const message = Buffer.from('the quick brown fox jumps over the lazy dog, 64 bytes in all...\n');
  await Promise.all(
    busy.open.map(async (c) => {
      for (let mine = 0; Date.now() < deadline; mine++) {
        const problem = await c.exchange(message, Math.max(1000, deadline - Date.now()));
        if (problem) {
          firstProblem ??= problem;
          return;
        }
        roundTrips++;
        if (mine === 0) answered++;
      }
    }),
  );
  for (const c of [...quiet.open, ...busy.open]) c.close();
  const facts = { connections, idle, seconds, roundTrips, answered, connected: busy.open.length + quiet.open.length };
  const note = firstProblem ? `; a problem: ${firstProblem}` : '';
  return outcome('load', roundTrips > 0, `${formatCount(roundTrips)} round trips on ${busy.open.length} connections in ${seconds} s beside ${quiet.open.length} idle ones${note}`, facts);
}

async function ceilingProbe(target: Target, connections: number): Promise<ProbeOutcome> {
  const notRaised = raiseNofileToHard();
  const { open: conversations, failed, firstError } = await openMany(target, connections, 50);
  try {
    // Each client is counted once: answered; else closed (or reset) by the server; else silent.
    const wasAnswered = await askEach(conversations, 10_000);
    const answered = wasAnswered.filter(Boolean).length;
    const closedByServer = conversations.filter((c, i) => !wasAnswered[i] && c.ended !== null).length;
    const silent = conversations.length - answered - closedByServer;
    // The first connections must still be served once the ceiling was met.
    const first = conversations.slice(0, 10).filter((c) => c.ended === null);
    const again = await Promise.all(first.map((c) => c.exchange(Buffer.from('still served?\n'), 5000)));
    const firstStillServed = first.length > 0 && again.every((problem) => problem === null);
    const facts = { connections, connected: conversations.length, failed, answered, closedByServer, silent, firstStillServed };
    const parts = [`${formatCount(conversations.length)} of ${formatCount(connections)} clients connected`, `${formatCount(answered)} were answered`];
    if (closedByServer) parts.push(`${formatCount(closedByServer)} were closed by the server unanswered`);
    if (silent) parts.push(`${formatCount(silent)} were neither answered nor closed`);
    if (failed) parts.push(`${formatCount(failed)} could not connect (${firstError}${notRaised ? `; the probe ${notRaised}` : ''})`);
    parts.push(firstStillServed ? 'the first clients were still served afterwards' : 'the first clients were no longer served afterwards');
    return outcome('ceiling', firstStillServed && silent === 0, parts.join('; '), facts);
  } finally {
    for (const c of conversations) c.close();
  }
}

/**
 * Runs one probe against `target`. `ready` is called once the probe's connections are up (for
 * hold and load; at the start for the others). A probe never throws for what the server does:
 * that is its outcome. It throws only when it cannot run at all.
 */
export async function runProbe(request: ProbeRequest, target: Target, ready: () => void = () => {}): Promise<ProbeOutcome> {
  // hold and load say `ready` themselves, once their connections are up
  if (request.probe !== 'hold' && request.probe !== 'load') ready();
  try {
    switch (request.probe) {
      case 'hold':
        return await holdProbe(target, request.connections, request.seconds, ready);
      case 'load':
        return await loadProbe(target, request.connections, request.idle, request.seconds, ready);
      case 'echo':
        return await echoProbe(target);
      case 'large-message':
        return await largeMessageProbe(target, request.bytes);
      case 'binary':
        return await binaryProbe(target);
      case 'concurrent':
        return await concurrentProbe(target, request.clients);
      case 'disconnect':
        return await disconnectProbe(target);
      case 'churn':
        return await churnProbe(target, request.cycles);
      case 'ceiling':
        return await ceilingProbe(target, request.connections);
    }
  } catch (error) {
    // Only a connection that could not be made at all gets here: the server is not reachable.
    return outcome(request.probe, false, (error as Error).message, { unreachable: true });
  }
}

/** `iolab probe`: one probe, `ready` on stderr, the outcome as one JSON line on stdout. */
export async function serveProbe(requestJson: string, target: Target): Promise<void> {
  const request = ProbeRequestSchema.parse(JSON.parse(requestJson));
  const result = await runProbe(request, target, () => process.stderr.write('ready\n'));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
