// The tables of a report read back from its Markdown (src/report/csv.ts), for `iolab report --csv`.
import { describe, expect, it } from 'vitest';
import { tablesOf } from '../src/report/csv.js';

const REPORT = `# A lab

## Results

| server | error | p99 |
| :----- | :---- | --: |
| epoll  | none  | 1.2 ms [1.1 ms–1.4 ms] |
| own    | read \\| write failed | — |

Text between tables.

## Syscalls per server

### epoll

| syscall | calls |
| :------ | ----: |
| epoll_wait | 1,234 |
`;

describe('the tables of a Markdown report', () => {
  it('are read with the headings they are under, the escaped pipes of their cells unescaped', () => {
    expect(tablesOf(REPORT)).toEqual([
      {
        section: 'Results',
        header: ['server', 'error', 'p99'],
        rows: [
          ['epoll', 'none', '1.2 ms [1.1 ms–1.4 ms]'],
          ['own', 'read | write failed', '—'],
        ],
      },
      { section: 'Syscalls per server / epoll', header: ['syscall', 'calls'], rows: [['epoll_wait', '1,234']] },
    ]);
  });
});
