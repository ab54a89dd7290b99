// Server logging, on stderr, written with a synchronous write(2): a model's serving loop never
// returns to Node's event loop, so nothing may wait for it to flush. Two kinds of line:
//   log()     a line for a person (a thread that failed, a close that failed)
//   report()  a server event (src/shared/server-events.ts), one JSON line that the lab's runtime
//             counts: a refused connection, fd exhaustion, a failed connection, a signal overflow
import { writeSync } from 'node:fs';
import { formatServerEvent, type ServerEvent } from '../shared/server-events.js';

export function log(line: string): void {
  writeSync(2, `${line}\n`);
}

export function report(event: ServerEvent): void {
  writeSync(2, `${formatServerEvent(event)}\n`);
}

/**
 * Reports the first event of a streak (EMFILE at every accept while the fd table is full) and,
 * when it clears, logs how many times it happened, so that a spinning loop cannot flood stderr.
 */
export class OnceReporter {
  private repeats = 0;
  private first: ServerEvent | null = null;

  happened(event: ServerEvent): void {
    if (this.repeats++ === 0) {
      this.first = event;
      report(event);
    }
  }

  cleared(): void {
    if (this.repeats > 1 && this.first) log(`${this.first.message}: happened ${this.repeats} times, now cleared`);
    this.repeats = 0;
    this.first = null;
  }
}
