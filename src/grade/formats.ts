// The grade, written for its readers: Markdown feedback for the student, Gradescope's
// results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/), JUnit XML for a
// CI, and the grade itself as JSON.
import { create } from 'xmlbuilder2';
import { table } from '../shared/format.js';
import type { GradeReport, Hint } from './report.js';

export const FORMATS = ['markdown', 'gradescope', 'junit', 'json'] as const;
export type Format = (typeof FORMATS)[number];

/** The file each format is written to under --out. */
export const FORMAT_FILES: Record<Format, string> = {
  markdown: 'feedback.md',
  gradescope: 'results.json',
  junit: 'junit.xml',
  json: 'grade.json',
};

const points = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

/** Every hint once, in the order the checks gave them. */
export function uniqueHints(report: GradeReport): Hint[] {
  const seen = new Map<string, Hint>();
  for (const check of report.checks) for (const hint of check.hints) if (!seen.has(hint.id)) seen.set(hint.id, hint);
  return [...seen.values()];
}

function sandboxLine(report: GradeReport): string {
  const limits = report.sandbox.limits;
  if (report.sandbox.runtime === 'local') return `Graded as local processes (${report.sandbox.description}): NOTHING WAS ISOLATED.`;
  if (!limits) return `Graded in Docker (${report.sandbox.description}).`;
  return (
    `Graded in a container (${report.sandbox.description}): user ${limits.user}, capabilities ${limits.capabilities}` +
    `${limits.noNewPrivileges ? ', no-new-privileges' : ''}, ${limits.memoryMb} MB memory, ${limits.cpus} CPU, ` +
    `${limits.pids} processes+threads, ${limits.nofile} open files, ${limits.readOnlyRoot ? `read-only root with ${limits.tmpfsMb} MB /tmp` : 'writable root'}, ` +
    `network ${limits.network}.`
  );
}

/**
 * A check's feedback as Markdown: a sentence (capitalised, with its full stop) when it is one;
 * a compiler's or make's output (a file name first, "server.c:4:14: error: ...", or several
 * lines with gcc's caret lines) as a code block, exactly as the tool wrote it.
 */
export function feedbackMarkdown(feedback: string): string[] {
  const [first, ...rest] = feedback.split('\n');
  if (rest.length > 0 || /^\S+:\d+/.test(first) || /^make: /.test(first)) return ['```', feedback, '```'];
  const capitalised = /^[a-z]+\b[^:./]/.test(first) ? first.charAt(0).toUpperCase() + first.slice(1) : first;
  return [/[.!?]$/.test(capitalised) ? capitalised : `${capitalised}.`];
}

/** One check as text: verdict, feedback, evidence. */
function checkText(check: GradeReport['checks'][number]): string {
  const lines = [`${check.passed ? 'PASSED' : 'FAILED'}: ${check.feedback}`];
  for (const line of check.evidence) lines.push(`evidence: ${line}`);
  for (const hint of check.hints) lines.push(`hint (${hint.id}): ${hint.text}`);
  return lines.join('\n');
}

const NOT_A_ZERO = 'This is not a zero: the grader could not grade this submission. Grade it again once the cause is fixed.';

function notGradableText(report: GradeReport): string {
  return `NOT GRADABLE: ${report.notGradableReason}\n${NOT_A_ZERO}`;
}

export function toMarkdown(report: GradeReport): string {
  const out: string[] = [`# ${report.exercise.title}: ${report.submission.name}`, ''];
  if (report.status === 'not-gradable') {
    out.push(`**Not gradable.** ${report.notGradableReason}`, '', NOT_A_ZERO, '');
  } else {
    out.push(`**Score: ${points(report.score)} / ${points(report.maxScore)}**`, '');
    out.push(`Exercise \`${report.exercise.id}\` asks for the **${report.exercise.model}** model. Submission: ${report.submission.description ?? 'none found'}.`, '');
    const rows = report.checks.map((check) => [check.title, `${points(check.points)} / ${points(check.maxPoints)}`, check.passed ? 'passed' : '**failed**']);
    out.push(table(['check', 'points', 'result'], rows, 'text'), '');
    for (const check of report.checks) {
      out.push(`## ${check.passed ? 'Passed' : 'Failed'}: ${check.title}`, '', ...feedbackMarkdown(check.feedback), '');
      for (const line of check.evidence) out.push(`- evidence: ${line}`);
      if (check.evidence.length) out.push('');
    }
    const hints = uniqueHints(report);
    if (hints.length > 0) {
      out.push('## Hints', '');
      for (const hint of hints) out.push(`- **${hint.id}**: ${hint.text}`);
      out.push('');
    }
    if (report.timeLimit.ranOut) {
      out.push(`The grading's time limit of ${report.timeLimit.seconds} s ran out: the checks it finished keep their scores; the ones it did not say so.`, '');
    }
    if (report.server.restarts > 0) out.push(`The server exited during the checks and was started again ${report.server.restarts} time(s).`, '');
    if (report.server.output.length > 0 && report.checks.some((c) => !c.passed)) {
      out.push('The last lines your server wrote:', '', '```', ...report.server.output.slice(-10), '```', '');
    }
  }
  out.push(`_${sandboxLine(report)} ${report.durationSeconds} s._`, '');
  return out.join('\n');
}

/** Gradescope's results.json. A not-gradable run has no score and no tests: Gradescope then shows an autograder failure, not a zero. */
export function toGradescope(report: GradeReport): object {
  if (report.status === 'not-gradable') {
    return { execution_time: Math.round(report.durationSeconds), output: notGradableText(report), extra_data: { gradable: false } };
  }
  const hints = uniqueHints(report);
  const summary = [
    `${report.exercise.title}: ${points(report.score)} / ${points(report.maxScore)}`,
    ...(hints.length ? ['', 'Hints:', ...hints.map((h) => `- ${h.id}: ${h.text}`)] : []),
    '',
    sandboxLine(report),
  ].join('\n');
  return {
    score: report.score,
    execution_time: Math.round(report.durationSeconds),
    output: summary,
    visibility: 'visible',
    stdout_visibility: 'hidden',
    tests: report.checks.map((check, index) => ({
      name: check.title,
      number: String(index + 1),
      score: check.points,
      max_score: check.maxPoints,
      status: check.passed ? 'passed' : 'failed',
      output: checkText(check),
      tags: [check.check],
      visibility: 'visible',
    })),
    extra_data: { gradable: true, exercise: report.exercise.id, model: report.exercise.model },
  };
}

export function toJunit(report: GradeReport): string {
  const root = create({ version: '1.0', encoding: 'UTF-8' }).ele('testsuites', { name: `iolab grade ${report.exercise.id}` });
  const failures = report.checks.filter((c) => !c.passed).length;
  const suite = root.ele('testsuite', {
    name: `${report.exercise.id}: ${report.submission.name}`,
    tests: String(Math.max(report.checks.length, 1)),
    failures: String(failures),
    errors: report.status === 'not-gradable' ? '1' : '0',
    time: String(report.durationSeconds),
    timestamp: report.startedAt,
  });
  suite.ele('properties').ele('property', { name: 'score', value: `${points(report.score)}/${points(report.maxScore)}` }).up().ele('property', { name: 'sandbox', value: sandboxLine(report) });
  if (report.status === 'not-gradable') {
    suite.ele('testcase', { name: 'grading', classname: report.exercise.id }).ele('error', { message: 'not gradable' }).txt(notGradableText(report));
  }
  for (const check of report.checks) {
    const testcase = suite.ele('testcase', { name: `${check.title} (${points(check.points)}/${points(check.maxPoints)} points)`, classname: `${report.exercise.id}.${check.check}` });
    if (!check.passed) testcase.ele('failure', { message: check.feedback }).txt(checkText(check));
    else testcase.ele('system-out').txt(checkText(check));
  }
  return root.end({ prettyPrint: true });
}

export function render(report: GradeReport, format: Format): string {
  switch (format) {
    case 'markdown':
      return toMarkdown(report);
    case 'gradescope':
      return `${JSON.stringify(toGradescope(report), null, 2)}\n`;
    case 'junit':
      return `${toJunit(report)}\n`;
    case 'json':
      return `${JSON.stringify(report, null, 2)}\n`;
  }
}
