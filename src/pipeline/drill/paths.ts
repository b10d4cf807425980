/**
 * `restore --path REL`: a path relative to the dataset's root, as the user gives it. Absolute
 * paths and `..` are refused (exit 2): what is copied out must come from inside the restored
 * dataset and land inside --to. `./a//b/` is taken as `a/b`.
 */
import { usageError } from "../../util/errors.ts";

export function parseRelPath(v: string): string {
  if (v.startsWith("/")) throw usageError(`--path ${JSON.stringify(v)} is absolute; give it relative to the dataset's root, e.g. home/alice/photo.jpg`);
  const parts = v.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw usageError(`--path ${JSON.stringify(v)} contains '..'; give a path inside the dataset, relative to its root`);
  if (parts.length === 0) throw usageError(`--path ${JSON.stringify(v)} names no file; give a file or directory relative to the dataset's root`);
  if (parts.some((p) => p === ".zfs")) throw usageError(`--path ${JSON.stringify(v)}: .zfs is not part of the dataset's files`);
  return parts.join("/");
}
