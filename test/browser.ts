// A report page opened in a real browser: Debian's chromium (/usr/bin/chromium, or $CHROMIUM),
// driven by puppeteer-core over the DevTools protocol. What a reader would see: the console's
// errors, each chart's rendered SVG marks, and a screenshot of the whole page.
import { access } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import puppeteer, { type Browser } from 'puppeteer-core';

/** The system's chromium (puppeteer-core downloads none). */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export interface PageCheck {
  /** console messages of type error, and uncaught exceptions, in order. */
  errors: string[];
  /** every chart placeholder of the page: its id, whether vega-embed finished, its SVG's data marks with an area, and whether any is placed at NaN. */
  charts: { id: string; rendered: boolean; marks: number; failed: string | null; nan: boolean }[];
  /** the page's text, for assertions on what a reader sees. */
  text: string;
}

/** Starts the browser; throws naming CHROMIUM when it is not there. */
export async function startBrowser(): Promise<Browser> {
  await access(CHROMIUM).catch(() => {
    throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) or set CHROMIUM`);
  });
  // --no-sandbox: the tests run as root, where chromium refuses its own sandbox.
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/**
 * Opens `file` (an HTML file) offline, waits until every chart has rendered or failed (up to
 * `timeoutMs`), counts each chart's SVG marks (Vega's `.mark-*` groups' paths, rects, lines,
 * symbols and texts) and saves a full-page screenshot to `screenshot` (PNG).
 */
export async function checkPage(browser: Browser, file: string, screenshot: string, timeoutMs: number): Promise<PageCheck> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
  page.on('pageerror', (error) => errors.push(String(error)));
  // Anything from the network is an error: the page must work offline.
  await page.setRequestInterception(true);
  page.on('request', (request) => (request.url().startsWith('file:') || request.url().startsWith('data:') ? request.continue() : (errors.push(`network request: ${request.url()}`), request.abort())));
  try {
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load', timeout: timeoutMs });
    await page.waitForFunction(() => [...document.querySelectorAll('[data-chart]')].every((e) => (e as HTMLElement).dataset.rendered === 'true'), { timeout: timeoutMs }).catch(() => {});
    const charts = await page.$$eval('[data-chart]', (elements) =>
      elements.map((e) => ({
        id: (e as HTMLElement).dataset.chart!,
        rendered: (e as HTMLElement).dataset.rendered === 'true',
        // Data marks that cover some area (bars, dots, areas, lines): not rules or labels, and not
        // a bar of width 0 (a value its scale cannot place, such as 0 on a log scale).
        marks: [...e.querySelectorAll('svg g.role-mark:not(.mark-rule):not(.mark-text) > path, svg g.role-mark:not(.mark-rule):not(.mark-text) > rect')].filter((m) => {
          const box = (m as SVGGraphicsElement).getBBox();
          return box.width > 0 && box.height > 0;
        }).length,
        failed: e.classList.contains('chart-error') ? e.textContent : null,
        // A mark placed at NaN (a bar from 0 on a log scale, a missing value) draws nothing.
        nan: /NaN|Infinity/.test(e.querySelector('svg')?.innerHTML ?? ''),
      })),
    );
    await page.screenshot({ path: screenshot as `${string}.png`, fullPage: true });
    const text = await page.$eval('body', (body) => (body as HTMLElement).innerText);
    return { errors, charts, text };
  } finally {
    await page.close();
  }
}
