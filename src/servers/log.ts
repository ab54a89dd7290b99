// Server logging: one line per event on stderr, written with a synchronous write(2). A model's
// serving loop never returns to Node's event loop, so nothing may wait for it to flush.
import { writeSync } from 'node:fs';

export function log(line: string): void {
  writeSync(2, `${line}\n`);
}

/**
 * Logs the first occurrence of a repeated condition (EMFILE at every accept while the table is
 * full) and then only the count when it clears, so a spinning loop cannot flood the log.
 */
export class OnceLogger {
  private repeats = 0;
  constructor(private readonly describe: string) {}

  happened(detail: string): void {
    if (this.repeats++ === 0) log(`${this.describe}: ${detail}`);
  }

  cleared(): void {
    if (this.repeats > 1) log(`${this.describe}: happened ${this.repeats} times, now cleared`);
    this.repeats = 0;
  }
}
