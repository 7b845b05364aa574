/** Replace a file atomically: write a temp file in the same directory, then rename over. */
import { randomBytes } from 'node:crypto';
import { chmod, chown, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Readers see the old content or the new, never a half-written file. The new file gets
 * `mode` when given, else the replaced file's mode and, where the process may set it, its
 * owner (as consul-template): a 0600 file of secrets from KV stays 0600, a root:haproxy 0640
 * config stays readable by haproxy. A symlink at `path` is replaced, never followed.
 */
export async function writeFileAtomic(path: string, content: string, mode?: number): Promise<void> {
  const old = await stat(path).catch(() => undefined);
  const perm = mode ?? (old && old.mode & 0o7777);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    // wx: a new file, never one (or a symlink) someone put at the temp name.
    await writeFile(tmp, content, { flag: 'wx', ...(perm !== undefined && { mode: perm }) });
    if (old && (old.uid !== process.getuid?.() || old.gid !== process.getgid?.()))
      await chown(tmp, old.uid, old.gid).catch(() => {});
    // The umask applied at creation; chown may have cleared setuid bits: set the mode exactly.
    if (perm !== undefined) await chmod(tmp, perm);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
