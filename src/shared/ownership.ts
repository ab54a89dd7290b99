// Files that a controller running as root writes for someone else. Compose's `lab` and `grade`
// services run iolab as root (it needs the Docker socket) and write into a directory of the host
// that belongs to the user who ran compose (./reports, ./grades): what iolab writes there is given
// to that directory's owner, so that the user can read, move and delete it without sudo.
import { lchown, lstat, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';

/** A numeric owner: user and group ids. */
export interface Owner {
  uid: number;
  gid: number;
}

/**
 * The owner that files written under the directory `root` should get: root's own user and group,
 * when this process runs as root (uid 0) and `root` belongs to another user; null otherwise (not
 * root, or `root` belongs to root: nothing to give). Throws the fs error (ENOENT, ...) when `root`
 * cannot be read.
 */
export async function ownerToGive(root: string): Promise<Owner | null> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const { uid, gid } = await stat(root);
  return uid === 0 ? null : { uid, gid };
}

/**
 * Gives each of `paths` (files, directories or symlinks inside the directory `root`; a directory
 * with everything in it) to the owner of `root`, when ownerToGive says so: lchown, so a symlink
 * itself changes, never what it points to, and a symlinked directory is not walked. Paths that no
 * longer exist are passed over. Returns the owner given, or null when there was nothing to do.
 * Throws an Error naming the path when one lies outside `root`, and the fs error (EPERM, ...) of
 * an lchown that fails.
 */
export async function giveToOwnerOf(root: string, paths: readonly string[]): Promise<Owner | null> {
  const base = resolve(root);
  for (const path of paths) {
    const inside = relative(base, resolve(path));
    if (inside.startsWith('..') || isAbsolute(inside)) throw new Error(`${path} is not inside ${base}: not giving it to the owner of ${base}`);
  }
  const owner = await ownerToGive(base);
  if (owner === null) return null;
  const give = async (path: string): Promise<void> => {
    const entry = await lstat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    if (entry === null) return;
    if (entry.isDirectory()) {
      for (const name of await readdir(path)) await give(join(path, name));
    }
    if (entry.uid !== owner.uid || entry.gid !== owner.gid) await lchown(path, owner.uid, owner.gid);
  };
  for (const path of paths) await give(resolve(path));
  return owner;
}
