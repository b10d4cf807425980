/**
 * The level a child of a recursive task is backed up at in a run at `level`: the asked level
 * when the child has a base for it (the newest lower-level backup, dump(8)'s rule) whose
 * snapshot is still on the child — else level 0, and why: a child new since the last run has no
 * backup yet, and one destroyed and created again under the same name no longer has the
 * snapshot its old chain ends in. Either way an incremental is impossible and a full is what the
 * single-dataset backup would demand; a tree does it by itself, and says so.
 */
import { chooseParent, type Heads } from "../../records/heads.ts";
import type { Snapshot } from "../../zfs/zfs.ts";

export type ChildLevel = { level: number; why?: undefined } | { level: 0; why: "new" | "base-gone"; asked: number; base?: string };

export function childLevel(level: number, heads: Heads, snaps: Snapshot[]): ChildLevel {
  if (level === 0) return { level: 0 };
  const parent = chooseParent(heads, level);
  if (!parent) return Object.keys(heads.levels).length === 0 ? { level: 0, why: "new", asked: level } : { level };
  if (snaps.some((s) => s.guid === parent.snapshot.guid)) return { level };
  return { level: 0, why: "base-gone", asked: level, base: parent.snapshot.name };
}

/** One line for the log and the summary. */
export function levelNote(l: ChildLevel): string | undefined {
  if (l.why === "new") return `new since the last run, no backup yet: level 0 instead of level ${l.asked}`;
  if (l.why === "base-gone") return `its base snapshot ${l.base} is no longer on the pool (created again?): level 0 instead of level ${l.asked}`;
  return undefined;
}
