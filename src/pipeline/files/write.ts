/**
 * The file catalog at backup time: listed (listing.ts), sealed to the backup's recipients,
 * stored beside the manifest before the manifest is written, and described in it (key, size,
 * SHA-256, entries: signed with the manifest). The catalog is a convenience, the backup is not:
 * anything that fails here is one warning and a manifest without a catalog, never a failed
 * backup (an interrupt still stops the run).
 */
import type { Config, Task } from "../../config/config.ts";
import type { ObjectStore } from "../../store/store.ts";
import type { BackupState } from "../../state/rundir.ts";
import { catalogKey } from "../../store/layout.ts";
import { sealCatalog, sha256Hex, type CatalogRef } from "../../records/file-catalog.ts";
import { mountInfo } from "../../zfs/zfs.ts";
import { isInterrupt } from "../../util/abort.ts";
import { log } from "../../util/log.ts";
import { formatSize } from "../../util/size.ts";
import { listSnapshot } from "./listing.ts";

/** A catalog listed and sealed, not stored yet (listFileCatalog), or the warning why there is none. */
export type SealedCatalog = { sealed: Uint8Array; entries: number; kind: "full" | "changes" } | { why: string };

/**
 * List the snapshot's files and seal the catalog: local work only (zfs diff or a walk), so a
 * backup starts it once the send stream has been read, while its last parts are still uploading.
 */
export async function listFileCatalog(task: Task, state: BackupState, baseDir: string): Promise<SealedCatalog | undefined> {
  if (!task.fileCatalog) return undefined;
  try {
    const fs = await mountInfo(task.fullName);
    if (fs?.type === "volume") return undefined; // a zvol holds blocks, not files
    const cat = await listSnapshot(state.snapshot.name, state.parent?.name ?? null, baseDir, fs ? fs.mountpoint : undefined);
    return { sealed: await sealCatalog(cat, state.recipients), entries: cat.entries.length, kind: cat.kind };
  } catch (err) {
    if (isInterrupt(err)) throw err;
    return { why: (err as Error)?.message?.split("\n")[0] ?? String(err) };
  }
}

/** listFileCatalog begun now, awaited later (by writeFileCatalog): a failure meanwhile is not an unhandled one. */
export function beginFileCatalog(task: Task, state: BackupState, baseDir: string): Promise<SealedCatalog | undefined> {
  const p = listFileCatalog(task, state, baseDir);
  p.catch(() => {});
  return p;
}

/** The stored catalog's record for the manifest, or undefined when there is none. `listed`: listFileCatalog's result, if begun already. */
export async function writeFileCatalog(cfg: Config, task: Task, store: ObjectStore, state: BackupState, listed?: Promise<SealedCatalog | undefined>): Promise<CatalogRef | undefined> {
  let why: string;
  try {
    const cat = await (listed ?? listFileCatalog(task, state, cfg.baseDir));
    if (!cat) return undefined;
    if ("why" in cat) throw new Error(cat.why);
    const key = catalogKey(state.pool, state.dataset, state.backupId);
    await store.put(key, cat.sealed, { storageClass: cfg.s3.storageClass.manifest });
    log.info(`file catalog of backup ${state.backupId}: ${cat.entries} ${cat.kind === "full" ? "entries" : "changes"}, ${formatSize(cat.sealed.length)}`);
    return { key, size: cat.sealed.length, sha256: sha256Hex(cat.sealed), entries: cat.entries, kind: cat.kind };
  } catch (err) {
    if (isInterrupt(err)) throw err;
    why = (err as Error)?.message?.split("\n")[0] ?? String(err);
  }
  log.warn(`no file catalog for backup ${state.backupId} of ${task.fullName}: ${why}; the backup itself is complete, zrb find names this point as one without a catalog`);
  return undefined;
}
