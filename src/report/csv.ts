// Every table of a report as a CSV file, for a spreadsheet: `iolab report RESULTS --csv`. The
// tables are read back from the rendered Markdown, so a CSV holds exactly the cells the report
// shows (figures with their units and spreads, as text), under the name of the section they are in.
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { writeWhole } from '../shared/write-whole.js';

/** One table of a Markdown report: the headings above it ("Results", "Syscalls per server (eBPF) / epoll"), its header and rows. */
export interface ReportTable {
  section: string;
  header: string[];
  rows: string[][];
}

/** The cells of one Markdown table row: split at the pipes that are not escaped (`\|`), trimmed, unescaped. */
function cellsOf(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, '|'));
}

/** The tables of a Markdown report, in order, each with the headings it is under. */
export function tablesOf(markdown: string): ReportTable[] {
  const tables: ReportTable[] = [];
  const headings: string[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const heading = /^(#{2,6}) (.*)$/.exec(lines[i]);
    if (heading) {
      headings.length = heading[1].length - 2;
      headings.push(heading[2].trim());
      continue;
    }
    // A table: a row of cells, then the alignment row (| :--- | ---: |).
    if (!lines[i].startsWith('|') || !/^\|(\s*:?-+:?\s*\|)+\s*$/.test(lines[i + 1] ?? '')) continue;
    const header = cellsOf(lines[i]);
    const rows: string[][] = [];
    for (i += 2; i < lines.length && lines[i].startsWith('|'); i++) rows.push(cellsOf(lines[i]));
    tables.push({ section: headings.join(' / ') || 'report', header, rows });
  }
  return tables;
}

/** "Syscalls per server (eBPF) / epoll" -> "syscalls-per-server-ebpf-epoll". */
function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'table';
}

/**
 * Writes each table of `markdown` to DIR/NN-SECTION.csv (NN: its place in the report, from 01),
 * creating DIR, each whole or not at all; returns the files written, in order. Throws
 * OutputWriteError naming the first file that cannot be written (the ones before it are whole).
 */
export async function writeTablesAsCsv(markdown: string, dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const [index, table] of tablesOf(markdown).entries()) {
    const file = join(dir, `${String(index + 1).padStart(2, '0')}-${slug(table.section)}.csv`);
    await writeWhole(file, stringify([table.header, ...table.rows]));
    files.push(file);
  }
  return files;
}
