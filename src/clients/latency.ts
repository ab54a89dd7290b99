// Round-trip latencies in an HDR histogram: recording costs the same whatever the value, memory
// stays bounded however many round trips a run makes, and percentiles keep 3 significant digits.
import { build } from 'hdr-histogram-js';
import type { Latency } from '../shared/results.js';

export class LatencyRecorder {
  private readonly histogram = build({ numberOfSignificantValueDigits: 3 });

  recordMicroseconds(microseconds: number): void {
    this.histogram.recordValue(Math.round(microseconds));
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  /**
   * Count, mean and percentiles in µs. A percentile is the top of its bucket (within 0.1%, 3
   * significant digits), capped at the largest value recorded, so that p99.9 never reads above max.
   */
  summary(): Latency {
    if (this.histogram.totalCount === 0) return { count: 0, meanUs: 0, p50Us: 0, p90Us: 0, p99Us: 0, p999Us: 0, maxUs: 0 };
    const maxUs = this.histogram.maxValue;
    const at = (percentile: number) => Math.min(this.histogram.getValueAtPercentile(percentile), maxUs);
    return {
      count: this.histogram.totalCount,
      meanUs: Math.round(this.histogram.mean * 10) / 10,
      p50Us: at(50),
      p90Us: at(90),
      p99Us: at(99),
      p999Us: at(99.9),
      maxUs,
    };
  }
}
