// The registry of IO models: `iolab models` lists it, labs name models from it, the contract
// tests run over all of it.
import { blocking } from './blocking.js';
import { coroutine } from './coroutine.js';
import { epoll } from './epoll.js';
import { epollEdgeTriggered } from './epoll-et.js';
import { eventloop } from './eventloop.js';
import type { ServerModel } from './model.js';
import { nonblocking } from './nonblocking.js';
import { poll } from './poll.js';
import { pool } from './pool.js';
import { pythonModels } from './python.js';
import { select } from './select.js';
import { sigio } from './sigio.js';
import { threaded } from './threaded.js';
import { uring } from './uring.js';
import { UsageError } from '../errors.js';

export { declarationOf, DEFAULT_SERVE_OPTIONS, programCommand, pythonInterpreter, type Fingerprint, type ProgramModel, type ServeOptions, type ServerModel, type TypeScriptModel } from './model.js';

/** In the order the course teaches them: the TypeScript models, then the course's Python servers. */
export const models: readonly ServerModel[] = [
  blocking,
  threaded,
  pool,
  nonblocking,
  select,
  poll,
  epoll,
  epollEdgeTriggered,
  sigio,
  uring,
  coroutine,
  eventloop,
  ...pythonModels,
];

export function findModel(name: string): ServerModel {
  const model = models.find((m) => m.name === name);
  if (!model) {
    throw new UsageError(`unknown model ${JSON.stringify(name)}; the models are: ${models.map((m) => m.name).join(', ')}`);
  }
  return model;
}
