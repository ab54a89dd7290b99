// The swarm a lab or a class batch runs on: the engine this controller talks to must be a swarm
// manager (`docker swarm init`); the nodes it may place work on are those that are ready and
// active (not drained or paused). See docs/swarm.md.
import type Docker from 'dockerode';
import { RuntimeUnavailableError } from '../errors.js';

/** A node of the swarm as placement sees it. */
export interface SwarmNode {
  /** the swarm's node id: what a placement constraint names (node.id==ID). */
  id: string;
  /** the node's host name: what reports and progress lines say. */
  hostname: string;
  /** CPUs the node's engine reports (NanoCPUs / 1e9). */
  cpus: number;
  /** memory the node's engine reports, bytes. */
  memoryBytes: number;
  role: 'manager' | 'worker';
  /** the node whose engine this controller talks to (where the run's own containers start). */
  self: boolean;
}

interface NodeInfo {
  ID: string;
  Spec: { Role: 'manager' | 'worker'; Availability: string };
  Description: { Hostname: string; Resources: { NanoCPUs: number; MemoryBytes: number } };
  Status: { State: string };
}

/**
 * The ready, active nodes of the swarm whose manager `docker` talks to, this node first. Throws
 * RuntimeUnavailableError when the engine is not in a swarm or not a manager of one (saying the
 * command that makes it one), or when no node can take work.
 */
export async function swarmNodes(docker: Docker): Promise<SwarmNode[]> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; NodeID?: string } };
  const state = info.Swarm?.LocalNodeState ?? 'inactive';
  if (state !== 'active') {
    throw new RuntimeUnavailableError(`--on swarm: this Docker engine is not in a swarm (its swarm state is "${state}"); make it a manager with \`docker swarm init\` (docs/swarm.md)`);
  }
  if (!info.Swarm?.ControlAvailable) {
    throw new RuntimeUnavailableError('--on swarm: this Docker engine is a swarm worker; run iolab on a manager (`docker node ls` there lists the nodes)');
  }
  const nodes = ((await docker.listNodes()) as NodeInfo[])
    .filter((node) => node.Status.State === 'ready' && node.Spec.Availability === 'active')
    .map((node) => ({
      id: node.ID,
      hostname: node.Description.Hostname,
      cpus: node.Description.Resources.NanoCPUs / 1e9,
      memoryBytes: node.Description.Resources.MemoryBytes,
      role: node.Spec.Role,
      self: node.ID === info.Swarm?.NodeID,
    }))
    .sort((a, b) => Number(b.self) - Number(a.self) || a.hostname.localeCompare(b.hostname));
  if (nodes.length === 0) throw new RuntimeUnavailableError('--on swarm: no node of the swarm is ready and active (`docker node ls`)');
  return nodes;
}
