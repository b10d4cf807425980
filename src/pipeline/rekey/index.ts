/**
 * zrb rekey: give every backup of a task (or one) to new age recipients without re-uploading
 * it. Per backup: check every part can be rewritten now (none in an archive class that is not
 * thawed: a backup is never left half-done for that), rewrap each part (part.ts), then write
 * its manifest — new recipients, new sizes, the parts' rewrap records, a new signature. The
 * order is the backup's own: objects first, the manifest last; a killed run leaves a state file
 * (state.ts) and a rerun finishes the backup it was on. Only manifests the run trusts are
 * touched: rekey signs what it writes, so it must not vouch for a forged record.
 */
import type { Config, Task } from "../../config/config.ts";
import { ARCHIVED_CLASSES, MIN_REWRITE_HEAD, type ObjectInfo, type ObjectStore } from "../../store/store.ts";
import { listManifests, REKEYED_MANIFEST_FORMAT, type Manifest } from "../../records/manifest.ts";
import { RunDir } from "../../state/rundir.ts";
import { acquireLock } from "../../state/lock.ts";
import { assertSafeBaseDir } from "../../state/basedir.ts";
import { manifestTrustProblem, signManifest, type Trust } from "../../records/trust.ts";
import type { SigningKey } from "../../crypto/signing.ts";
import { commitManifest, deleteOrLeave } from "../backup/finish.ts";
import { MAX_CATALOG_BYTES, openCatalog, sealCatalog, sha256Hex, type CatalogRef } from "../../records/file-catalog.ts";
import { backupIdOfCatalogKey, catalogKey, manifestDir, manifestKey } from "../../store/layout.ts";
import { ExitCode, ZrbError, usageError } from "../../util/errors.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { log } from "../../util/log.ts";
import { opensWith, rekeyPart } from "./part.ts";
import { RekeyStateFile } from "./state.ts";

export interface RekeyOptions {
  /** The old identities (they open the parts now). */
  identities: string[];
  /** The new recipients (age1…). */
  recipients: string[];
  trust: Trust;
  /** Signs the rewritten manifests (config signing_key); required when any manifest is signed. */
  signer?: SigningKey;
  backupId?: string;
  dryRun: boolean;
  signal?: AbortSignal;
  /** Progress: one event per part and per backup. */
  onEvent?: (e: RekeyEvent) => void;
}

export type RekeyEvent =
  | { event: "part"; backupId: string; index: number; downloaded: number; copied: number; resumed: boolean }
  | { event: "backup"; backupId: string; parts: number; state: "rewrapped" | "already" | "would-rewrap" }
  | { event: "skipped"; backupId: string; reason: string };

export interface RekeyResult {
  dryRun: boolean;
  backups: number;
  parts: number;
  downloadedBytes: number;
  copiedBytes: number;
  /** Backups left as they are, and why (untrusted: exit 7; a part archived or missing: exit 6). */
  skipped: { backupId: string; reason: string; exitCode: number }[];
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join(",") === [...b].sort().join(",");

/** What a part's rewrite would move: the first part read, the rest copied in the store. */
function estimate(size: number): { download: number; copy: number } {
  const first = Math.min(size, MIN_REWRITE_HEAD + 64 * 1024);
  return first === size ? { download: size, copy: 0 } : { download: first, copy: size - MIN_REWRITE_HEAD };
}

/** The objects of a backup's parts, or why the backup cannot be rekeyed now. */
async function partObjects(store: ObjectStore, m: Manifest): Promise<ObjectInfo[] | string> {
  const out: ObjectInfo[] = [];
  for (const p of m.parts) {
    const info = await store.head(p.key);
    if (!info) return `part ${p.index} (${store.urlOf(p.key)}) is missing; run zrb verify`;
    if (ARCHIVED_CLASSES.has(info.storageClass ?? "") && info.restore !== "available")
      return `part ${p.index} is in storage class ${info.storageClass}${info.restore === "ongoing" ? " (thaw in progress)" : ""}; thaw the backup first (zrb restore --thaw), then rerun`;
    out.push(info);
  }
  return out;
}

export async function rekey(cfg: Config, task: Task, store: ObjectStore, o: RekeyOptions): Promise<RekeyResult> {
  assertSafeBaseDir(cfg.baseDir, { create: true });
  const rd = new RunDir(cfg.baseDir, task.pool, task.dataset);
  // The dataset's lock: no backup writes parts to the old recipients meanwhile.
  const lock = o.dryRun ? undefined : acquireLock(rd.lockPath, `dataset ${task.fullName}`, "zrb rekey");
  try {
    // An interrupted backup would finish to the old recipients after the rekey: finish it first.
    const pending = await rd.readState();
    if (pending.kind === "ok" && !o.dryRun)
      throw new ZrbError(`backup ${pending.state.backupId} of ${task.fullName} was interrupted and would finish encrypted to the old key; run zrb backup --level ${pending.state.level} to finish it, then rekey`, ExitCode.USAGE);
    const state = o.dryRun ? undefined : await RekeyStateFile.open(rd.dir, o.recipients);
    const all = await listManifests(store, task.pool, task.dataset);
    const chosen = o.backupId === undefined ? all : all.filter((m) => m.backupId === o.backupId);
    if (o.backupId !== undefined && chosen.length === 0) throw usageError(`backup ${o.backupId} of task ${task.name} is not in ${store.location}; zrb list shows the backups`);
    const res: RekeyResult = { dryRun: o.dryRun, backups: 0, parts: 0, downloadedBytes: 0, copiedBytes: 0, skipped: [] };
    const skip = (m: Manifest, reason: string, exitCode: number) => {
      res.skipped.push({ backupId: m.backupId, reason, exitCode });
      o.onEvent?.({ event: "skipped", backupId: m.backupId, reason });
      log.warn(`backup ${m.backupId} is not rekeyed: ${reason}`);
    };
    for (const m of chosen) {
      checkInterrupted(o.signal);
      const untrusted = manifestTrustProblem(m, o.trust);
      if (untrusted) {
        skip(m, `its manifest cannot be trusted: ${untrusted}`, ExitCode.INTEGRITY);
        continue;
      }
      const inProgress = state?.state.backups[m.backupId];
      if (sameSet(m.recipients, o.recipients) && !inProgress) {
        o.onEvent?.({ event: "backup", backupId: m.backupId, parts: 0, state: "already" });
        continue;
      }
      if (m.signature && !o.signer && !o.dryRun)
        throw new ZrbError(`backup ${m.backupId} is signed and rekey rewrites its manifest; run zrb rekey where signing_key is (the NAS), with signing_key set in ${cfg.path}`, ExitCode.CONFIG);
      const objects = await partObjects(store, m);
      if (typeof objects === "string") {
        skip(m, objects, ExitCode.STORE);
        continue;
      }
      if (o.dryRun) {
        // The old key must open the backup (its first part's header), or the real run would stop here.
        if (m.parts[0]) await opensWith(store, m.backupId, m.parts[0], o.identities);
        for (const info of objects) {
          const e = estimate(info.size);
          res.downloadedBytes += e.download;
          res.copiedBytes += e.copy;
        }
        res.parts += m.parts.length;
        res.backups++;
        o.onEvent?.({ event: "backup", backupId: m.backupId, parts: m.parts.length, state: "would-rewrap" });
        log.info(`backup ${m.backupId}: would rewrap ${m.parts.length} parts`);
        continue;
      }
      const gone = await rekeyBackup(cfg, store, m, objects, state!, o, res);
      if (gone) skip(m, gone, ExitCode.STORE);
    }
    if (state && Object.keys(state.state.backups).length === 0) await state.remove();
    return res;
  } finally {
    lock?.release();
  }
}

/** Rekey one backup; returns why its manifest was not written back (the backup was given up meanwhile), or undefined. */
async function rekeyBackup(cfg: Config, store: ObjectStore, m: Manifest, objects: ObjectInfo[], state: RekeyStateFile, o: RekeyOptions, res: RekeyResult): Promise<string | undefined> {
  const parts = [];
  for (const p of m.parts) {
    const r = await rekeyPart({ store, backupId: m.backupId, part: p, info: objects[p.index]!, identities: o.identities, recipients: o.recipients, state, signal: o.signal });
    parts.push(r.part);
    res.parts++;
    res.downloadedBytes += r.downloaded;
    res.copiedBytes += r.copied;
    o.onEvent?.({ event: "part", backupId: m.backupId, index: p.index, downloaded: r.downloaded, copied: r.copied, resumed: r.resumed });
    log.info(`backup ${m.backupId}: part ${p.index + 1}/${m.parts.length} rewrapped${r.resumed ? " (by the interrupted run)" : ""}`);
  }
  const { signature: _old, catalog: oldCatalog, ...body } = m;
  // A manifest already rewritten by a killed run names its new catalog already.
  const catalog = oldCatalog && !sameSet(m.recipients, o.recipients) ? await rekeyCatalog(cfg, store, m, oldCatalog, o) : oldCatalog;
  const next: Manifest = { ...body, format: REKEYED_MANIFEST_FORMAT, recipients: [...o.recipients], parts, ...(catalog ? { catalog } : {}) };
  // zrb prune on another host may have given the backup up meanwhile (its manifest goes first,
  // then its parts): written back now, the manifest would name parts that are going. Only a
  // backup that still stands, every part there, gets its manifest rewritten.
  if (!(await store.head(manifestKey(m.pool, m.dataset, m.backupId)))) {
    await state.doneBackup(m.backupId); // nothing left to finish
    return "its manifest was deleted while it was rekeyed (zrb prune on another host?); it is not written back";
  }
  // A part gone meanwhile: the record stays, so that a rerun finishes it once the part is back.
  // Only that each is there: a rewritten part of an archive class is archived again, no thaw.
  for (const p of next.parts)
    if (!(await store.head(p.key))) return `part ${p.index} (${store.urlOf(p.key)}) was deleted while the backup was rekeyed; its manifest is not rewritten`;
  await commitManifest(cfg, store, o.signer ? signManifest(next, o.signer) : next);
  // A prune on another host deletes a backup's manifest first, then its parts, then looks for the
  // manifest again and deletes one written back (prune/index.ts). A part gone by now means some
  // deleter acted between the check above and this look: most likely a prune whose second look
  // came before the write. Rekey cannot tell it from a part lost otherwise, and the manifest is
  // the only record of the other parts: it stays (prune keeps it as not restorable), and the
  // backup is reported as not rekeyed, naming the manifest and what to do — never a success.
  for (const p of next.parts)
    if (!(await store.head(p.key))) {
      await state.doneBackup(m.backupId);
      return (
        `part ${p.index} (${store.urlOf(p.key)}) was deleted while its manifest was rewritten: the manifest ${store.urlOf(manifestKey(m.pool, m.dataset, m.backupId))} now names a missing part and is kept; ` +
        `if zrb prune on another host gave this backup up just now, delete that manifest; otherwise put the part back to repair it (zrb list shows it as not restorable)`
      );
    }
  if (catalog && oldCatalog && catalog.key !== oldCatalog.key && backupIdOfCatalogKey(manifestDir(m.pool, m.dataset), oldCatalog.key) === m.backupId) await deleteOrLeave(store, [oldCatalog.key], `file catalog of ${m.backupId} under the old key`);
  await state.doneBackup(m.backupId);
  res.backups++;
  o.onEvent?.({ event: "backup", backupId: m.backupId, parts: parts.length, state: "rewrapped" });
  return undefined;
}

/**
 * The backup's file catalog, re-encrypted to the new recipients (it is small: decrypted and
 * sealed afresh, so the old key cannot open the new object at all). Stored under a new key: the
 * manifest still names the old one until it is rewritten, and a killed run leaves only an extra
 * object under the backup's id (prune deletes it with the backup). A catalog that cannot be
 * opened is left out of the rewritten manifest with a warning: the backup itself is rekeyed.
 */
async function rekeyCatalog(cfg: Config, store: ObjectStore, m: Manifest, ref: CatalogRef, o: RekeyOptions): Promise<CatalogRef | undefined> {
  try {
    const body = await store.get(ref.key, { maxBytes: MAX_CATALOG_BYTES });
    if (body === null) throw new ZrbError(`file catalog ${store.urlOf(ref.key)} is missing`, ExitCode.STORE);
    const sealed = await sealCatalog(await openCatalog(body, ref, o.identities), o.recipients);
    const key = catalogKey(m.pool, m.dataset, m.backupId, Buffer.from(crypto.getRandomValues(new Uint8Array(4))).toString("hex"));
    await store.put(key, sealed, { storageClass: cfg.s3.storageClass.manifest });
    return { ...ref, key, size: sealed.length, sha256: sha256Hex(sealed) };
  } catch (err) {
    // Only damage (7) or a missing object (6) is left out; a wrong key, an interrupt, a store outage stop the run.
    if (!(err instanceof ZrbError) || (err.exitCode !== ExitCode.INTEGRITY && !(err.exitCode === ExitCode.STORE && /is missing/.test(err.message)))) throw err;
    log.warn(`backup ${m.backupId}: its file catalog is not rekeyed and is left out of the new manifest (${err.message}); zrb find will not search this point`);
    return undefined;
  }
}
