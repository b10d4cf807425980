/**
 * `zrb restore --path` when a path is not in the chosen snapshot: more words for the error,
 * naming the nearest restore points that do hold the path, from the encrypted file catalogs
 * (pipeline/files/find.ts: no data downloaded). A catalog that cannot be read only shortens
 * the hint: the error itself (the path is not in that point) stands either way.
 */
import type { Task } from "../../config/config.ts";
import type { Manifest } from "../../records/manifest.ts";
import type { Trust } from "../../records/trust.ts";
import type { ObjectStore } from "../../store/store.ts";
import { restorePointsHolding } from "../files/find.ts";

/** How many restore points the hint names at most. */
const NAMED = 3;

/** Extra text for the error (starting with "; "), or "" when nothing more is known. */
export async function missingPathHint(task: Task, store: ObjectStore, rel: string, point: Manifest, identities: string[], trust: Trust): Promise<string> {
  let holding;
  try {
    holding = await restorePointsHolding(store, task.pool, task.dataset, rel, identities, trust);
  } catch {
    return "; the file catalogs could not be read to say which restore points hold it (zrb find tells)";
  }
  if (holding.length === 0) return "; no restore point's file catalog holds it (zrb find searches by pattern)";
  const at = Date.parse(point.finishedAt);
  const nearest = [...holding].sort((a, b) => Math.abs(Date.parse(a.finishedAt) - at) - Math.abs(Date.parse(b.finishedAt) - at)).slice(0, NAMED);
  const named = nearest.map((p) => `--backup-id ${p.backupId} (@${p.snapshot}, level ${p.level})`).join(", ");
  return `; restore points holding it: ${named}`;
}
