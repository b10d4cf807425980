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
import { getProp } from "../../zfs/zfs.ts";
import { isInterrupt } from "../../util/abort.ts";
import { log } from "../../util/log.ts";
import { formatSize } from "../../util/size.ts";
import { listSnapshot } from "./listing.ts";

/** The stored catalog's record for the manifest, or undefined when there is none. */
export async function writeFileCatalog(cfg: Config, task: Task, store: ObjectStore, state: BackupState): Promise<CatalogRef | undefined> {
  if (!task.fileCatalog) return undefined;
  try {
    if ((await getProp(task.fullName, "type")) === "volume") return undefined; // a zvol holds blocks, not files
    const cat = await listSnapshot(state.snapshot.name, state.parent?.name ?? null, cfg.baseDir);
    const sealed = await sealCatalog(cat, state.recipients);
    const key = catalogKey(state.pool, state.dataset, state.backupId);
    await store.put(key, sealed, { storageClass: cfg.s3.storageClass.manifest });
    log.info(`file catalog of backup ${state.backupId}: ${cat.entries.length} ${cat.kind === "full" ? "entries" : "changes"}, ${formatSize(sealed.length)}`);
    return { key, size: sealed.length, sha256: sha256Hex(sealed), entries: cat.entries.length, kind: cat.kind };
  } catch (err) {
    if (isInterrupt(err)) throw err;
    const why = (err as Error)?.message?.split("\n")[0] ?? String(err);
    log.warn(`no file catalog for backup ${state.backupId} of ${task.fullName}: ${why}; the backup itself is complete, zrb find names this point as one without a catalog`);
    return undefined;
  }
}
