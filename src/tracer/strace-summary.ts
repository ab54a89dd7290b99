// Parses the summary table that `strace -c` writes: one row per system call, then a `total` row:
// what a student pastes from a terminal, or a summary saved by hand. (The labs count from
// strace's per-call log instead, which tells threads and phases apart: strace-log.ts.)
//
// The formats it takes, all of strace 4.x to 6.x (count.c):
// - the default columns `% time  seconds  usecs/call  calls  errors syscall`, from `-c` and from
//   `-c -w` (wall-clock time, same columns). strace 4.x to 5.5 prints them at fixed widths and
//   leaves the total row's usecs/call blank; strace ≥ 5.6 sizes each column to fit and fills it in.
// - any columns `-U` chooses (strace ≥ 5.6), e.g. `-U name,calls,errors,avg-time,total-time`, in
//   any order. Their headers are `syscall`, `calls`, `errors`, `usecs/call`, `seconds`, and ones
//   this parser reads past (`% time`, `shortest`, `longest`, `wall-total`, ...). Only `syscall`
//   and `calls` are required; a column the table leaves out reads as 0.
// - several tables, one per personality ("System call usage summary for 32 bit mode:" before
//   the second): a call counted in both is one row.
// A cell is blank where strace printed nothing: errors when no call failed (printf's "%.0u" of 0),
// and usecs/call or errors on the total row. So cells are not split on whitespace: the dashed line
// under the header marks each column's extent, and a value belongs to the column whose dashes it
// overlaps. Only a table pasted without its dashed line is split on whitespace, where the one
// blank cell it allows is errors.
//
// A line that is none of these is an error naming its line number; so is text before the first
// header (the trace -C prints above its table, strace's own messages). An strace that counted no
// calls at all writes nothing, so empty text is an empty summary.
/** One row of an `strace -c` summary. Its time columns are system CPU time (wall time with -w), not time spent waiting. */
export interface StraceSummaryRow {
  syscall: string;
  calls: number;
  errors: number;
  usecsPerCall: number;
  seconds: number;
}

type Field = keyof StraceSummaryRow;

/** Header words of `strace -c` and the field each one fills. Other columns are read past. */
const fieldOfHeader: Record<string, Field> = {
  syscall: 'syscall',
  calls: 'calls',
  errors: 'errors',
  'usecs/call': 'usecsPerCall',
  seconds: 'seconds',
};

/** On a binary with several personalities (x86_64 and 32-bit), strace writes one table each. */
const PERSONALITY_TITLE = /^System call usage summary for .* mode:$/;
const SEPARATOR = /^ *-+( +-+)* *$/;

/** A column of the table: what its header says, and (when a dashed line marks it) where it lies. */
interface Column {
  field: Field | null;
  header: string;
  start: number;
  end: number;
}

export function parseStraceSummary(text: string): StraceSummaryRow[] {
  const lines = text.split('\n').map((line) => line.replace(/\r$/, ''));
  const bySyscall = new Map<string, StraceSummaryRow>();
  let columns: Column[] | null = null;
  let marked = false; // whether a dashed line gave the columns' extents

  for (let index = 0; index < lines.length; index++) {
    const line = lines[index];
    const where = `strace summary line ${index + 1}`;
    if (line.trim() === '' || SEPARATOR.test(line) || PERSONALITY_TITLE.test(line.trim())) continue;

    if (isHeader(line)) {
      marked = SEPARATOR.test(lines[index + 1] ?? '');
      const found = marked ? markedColumns(line, lines[index + 1], where) : wordColumns(line);
      const missing = ['syscall', 'calls'].filter((field) => !found.some((column) => column.field === field));
      if (missing.length > 0) throw new Error(`${where}: the strace -c header lacks ${missing.join(', ')}: ${JSON.stringify(line)}`);
      columns = found;
      continue;
    }
    if (columns === null) throw new Error(`${where}: expected the header of an strace -c table, got ${JSON.stringify(line)}`);

    const cells = marked ? cellsByExtent(line, columns, where) : cellsByWhitespace(line, columns, where);
    const row = parseRow(cells, columns, where, line);
    if (row === null) continue;
    const seen = bySyscall.get(row.syscall);
    bySyscall.set(row.syscall, seen ? merged(seen, row) : row);
  }
  return [...bySyscall.values()];
}

/** Every layout heads the name column "syscall"; header words hold no digit, and every row does. */
function isHeader(line: string): boolean {
  return line.trim().split(/\s+/).includes('syscall') && !/\d/.test(line);
}

function column(header: string, start = 0, end = 0): Column {
  return { field: fieldOfHeader[header] ?? null, header, start, end };
}

/** Each run of dashes is one column; the last runs to the end of the line, as a long name may. */
function markedColumns(header: string, separator: string, where: string): Column[] {
  const runs = [...separator.matchAll(/-+/g)];
  const columns = runs.map((run, i) => column('', run.index, i === runs.length - 1 ? Infinity : run.index + run[0].length));
  // A header word may stand a little off its dashes (a table typed by hand): it names the column it overlaps.
  return wordsByColumn(header, columns, where).map((words, i) => column(words.join(' '), columns[i].start, columns[i].end));
}

function wordColumns(header: string): Column[] {
  // "% time" is the only header of two words; make it one so that words and cells line up.
  return header.trim().replace('% time', '%time').split(/\s+/).map((word) => column(word));
}

/** The words of a line, each in the column whose dashes it overlaps: a column no word reaches is blank. */
function wordsByColumn(line: string, columns: Column[], where: string): string[][] {
  const words: string[][] = columns.map(() => []);
  for (const word of line.matchAll(/\S+/g)) {
    const [start, end] = [word.index, word.index + word[0].length];
    const under = columns.flatMap((column, i) => (start < column.end && end > column.start ? [i] : []));
    if (under.length !== 1) throw new Error(`${where}: ${JSON.stringify(word[0])} is not under one column of dashes: ${JSON.stringify(line)}`);
    words[under[0]].push(word[0]);
  }
  return words;
}

function cellsByExtent(line: string, columns: Column[], where: string): string[] {
  return wordsByColumn(line, columns, where).map((words, i) => {
    if (words.length > 1) throw new Error(`${where}: ${JSON.stringify(words[1])} is a second value under "${columns[i].header}": ${JSON.stringify(line)}`);
    return words[0] ?? '';
  });
}

function cellsByWhitespace(line: string, columns: Column[], where: string): string[] {
  const cells = line.trim().split(/\s+/);
  if (cells.includes('total')) return columns.map((column) => (column.field === 'syscall' ? 'total' : ''));
  // A blank errors cell leaves the row one cell short: that is the one blank this split can place.
  const errors = columns.findIndex((column) => column.field === 'errors');
  if (cells.length === columns.length - 1 && errors >= 0) cells.splice(errors, 0, '');
  if (cells.length !== columns.length) {
    throw new Error(`${where}: expected ${columns.length} columns, got ${cells.length}: ${JSON.stringify(line)}`);
  }
  return cells;
}

/** A row of the table, or null for the total row. */
function parseRow(cells: string[], columns: Column[], where: string, line: string): StraceSummaryRow | null {
  const syscall = parseName(cells[columns.findIndex((column) => column.field === 'syscall')], where, line);
  if (syscall === 'total') return null;
  const row: StraceSummaryRow = { syscall, calls: 0, errors: 0, usecsPerCall: 0, seconds: 0 };
  for (const [i, { field }] of columns.entries()) {
    // strace writes a row only for a call made at least once, so a row always has its calls.
    if (field === 'calls' && cells[i] === '') throw new Error(`${where}: the calls cell is blank: ${JSON.stringify(line)}`);
    if (field !== null && field !== 'syscall' && cells[i] !== '') row[field] = parseNumber(cells[i], where, line);
  }
  return row;
}

function parseName(cell: string, where: string, line: string): string {
  // Names are C identifiers; strace writes a call it has no name for as "syscall_0x1c3".
  if (!/^[A-Za-z_]\w*$/.test(cell)) throw new Error(`${where}: ${JSON.stringify(cell)} is not a system call name: ${JSON.stringify(line)}`);
  return cell;
}

function parseNumber(cell: string, where: string, line: string): number {
  // strace formats with printf, so a locale with a decimal comma writes "0,003708".
  const value = Number(cell.replace(',', '.'));
  if (!/^[\d.,]+$/.test(cell) || !Number.isFinite(value)) {
    throw new Error(`${where}: ${JSON.stringify(cell)} is not a number: ${JSON.stringify(line)}`);
  }
  return value;
}

/** One system call counted under two personalities: one row, with the average recomputed. */
function merged(a: StraceSummaryRow, b: StraceSummaryRow): StraceSummaryRow {
  const calls = a.calls + b.calls;
  const seconds = a.seconds + b.seconds;
  return { syscall: a.syscall, calls, errors: a.errors + b.errors, seconds, usecsPerCall: calls ? Math.round((seconds * 1e6) / calls) : 0 };
}
