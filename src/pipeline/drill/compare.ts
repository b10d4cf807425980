/**
 * The drill's verdict: the restored tree against the source snapshot, path by path. For every
 * path of either tree: present in both, same type, mode (permission bits with setuid, setgid,
 * sticky), owner and group; a regular file the same size and SHA-256 (all files, or a random
 * sample of `sample` of them, named in the result); a symlink the same target (never followed).
 * Times are not compared: a received filesystem keeps them, but reading a snapshot through a
 * clone on an old zfs may not, and content is what a restore must get right. A zvol compares
 * by the SHA-256 of all its bytes. Reading changes neither side (both read-only, atime off).
 */
import { createHash, randomInt } from "node:crypto";
import { lstat, open, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { checkInterrupted } from "../../util/abort.ts";

export interface Entry {
  type: "file" | "dir" | "link" | "other";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  target?: string;
}

export interface Comparison {
  /** Paths compared (the union of both trees; a zvol counts as one). */
  compared: number;
  differ: number;
  /** The first differences, one line each ("path: what"). */
  first: string[];
  /** --sample: the files whose content was hashed. */
  sampled?: string[];
}

const FIRST = 10;

/** Every path below `root` (relative, `.zfs` at the top skipped) and what it is. */
export async function listEntries(root: string, signal?: AbortSignal): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  async function walk(dir: string, rel: string): Promise<void> {
    checkInterrupted(signal);
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      if (rel === "" && name === ".zfs") continue;
      const p = join(dir, name);
      const r = rel === "" ? name : `${rel}/${name}`;
      const st = await lstat(p);
      const type = st.isSymbolicLink() ? "link" : st.isDirectory() ? "dir" : st.isFile() ? "file" : "other";
      const e: Entry = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: type === "file" ? st.size : 0 };
      if (type === "link") e.target = await readlink(p);
      out.set(r, e);
      if (type === "dir") await walk(p, r);
    }
  }
  await walk(root, "");
  return out;
}

/** SHA-256 of a file or device, read with explicit reads (a stream would keep the fd open and the pool busy). */
export async function sha256Of(path: string, signal?: AbortSignal): Promise<string> {
  const h = createHash("sha256");
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      checkInterrupted(signal);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}

const octal = (m: number) => "0" + m.toString(8);

/** What differs in one path's metadata, or undefined. */
function metaDiff(a: Entry, b: Entry): string | undefined {
  if (a.type !== b.type) return `is a ${a.type} in the source, a ${b.type} in the restore`;
  if (a.type !== "link" && a.mode !== b.mode) return `mode ${octal(a.mode)} in the source, ${octal(b.mode)} in the restore`;
  if (a.uid !== b.uid || a.gid !== b.gid) return `owner ${a.uid}:${a.gid} in the source, ${b.uid}:${b.gid} in the restore`;
  if (a.type === "file" && a.size !== b.size) return `size ${a.size} in the source, ${b.size} in the restore`;
  if (a.type === "link" && a.target !== b.target) return `symlink to ${JSON.stringify(a.target)} in the source, to ${JSON.stringify(b.target)} in the restore`;
  return undefined;
}

/** `n` of `items` at random (all when n ≥ their number), in their order. */
function pick<T>(items: T[], n: number): T[] {
  if (n >= items.length) return items;
  const idx = new Set<number>();
  while (idx.size < n) idx.add(randomInt(items.length));
  return items.filter((_, i) => idx.has(i));
}

/** Compare the tree at `restored` with the source tree at `source` (see the header). */
export async function compareTrees(source: string, restored: string, opts: { sample?: number; signal?: AbortSignal } = {}): Promise<Comparison> {
  const a = await listEntries(source, opts.signal);
  const b = await listEntries(restored, opts.signal);
  const all = [...new Set([...a.keys(), ...b.keys()])].sort();
  const bad = new Map<string, string>();
  for (const p of all) {
    const x = a.get(p);
    const y = b.get(p);
    const why = !x ? "in the restore, not in the source" : !y ? "in the source, missing from the restore" : metaDiff(x, y);
    if (why) bad.set(p, why);
  }
  const files = all.filter((p) => a.get(p)?.type === "file" && !bad.has(p));
  const hashed = opts.sample === undefined ? files : pick(files, opts.sample);
  for (const p of hashed) {
    if ((await sha256Of(join(source, p), opts.signal)) !== (await sha256Of(join(restored, p), opts.signal))) bad.set(p, "content differs (SHA-256)");
  }
  const first = all.filter((p) => bad.has(p)).slice(0, FIRST).map((p) => `${p}: ${bad.get(p)}`);
  return { compared: all.length, differ: bad.size, first, ...(opts.sample !== undefined ? { sampled: hashed } : {}) };
}

/** A zvol against its source: all bytes. */
export async function compareVolumes(source: string, restored: string, name: string, signal?: AbortSignal): Promise<Comparison> {
  const same = (await sha256Of(source, signal)) === (await sha256Of(restored, signal));
  return { compared: 1, differ: same ? 0 : 1, first: same ? [] : [`${name}: the volume's bytes differ (SHA-256)`] };
}
