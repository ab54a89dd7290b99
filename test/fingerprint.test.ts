// The fingerprint contract: every model in the registry, traced under real load the way a lab
// traces it, shows the fingerprint it declares in its own threads' calls; and what it declares
// of itself (how it waits, what a connection costs) is what the kernel sees.
import { describe, expect, it } from 'vitest';
import { models } from '../src/servers/index.js';
import { checkFingerprint, EQUIVALENT_SYSCALLS } from '../src/shared/model.js';
import { callsOf, traceUnderLoad } from './helpers.js';

const CONNECTIONS = 4;

describe.each(models.map((model) => [model.name, model] as const))('the %s server traced under load', (_name, model) => {
  it('shows the fingerprint it declares, in its own threads, and no start-up of its own process', async () => {
    const traced = await traceUnderLoad(model.name, { connections: CONNECTIONS });
    expect(traced.roundTrips, 'round trips while traced').toBeGreaterThan(0);
    const check = checkFingerprint(model.fingerprint, traced.syscalls, traced.roundTrips);
    expect(check.verdict, JSON.stringify({ missing: check.required.filter((r) => r.seen.length === 0), forbidden: check.forbidden.filter((f) => f.calls > 0) })).toBe('matches');
    // Attached after the ready line: the process's own start-up is not counted.
    expect(callsOf([...traced.syscalls, ...traced.runtime], 'execve')).toBe(0);
    // Every call it declares it waits in was made (nonblocking declares none: it never waits).
    if (model.fingerprint.waitsIn.length > 0) expect(callsOf(traced.syscalls, ...model.fingerprint.waitsIn), model.fingerprint.waitsIn.join(' or ')).toBeGreaterThan(0);
    // What it declares of itself.
    if (model.traits.waits === 'spin') {
      const reads = traced.syscalls.filter((s) => model.fingerprint.required.flat().includes(s.syscall));
      const eagain = reads.reduce((sum, s) => sum + (s.errnos.EAGAIN ?? 0), 0);
      expect(eagain, 'reads failing with EAGAIN').toBeGreaterThan(traced.roundTrips / 10);
    }
    // A thread or a process per connection is a clone per connection (fork(2) is clone(2) on Linux).
    const clones = callsOf(traced.syscalls, 'clone', 'clone3');
    if (model.traits.perConnection !== 'none') expect(clones, 'clone per connection').toBeGreaterThanOrEqual(CONNECTIONS);
    else expect(clones, 'no thread or process per connection').toBe(0);
    if (model.traits.perConnection === 'process') {
      // The children's calls are counted (strace -f follows forks): each child is a task of the
      // trace, and every round trip's read was made in a child, the parent only accepts.
      expect(traced.threads.serving, 'the parent and a child per connection').toBeGreaterThanOrEqual(1 + CONNECTIONS);
      expect(callsOf(traced.syscalls, ...EQUIVALENT_SYSCALLS.recvfrom), "the children's reads").toBeGreaterThanOrEqual(traced.roundTrips);
    }
    expect(traced.threads.serving, "the model's own threads").toBeGreaterThanOrEqual(1);
  }, 60_000);
});
