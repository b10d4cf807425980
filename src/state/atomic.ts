/**
 * Atomic local state writes: write a temp file, fsync it, rename over the target, fsync the
 * directory. The async variant does the same on the thread pool, so a slow fsync (a busy
 * spill disk) does not stop the calling thread; callers must not run two writes of one path
 * at once (they share the temp name).
 *
 * The temp file is created O_EXCL | O_NOFOLLOW: whatever sits at its name (a symlink planted
 * to make root overwrite another file, a leftover of a killed run) is never opened, only
 * unlinked before another try; rename replaces the target's directory entry without following
 * it. So a write never reaches a file other than a new one of zrb's own.
 */
import { closeSync, constants as C, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import YAML from "yaml";
import { fsError } from "../util/errors.ts";

export function ensureDir(dir: string, mode = 0o700): void {
  try {
    mkdirSync(dir, { recursive: true, mode });
  } catch (err) {
    throw fsError(err, "creating directory", dir);
  }
}

const TMP_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

/** Open `tmp` as a new file: anything already there is unlinked (never followed) and the open tried again. */
function openNew(tmp: string, mode: number): number {
  for (let attempt = 1; ; attempt++) {
    try {
      return openSync(tmp, TMP_FLAGS, mode);
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST" || attempt === 3) throw err;
      rmSync(tmp, { force: true });
    }
  }
}

async function openNewAsync(tmp: string, mode: number) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await open(tmp, TMP_FLAGS, mode);
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST" || attempt === 3) throw err;
      await rm(tmp, { force: true });
    }
  }
}

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path);
  ensureDir(dir);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openNew(tmp, mode);
    try {
      const buf = typeof data === "string" ? Buffer.from(data) : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    const dfd = openSync(dir, "r");
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch (err) {
    rmSync(tmp, { force: true });
    throw fsError(err, "writing state file", path);
  }
}

/** writeFileAtomic() without blocking: the writes and fsyncs run on the thread pool. */
export async function writeFileAtomicAsync(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  ensureDir(dir);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fh = await openNewAsync(tmp, mode);
    try {
      await fh.writeFile(typeof data === "string" ? Buffer.from(data) : data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const dh = await open(dir, "r");
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw fsError(err, "writing state file", path);
  }
}

const yamlText = (value: unknown) => YAML.stringify(value, { lineWidth: 0 });

export function writeYamlAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, yamlText(value));
}

/** The YAML of `value` now, written atomically without blocking. */
export function writeYamlAtomicAsync(path: string, value: unknown): Promise<void> {
  return writeFileAtomicAsync(path, yamlText(value));
}

export async function readYaml<T>(path: string): Promise<T | null> {
  const f = Bun.file(path);
  if (!(await f.exists())) return null;
  try {
    return YAML.parse(await f.text()) as T;
  } catch (err) {
    throw fsError(err, "reading state file (delete it if it is corrupt)", path);
  }
}
