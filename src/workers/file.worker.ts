/**
 * File worker: writes files strictly in the order their bytes arrive and SHA-256s them on the
 * way, off the main thread: the ciphertext hash of a part being sealed (runs come back from
 * the crypto workers out of order; the main thread forwards them here in order), and the hash
 * of a part being downloaded. Several files may be open at once (parts downloaded ahead).
 * Nothing is fsynced: a spill file's safety is the SHA-256 a resume checks (backup/sealer.ts),
 * and a restore's scratch is not kept across runs.
 *
 * Protocol: workers/protocol.ts.
 */
import { closeSync, constants as C, fstatSync, ftruncateSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import type { FileOp, FromFile, ToFile } from "./protocol.ts";

declare const self: Worker;

interface Open {
  path: string;
  fd: number;
  sha: Bun.CryptoHasher;
  size: number;
  failed: boolean;
  /** A spare file overwritten from its start: cut to `size` when closed. */
  reused: boolean;
}

const files = new Map<number, Open>();
let arena: SharedArrayBuffer | null = null;
let slotSize = 0;

function post(m: FromFile): void {
  self.postMessage(m);
}

function fail(file: number, op: FileOp, err: unknown): void {
  const f = files.get(file);
  if (f && !f.failed) {
    f.failed = true;
    try {
      closeSync(f.fd);
    } catch {}
    rmSync(f.path, { force: true });
  }
  const e = err as { message?: string; code?: string };
  post({ type: "error", file, op, message: e?.message ?? String(err), code: e?.code });
}

/**
 * The spare file `reuse` (a finished file the run no longer needs, FileWriter.recycle) renamed
 * to `path` and opened for writing from its start: its pages are in the page cache already, so
 * writing them costs a copy, not fresh memory (on a VM whose host takes freed memory back, a
 * fresh GiB cost ≈ 7 CPU s of the kernel here). Only a regular file of ours with no other name
 * and no access for others is taken; anything else is removed and null returned.
 */
function reopen(reuse: string, path: string): number | null {
  let fd: number | null = null;
  try {
    renameSync(reuse, path);
    fd = openSync(path, C.O_WRONLY | C.O_NOFOLLOW);
    const st = fstatSync(fd);
    if (st.isFile() && st.nlink === 1 && (st.mode & 0o077) === 0 && st.uid === process.getuid!()) return fd;
  } catch {}
  if (fd !== null) closeSync(fd);
  rmSync(reuse, { force: true });
  rmSync(path, { force: true });
  return null;
}

function create(file: number, path: string, reuse: string | undefined): void {
  try {
    // Exclusive create, never through a symlink: a leftover is removed first (the directory
    // is zrb's own, 0700, under a base_dir checked at start).
    rmSync(path, { force: true });
    const spare = reuse === undefined ? null : reopen(reuse, path);
    const fd = spare ?? openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    files.set(file, { path, fd, sha: new Bun.CryptoHasher("sha256"), size: 0, failed: false, reused: spare !== null });
  } catch (err) {
    post({ type: "error", file, op: "create", message: (err as Error)?.message ?? String(err), code: (err as { code?: string })?.code });
  }
}

function write(file: number, slot: number, len: number): void {
  const f = files.get(file);
  try {
    if (!f || f.failed) return;
    const bytes = new Uint8Array(arena!, slot * slotSize, len);
    f.sha.update(bytes);
    for (let off = 0; off < len; ) off += writeSync(f.fd, bytes, off, len - off);
    f.size += len;
  } catch (err) {
    fail(file, "write", err);
  } finally {
    post({ type: "ack", slot, file, size: f && !f.failed ? f.size : undefined });
  }
}

function closeFile(file: number, renameTo: string | undefined): void {
  const f = files.get(file);
  try {
    if (!f || f.failed) return;
    // A spare's old bytes after the new ones go.
    if (f.reused) ftruncateSync(f.fd, f.size);
    closeSync(f.fd);
    if (renameTo) renameSync(f.path, renameTo);
    post({ type: "closed", file, size: f.size, sha256: f.sha.digest("hex") });
  } catch (err) {
    fail(file, "close", err);
  } finally {
    files.delete(file);
  }
}

function drop(file: number): void {
  const f = files.get(file);
  files.delete(file);
  if (!f || f.failed) return;
  f.failed = true;
  // Now, not later: a file created at the same path after this message must survive.
  try {
    closeSync(f.fd);
  } catch {}
  rmSync(f.path, { force: true });
}

self.onmessage = (ev: MessageEvent<ToFile>) => {
  const m = ev.data;
  switch (m.type) {
    case "init":
      arena = m.arena;
      slotSize = m.slotSize;
      return;
    case "create":
      return create(m.file, m.path, m.reuse);
    case "write":
      return write(m.file, m.slot, m.len);
    case "close":
      return closeFile(m.file, m.renameTo);
    case "drop":
      return drop(m.file);
  }
};
post({ type: "ready" });
