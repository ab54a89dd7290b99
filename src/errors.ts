// The error types of iolab. Each class has one meaning; the CLI prints `message` as one line
// for all of them and a stack only with --verbose. Exit codes: see README.md ("Exit codes").
import { basename } from 'node:path';
import koffi from 'koffi';

const errnoNames: Map<number, string> = new Map(
  Object.entries(koffi.os.errno).map(([name, value]) => [value, name]),
);

/** The symbolic name of an errno value ('ECONNREFUSED'). */
export function errnoCode(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** A system call returned -1. Carries the call's name, errno and its symbolic code. */
export class ErrnoError extends Error {
  override readonly name = 'ErrnoError';
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
    context?: string,
  ) {
    const code = errnoCode(errno);
    super(`${syscall}${context ? ` (${context})` : ''}: ${code} (errno ${errno})`);
    this.code = code;
  }
}

/** A lab file (or a value given for one on the command line) is not valid. */
export class LabFileError extends Error {
  override readonly name = 'LabFileError';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `\n  ${problems.join('\n  ')}`}`);
  }
}

/** A results file that cannot be read: not JSON, or not the schema. Names the file and the field. */
export class ResultsFileError extends Error {
  override readonly name = 'ResultsFileError';
  constructor(
    readonly file: string,
    /** the first bad field as a path, e.g. runs[0].phase; null when the file is not JSON at all. */
    readonly field: string | null,
    problem: string,
  ) {
    super(`${file}: ${field === null ? '' : `${field}: `}${problem}`);
  }
}

/** A validation path as a reader writes it: clients, 0, mode → "clients[0].mode". */
export function fieldPath(path: readonly (string | number)[]): string {
  return path.reduce<string>((text, key) => (typeof key === 'number' ? `${text}[${key}]` : text ? `${text}.${key}` : key), '');
}

/** The runtime (local processes, Docker) cannot do what a lab needs: a missing tool, no engine. */
export class RuntimeUnavailableError extends Error {
  override readonly name = 'RuntimeUnavailableError';
}

/** A lab started but a step of it failed: a server that never listened, a client that crashed. */
export class LabRunError extends Error {
  override readonly name = 'LabRunError';
}

/** The user asked for something that does not exist or does not fit (an unknown model, lab, option). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * A submission could not be graded for a reason that is not the student's: the engine is down, an
 * image does not build, the grader itself failed. Never a zero: the grade is "not gradable".
 */
export class NotGradableError extends Error {
  override readonly name = 'NotGradableError';
}

/**
 * An output file (a report, results.json, an index, a grade) could not be written: a full disk,
 * no permission, a read-only file system. Nothing was written under its name: the file already
 * there, if any, is as it was (`previousKept` says whether there is one), and no partial file is
 * left beside it (src/shared/write-whole.ts). Exit code 4, as for what the runtime lacks.
 */
export class OutputWriteError extends Error {
  override readonly name = 'OutputWriteError';
  constructor(
    /** the file that could not be written, as the caller named it. */
    readonly path: string,
    /** the errno code of the failure ('ENOSPC', 'EACCES', 'EROFS', 'EDQUOT', ...). */
    readonly code: string,
    /** what the code means, in words ('no space left on device'). */
    readonly reason: string,
    /** whether a file was already under that name (and is still there, untouched). */
    readonly previousKept: boolean,
    /** the names of the files written whole beside it just before, by the same step (a report's results.json): said in the message. */
    readonly written: readonly string[] = [],
  ) {
    const kept = previousKept ? `: the ${basename(path)} already there, an earlier one, is untouched` : '';
    const before = written.length ? `; written whole beside it: ${written.join(' and ')}` : '';
    super(`cannot write ${path}: ${reason} (${code}); nothing was written under that name${kept}${before}`);
  }
}

/** Exit codes of the `iolab` command, documented in README.md. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  labFile: 3,
  /** the runtime lacks something a lab needs, or the machine cannot take an output file (OutputWriteError: a full disk, no permission). */
  runtimeUnavailable: 4,
  incomplete: 5,
  notGradable: 6,
  interrupted: 130,
} as const;
