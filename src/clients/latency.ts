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

  summary(): Latency {
    if (this.histogram.totalCount === 0) return { count: 0, meanUs: 0, p50Us: 0, p90Us: 0, p99Us: 0, maxUs: 0 };
    return {
      count: this.histogram.totalCount,
      meanUs: Math.round(this.histogram.mean * 10) / 10,
      p50Us: this.histogram.getValueAtPercentile(50),
      p90Us: this.histogram.getValueAtPercentile(90),
      p99Us: this.histogram.getValueAtPercentile(99),
      maxUs: this.histogram.maxValue,
    };
  }
}
