/**
 * Verify: download and check what is stored, without zfs. Ciphertext size and SHA-256 always;
 * with the private key also decryption, per-part BLAKE3 and (when every part of a backup is
 * checked) the whole-stream BLAKE3. One part at a time sits on scratch disk as ciphertext, in a
 * fresh 0700 directory. By default it checks what a restore of the newest point needs — its
 * whole chain — and a broken link in that chain fails the verification (exit 7) by itself.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { isStoreError, type ObjectStore } from "../store/store.ts";
import { partFileName } from "../store/layout.ts";
import type { Manifest } from "../records/manifest.ts";
import { catalogProblem } from "../records/file-catalog.ts";
import { ChainError, resolveChain, type Catalog } from "./catalog.ts";
import { findBackup, type Selector } from "./restore/select.ts";
import { downloadPart } from "./restore/fetch.ts";
import { decryptPart } from "./restore/decrypt.ts";
import { claimScratch, VERIFY_SCRATCH } from "./restore/scratch.ts";
import { ZrbError, isKind, isInterruptError } from "../util/errors.ts";
import { checkInterrupted } from "../util/abort.ts";
import { log } from "../util/log.ts";
import { StreamEndsCollector } from "../zfs/stream.ts";
import type { TransferProgress } from "../report/progress.ts";
import { withThreads, type Threads } from "./parallel/index.ts";

/** The chain of m from m back to the first missing or mismatched link, oldest first. */
function resolvablePart(m: Manifest, byId: Map<string, Manifest>): Manifest[] {
  const out = [m];
  for (let cur = m; cur.parent; ) {
    const p = byId.get(cur.parent.backupId);
    if (!p || p.snapshot.guid !== cur.parent.guid || out.includes(p)) break;
    out.unshift(p);
    cur = p;
  }
  return out;
}

/**
 * The backups to check for a selector (the newest point without one), and why that point
 * cannot be restored when its chain is broken (then the resolvable part is still checked).
 */
export function backupsToVerify(cat: Catalog, sel: Selector, fs: string, store: Pick<ObjectStore, "location" | "urlOf">, onlyBackup: boolean): { backups: Manifest[]; chainBroken?: string } {
  const entry = findBackup(cat, sel, fs, store);
  const m = cat.manifests.get(entry.backupId)!;
  let backups: Manifest[];
  let chainBroken: string | undefined;
  if (onlyBackup) backups = [m];
  else {
    try {
      backups = resolveChain(m, cat.manifests);
    } catch (err) {
      if (!(err instanceof ChainError)) throw err;
      backups = resolvablePart(m, cat.manifests);
      chainBroken = `backup ${m.backupId} (level ${m.level}) cannot be restored: ${err.problem.message}`;
    }
  }
  // A backup that is not authenticated (the signature check of the catalog) fails the verification by itself.
  const untrusted = backups.map((b) => cat.entries.find((e) => e.backupId === b.backupId)?.problem).find((p) => p?.kind === "unauthenticated");
  chainBroken ??= untrusted?.message;
  return chainBroken ? { backups, chainBroken } : { backups };
}

export interface PartCheck {
  backupId: string;
  index: number;
  key: string;
  ok: boolean;
  error?: string;
  /**
   * "header": a part zrb rekey rewrapped, checked without the private key: its size and new age
   * header only — its payload's SHA-256 is recorded under the original header, which only the
   * key can rebuild (rekey/origin.ts). Absent: the whole ciphertext (and with the key, more).
   */
  checked?: "header";
}

export interface VerifyReport {
  location: string;
  backups: {
    backupId: string;
    level: number;
    snapshot: string;
    parts: number;
    checked: number;
    streamBlake3: "ok" | "mismatch" | "not checked";
    /** The BEGIN and END records against the manifest's guids (with the key, every part checked). */
    streamRecords: "ok" | "mismatch" | "not checked";
    /** Its file catalog against the manifest's size and SHA-256 (with the key, also opened); "none" without one. */
    catalog: "ok" | "bad" | "none" | "not checked";
    error?: string;
  }[];
  parts: PartCheck[];
  decrypted: boolean;
  ok: boolean;
}

/**
 * Download parts and check them without zfs: ciphertext size and SHA-256 always; with
 * identities, also decryption, per-part BLAKE3 and (when every part of a backup is checked)
 * the whole-stream BLAKE3. One part at a time sits on scratch disk as ciphertext.
 */
export async function verifyBackups(
  store: ObjectStore,
  backups: Manifest[],
  opts: {
    identities?: string[];
    sample?: number;
    /** Check only these parts ("<backup id>/<index>"), e.g. a rotation's slice. */
    only?: Set<string>;
    /** Called after each part is checked (a rotation records its progress). */
    onPart?: (rec: PartCheck) => Promise<void>;
    signal?: AbortSignal;
    scratch: string;
    /** Crypto workers that open the parts (config `workers`). */
    workers: number;
    /** Ranged GETs at once for one part (config `s3.concurrency`). */
    connections?: number;
    progress?: TransferProgress;
  },
): Promise<VerifyReport> {
  const all = backups.flatMap((m) => m.parts.map((p) => ({ m, p })));
  let chosen: Set<string> | null = opts.only ?? null;
  if (opts.sample !== undefined && opts.sample < all.length) {
    const idx = all.map((_, i) => i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = crypto.getRandomValues(new Uint32Array(1))[0]! % (i + 1);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    chosen = new Set(idx.slice(0, opts.sample).map((i) => `${all[i]!.m.backupId}/${all[i]!.p.index}`));
  }
  const report: VerifyReport = { location: store.location, backups: [], parts: [], decrypted: !!opts.identities, ok: true };
  const todo = all.filter(({ m, p }) => !chosen || chosen.has(`${m.backupId}/${p.index}`));
  const newest = backups.at(-1);
  opts.progress?.start({
    backupId: newest?.backupId,
    level: newest?.level,
    snapshot: newest?.snapshot.name,
    bytesExpected: todo.reduce((a, { p }) => a + p.cipherSize, 0),
    parts: todo.length,
  });
  let checkedBytes = 0;
  // A part downloaded again (a SHA-256 mismatch) counts again: the figure is what moved.
  const onBytes = (n: number) => opts.progress?.bytes((checkedBytes += n));
  // A directory of our own (0700, under a base_dir checked at start), claimed under a lock, so
  // that a killed verify's parts are removed by the next verify or by zrb cleanup (restore/scratch.ts).
  const claim = claimScratch(opts.scratch, VERIFY_SCRATCH);
  const scratch = claim.dir;
  try {
    // A Worker that dies fails the run at once, with one line naming it (not as a bad part).
    await withThreads(opts.workers, "verify", opts.signal, async (threads, signal) => {
      for (const m of backups) report.backups.push(await verifyBackup(store, m, { ...opts, chosen, scratch, threads, signal, onBytes }, report));
    });
  } finally {
    claim.release();
  }
  return report;
}

type VerifyOptions = Parameters<typeof verifyBackups>[2];

/** Check the (chosen) parts of one backup and, when all of them were decrypted, its stream; parts go into `report`. */
async function verifyBackup(
  store: ObjectStore,
  m: Manifest,
  o: VerifyOptions & { chosen: Set<string> | null; scratch: string; threads: Threads; signal: AbortSignal; onBytes: (n: number) => void },
  report: VerifyReport,
): Promise<VerifyReport["backups"][number]> {
  const { chosen, threads, signal } = o;
  // The whole stream's BLAKE3 (on the hashing worker), when every part is decrypted.
  const whole = o.identities && !chosen ? threads.crypto.newHasher() : null;
  const ends = new StreamEndsCollector();
  let checked = 0;
  let wholeOk = true;
  let berr: string | undefined;
  for (const p of m.parts) {
    if (chosen && !chosen.has(`${m.backupId}/${p.index}`)) continue;
    checkInterrupted(signal);
    const path = join(o.scratch, partFileName(p.index));
    const rec: PartCheck = { backupId: m.backupId, index: p.index, key: p.key, ok: true, ...(p.rewrap && !o.identities ? { checked: "header" as const } : {}) };
    try {
      await downloadPart(store, m, p, path, threads, { signal, onBytes: o.onBytes, connections: o.connections, identities: o.identities, after: 0 });
      if (o.identities) {
        const emit = whole === null ? () => {} : (b: Uint8Array) => ends.push(b);
        await decryptPart(path, m, p, { identities: o.identities, url: store.urlOf(p.key), emit, threads, alsoHash: whole === null ? [] : [whole], signal });
      }
    } catch (err) {
      // Stopped (an interrupt, or a Worker that died): not a verdict on the part.
      checkInterrupted(signal);
      if (!(err instanceof ZrbError) || isInterruptError(err)) throw err;
      if (isKind(err, "crypto", "no-identity")) throw err;
      // The store cannot be reached (a stall, the retries spent): nothing can be checked, exit 6.
      if (isStoreError(err, "transient")) throw err;
      rec.ok = false;
      rec.error = err.message;
      wholeOk = false;
      report.ok = false;
      log.error(err.message);
    } finally {
      rmSync(path, { force: true });
    }
    checked++;
    report.parts.push(rec);
    o.progress?.part({ backupId: m.backupId, index: p.index, bytes: p.cipherSize, ok: rec.ok });
    await o.onPart?.(rec);
    log.info(`backup ${m.backupId}: part ${p.index + 1}/${m.parts.length} ${rec.ok ? "ok" : "FAILED"}`);
  }
  let streamBlake3: "ok" | "mismatch" | "not checked" = "not checked";
  let streamRecords: "ok" | "mismatch" | "not checked" = "not checked";
  const d = whole === null ? null : await threads.crypto.digest(whole);
  if (d !== null && wholeOk) {
    streamBlake3 = d === m.stream.blake3 ? "ok" : "mismatch";
    if (streamBlake3 === "mismatch") berr = `backup ${m.backupId}: stream BLAKE3 is ${d}, manifest says ${m.stream.blake3}`;
    const why = ends.problem(m.snapshot.guid, m.parent?.guid ?? null);
    streamRecords = why ? "mismatch" : "ok";
    if (why) berr ??= `backup ${m.backupId} is not the zfs stream its manifest describes: ${why}`;
    if (berr) {
      log.error(berr);
      report.ok = false;
    }
  }
  // The file catalog, small, whenever the backup is checked (not in a rotation's slice of parts).
  let catalog: "ok" | "bad" | "none" | "not checked" = m.catalog ? "not checked" : "none";
  if (m.catalog && !o.only) {
    const why = await catalogProblem(store, m.catalog, o.identities);
    catalog = why ? "bad" : "ok";
    if (why) {
      log.error(why);
      berr ??= why;
      report.ok = false;
    }
  }
  return { backupId: m.backupId, level: m.level, snapshot: m.snapshot.name, parts: m.parts.length, checked, streamBlake3, streamRecords, catalog, ...(berr ? { error: berr } : {}) };
}


/** The line that says which parts were checked by their header only (PartCheck.checked), or null when none was. */
export function headerOnlyLine(report: VerifyReport): string | null {
  const n = report.parts.filter((p) => p.checked === "header" && p.ok).length;
  if (n === 0) return null;
  return `${n} rekeyed part(s): only their size and new age header were checked, not their payload (its SHA-256 is recorded under the original header, which only the private key rebuilds): pass --private-key to check them`;
}
