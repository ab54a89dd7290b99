// Every run of a lab kept: `iolab run` writes each into a directory of its own, OUT/LAB/RUN-ID/,
// and OUT/LAB/latest is a relative symlink to the newest one written.
//
// RUN-ID is the time the run started, in UTC, in ISO 8601's basic format to the millisecond, and
// 4 random hex digits: 20261130T154012.345Z-a1b2. Names of one length sort as the times do, and
// the directory is made with an exclusive mkdir, a new suffix drawn when the name is taken, so two
// runs started in the same millisecond on one machine (or on two, writing into one shared
// directory) still get a directory each.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';

/** The symlink in a lab's directory to its newest run. */
export const LATEST = 'latest';
/** A run directory's name. */
export const RUN_ID_PATTERN = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z-[0-9a-f]{4}$/;
/** How many names runDirectory tries before it gives up (each taken name draws a new suffix). */
const RUN_ID_ATTEMPTS = 20;

/** A run id for a run started at `at`: "20261130T154012.345Z-a1b2" (UTC; `suffix`: 4 hex digits, random by default). */
export function newRunDirectoryId(at: Date = new Date(), suffix: string = randomBytes(2).toString('hex')): string {
  const basic = at.toISOString().replace(/[-:]/g, ''); // 20261130T154012.345Z
  return `${basic}-${suffix}`;
}

/** When the run with this id started, or null when `id` is not a run id. */
export function runIdTime(id: string): Date | null {
  const match = RUN_ID_PATTERN.exec(id);
  if (!match) return null;
  const [, year, month, day, hour, minute, second, millisecond] = match.map(Number);
  return new Date(Date.UTC(year!, month! - 1, day!, hour!, minute!, second!, millisecond!));
}

/**
 * Creates the directory of a new run of a lab: OUT/LAB/RUN-ID (OUT and OUT/LAB as needed).
 * Returns the lab's directory, the run id and the run's directory (absolute when `out` is).
 * Throws the fs error of a directory that cannot be made, or an Error when RUN_ID_ATTEMPTS names
 * in a row were taken.
 */
export async function startRunDirectory(out: string, lab: string, at: Date = new Date()): Promise<{ labDir: string; id: string; dir: string }> {
  const labDir = join(out, lab);
  await mkdir(labDir, { recursive: true });
  for (let attempt = 0; attempt < RUN_ID_ATTEMPTS; attempt++) {
    const id = newRunDirectoryId(at);
    const dir = join(labDir, id);
    try {
      await mkdir(dir);
      return { labDir, id, dir };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  throw new Error(`${labDir}: ${RUN_ID_ATTEMPTS} run directory names in a row were taken; not writing this run`);
}

/**
 * Points LAB_DIR/latest at the run `id` (a relative symlink: "latest -> ID"): the new link is made
 * under a temporary name, then renamed over the old one, so a reader always finds a latest, the old
 * one or the new. Returns the link's path. Throws the fs error (a directory named latest, ...).
 */
export async function pointLatestAt(labDir: string, id: string): Promise<string> {
  const link = join(labDir, LATEST);
  const temporary = join(labDir, `.${LATEST}.${process.pid}.${randomBytes(4).toString('hex')}`);
  await symlink(id, temporary);
  try {
    await rename(temporary, link);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return link;
}

/** The run `latest` points at in a lab's directory, or null when there is no such link. */
export async function latestRunOf(labDir: string): Promise<string | null> {
  try {
    return await readlink(join(labDir, LATEST));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return null;
    throw error;
  }
}

/** The ids of the run directories in a lab's directory, newest first; none when it does not exist. */
export async function runIdsOf(labDir: string): Promise<string[]> {
  const entries = await readdir(labDir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return [];
    throw error;
  });
  return entries
    .filter((entry) => entry.isDirectory() && RUN_ID_PATTERN.test(entry.name))
    .map((entry) => entry.name)
    .sort()
    .reverse();
}
