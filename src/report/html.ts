// A lab's report as one HTML page (report.html beside report.md): the claim with the chart that
// makes it and the verdicts beside it, a timeline of each model's threads, supporting charts, and
// below them the whole Markdown report (its tables) rendered as HTML. The page needs nothing
// from the network: Vega, Vega-Lite and vega-embed (https://vega.github.io/) are inlined, and the
// charts are Vega-Lite specifications (src/report/charts.ts) rendered in the browser as SVG.
//
// Vega-Lite was chosen because a chart is a small declarative JSON document, which a student can
// read next to the numbers it draws (in the page's source), and because its SVG output can
// be checked mark by mark in a test. Every text from results.json is escaped; raw HTML in the
// Markdown (a server's log line, say) is shown as text, not interpreted.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Marked } from 'marked';
import { verdictRulesOf, type Results } from '../shared/results.js';
import type { ClaimVerdict } from '../shared/verdicts.js';
import { plural } from '../shared/format.js';
import { chartsOf, VERDICT_COLOURS, type Chart } from './charts.js';
import { incompleteBanner } from './markdown-parts.js';
import { renderMarkdown } from './markdown.js';
import { timelinesOf } from './timelines.js';

const require = createRequire(import.meta.url);

/** The libraries the page inlines, in load order: [package, file in the directory of its main module]. */
const LIBRARIES = [
  ['vega', 'vega.min.js'],
  ['vega-lite', 'vega-lite.min.js'],
  ['vega-embed', 'vega-embed.min.js'],
] as const;

let libraryCode: string | null = null;

/** The three libraries' minified builds, read once from node_modules. Throws when one is missing (a broken install). */
function libraries(): string {
  libraryCode ??= LIBRARIES.map(([pkg, file]) => `<script>${readFileSync(join(dirname(require.resolve(pkg)), file), 'utf8')}</script>`).join('\n');
  return libraryCode;
}

/** Text for HTML content or a double-quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A link the page may carry: to the web, or relative (another file of the run); no other scheme (javascript:, file:, data:). */
function linkable(href: string): boolean {
  return /^https?:\/\//i.test(href) || !/^[a-z][a-z0-9+.-]*:/i.test(href);
}

/**
 * Markdown to HTML. Text in the Markdown may come from the outside world (a server's error
 * message in a failed run, a lab file's claim): raw HTML in it is shown as text, an image as its
 * Markdown (a page that works offline loads nothing), and a link of another scheme than http(s)
 * as its Markdown too. (A renderer that returns false leaves the token to marked's own.)
 */
const markdown = new Marked({
  gfm: true,
  renderer: {
    html: ({ text }) => escapeHtml(text),
    image: ({ raw }) => escapeHtml(raw),
    link: ({ href, raw }) => (linkable(href) ? false : escapeHtml(raw)),
  },
});

export function markdownToHtml(text: string): string {
  return markdown.parse(text, { async: false });
}

/**
 * What the page may do: run its own inline scripts (Vega compiles its expressions with Function,
 * hence unsafe-eval), use inline style, show data: and blob: images (a chart saved as PNG); it
 * may fetch nothing.
 */
const CSP = "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:";

const STYLE = `
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 36px; }
.meta { color: #59636e; margin: 0 0 12px; }
blockquote { margin: 8px 0; padding: 6px 12px; border-left: 4px solid #d4a72c; background: #fff8c5; }
.claim-text { font-size: 17px; }
.figure-row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; margin: 18px 0 28px; }
figure { margin: 0; flex: 0 1 auto; min-width: 0; } figcaption { color: #59636e; max-width: 700px; font-size: 13px; }
figure h3 { margin: 0 0 6px; font-size: 16px; }
.verdicts { flex: 1 1 300px; display: flex; flex-direction: column; gap: 8px; }
.verdict { border: 1px solid #d0d7de; border-left-width: 5px; border-radius: 6px; padding: 6px 10px; font-size: 13px; }
.verdict .badge { color: #fff; border-radius: 10px; padding: 0 8px; font-weight: 600; white-space: nowrap; }
.verdict p { margin: 4px 0 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; } th { background: #f6f8fa; } td { font-variant-numeric: tabular-nums; }
code { background: #f6f8fa; padding: 0 4px; border-radius: 4px; }
.note { color: #59636e; font-style: italic; }
.chart-error { color: #cf222e; }
`;

/** Renders each chart of the page once the libraries are loaded; a failure is shown in place of the chart and on the console. */
const BOOT = `
for (const element of document.querySelectorAll('[data-chart]')) {
  const spec = JSON.parse(document.getElementById('spec-' + element.dataset.chart).textContent);
  // No "View Source": vega-embed writes the spec into a new window unescaped, and a spec carries text from the outside world (thread names).
  vegaEmbed(element, spec, { renderer: 'svg', actions: { export: true, source: false, compiled: false, editor: false } })
    .then(() => { element.dataset.rendered = 'true'; })
    .catch((error) => { element.textContent = 'This chart failed to render: ' + error.message; element.className = 'chart-error'; console.error(error); });
}
`;

function verdictCard(verdict: ClaimVerdict): string {
  const colour = VERDICT_COLOURS[verdict.verdict];
  return `<div class="verdict" style="border-left-color:${colour}"><span class="badge" style="background:${colour}">${escapeHtml(verdict.verdict)}</span> <strong>${escapeHtml(verdict.subject)}</strong><p>${escapeHtml(verdict.measurement)}</p></div>`;
}

function figure(chart: Chart): string {
  return `<figure><h3>${escapeHtml(chart.title)}</h3><div class="chart" data-chart="${chart.id}"></div><figcaption>${escapeHtml(chart.caption)}</figcaption></figure>`;
}

/** A JSON document inside a <script> element: "<" escaped, so that no "</script>" can end it early. */
function specScript(chart: Chart): string {
  return `<script type="application/json" id="spec-${chart.id}">${JSON.stringify(chart.spec).replace(/</g, '\\u003c')}</script>`;
}

/** The claim: each chart that makes it with the verdicts it shows beside it; verdicts of a rule without a chart on their own. */
function claimSection(results: Results, charts: readonly Chart[]): string {
  const verdicts = results.analysis.verdicts;
  const shown = new Set<ClaimVerdict>();
  const cardsOf = (rules: readonly string[], shows: (v: ClaimVerdict) => boolean = () => true) => {
    const cards = verdicts.filter((v) => rules.includes(v.rule) && shows(v) && !shown.has(v));
    cards.forEach((v) => shown.add(v));
    return cards.length ? `<div class="verdicts">${cards.map(verdictCard).join('')}</div>` : '';
  };
  const blocks = charts.filter((c) => c.rules.length > 0).map((c) => `<div class="figure-row">${figure(c)}${cardsOf(c.rules, c.shows)}</div>`);
  const rest = [...new Set(verdicts.filter((v) => !shown.has(v)).map((v) => v.rule))].map(
    (rule) => `<div class="figure-row"><p class="note">No chart beside these verdicts of ${escapeHtml(rule)}: this lab did not measure what their chart draws (a sweep, a traced run).</p>${cardsOf([rule])}</div>`,
  );
  const none =
    verdicts.length > 0 ? '' : verdictRulesOf(results.lab).length === 0 ? '<p class="note">This lab names no verdict rule: it shows its measurements only.</p>' : '<p class="note">No verdict could be judged: the report below says what its rules needed.</p>';
  return `<section><h2>Claim</h2><p class="claim-text">${escapeHtml(results.lab.claim)}</p>${none}\n${[...blocks, ...rest].join('\n')}</section>`;
}

/**
 * The whole page for one lab's results: a self-contained HTML document (UTF-8). Pure but for
 * reading the chart libraries from node_modules once per process; throws when they are missing.
 */
export function renderHtml(results: Results): string {
  const charts = chartsOf(results);
  const timelines = timelinesOf(results);
  const supporting = charts.filter((c) => c.rules.length === 0);
  const report = renderMarkdown(results).replace(/^# .*\n+/, '');
  const banner = incompleteBanner(results);
  const meta = `Lab <code>${escapeHtml(results.lab.name)}</code> · ${plural(results.runs.length, 'run')} · ${escapeHtml(results.startedAt)} to ${escapeHtml(results.finishedAt)} · ${escapeHtml(results.environment.runtime)} · ${escapeHtml(results.environment.hostname)}, ${results.environment.cpus} CPUs, Linux ${escapeHtml(results.environment.kernel)}`;
  const timelineSection = results.experiment
    ? ''
    : `<section><h2>Timelines: where each thread spends its time</h2>${
        timelines.charts.length
          ? `<p>${escapeHtml(timelines.intro)}</p>${timelines.charts.map((c) => `<div class="figure-row">${figure(c)}</div>`).join('\n')}`
          : `<p class="note">${escapeHtml(timelines.intro)}</p>`
      }</section>`;
  const body = `<header><h1>${escapeHtml(results.lab.title)}</h1><p class="meta">${meta}</p>${banner ? markdownToHtml(banner) : ''}</header>
${claimSection(results, charts)}
${timelineSection}
${supporting.length ? `<section><h2>More figures</h2>${supporting.map((c) => `<div class="figure-row">${figure(c)}</div>`).join('\n')}</section>` : ''}
<section><h2>The report</h2>
${markdownToHtml(report)}
</section>`;
  return htmlPage(`${results.lab.title}: iolab report`, body, [...charts, ...timelines.charts]);
}

/**
 * A self-contained HTML document: `body` (HTML, already escaped) under the page's style, and the
 * chart libraries with each chart's spec when there are charts (placeholders in `body` carry
 * data-chart="ID"). `title` is plain text.
 */
export function htmlPage(title: string, body: string, charts: readonly Chart[] = []): string {
  const scripts = charts.length ? `${libraries()}\n${charts.map(specScript).join('\n')}\n<script>${BOOT}</script>` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${body}
${scripts}
</body>
</html>
`;
}
