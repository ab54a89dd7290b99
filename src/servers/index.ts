// The registry of IO models: `iolab models` lists it, labs name models from it, the contract
// tests run over all of it.
import { blocking } from './blocking.js';
import { epoll } from './epoll.js';
import type { ServerModel } from './model.js';
import { nonblocking } from './nonblocking.js';
import { select } from './select.js';
import { UsageError } from '../errors.js';

export { DEFAULT_SERVE_OPTIONS, type Fingerprint, type ServeOptions, type ServerModel } from './model.js';

export const models: readonly ServerModel[] = [blocking, nonblocking, select, epoll];

export function findModel(name: string): ServerModel {
  const model = models.find((m) => m.name === name);
  if (!model) {
    throw new UsageError(`unknown model ${JSON.stringify(name)}; the models are: ${models.map((m) => m.name).join(', ')}`);
  }
  return model;
}
