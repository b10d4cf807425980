/**
 * The hook for `zrb restore --path` when a path is not in the chosen snapshot: more words for
 * the error, naming the nearest restore points that do hold the path. The encrypted file
 * catalog (issue 24, `zrb find`) answers that; until it is wired in here this adds nothing and
 * the error names the path and the restore point alone.
 */
import type { Task } from "../../config/config.ts";
import type { Manifest } from "../../records/manifest.ts";
import type { ObjectStore } from "../../store/store.ts";

/** Extra text for the error (starting with "; "), or "" when nothing more is known. */
export async function missingPathHint(_task: Task, _store: ObjectStore, _rel: string, _point: Manifest): Promise<string> {
  return "";
}
