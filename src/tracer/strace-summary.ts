// Parses the summary table that `strace -c` writes: one row per system call, then a `total` row:
// what a student pastes from a terminal, or a summary saved by hand. (The labs count from
// strace's per-call log instead, which tells threads and phases apart: strace-log.ts.)
//
// The parser reads the column order from the table's own header, so it takes both the default
// layout (`% time  seconds  usecs/call  calls  errors syscall`) and the one
// `-U name,calls,errors,avg-time,total-time` gives. strace sizes its columns to fit, so rows are split
// on whitespace rather than at fixed offsets. Only the errors cell is ever blank (no failed call).
//
// An strace that counted no calls at all writes nothing, so empty text is an empty summary.
/** One row of an `strace -c` summary. Its time columns are system CPU time, not time spent waiting. */
export interface StraceSummaryRow {
  syscall: string;
  calls: number;
  errors: number;
  usecsPerCall: number;
  seconds: number;
}

type SyscallCount = StraceSummaryRow;
type Field = keyof SyscallCount;

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
const SEPARATOR = /^-+( +-+)+$/;

export function parseStraceSummary(text: string): SyscallCount[] {
  const bySyscall = new Map<string, SyscallCount>();
  let columns: (Field | null)[] | null = null;

  for (const [index, rawLine] of text.split('\n').entries()) {
    const line = rawLine.trim();
    const where = `strace summary line ${index + 1}`;
    if (line === '' || SEPARATOR.test(line) || PERSONALITY_TITLE.test(line)) continue;

    const cells = line.split(/\s+/);
    if (cells.includes('syscall') && cells.includes('calls')) {
      columns = headerColumns(line, where);
      continue;
    }
    if (columns === null) throw new Error(`${where}: expected the header of an strace -c table, got ${JSON.stringify(rawLine)}`);

    const row = parseRow(cells, columns, where, rawLine);
    if (row.syscall === 'total') continue;
    const seen = bySyscall.get(row.syscall);
    bySyscall.set(row.syscall, seen ? merged(seen, row) : row);
  }
  return [...bySyscall.values()];
}

function headerColumns(line: string, where: string): (Field | null)[] {
  // "% time" is the only header of two words; make it one so that words and cells line up.
  const words = line.replace('% time', '%time').split(/\s+/);
  const columns = words.map((word) => fieldOfHeader[word] ?? null);
  const missing = Object.values(fieldOfHeader).filter((field) => !columns.includes(field));
  if (missing.length > 0) throw new Error(`${where}: the strace -c header lacks ${missing.join(', ')}: ${JSON.stringify(line)}`);
  return columns;
}

function parseRow(cells: string[], columns: (Field | null)[], where: string, rawLine: string): SyscallCount {
  // A blank errors cell leaves the row one cell short: put a zero in its place.
  if (cells.length === columns.length - 1) cells.splice(columns.indexOf('errors'), 0, '0');
  if (cells.length !== columns.length) {
    throw new Error(`${where}: expected ${columns.length} columns, got ${cells.length}: ${JSON.stringify(rawLine)}`);
  }
  const row: SyscallCount = { syscall: '', calls: 0, errors: 0, usecsPerCall: 0, seconds: 0 };
  columns.forEach((field, i) => {
    if (field === 'syscall') row.syscall = parseName(cells[i], where, rawLine);
    else if (field !== null) row[field] = parseNumber(cells[i], where, rawLine);
  });
  return row;
}

function parseName(cell: string, where: string, rawLine: string): string {
  // Names are C identifiers; strace writes a call it has no name for as "syscall_0x1c3".
  if (!/^[A-Za-z_]\w*$/.test(cell)) throw new Error(`${where}: ${JSON.stringify(cell)} is not a system call name: ${JSON.stringify(rawLine)}`);
  return cell;
}

function parseNumber(cell: string, where: string, rawLine: string): number {
  // strace formats with printf, so a locale with a decimal comma writes "0,003708".
  const value = Number(cell.replace(',', '.'));
  if (!/^[\d.,]+$/.test(cell) || !Number.isFinite(value)) {
    throw new Error(`${where}: ${JSON.stringify(cell)} is not a number: ${JSON.stringify(rawLine)}`);
  }
  return value;
}

/** One system call counted under two personalities: one row, with the average recomputed. */
function merged(a: SyscallCount, b: SyscallCount): SyscallCount {
  const calls = a.calls + b.calls;
  const seconds = a.seconds + b.seconds;
  return { syscall: a.syscall, calls, errors: a.errors + b.errors, seconds, usecsPerCall: calls ? Math.round((seconds * 1e6) / calls) : 0 };
}
