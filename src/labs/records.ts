// What results.json says of every lab, a lab of servers (runner.ts) or an experiment
// (experiment-runner.ts): the lab file's header and the environment the lab ran in.
import { readFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import type { Runtime, RuntimeFacts } from '../runtime/runtime.js';
import type { Measurement } from '../shared/results.js';
import type { TracerKind } from '../tracer/observe.js';

/** This iolab's version, from package.json. */
export const IOLAB_VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

/** What results.json says of a lab file: its name, title, claim, description and path. */
export function labHeaderOf(lab: { name: string; title: string; claim: string; description?: string }, file: string): Pick<Measurement['lab'], 'name' | 'title' | 'claim' | 'description' | 'file'> {
  return { name: lab.name, title: lab.title, claim: lab.claim, description: lab.description ?? null, file };
}

/**
 * Where a lab ran, for results.json: the runtime and its kernel and image (RuntimeFacts), this
 * machine, the tracer that counted (its name and kind; null: none) and the client processes per
 * client of the lab.
 */
export function environmentOf(runtime: Runtime, facts: RuntimeFacts, tracer: { name: string | null; kind: TracerKind | null }, clientReplicas: number): Measurement['environment'] {
  return {
    runtime: runtime.name,
    iolabVersion: IOLAB_VERSION,
    node: process.version,
    kernel: facts.kernel,
    hostname: hostname(),
    cpus: cpus().length,
    tracer: tracer.name,
    ...(tracer.kind !== null ? { tracerKind: tracer.kind } : {}),
    container: facts.container,
    clientReplicas,
    ...(runtime.placement && { swarm: runtime.placement() }),
  };
}
