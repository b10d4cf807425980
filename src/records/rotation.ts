/**
 * The progress of `zrb verify --rotate` (`manifests/<pool>/<dataset>/verify-rotation.yaml`),
 * kept in the bucket so that a rebuilt NAS continues the rotation where the old one was: for
 * each backup, when a rotation first saw it and when each of its parts was last read and found
 * good. It is only progress, never trusted for anything else: missing, unreadable or wrongly
 * shaped, the rotation starts afresh (one warning) and every part is read again within DAYS.
 */
import YAML from "yaml";
import { readRecord } from "./record.ts";
import { rotationKey } from "../store/layout.ts";
import type { ObjectStore } from "../store/store.ts";
import { log } from "../util/log.ts";
import { now } from "../util/clock.ts";

export const ROTATION_FORMAT = "zrb-verify-rotation/1";
/** 16 bytes a part: far below this for any bucket zrb can fill. */
const MAX_ROTATION_BYTES = 16 * 1024 * 1024;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

export interface BackupProgress {
  /** When a rotation first saw this backup. */
  seen: string;
  /** Per part index: when it was last read and found good, or null. */
  verified: (string | null)[];
  /**
   * Per part index (as a string): when a rotation last read it and found it bad, and why.
   * Prune counts a chain with a bad part as not restorable (it keeps it, and does not let it
   * stand in for a restore point). Unsigned like the rest of this file: a forged entry can only
   * make prune keep more.
   */
  bad?: Record<string, { at: string; why: string }>;
}

export interface Rotation {
  format: string;
  /** When the last run started. */
  lastRunAt: string | null;
  backups: Record<string, BackupProgress>;
}

export const emptyRotation = (): Rotation => ({ format: ROTATION_FORMAT, lastRunAt: null, backups: {} });

/** Why a parsed rotation file is not usable, or undefined. */
export function rotationProblem(v: unknown): string | undefined {
  const r = v as Rotation;
  if (!r || typeof r !== "object" || Array.isArray(r)) return "it is not a mapping";
  if (r.format !== ROTATION_FORMAT) return `unknown format ${JSON.stringify(String(r.format)).slice(0, 40)}`;
  if (r.lastRunAt !== null && !(typeof r.lastRunAt === "string" && TIME.test(r.lastRunAt))) return "bad lastRunAt";
  if (!r.backups || typeof r.backups !== "object" || Array.isArray(r.backups)) return "it has no backups";
  for (const [id, b] of Object.entries(r.backups)) {
    if (!/^[0-9A-Za-z-]{1,64}$/.test(id)) return "a bad backup id";
    if (!b || typeof b.seen !== "string" || !TIME.test(b.seen) || !Array.isArray(b.verified)) return `backup ${id} is malformed`;
    if (!b.verified.every((t) => t === null || (typeof t === "string" && TIME.test(t)))) return `backup ${id} has a bad time`;
    if (b.bad !== undefined) {
      if (!b.bad || typeof b.bad !== "object" || Array.isArray(b.bad)) return `backup ${id} has a malformed bad list`;
      for (const [k, v] of Object.entries(b.bad))
        if (!/^\d{1,7}$/.test(k) || !v || typeof v.at !== "string" || !TIME.test(v.at) || typeof v.why !== "string") return `backup ${id} has a malformed bad part`;
    }
  }
  return undefined;
}

/** The rotation recorded in the store; a fresh one when there is none or it is not usable. */
export async function readRotation(store: ObjectStore, pool: string, dataset: string): Promise<Rotation> {
  const key = rotationKey(pool, dataset);
  const r = await readRecord<Rotation>(store, key, MAX_ROTATION_BYTES, rotationProblem);
  if (r.kind === "ok") return r.value;
  if (r.kind === "unusable")
    log.warn(`${key} in ${store.location} is unusable (${r.why}); starting the verification rotation afresh: every part is read again within the rotation's days`);
  return emptyRotation();
}

/** backupId → a one-line account of the parts a rotation found bad (for prune). */
export function badParts(r: Rotation): Map<string, string> {
  const out = new Map<string, string>();
  for (const [id, b] of Object.entries(r.backups)) {
    const bad = Object.entries(b.bad ?? {});
    if (bad.length === 0) continue;
    const [index, first] = bad.sort((x, y) => Number(x[0]) - Number(y[0]))[0]!;
    out.set(id, `part ${index} (${first.why.slice(0, 200)}, ${first.at})${bad.length > 1 ? ` and ${bad.length - 1} more` : ""}`);
  }
  return out;
}

export async function writeRotation(store: ObjectStore, pool: string, dataset: string, r: Rotation, storageClass: string): Promise<void> {
  await store.put(rotationKey(pool, dataset), YAML.stringify({ ...r, updatedAt: now().toISOString() }, { lineWidth: 0 }), { storageClass });
}
