// Every file iolab writes for its user (results.json, the reports, the indexes, the CSV tables, the
// grades) is written whole or not at all: written beside, under a name of this process, then
// renamed over the real name. An interrupted or failed write (a full disk, no permission) never
// leaves half a file under the real name, nor the partial file beside it; two processes writing
// one file (an index) never mix theirs; a reader sees the old file or the new one.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { getSystemErrorMap } from 'node:util';
import { errnoCode, OutputWriteError } from '../errors.js';

export { OutputWriteError };

/** What the errno codes a write most often fails with mean, in the words of strerror. */
const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EFBIG: 'file too large',
  EIO: 'input/output error',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'a directory is in the way',
  ENAMETOOLONG: 'file name too long',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files in the system',
};

/** A failed file system call of Node: its code ('ENOSPC', or 'UNKNOWN' for one libuv has no name for) and errno (negative). */
function isSystemError(error: unknown): error is NodeJS.ErrnoException & { code: string; errno: number } {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && typeof (error as NodeJS.ErrnoException).errno === 'number';
}

/**
 * Makes `dir` and its missing parents. Not mkdir(dir, { recursive: true }): that one says ENOENT
 * where the real failure is another (EROFS, on a read-only file system), and the reason is the point.
 */
async function makeDirectory(dir: string): Promise<void> {
  const made = await mkdir(dir).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      // EEXIST: there already (a file in the way fails the write into it: ENOTDIR).
      if (error.code === 'EEXIST') return true;
      if (error.code === 'ENOENT' && dirname(dir) !== dir) return false;
      throw error;
    },
  );
  if (made) return;
  await makeDirectory(dirname(dir));
  await mkdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
}

/**
 * Writes `text` (UTF-8) to `file` whole or not at all, creating its directory (and parents) when
 * missing: written to FILE.PID-RANDOM.partial (created anew, flag wx: never written through a
 * file or link already there), then renamed over FILE. On a failure of any step (mkdir, open,
 * write, rename) the partial file is removed and FILE is as it was (absent, or the old file).
 * Throws OutputWriteError naming `file`, the errno code and what it means ("no space left on
 * device"), and whether an old file is still under that name; an error that is not the file
 * system's (a bug) is thrown as it is, after the partial file is removed.
 */
export async function writeWhole(file: string, text: string): Promise<void> {
  const partial = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
  try {
    await makeDirectory(dirname(file));
    await writeFile(partial, text, { flag: 'wx' });
    await rename(partial, file);
  } catch (error) {
    await rm(partial, { force: true }).catch(() => {});
    if (!isSystemError(error)) throw error;
    // libuv names no EDQUOT: its code is UNKNOWN, its errno the kernel's (negated).
    const code = error.code === 'UNKNOWN' ? errnoCode(-error.errno) : error.code;
    const reason = REASONS[code] ?? getSystemErrorMap().get(error.errno)?.[1] ?? 'a system error';
    const previousKept = await lstat(file).then(() => true, () => false);
    throw new OutputWriteError(file, code, reason, previousKept);
  }
}
