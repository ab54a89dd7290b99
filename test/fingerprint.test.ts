// The tracer counting a real server under real load: each multiplexing model shows its own
// waiting call and not the others'.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyscallCount } from '../src/report/results.js';
import { traceUnderLoad } from './helpers.js';

const calls = (syscalls: SyscallCount[], name: string) => syscalls.find((s) => s.syscall === name)?.calls ?? 0;

describe.each([
  { model: 'epoll', waits: ['epoll_wait', 'epoll_pwait'], never: ['select', 'pselect6', 'poll', 'ppoll'] },
  { model: 'select', waits: ['select', 'pselect6'], never: ['epoll_wait', 'epoll_pwait', 'poll', 'ppoll'] },
])('strace counts of the $model server under load', ({ model, waits, never }) => {
  let traced: { syscalls: SyscallCount[]; roundTrips: number };
  beforeAll(async () => {
    traced = await traceUnderLoad(model);
  });
  afterAll(() => {});

  it(`shows ${waits.join(' or ')} and recvfrom/sendto for the round trips`, () => {
    expect(traced.roundTrips).toBeGreaterThan(0);
    expect(waits.reduce((sum, name) => sum + calls(traced.syscalls, name), 0)).toBeGreaterThan(0);
    expect(calls(traced.syscalls, 'recvfrom')).toBeGreaterThanOrEqual(traced.roundTrips);
    expect(calls(traced.syscalls, 'sendto')).toBeGreaterThanOrEqual(traced.roundTrips);
  });

  it(`never calls ${never.join(', ')}`, () => {
    for (const name of never) expect(calls(traced.syscalls, name), name).toBe(0);
  });

  it('does not count start-up (no execve, no module loading)', () => {
    expect(calls(traced.syscalls, 'execve')).toBe(0);
    expect(calls(traced.syscalls, 'openat')).toBeLessThan(5);
  });
});
