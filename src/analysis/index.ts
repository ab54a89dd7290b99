// The analysis of a lab: from what the runner measured to what results.json stores and the report
// shows. It runs once, when a lab ends (or when results of an older kind are analysed anew): the
// servers of one's own that claim no model classified, the figures of every row, the verdicts of
// the lab's rule, the observations, the failed runs and the machine's load, and (a lab that sweeps an
// idle crowd) what a connection costs each server. Everything downstream
// reads the stored analysis and never judges again.
import type { Measurement, Results } from '../shared/results.js';
import { judgeClaim } from './claims.js';
import { connectionCosts } from './connection-costs.js';
import { analyseExperiment } from './experiments.js';
import { failedRuns, subjectFigures, subjectsOf } from './figures.js';
import { machineFigures } from './machine.js';
import { observe } from './observations.js';
import { classifyOwnServers } from './own-servers.js';

/** Adds the analysis to a measurement. Pure: the same measurement always gives the same results. An experiment lab's: see experiments.ts. */
export function analyse(measured: Measurement): Results {
  if (measured.experiment) return analyseExperiment(measured);
  const measurement = classifyOwnServers(measured);
  const subjects = subjectsOf(measurement).map((subject) => subjectFigures(measurement, subject));
  const costs = connectionCosts(measurement);
  return {
    ...measurement,
    analysis: {
      subjects,
      verdicts: judgeClaim(measurement, subjects),
      observations: observe(measurement, subjects),
      failedRuns: failedRuns(measurement),
      machine: machineFigures(measurement),
      ...(costs ? { connectionCosts: costs } : {}),
    },
  };
}
