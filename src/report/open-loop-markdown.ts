// The report's section on open-loop load (clients with a `rate`, src/clients/rate.ts): per server
// and client, the rate offered and achieved, the latency from each request's scheduled send time
// beside the latency from its actual send, and what could not be sent on time. Rendered from the
// stored figures (ClientFigures.openLoop and .latency) alone, like the rest of the report.
import { formatCount, formatMicroseconds, table } from '../shared/format.js';
import type { Results } from '../shared/results.js';
import { NONE, spreadCell } from './markdown-parts.js';

/** The "Open-loop load" section; null when no client of the lab ran open-loop. */
export function openLoopSection(results: Results): string | null {
  const rows = results.analysis.subjects.flatMap((subject) =>
    (subject.measure?.clients ?? []).flatMap((client) => {
      const open = client.openLoop;
      if (!open) return [];
      const latency = client.latency;
      const us = (value: number | undefined) => (value === undefined ? NONE : formatMicroseconds(value));
      return [
        [
          subject.subject,
          client.name,
          `${formatCount(open.offeredPerSecond)}/s`,
          spreadCell(open.achievedPerSecond, (n) => `${formatCount(n)}/s`),
          us(latency?.p50Us),
          us(latency?.p99Us),
          us(latency?.p999Us),
          us(latency?.maxUs),
          us(open.serviceLatency?.p99Us),
          us(open.sendLagP99Us),
          formatCount(open.sentLate),
          formatCount(open.notSent),
          formatCount(open.lowerBounds),
        ],
      ];
    }),
  );
  if (rows.length === 0) return null;
  const header = ['server', 'client', 'offered', 'achieved', 'p50', 'p99', 'p99.9', 'max', 'p99 from the send', "client's send lag p99", 'sent late', 'never sent', 'no reply at the end'];
  const note =
    "Open-loop clients send each connection's requests on a schedule (request k at t0 + k/rate, the connections' t0 spread over one interval), one in flight per connection: a request whose slot comes while the reply before it is awaited is sent late, when that reply comes (wrk2's schedule). " +
    'p50 to max are measured from each request\'s scheduled send time, so a request that waited behind another counts its wait (the correction for coordinated omission); "p99 from the send" is what a closed-loop client would report, timed from the actual send. ' +
    'A request scheduled in the window with no reply when the client stopped (after its 250 ms drain) counts at its wait so far, a lower bound: a connection the server never serves stays in the percentiles. ' +
    "The client's send lag: how late the client itself sent the requests it could send on time (its timer, its loop, a CPU to run on); it is part of every latency above, whatever the server. " +
    'Offered: the rate times the connections (median over runs); achieved: round trips of the window per second; latencies: medians over runs; counts: summed over runs.';
  return `## Open-loop load\n\n${table(header, rows)}\n\n${note}`;
}
