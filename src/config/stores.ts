/**
 * Several destinations per task (issue 25): the config's `stores:` list, or its one `s3`
 * section read as a store named `default`, turned into one config per store.
 *
 * Why a whole config per store (storeView) rather than a store argument threaded through every
 * stage: every stage already takes the config and reads `s3`, `local_store`, `base_dir` and the
 * task's `retention` from it. A store's view swaps exactly those, so each store gets its own
 * chain (heads, parents, levels in its own bucket), its own local run state (resume state,
 * heads cache, locks and spill under its own directory) and its own retention, with no stage
 * knowing that there are several. The `default` store's view is the config itself: a config
 * with one `s3` section keeps today's paths, hold tags and bucket layout exactly.
 */
import { posix } from "node:path";
import type { Ctx } from "./read.ts";
import { quote } from "../util/redact.ts";
import { didYouMean } from "./suggest.ts";

/** The store a config with one `s3` section has, and whose state stays where it always was. */
export const DEFAULT_STORE = "default";

/** Where a store's S3 credentials come from, by name only. */
export interface StoreCredentials {
  profile?: string;
  accessKeyIdEnv?: string;
  secretAccessKeyEnv?: string;
}

interface S3Like {
  enabled: boolean;
  bucket: string;
}

/** One destination as the rest of zrb sees it. */
export interface StoreDef<S3 extends S3Like = S3Like, R = unknown> {
  name: string;
  s3: S3 & { credentials?: StoreCredentials };
  localStore: string;
  /** Replaces every task's retention for this store. */
  retention?: R;
  /** Its local run state: base_dir for `default`, base_dir/stores/<name> for any other. */
  baseDir: string;
}

interface RawStore<S3, R> {
  name: string;
  s3?: S3;
  localStore?: string;
  retention?: R;
  credentials?: StoreCredentials;
}

interface RawRoot<S3 extends S3Like, R> {
  baseDir: string;
  localStore: string;
  s3: S3;
  stores?: RawStore<S3, R>[];
  tasks: { name: string; stores?: string[]; retention?: R }[];
}

/**
 * The config's stores; a config built by hand (tests, the bench) without them has the one
 * store `default`, its own s3 section.
 */
export function storesOf<C extends Viewable>(config: C): StoreDef<any, any>[] {
  return config.stores ?? [{ name: DEFAULT_STORE, s3: config.s3, localStore: config.localStore, baseDir: config.baseDir }];
}

/** The names of the stores a task is backed up to, in config order. */
export function taskStores(config: Viewable, task: { stores?: string[] }): string[] {
  const all = storesOf(config).map((s) => s.name);
  return task.stores ? all.filter((n) => task.stores!.includes(n)) : all;
}

/** The base dir of a store's local state. */
export function storeBaseDir(baseDir: string, name: string): string {
  return name === DEFAULT_STORE ? baseDir : posix.join(baseDir, "stores", name);
}

/**
 * The ROOT's last step: a `stores` list as StoreDefs, every task's `stores` filled in and
 * checked, and the config's own `s3`/`local_store` those of the first store (what commands
 * that are about no store in particular — check, plan — look at). A config with one `s3`
 * section is returned as it is.
 */
export function resolveStores<S3 extends S3Like, R, T extends RawRoot<S3, R>>(
  o: T,
  c: Ctx,
): Omit<T, "stores"> & { stores?: StoreDef<S3, R>[]; store?: string } {
  const s3Ctx = c.get("s3");
  const storesCtx = c.get("stores");
  if (s3Ctx.present && storesCtx.present)
    storesCtx.fail(`stores and s3 are both set; a config has either one s3 section (the store "default") or a stores list: move the s3 section into stores as {name: default, s3: …}`);
  // One s3 section: the config stays as it always was (storesOf reads it as the store "default").
  if (!o.stores) {
    const { stores: _none, ...rest } = o;
    return rest;
  }
  const defs: StoreDef<S3, R>[] = o.stores.map((s, i) => storeDef(o, s, storesCtx.list![i]!));
  defs.forEach((d, i) => {
    const j = defs.findIndex((e) => e.name === d.name);
    if (j !== i) storesCtx.list![i]!.get("name").problem(`${quote(d.name)} is already used by stores[${j}]; store names must be unique`);
  });
  const names = defs.map((d) => d.name);
  const tasksCtx = c.get("tasks");
  const tasks = o.tasks.map((t: T["tasks"][number], i) => {
    if (t.stores === undefined) return { ...t, stores: names };
    const sc = tasksCtx.list![i]!.get("stores");
    if (t.stores.length === 0) sc.problem(`lists no store; name at least one of ${names.join(", ")} (or leave stores out for all of them)`);
    t.stores.forEach((n, j) => {
      if (!names.includes(n)) sc.list![j]!.problem(`names no store: ${quote(n)}${didYouMean(n, names)} (stores: ${names.join(", ")})`);
    });
    return { ...t, stores: [...new Set(t.stores)] };
  });
  const first = defs[0]!;
  return { ...o, tasks, stores: defs, store: first.name, s3: first.s3, localStore: first.localStore };
}

function storeDef<S3 extends S3Like, R>(o: RawRoot<S3, R>, s: RawStore<S3, R>, c: Ctx): StoreDef<S3, R> {
  const baseDir = storeBaseDir(o.baseDir, s.name);
  let s3: S3 = s.s3 ?? { ...o.s3, enabled: false, bucket: "" };
  const s3Ctx = c.get("s3");
  // A store's s3 section is on unless it says otherwise (the top-level one is off by default, as in the original zrb).
  if (s.s3 && !s3Ctx.get("enabled").present) s3 = { ...s3, enabled: true };
  if (s3.enabled && s3.bucket === "") s3Ctx.missing("bucket", `${s3Ctx.path}.bucket is required (the name of an existing bucket), or set ${s3Ctx.path}.enabled: false for a local store`);
  if (!s3.enabled && s.credentials) c.get("credentials").problem("is for an S3 store; this store has no s3 section (or s3.enabled: false)");
  return {
    name: s.name,
    s3: s.credentials ? { ...s3, credentials: s.credentials } : s3,
    localStore: s.localStore ?? posix.join(baseDir, "store"),
    ...(s.retention !== undefined ? { retention: s.retention } : {}),
    baseDir,
  };
}

interface Viewable {
  baseDir: string;
  store?: string;
  stores?: StoreDef<any, any>[];
  s3: unknown;
  localStore: string;
  tasks: { retention?: unknown }[];
}

/**
 * The config as one store sees it: that store's s3 section, local store, local run state and
 * retention. The `default` store of a config with one `s3` section gets the config unchanged.
 */
export function storeView<C extends Viewable>(config: C, name: string): C {
  const d = storesOf(config).find((s) => s.name === name);
  if (!d) throw new Error(`storeView: no store ${name}`);
  const tasks = d.retention === undefined ? config.tasks : config.tasks.map((t) => ({ ...t, retention: d.retention }));
  return { ...config, store: d.name, s3: d.s3, localStore: d.localStore, baseDir: d.baseDir, tasks };
}
