// The lab report as Markdown, rendered from results.json alone: the lab, the environment and the
// stored analysis (figures, verdicts, observations). Nothing here computes a figure or judges a
// claim, so the same results.json always renders the same report, byte for byte. Sections in
// reading order: the claim and its verdicts first, the method before the numbers, and the raw
// syscall tables last. Every column has one unit; what was not measured is a dash or words.
import {
  formatCount,
  formatKibibytesAsMebibytes,
  formatLimit,
  formatMicroseconds,
  formatPercent,
  formatQuantity,
  formatSeconds,
  formatShare,
  joinWords,
  plural,
  table,
} from '../shared/format.js';
import { renderExperimentMarkdown } from './experiment-markdown.js';
import { connectionCostsSection } from './connection-costs-markdown.js';
import { openLoopSection } from './open-loop-markdown.js';
import { verdictRulesOf, type ClientFigures, type Results, type SubjectFigures, type SyscallFigures } from '../shared/results.js';
import { clean, incompleteBanner, NONE, spreadCell } from './markdown-parts.js';

/** The calls whose per-round-trip figures tell the models apart, in this order, when seen. */
const TELLING_CALLS = [
  'accept4', 'accept', 'recvfrom', 'read', 'sendto', 'write', 'writev', 'select', 'pselect6', 'poll', 'ppoll',
  'epoll_wait', 'epoll_pwait', 'epoll_ctl', 'io_uring_enter', 'fcntl', 'clone', 'clone3', 'futex',
];

function orNone<T>(value: T | null | undefined, format: (value: T) => string): string {
  return value === null || value === undefined ? NONE : format(value);
}

function bullets(lines: readonly string[]): string {
  return lines.map((line) => `- ${clean(line)}`).join('\n');
}

function busyBanner(results: Results): string | null {
  const machine = results.analysis.machine;
  if (machine.busyRuns === 0 || !machine.worst) return null;
  const worst = machine.worst;
  return (
    `> **A BUSY MACHINE**: in ${machine.busyRuns} of ${plural(machine.runs, 'measured run')} other processes used a large part of the CPUs beside the server and its clients ` +
    `(the most: ${formatPercent(worst.otherPercent)} of a core, steal ${formatPercent(worst.stealPercent)}, load average ${formatQuantity(worst.loadAverage)} on ${plural(worst.cpus, 'CPU')}, during ${clean(worst.subject)} repetition ${worst.repetition + 1}). ` +
    'Figures of time and CPU may be distorted; a CPU verdict that fails on such a run is inconclusive.'
  );
}

function claimSection(results: Results): string {
  const rules = verdictRulesOf(results.lab);
  const head = `## Claim\n\n> ${clean(results.lab.claim)}`;
  if (rules.length === 0) return `${head}\n\nThis lab names no verdict rule: read the figures below.`;
  const judged = rules.map((rule) => {
    const verdicts = results.analysis.verdicts.filter((v) => v.rule === rule.rule);
    const measures = rule.client ? `, measuring the client \`${rule.client}\`` : '';
    const by = `the rule \`${rule.rule}\`${measures}`;
    if (verdicts.length === 0) return `The rule \`${rule.rule}\` found no server to judge: read the figures below.`;
    const rows = verdicts.map((v) => [clean(v.subject), v.verdict === 'holds' ? 'holds' : `**${v.verdict}**`, clean(v.measurement)]);
    return `${rules.length > 1 ? `By ${by}:\n\n` : ''}${table(['subject', 'verdict', 'measurement'], rows, 'text')}`;
  });
  const [only] = rules;
  const by =
    rules.length > 1
      ? `the rules ${joinWords(rules.map((r) => `\`${r.rule}\``))} (src/analysis/claims.ts), each judging its part of the claim,`
      : `the rule \`${only.rule}\`${only.client ? `, measuring the client \`${only.client}\`` : ''} (src/analysis/claims.ts),`;
  const note =
    `Verdicts by ${by} judged once when the lab ended and kept in results.json. ` +
    'A claim of several parts holds only when every part holds. A difference between servers counts only when the ranges of their repetitions do not overlap, with enough repetitions that this would happen by chance at most 5% of the time; otherwise it is inconclusive.';
  return `${head}\n\n${judged.join('\n\n')}\n\n${note}`;
}

/** What the servers ran on: each language runtime their ready lines announced, and each server of one's own as it ran. */
/** How the echo clients waited for replies: "io_uring (completions, a batch of sends and receives per io_uring_enter)" and/or "epoll"; null when no echo client said. */
function clientEngines(results: Results): string | null {
  const engines = [...new Set(results.runs.flatMap((run) => run.clients.flatMap((c) => (c.mode === 'echo' && c.result?.engine ? [c.result.engine] : []))))].sort();
  const named = engines.map((engine) => (engine === 'io_uring' ? 'io_uring (completions: a batch of sends and receives per io_uring_enter)' : 'epoll (readiness: epoll_wait, then recvfrom and sendto)'));
  return named.length ? named.join('; ') : null;
}

function serverRuntime(results: Results): string | null {
  const announced = [...new Set(results.runs.flatMap((run) => (run.serverRuntime !== null ? [run.serverRuntime] : [])))];
  const own = results.lab.variants.flatMap((v) => (v.own ? [`${v.label}: ${v.own.description}`] : []));
  const all = [...announced, ...own];
  return all.length ? all.join('; ') : null;
}

/** One line per server of one's own: what ran, what it claims, what judged it. */
function ownServerLines(results: Results): string[] {
  return results.lab.variants.flatMap((v) => {
    if (!v.own) return [];
    const judged =
      v.own.claims !== null
        ? `it claims to be ${v.own.claims} and is judged as ${v.own.claims} (its fingerprint by job: any read call reads, any write call writes)`
        : v.declared
          ? `it claims no model; its calls fit the fingerprints of ${joinWords(v.own.fits ?? [])}${v.own.evidence ? ` and ${v.own.evidence}` : ''}, and it is judged as ${v.declared.name}`
          : results.runs.some((run) => run.variant === v.label && run.trace !== null && run.error === null)
            ? `it claims no model, and its calls and traits fit none${v.own.evidence ? ` (${v.own.evidence})` : ''}: no rule judges it`
            : results.runs.some((run) => run.variant === v.label && run.error === null)
              ? 'it claims no model, and this lab counts no syscalls: nothing classifies it, and no rule judges it (give the model it claims to be: --as MODEL)'
              : 'it claims no model, and every run of it failed: no rule judges it';
    return [`- \`${v.label}\` is a server of its own: ${v.own.description}; ${judged}.`];
  });
}

/** Where a lab on a swarm ran: its nodes and, per role, the nodes that ran its containers. */
function swarmText(swarm: NonNullable<Results['environment']['swarm']>): string {
  const nodes = swarm.nodes.map((n) => `${n.hostname} (${n.role}, ${n.cpus} CPUs)`).join(', ');
  const roles = [...new Set(swarm.placement.map((p) => p.role))].map(
    (role) => `${role} containers on ${swarm.placement.filter((p) => p.role === role).map((p) => `${p.node} (${p.containers})`).join(', ')}`,
  );
  const one = swarm.nodes.length === 1 ? '; one node, so the clients shared the server\'s node' : '';
  return `${plural(swarm.nodes.length, 'node')}: ${nodes}; ${roles.join('; ')}${one}`;
}

function environmentSection(results: Results): string {
  const env = results.environment;
  const machine = results.analysis.machine;
  const engines = clientEngines(results);
  const rows = [
    ['runtime', env.runtime],
    ['kernel', env.kernel],
    ['servers ran on', serverRuntime(results) ?? 'not announced'],
    ['controller', `node ${env.node}`],
    ...(engines ? [['echo clients wait with', engines]] : []),
    ['CPUs', String(env.cpus)],
    ['host', env.hostname],
    ['tracer', env.tracer ?? 'none (no syscall counts)'],
    ...(env.container ? [['image', `${env.container.image} (${env.container.imageId.slice(0, 19)})`], ['engine', env.container.engine]] : []),
    ...(env.clientReplicas > 1 ? [['client processes', `${env.clientReplicas} per client of the lab`]] : []),
    ...(env.swarm ? [['swarm', swarmText(env.swarm)]] : []),
    [
      'the machine',
      machine.worst
        ? `other processes used at most ${formatPercent(machine.worst.otherPercent)} of a core beside a server and its clients (${machine.busyRuns} of ${plural(machine.runs, 'measured run')} busy)`
        : 'not measured',
    ],
    ['iolab', env.iolabVersion],
    ['started', results.startedAt],
    ['finished', results.finishedAt],
  ];
  return `## Environment\n\n${table(['', ''], rows.map(([k, v]) => [k, clean(v)]), 'text')}`;
}

function connectionsLine(results: Results): string {
  const lab = results.lab;
  const sweep = lab.sweep;
  const replicas = results.environment.clientReplicas;
  const each = lab.clients.map((client) => {
    const swept = sweep?.client === client.name;
    const count = swept ? `${sweep.connections.map(formatCount).join(', ')} (one value per run)` : formatCount(client.connections);
    const noun = (word: string) => (!swept && client.connections === 1 ? word : `${word}s`);
    const paced = client.rate !== undefined ? `, open-loop at ${formatCount(client.rate)} requests per second per connection (${formatCount(client.rate * client.connections)}/s in all), each timed from its scheduled send time` : '';
    return client.mode === 'echo'
      ? `\`${client.name}\`: ${count} echo ${noun('connection')}, each sending ${formatCount(client.messageSize)}-byte requests one at a time${paced}`
      : `\`${client.name}\`: ${count} idle ${noun('connection')}, then 1 probe connection that sends a ${formatCount(client.messageSize)}-byte request every 100 ms`;
  });
  const processes = replicas > 1 ? ` Each client ran as ${replicas} processes (--clients ${replicas}), each opening these connections: ${replicas} times as many in all.` : '';
  return `- Connections, opened in this order in every run: ${each.join('; ')}.${processes}`;
}

function nofileLine(results: Results): string {
  const limits = new Map(results.analysis.subjects.map((s) => [s.variant, s.limits?.nofileSoft ?? null]));
  const each = results.lab.variants.map((v) => {
    if (v.nofile !== null) return `${v.label} ${formatCount(v.nofile)}`;
    const seen = limits.get(v.label);
    return `${v.label} as the runtime gave it (${seen === undefined || seen === null ? 'not read' : formatCount(seen)})`;
  });
  return `- Each server's open-file limit (RLIMIT_NOFILE, soft = hard): ${each.join(', ')}.`;
}

function methodSection(results: Results): string {
  const lab = results.lab;
  const sizes = [...new Set(lab.clients.filter((c) => c.mode === 'echo').map((c) => c.messageSize))];
  const roundTrip = `- A round trip is one request of ${sizes.length ? joinWords(sizes.map((n) => formatCount(n)), 'or') : formatCount(lab.clients[0]?.messageSize ?? 64)} bytes and its whole reply, checked byte for byte (the server must send the same bytes back with a-z upper-cased). "Answered" counts the replies of the window and of the 250 ms after it, in every table and sentence alike.`;
  const lines = [
    roundTrip,
    connectionsLine(results),
    '- Warm-up: before its window, every connection makes one round trip (not counted), so that the window measures a server that has accepted and set up each connection; it ends when every connection is answered, or when no new reply came for 2 s (before the first) or 0.5 s (after one): a server that serves one client at a time never answers the rest.',
    nofileLine(results),
    ...ownServerLines(results),
    ...countingLines(results),
    '- Each run also records how busy the machine was during its window (/proc/stat), to tell when other processes took CPU from the server.',
    '- A run that failed is left out of every figure and listed at the end.',
  ];
  const description = lab.description ? `${clean(lab.description)}\n\n` : '';
  return `## Method\n\n${description}${lines.join('\n')}`;
}

/** How the runs were timed and counted: untraced, under the eBPF observer, under strace, or per server. */
function countingLines(results: Results): string[] {
  const lab = results.lab;
  const env = results.environment;
  const kind = env.tracerKind ?? (lab.traceRuns > 0 && env.tracer ? 'strace' : null);
  const runs = `- The lab runs each server ${plural(lab.repetitions, 'time')} for ${formatSeconds(lab.durationSeconds)} ("measure" runs, interleaved across servers). The tables give the median over those runs and, where there are several, [lowest–highest].`;
  const phases =
    "Calls before the window (connecting, warming up) are set-up, counted per connection; calls in the window are counted per round trip of that same window. The model's calls are those of the threads that run its code (each names itself `iolab:…`); the language runtime's own threads are counted apart.";
  const own = lab.variants.filter((v) => v.tracer !== undefined);
  const ownLine = own.length
    ? [`- Some servers run under a tracer of their own in their measured runs, to show what the tracer does to them: ${joinWords(own.map((v) => `${v.label} ${v.tracer === 'none' ? 'untraced' : `under ${v.tracer}`}`))}.`]
    : [];
  if (kind === 'bpf') {
    return [
      runs,
      `- Syscall counts come from those same runs: the eBPF observer (bpftrace) counts every call of the server's processes in the kernel, as it happens, and stops no thread (raw_syscalls:sys_enter and sys_exit; see src/tracer/bpf-program.ts). It costs the server a little on every call (bench/observer.sh measures how much). ${phases}`,
      "- Where each model waits: for each call, the share of the model's threads' time spent inside it, and asleep in it (switched off the CPU, not runnable: waiting for the kernel to have data, a connection or a completion). What is left is the thread's own code, or a wait for a CPU.",
      ...ownLine,
    ];
  }
  if (kind === 'strace') {
    return [
      runs.replace('("measure" runs', 'with no tracer attached ("measure" runs'),
      `- Syscall counts come from ${plural(lab.traceRuns, 'separate run')} of each server with strace attached ("trace" runs). strace stops the server at every call, so a traced run's pace says nothing about the model: those runs give counts only, never timings, and no time per call. ${phases}`,
      ...ownLine,
    ];
  }
  return [runs.replace('("measure" runs', 'with no tracer attached ("measure" runs'), ...(own.length ? ownLine : ['- No tracer was attached: no syscall counts.'])];
}

function summarySection(subjects: readonly SubjectFigures[]): string {
  // A processes column where some server forked (a process per connection).
  const forked = subjects.some((subject) => (subject.measure?.processesPeak ?? 1) > 1);
  const header = ['server', 'runs', 'round trips/s', 'p50', 'p90', 'p99', 'max', 'server CPU', 'client CPU', ...(forked ? ['processes'] : []), 'threads', 'peak fds', 'peak RSS'];
  const rows = subjects.map((subject) => {
    const m = subject.measure;
    const latency = m?.latency;
    return [
      subject.subject,
      String(m?.repetitions ?? 0),
      spreadCell(m?.throughput ?? null, formatCount),
      orNone(latency?.p50Us, formatMicroseconds),
      orNone(latency?.p90Us, formatMicroseconds),
      orNone(latency?.p99Us, formatMicroseconds),
      orNone(latency?.maxUs, formatMicroseconds),
      spreadCell(m?.cpuPercent ?? null, formatPercent),
      orNone(m?.clientCpuPercent, formatPercent),
      ...(forked ? [orNone(m?.processesPeak, formatCount)] : []),
      orNone(m?.threadsPeak, formatCount),
      orNone(m?.fdsPeak, formatCount),
      orNone(m?.peakRssKb, formatKibibytesAsMebibytes),
    ];
  });
  const note =
    'Round trips per second of every echo client together; latency of their round trips (each run\'s percentiles weighted by round trips, then the median over runs). Server CPU in percent of one core; client CPU: the busiest echo client\'s own (near 100%, the load generator may be what limits throughput). Processes, threads, fds and RSS: the peak of all runs (processes and threads of the server\'s whole process tree; RSS of its first process).';
  return `## Results\n\n${table(header, rows)}\n\n${note}`;
}

function clientRow(subject: string, client: ClientFigures): string[] {
  const echo = client.mode === 'echo';
  return [
    subject,
    client.name,
    formatCount(client.connections),
    echo ? formatCount(client.connectionsAnswered) : NONE,
    echo ? formatCount(client.requests.sent) : NONE,
    echo ? formatCount(client.requests.answered) : NONE,
    echo ? formatCount(client.requests.unanswered) : NONE,
    formatCount(client.closedByServer),
    client.probe ? `${formatCount(client.probe.answered)} of ${formatCount(client.probe.sent)}` : NONE,
    client.probe ? orNone(client.probe.p50Us, formatMicroseconds) : NONE,
  ];
}

function clientsSection(subjects: readonly SubjectFigures[]): string {
  const header = ['server', 'client', 'connected', 'connections answered', 'requests', 'answered', 'unanswered', 'closed by server', 'probe answered', 'probe p50'];
  const rows = subjects.flatMap((subject) => (subject.measure?.clients ?? []).map((client) => clientRow(subject.subject, client)));
  const note =
    'Per client of the lab (its processes together): connected and connections answered are medians over the runs; requests are summed over them. Connected means the TCP handshake completed, which the kernel does before, and without, the server\'s accept: a server at its fd ceiling leaves the rest waiting in its backlog. A hold client\'s connections sit idle after the warm-up; its probe asks every 100 ms.';
  return `## Clients\n\n${rows.length ? table(header, rows) : 'No client completed a run.'}\n\n${note}`;
}

function tellingColumns(rows: readonly SyscallFigures[][]): string[] {
  return TELLING_CALLS.filter((name) => rows.some((list) => list.some((s) => s.syscall === name)));
}

function failedCell(rows: readonly SyscallFigures[]): string {
  const failing = rows.filter((s) => s.errors > 0 && s.errors / s.calls >= 0.01);
  return failing.length ? failing.map((s) => `${s.syscall} ${formatShare(s.errors / s.calls)}`).join(', ') : NONE;
}

function perRoundTripSection(subjects: readonly SubjectFigures[]): string | null {
  const traced = subjects.filter((s) => s.trace && s.trace.roundTrips > 0);
  if (traced.length === 0) return null;
  const columns = tellingColumns(traced.map((s) => s.trace!.window.serving));
  const header = ['server', 'round trips', 'all its calls', ...columns, 'failed'];
  const rows = traced.map((subject) => {
    const trace = subject.trace!;
    const of = (name: string) => trace.window.serving.find((s) => s.syscall === name);
    return [
      subject.subject,
      formatCount(trace.roundTrips),
      formatQuantity(trace.window.servingCalls / trace.roundTrips),
      ...columns.map((name) => orNone(of(name)?.perRoundTrip, formatQuantity)),
      failedCell(trace.window.serving),
    ];
  });
  const note =
    'Calls per round trip made by the model\'s own threads in the traced windows (the runtime\'s threads are counted apart, see Syscalls). "failed": the share of those calls that returned an error (on a non-blocking socket, mostly EAGAIN: nothing there yet).';
  return `## Calls per round trip\n\n${table(header, rows)}\n\n${note}`;
}

function perConnectionSection(subjects: readonly SubjectFigures[]): string | null {
  const traced = subjects.filter((s) => s.trace && s.trace.connections > 0);
  if (traced.length === 0) return null;
  const columns = tellingColumns(traced.map((s) => s.trace!.setup.serving));
  const header = ['server', 'connections', ...columns];
  const rows = traced.map((subject) => {
    const trace = subject.trace!;
    const of = (name: string) => trace.setup.serving.find((s) => s.syscall === name);
    return [subject.subject, formatCount(trace.connections), ...columns.map((name) => orNone(of(name)?.perConnection, formatQuantity))];
  });
  const note =
    'Calls per connection made by the model\'s own threads before the window: accepting each connection, starting its thread, registering it, and its warm-up round trip.';
  return `## Calls per connection (set-up)\n\n${table(header, rows)}\n\n${note}`;
}

/** The calls each model's threads spent the most time in, as columns: enough to show every model's wait. */
const WAIT_COLUMNS = 6;

function waitsSection(subjects: readonly SubjectFigures[]): string | null {
  const timed = subjects.filter((s) => s.trace?.waits);
  if (timed.length === 0) return null;
  const header = ['server', 'threads', 'asleep in a call', 'where (asleep, of the threads\' time)', 'inside calls, on CPU', 'outside any call'];
  const rows = timed.map((subject) => {
    const waits = subject.trace!.waits!;
    const asleep = waits.rows.reduce((total, r) => total + r.blockedShare, 0);
    const inside = waits.rows.reduce((total, r) => total + r.insideShare, 0);
    const where = [...waits.rows]
      .filter((r) => r.blockedShare >= 0.0005)
      .sort((a, b) => b.blockedShare - a.blockedShare)
      .slice(0, WAIT_COLUMNS)
      .map((r) => `${r.syscall} ${formatShare(r.blockedShare)}${r.mainWaitOf > 1 ? ` (longest for ${r.mainWaitOf} threads)` : ''}`);
    return [
      subject.subject,
      formatCount(waits.threads),
      formatShare(asleep),
      where.length ? where.join(', ') : 'none',
      formatShare(Math.max(0, inside - asleep)),
      formatShare(Math.max(0, 1 - inside)),
    ];
  });
  const note =
    "Phase 1 of a read, waiting for data, is where a thread sleeps; phase 2, copying it, is time inside the call on the CPU. Shares are of the model's threads' time in the measured windows (threads × window), from the eBPF observer: asleep in a call (switched out, not runnable), inside calls but running (the kernel's work: copying, the TCP stack), outside any call (the model's own code, or waiting for a CPU). \"longest for N threads\": the call that N threads slept in longest.";
  return `## Where each model waits\n\n${table(header, rows)}\n\n${note}`;
}

function uringSection(subjects: readonly SubjectFigures[]): string | null {
  const with_ = subjects.filter((s) => s.trace?.uring && s.trace.uring.length > 0);
  if (with_.length === 0) return null;
  const rows = with_.flatMap((subject) =>
    subject.trace!.uring!.map((op) => [
      subject.subject,
      op.opcode,
      formatCount(op.submitted),
      orNone(subject.trace!.roundTrips > 0 ? op.submitted / subject.trace!.roundTrips : null, formatQuantity),
      op.failed ? `${formatCount(op.failed)} (${errnosCell(op)})` : '0',
    ]),
  );
  const note =
    'The requests the kernel ran for the server through io_uring in the measured windows, by opcode (tracepoints io_uring:io_uring_submit_req and io_uring_complete): the accepts, receives and sends that strace never sees, because the server makes no such system call; it only enters the ring (io_uring_enter).';
  return `## io_uring requests (kernel side)\n\n${table(['server', 'opcode', 'submitted', 'per round trip', 'failed'], rows)}\n\n${note}`;
}

function limitsSection(subjects: readonly SubjectFigures[]): string {
  const rows = subjects.map((subject) => {
    const l = subject.limits;
    return [
      subject.subject,
      orNone(l, (x) => formatLimit(x.nofileSoft)),
      orNone(l, (x) => formatLimit(x.nofileHard)),
      orNone(l, (x) => formatLimit(x.fdSetSize)),
      orNone(l, (x) => formatLimit(x.nrOpen)),
      orNone(l, (x) => formatLimit(x.fileMax)),
    ];
  });
  const header = ['server', 'nofile soft', 'nofile hard', 'FD_SETSIZE', 'fs.nr_open', 'fs.file-max'];
  return `## Limits\n\n${table(header, rows)}\n\nnofile: the server's RLIMIT_NOFILE as /proc/PID/limits showed it; FD_SETSIZE: the fds glibc's select can watch (below it); fs.nr_open: the largest nofile a process may get; fs.file-max: open files system-wide.`;
}

function observationsSection(results: Results): string {
  const observations = results.analysis.observations;
  return `## Observations\n\n${observations.length ? bullets(observations.map((o) => o.text)) : 'Nothing stands out.'}`;
}

/** "EAGAIN 7,660, ECONNRESET 2", most first; a dash for none. */
function errnosCell(row: { errnos: Record<string, number> } | undefined): string {
  const errnos = Object.entries(row?.errnos ?? {}).sort((a, b) => b[1] - a[1]);
  return errnos.length ? errnos.map(([code, n]) => `${code} ${formatCount(n)}`).join(', ') : NONE;
}

/** One row per call: its set-up calls and failures, its window calls and failures (and per round trip). */
function callRows(rows: readonly SyscallFigures[], setup: readonly SyscallFigures[], withRate: boolean): string[][] {
  const names = [...new Set([...setup.map((s) => s.syscall), ...rows.map((s) => s.syscall)])];
  const inWindow = (name: string) => rows.find((s) => s.syscall === name);
  const inSetup = (name: string) => setup.find((s) => s.syscall === name);
  return names
    .sort((a, b) => (inWindow(b)?.calls ?? 0) - (inWindow(a)?.calls ?? 0) || (inSetup(b)?.calls ?? 0) - (inSetup(a)?.calls ?? 0) || a.localeCompare(b))
    .map((name) => {
      const w = inWindow(name);
      const s = inSetup(name);
      const row = [name, s ? formatCount(s.calls) : '0', errnosCell(s), w ? formatCount(w.calls) : '0', errnosCell(w)];
      if (withRate) row.push(orNone(w?.perRoundTrip, formatQuantity));
      return row;
    });
}

function syscallTable(subject: SubjectFigures, runtime: string | null): string {
  const trace = subject.trace!;
  const intro =
    `${plural(trace.runs, 'counted run')}: ${plural(trace.connections, 'connection')} set up, ${plural(trace.roundTrips, 'round trip')} in ${formatSeconds(trace.windowSeconds)} of window. ` +
    `The model's threads: ${formatCount(trace.threads.serving)}; the runtime's: ${formatCount(trace.threads.runtime)}. Fingerprint: ${trace.fingerprint?.verdict ?? 'no model to check it against'}.`;
  const serving = table(['syscall', 'set-up calls', 'set-up failed', 'window calls', 'window failed', 'per round trip'], callRows(trace.window.serving, trace.setup.serving, true));
  if (trace.window.runtime.length === 0 && trace.setup.runtime.length === 0) return `### ${subject.subject}\n\n${intro}\n\n${serving}`;
  const who =
    runtime?.startsWith('node')
      ? "Node's own threads: V8's platform workers (garbage collection and compilation: futex, mprotect, madvise, munmap) and, while a new thread starts, Node loading modules and running that thread's event loop (statx, openat, read, epoll_pwait) before the thread names itself."
      : "The runtime's own threads (those that never named themselves as the model's).";
  const runtimeTable = table(['syscall', 'set-up calls', 'set-up failed', 'window calls', 'window failed'], callRows(trace.window.runtime, trace.setup.runtime, false));
  return `### ${subject.subject}\n\n${intro}\n\nThe model's threads:\n\n${serving}\n\n${who}\n\n${runtimeTable}`;
}

function syscallsSection(results: Results): string | null {
  const traced = results.analysis.subjects.filter((s) => s.trace);
  if (traced.length === 0) return null;
  const by = traced.every((s) => s.trace!.tracer === 'bpf') ? 'eBPF' : 'strace -f';
  return `## Syscalls per server (${by})\n\n${traced.map((s) => syscallTable(s, serverRuntime(results))).join('\n\n')}`;
}

function failedRunsSection(results: Results): string | null {
  const failed = results.analysis.failedRuns;
  if (failed.length === 0) return null;
  const lines = failed.map((run) => {
    // results.json counts repetitions from 0; people count from 1.
    const which = run.phase === 'trace' ? `trace run ${run.repetition + 1} of ${results.lab.traceRuns}` : `measure run ${run.repetition + 1} of ${results.lab.repetitions}`;
    // The runner copies a client's error into the run's; don't say it twice.
    const clients = run.clientErrors
      .filter((c) => !run.error?.includes(c.error))
      .map((c) => `\n  - client ${c.client}: ${clean(c.error)}`)
      .join('');
    return `- ${clean(run.subject)}, ${which}: ${clean(run.error ?? 'a client has no result')}${clients}`;
  });
  return `## Failed runs\n\nLeft out of every figure above.\n\n${lines.join('\n')}`;
}

/** report.md for results that carry their analysis (an experiment lab's: experiment-markdown.ts). Pure: the same results give the same text. */
export function renderMarkdown(results: Results): string {
  if (results.experiment) return renderExperimentMarkdown(results);
  const subjects = results.analysis.subjects;
  const sections = [
    `# ${clean(results.lab.title)}`,
    incompleteBanner(results),
    busyBanner(results),
    `Lab \`${results.lab.name}\` (${results.lab.file}): ${plural(results.runs.length, 'run')}, ${results.startedAt} to ${results.finishedAt}.`,
    claimSection(results),
    methodSection(results),
    environmentSection(results),
    summarySection(subjects),
    clientsSection(subjects),
    openLoopSection(results),
    connectionCostsSection(results),
    perRoundTripSection(subjects),
    perConnectionSection(subjects),
    waitsSection(subjects),
    uringSection(subjects),
    limitsSection(subjects),
    observationsSection(results),
    syscallsSection(results),
    failedRunsSection(results),
  ];
  return `${sections.filter((s): s is string => s !== null).join('\n\n')}\n`;
}
