// What one client run is given (ClientSettings, already checked and resolved) and what it counts
// (Tally), whatever its mode. The Tally becomes the ClientResult that the CLI prints.
import { ErrnoError } from '../errors.js';
import type { ClientResult } from '../shared/results.js';
import { LatencyRecorder } from './latency.js';
import type { Warmup } from './warmup.js';

export interface Address {
  ip: string;
  port: number;
}

export interface ClientSettings {
  mode: 'echo' | 'hold';
  /** As the user wrote it ("server:7000"); `address` is what it resolved to. */
  target: string;
  address: Address;
  connections: number;
  durationSeconds: number;
  messageSize: number;
  /** echo: requests per second per connection, sent open-loop (src/clients/rate.ts); null: closed loop, each request as soon as the previous reply. */
  rate: number | null;
  connectTimeoutSeconds: number;
  onReady: () => void | Promise<void>;
  /** sees the result before the connections are closed (see ClientOptions.onResult). */
  onResult: (result: ClientResult) => void | Promise<void>;
}

/** Enough to show what went wrong without flooding the report. */
const MAX_NOTES = 20;

/** Errors that mean the server closed or reset the connection: counted, not worth a note. */
const CLOSED_BY_PEER = new Set(['ECONNRESET', 'EPIPE']);

export class Tally {
  connected = 0;
  requestsSent = 0;
  roundTrips = 0;
  answeredAfterWindow = 0;
  unanswered = 0;
  wrongReplies = 0;
  closedByServer = 0;
  connectionsAnswered = 0;
  warmup: Warmup = { connections: 0, answered: 0, seconds: 0 };
  readonly connectErrors: Record<string, number> = {};
  readonly latency = new LatencyRecorder();
  private readonly notes = new Set<string>();
  private windowCpu: { usage: NodeJS.CpuUsage; at: number } | null = null;

  /** The measured window starts: from here the client's own CPU time is counted. */
  windowStarted(): void {
    this.windowCpu = { usage: process.cpuUsage(), at: performance.now() };
  }

  /** The client's CPU (user + system) over the window, in percent of one core. */
  private cpuPercent(): number {
    if (!this.windowCpu) return 0;
    const used = process.cpuUsage(this.windowCpu.usage);
    const elapsedMicroseconds = (performance.now() - this.windowCpu.at) * 1000;
    return elapsedMicroseconds > 0 ? Math.round(((used.user + used.system) / elapsedMicroseconds) * 1000) / 10 : 0;
  }

  connectFailed(code: string): void {
    this.connectErrors[code] = (this.connectErrors[code] ?? 0) + 1;
  }

  /** Keeps the first occurrence of each problem (a Set ignores repeats). */
  note(text: string): void {
    if (this.notes.size < MAX_NOTES) this.notes.add(text);
  }

  /** A reply that went wrong: bytes other than the echo, or the server closed the connection. */
  replyFailed(progress: 'wrong' | 'closed'): void {
    if (progress === 'wrong') this.wrongReplies++;
    else this.closedByServer++;
  }

  /** An established connection failed under a send or recv: the server closed it, or worse. */
  connectionLost(error: unknown): void {
    if (!(error instanceof ErrnoError)) throw error;
    this.closedByServer++;
    if (!CLOSED_BY_PEER.has(error.code)) this.note(`a connection was lost: ${error.message}`);
  }

  result(settings: ClientSettings, durationSeconds: number, probe: ClientResult['probe'] = null): ClientResult {
    return {
      mode: settings.mode,
      target: settings.target,
      connectionsRequested: settings.connections,
      connected: this.connected,
      warmup: this.warmup,
      durationSeconds: Math.round(durationSeconds * 1000) / 1000,
      messageSize: settings.messageSize,
      requestsSent: this.requestsSent,
      roundTrips: this.roundTrips,
      answeredAfterWindow: this.answeredAfterWindow,
      unanswered: this.unanswered,
      wrongReplies: this.wrongReplies,
      connectionsAnswered: this.connectionsAnswered,
      closedByServer: this.closedByServer,
      connectErrors: this.connectErrors,
      latency: this.latency.summary(),
      probe,
      cpuPercent: this.cpuPercent(),
      notes: [...this.notes],
    };
  }
}
