/**
 * `zrb find PATTERN`: which restore points hold the files a glob matches, from the encrypted
 * file catalogs alone (pipeline/files/find.ts; no data part is downloaded), newest first, with
 * the size and mtime of each version and "last seen in …" for a file deleted since. A point is
 * printed as its backup id and snapshot: what `zrb restore --backup-id/--snapshot` take.
 */
import { defineCommand } from "citty";
import { applyOutput, configArg, loadStores, outputArgs, printJson, taskArg } from "./common.ts";
import { storeArg } from "./stores.ts";
import { resolveTrust, trustArgs } from "./trust.ts";
import { childArg, parseChild } from "./tree.ts";
import { loadIdentityFile } from "../crypto/keys.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { bucketChildren, onlyChild } from "../pipeline/tree/known.ts";
import { findFiles, type FindResult, type FoundPoint } from "../pipeline/files/find.ts";
import { globProblem } from "../pipeline/files/glob.ts";
import { parseDuration } from "../util/duration.ts";
import { formatSize } from "../util/size.ts";
import { now } from "../util/clock.ts";
import { usageError } from "../util/errors.ts";

/** --since: a duration back from now (7d) or a date/time (2026-11-01, 2026-11-01T12:00Z). */
export function parseSince(v: string): Date {
  const d = parseDuration(v);
  if (!("problem" in d)) return new Date(now().getTime() - d.ms);
  const t = /^\d{4}-\d\d-\d\d/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw usageError(`--since ${JSON.stringify(v.slice(0, 40))} is neither a duration (7d, 24h) nor a date (2026-11-01 or 2026-11-01T12:00:00Z)`);
  return new Date(t);
}

const at = (p: FoundPoint) => `${p.backupId} (${p.snapshot.split("@")[1]})`;
const when = (mtime: number) => new Date(mtime * 1000).toISOString().replace(/\.000Z$/, "Z");

/** The text of one dataset's answer. */
export function findLines(r: FindResult): string[] {
  const out: string[] = [];
  if (r.matches.length === 0) out.push(`${r.dataset}: nothing matches ${JSON.stringify(r.pattern)} in ${r.searched} restore point(s)`);
  for (const m of r.matches) {
    out.push(`${r.dataset}: ${m.path}${m.deleted ? `  (deleted since; last seen in ${at(m.lastSeen)})` : ""}`);
    for (const v of m.versions) {
      const what = v.type === "d" ? "directory" : v.type === "l" ? `symlink` : v.type === "o" ? "special file" : formatSize(v.size);
      const span = v.points > 1 ? `, in ${v.points} points back to ${v.oldest.backupId}` : "";
      out.push(`  ${what}  mtime ${when(v.mtime)}  in ${at(v.newest)}${span}${v.newest.restorable ? "" : " (NOT restorable: zrb list says why)"}`);
    }
  }
  if (r.noCatalog.length > 0)
    out.push(`${r.dataset}: ${r.noCatalog.length} restore point(s) have no file catalog and were not searched: ${r.noCatalog.slice(0, 5).map((n) => `${n.backupId} (${n.why})`).join(", ")}${r.noCatalog.length > 5 ? ", …" : ""}`);
  return out;
}

export default defineCommand({
  meta: {
    name: "find",
    description:
      "Find which restore points hold the files a pattern matches, from the encrypted file catalogs alone (no data is downloaded): newest first, with size and mtime per version, and files deleted since (\"last seen in …\"). " +
      "PATTERN is a glob on paths relative to the dataset's root; without '/' it matches a name at any depth (*.jpg), with '/' the whole path (photos/2019/*, **/cache). " +
      "Each point is printed as a backup id and snapshot that zrb restore --backup-id / --snapshot take. A recursive task searches every child, or --child.",
  },
  args: {
    ...configArg,
    ...taskArg,
    "private-key": { type: "string", alias: "i", description: "age identity file (AGE-SECRET-KEY-1…) that opens the catalogs", valueHint: "FILE" },
    since: { type: "string", description: "Only restore points finished since: a duration (7d, 24h) or a date (2026-11-01)", valueHint: "DURATION|DATE" },
    pattern: { type: "positional", description: "Glob on paths relative to the dataset's root (a name alone matches at any depth)", required: false, valueHint: "PATTERN" },
    ...trustArgs,
    ...childArg,
    ...storeArg,
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    if (args.pattern === undefined) throw usageError("zrb find needs a PATTERN: a name (cat.jpg), a glob (*.jpg) or a path (photos/2019/*)");
    const pattern = String(args.pattern);
    const problem = globProblem(pattern);
    if (problem) throw usageError(`PATTERN ${JSON.stringify(pattern.slice(0, 60))} ${problem}`);
    if (!args["private-key"]) throw usageError("zrb find needs --private-key FILE: the catalogs are encrypted to your age key");
    const since = args.since ? parseSince(args.since) : undefined;
    const stores = await loadStores(args, { allowDisabled: true });
    const key = await loadIdentityFile(args["private-key"]);
    const trust = await resolveTrust(args, key.verifyKey, stores[0]!.config);
    const only = parseChild(args.child, stores[0]!.task);
    // Store by store (several stores: each its own chains, so its own answer, under its name).
    const each: { store: string; results: FindResult[] }[] = [];
    for (const s of stores) {
      const tasks = s.task.recursive
        ? onlyChild((await bucketChildren(s.store, s.task, trust)).children, only, s.task, s.store.location).map((c) => childTask(s.task, c.rel))
        : [s.task];
      const results: FindResult[] = [];
      for (const t of tasks) results.push(await findFiles(s.store, t.pool, t.dataset, { pattern, identities: key.identities, trust, since }));
      each.push({ store: s.name, results });
    }
    const shape = (rs: FindResult[]) => (stores[0]!.task.recursive ? rs : rs[0]);
    if (args.json) return printJson(each.length === 1 ? shape(each[0]!.results) : each.map((e) => ({ store: e.store, result: shape(e.results) })));
    const text = each.map((e) => (each.length > 1 ? [`store ${e.store}:`] : []).concat(e.results.flatMap(findLines)).join("\n"));
    process.stdout.write(text.join("\n\n") + "\n");
  },
});
