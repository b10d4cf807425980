/**
 * The config schema, written once: every key with its type, default, checks and the text of
 * its row in docs/config.md. The `Config` type, the known keys ("did you mean"), DEFAULTS and
 * the reference tables are derived from this tree (types.ts, walk.ts, doc.ts); config.ts reads
 * a file with it. To add a key, add one line here and run `bun run config-doc`.
 *
 * The rules themselves live with what they protect: ZFS names in zfs/names.ts, age recipients
 * in crypto/recipient.ts, the key prefix in store/keys.ts, bucket and endpoint in
 * store/s3rules.ts. Cross-key rules (a recipient from either key, a bucket when S3 is on,
 * one task per dataset) are the `.then` steps below.
 */
import { availableParallelism } from "node:os";
import { posix } from "node:path";
import { checkRecipient } from "../crypto/recipient.ts";
import { parseVerifyKey } from "../crypto/signing.ts";
import { checkPrefix, MAX_PREFIX_BYTES, type PrefixProblem } from "../store/keys.ts";
import { BUCKET_RULES, bucketProblem, checkEndpoint } from "../store/s3rules.ts";
import { quote } from "../util/redact.ts";
import { datasetPathProblem, MAX_NAME, poolProblem, runDirNameProblem } from "../zfs/names.ts";
import type { Ctx } from "./read.ts";
import { absolutePath, bool, duration, enumOf, int, rate, size, str } from "./scalars.ts";
import { pingUrlProblem } from "../util/url.ts";
import { compileExclude, excludePatternProblem } from "../zfs/exclude.ts";
import { resolveStores } from "./stores.ts";
import { type Infer, list, object, oneOrList, scalarText, type Siblings, Type } from "./types.ts";
import { formatSchedule, parseSchedule, ScheduleProblem, type BandwidthSchedule } from "../util/bandwidth-schedule.ts";

export const STORAGE_CLASSES = [
  "STANDARD",
  "REDUCED_REDUNDANCY",
  "STANDARD_IA",
  "ONEZONE_IA",
  "INTELLIGENT_TIERING",
  "GLACIER",
  "GLACIER_IR",
  "DEEP_ARCHIVE",
  "OUTPOSTS",
  "SNOW",
  "EXPRESS_ONEZONE",
] as const;
export const CHECKSUM_MODES = ["WHEN_REQUIRED", "WHEN_SUPPORTED"] as const;
export const OBJECT_LOCK_MODES = ["GOVERNANCE", "COMPLIANCE"] as const;

const GiB = 1024 ** 3;
const SECOND = 1000;
const HOUR = 3600 * SECOND;

// ---------------------------------------------------------------------------------------------
// Value types of this schema

const recipient = () =>
  str()
    .then((s, c) => {
      const r = checkRecipient(s);
      return "problem" in r ? c.problem(r.problem) : r.recipient;
    })
    .named("age recipient");

const verifyKey = () =>
  str()
    .then((s, c) => parseVerifyKey(s) ?? c.problem(`must be a verification key (zrbverify1…, printed by zrb genkey), got ${quote(s.slice(0, 24))}`))
    .named("verification key");

/** `"08:00,5MiB/s 23:00,off"` or a list of such entries (util/bandwidth-schedule.ts); fails at the entry, naming its position. */
const bandwidthSchedule = () =>
  new Type<BandwidthSchedule>({ name: "schedule", show: formatSchedule }, (c) => {
    if (c.empty) return undefined;
    const one = c.scalar() !== undefined;
    const ctxs = one ? [c] : (c.items("entries such as [\"08:00,5MiB/s\", \"23:00,off\"]") ?? []);
    const texts = ctxs.map((ic) => scalarText(ic, true) ?? "");
    try {
      return parseSchedule(one ? texts[0]! : texts);
    } catch (err) {
      if (!(err instanceof ScheduleProblem)) throw err;
      const at = one ? c : ctxs[err.position - 1]!;
      return at.problem(`${one ? `${err.message}` : `(${JSON.stringify(err.entry.slice(0, 40))}) ${err.why}`}; entries are HH:MM,RATE or HH:MM,off (e.g. "08:00,5MiB/s 23:00,off")`);
    }
  });

const storageClass = (keepBlank = false) =>
  enumOf(STORAGE_CLASSES, "a storage class, one of", { keepBlank }).named("storage class", "storage classes");

const PREFIX_MESSAGES: Record<PrefixProblem, (raw: string) => string> = {
  control: () => "must not contain control characters",
  backslash: (raw) => `must not contain backslashes, got ${quote(raw)}`,
  "empty-segment": (raw) => `must not contain empty segments ("//"), got ${quote(raw)}`,
  "dot-segment": (raw) => `must not contain "." or ".." segments, got ${quote(raw)}`,
  "too-long": () => `is longer than ${MAX_PREFIX_BYTES} bytes`,
};

function taskNameProblem(name: string): string | undefined {
  const ok = /^[A-Za-z0-9._-]+$/.test(name) && name !== "." && name !== "..";
  return ok ? undefined : `must be letters, digits, '.', '_' and '-' only, got ${quote(name)}`;
}

/** A store's name: it becomes a directory under base_dir, a suffix of zfs hold tags and of a prune timer's instance (TASK:STORE, never a level). */
export function storeNameProblem(name: string): string | undefined {
  const ok = /^[A-Za-z][A-Za-z0-9._-]{0,31}$/.test(name);
  return ok ? undefined : `must be 1 to 32 letters, digits, '.', '_' and '-' starting with a letter, got ${quote(name)}`;
}

function poolCheck(pool: string): string | undefined {
  if (pool.includes("/")) {
    const [p, ...rest] = pool.split("/");
    return `must be a pool name without '/', got ${quote(pool)}; write pool: ${p} and dataset: ${rest.join("/")}`;
  }
  const why = poolProblem(pool);
  return why && `${quote(pool)} is not a valid ZFS pool name: ${why}`;
}

function datasetCheck(dataset: string): string | undefined {
  const why = datasetPathProblem(dataset);
  return why && `${quote(dataset)} is not a valid ZFS dataset path: ${why}`;
}

// ---------------------------------------------------------------------------------------------
// tasks[].retention (zrb prune; the rules themselves are pipeline/prune/policy.ts)

const DAY_MS = 86_400_000;
const KEEP_COUNTS = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"] as const;
/** The largest retention count, in the config and in the --keep-* flags alike (cli/prune.ts). */
export const MAX_KEEP_COUNT = 1_000_000;
const keepCount = (what: string) => int(0, MAX_KEEP_COUNT).optional().doc(`${what} \`0\` (or absent) turns the rule off.`);
const keepRules = (of: string) => ({
  keep_last: keepCount(`Keep the newest N ${of}.`),
  keep_hourly: keepCount(`Keep the newest ${of.replace(/s$/, "")} of each of the last N hours that have one (UTC).`),
  keep_daily: keepCount(`Keep the newest ${of.replace(/s$/, "")} of each of the last N days that have one (UTC).`),
  keep_weekly: keepCount(`Keep the newest ${of.replace(/s$/, "")} of each of the last N ISO weeks (Monday to Sunday, UTC) that have one.`),
  keep_monthly: keepCount(`Keep the newest ${of.replace(/s$/, "")} of each of the last N months that have one (UTC).`),
  keep_yearly: keepCount(`Keep the newest ${of.replace(/s$/, "")} of each of the last N years that have one (UTC).`),
  keep_within: duration({ min: 1000, max: 36_500 * DAY_MS })
    .optional()
    .doc(`Keep every ${of.replace(/s$/, "")} younger than this, counted back from now (this host's clock, never a date in the bucket). \`7d\`, \`4w\`, \`365d\`.`),
});

/** A policy written in the config must keep something: every rule absent or 0 would delete everything. */
function keepsSomething(r: Record<string, unknown>): boolean {
  return !!r.keepWithin || KEEP_COUNTS.some((k) => Number(r[k.replace(/_(\w)/, (_, x: string) => x.toUpperCase())] ?? 0) > 0);
}
const NOTHING = `keeps nothing; set at least one of ${KEEP_COUNTS.join(", ")} to 1 or more, or keep_within`;

const RETENTION = object({
  ...keepRules("backups"),
  local: object(keepRules("snapshots"))
    .then((l, c) => (keepsSomething(l) ? l : c.problem(NOTHING)))
    .optional()
    .doc(
      "The same rules for the pool's own `zrb_level<N>_<time>` snapshots. Whatever they say, `zrb prune` never destroys a held snapshot, the base of the next backup at each level, the newest snapshot of each level, or a snapshot whose name zrb did not give.",
      { default: "`keep_within: 7d`" },
    ),
}).then((r, c) => {
  const { local, ...bucket } = r;
  const hasBucketRules = Object.values(bucket).some((v) => v !== undefined);
  if ((hasBucketRules || local === undefined) && !keepsSomething(bucket)) c.problem(NOTHING);
  return r;
});

// ---------------------------------------------------------------------------------------------
// tasks[]

const TASK = object({
  name: str()
    .check(taskNameProblem)
    .required("letters, digits, '.', '_' and '-'")
    .doc("Unique name, used by `--task`. Letters, digits, `.`, `_` and `-`."),
  description: str({ keepBlank: true }).default("").doc("Free text."),
  pool: str()
    .check(poolCheck)
    .required("a ZFS pool name such as tank")
    .doc(
      "ZFS pool name. It starts with a letter and contains letters, digits, `_`, `-`, `.`, `:` and spaces. ZFS reserves `mirror`, `raidz…`, `draid…`, `spare…` and `log`. Write `pool: tank` and `dataset: home`, not `pool: tank/home`.",
    ),
  dataset: str({ keepBlank: true })
    .check(datasetCheck)
    .required(`a dataset path inside the pool such as home/photos, or "" for the pool's root dataset`, { empty: "" })
    .doc(
      "Dataset path inside the pool (`home/photos`). `\"\"` (or an empty value) means the pool's root dataset. It has no leading `/`, no `@` (zrb picks the snapshots itself), no `#`, `%`, `.` or `..` components. The full name is at most 255 characters.",
    ),
  enabled: bool()
    .default(false)
    .doc("Only enabled tasks run. As in the original zrb a task is **off** unless it says `enabled: true`. zrb warns when no task is enabled."),
  recursive: bool()
    .default(false)
    .doc(
      "Back up the dataset and every filesystem and volume below it, each child as its own chain under its own prefix (`data/<pool>/<child>/…`), so that one child can be restored alone and a new child never breaks the others' incrementals. `zrb snapshot` takes one atomic `zfs snapshot -r`; a child that appears later gets its level 0 at its first backup. Not for a volume (zvol): it has no children.",
      { new: true },
    ),
  exclude: list(
    str().check((p) => {
      const why = excludePatternProblem(p);
      return why && `${quote(p)} ${why}`;
    }),
    { example: "child names relative to the dataset, e.g. [scratch, \"*/cache\"]", itemHint: "a child name or glob such as scratch or */cache" },
  )
    .optional()
    .rule((t, c) => {
      if (t.exclude !== undefined && t.recursive !== true) c.get("exclude").fail(`${c.get("exclude").path} only applies with recursive: true`);
    })
    .doc(
      "Children of a recursive task not to back up, by name relative to the dataset: `scratch`, `*/cache` (`*` and `?` within a name, `**` across names). An excluded child's children are excluded too. Excluded children are still in the atomic snapshot, never sent. A pattern that matches no child is a warning.",
      { new: true, default: "`[]`" },
    ),
  send_properties: bool()
    .default(false)
    .doc(
      "Send the datasets' properties with the data (`zfs send -p`). Off by default: a restore would receive the source's `mountpoint`, `sharenfs` and the like, so the restored copy mounts over (or shares) the live data's paths at the next boot, and would carry encryption and key location settings that do not fit the target. Turn it on when restoring to a fresh pool should recreate those settings.",
      { new: true },
    ),
  stores: list(str().check(storeNameProblem), { example: "names from the top-level stores list, e.g. [hot, cold]", itemHint: "a store name from stores[].name" })
    .optional()
    .doc(
      "The stores (`stores[].name`) this task is backed up to, each with its own chain. Without it: every store of the top-level `stores` list (or the one `s3` store, named `default`).",
      { new: true, default: "every store" },
    ),
  file_catalog: bool()
    .default(true)
    .doc(
      "Store an encrypted file catalog with every backup (a full listing at level 0, the changes since the parent above it: path, type, size, mtime), age-encrypted to the same recipients as the data and covered by the manifest's signature, so that `zrb find` answers which backups hold a file without downloading any data. Listing reads the snapshot through `.zfs/snapshot` or a temporary read-only clone; a listing that fails is a warning, never a failed backup. Its size and entry count are visible in the manifest. `false`: no catalog (zrb find has nothing to search for this task).",
      { new: true },
    ),
  retention: RETENTION.optional().doc(
    "Which backups `zrb prune` keeps in the bucket (restic's rules, ORed; the `--keep-*` flags replace them). Without bucket rules every backup is kept. A backup that a kept one depends on is always kept too.",
    { new: true, default: "— (keep everything)" },
  ),
}).then((t, c) => {
  const fullName = t.dataset === "" ? t.pool : `${t.pool}/${t.dataset}`;
  const ds = c.get("dataset");
  if (fullName.length > MAX_NAME) ds.fail(`${ds.path}: ${quote(fullName, 40)} is longer than ${MAX_NAME} characters`);
  return { ...t, fullName };
});

/** Whether a recursive task `t` backs up the dataset `fs` below it (not excluded). */
function covers(t: { fullName: string; recursive: boolean; exclude?: string[] }, fs: string): boolean {
  if (!t.recursive || !fs.startsWith(t.fullName + "/")) return false;
  return !compileExclude(t.exclude ?? []).excludes(fs.slice(t.fullName.length + 1));
}

/**
 * Two tasks may not share a name, nor a dataset (they would share its state and its place in
 * the bucket) — also not a dataset that a recursive task backs up as one of its children.
 */
function uniqueTasks<T extends { name: string; fullName: string; recursive: boolean; exclude?: string[] }>(tasks: T[], c: Ctx): T[] {
  const byName = new Map<string, number>();
  const byDataset = new Map<string, number>();
  tasks.forEach((t, i) => {
    const item = c.list![i]!;
    const prev = byName.get(t.name);
    const name = item.get("name");
    if (prev !== undefined) name.fail(`${name.path} ${quote(t.name)} is already used by tasks[${prev}]; task names must be unique`);
    byName.set(t.name, i);
    const dup = byDataset.get(t.fullName);
    if (dup !== undefined) item.fail(`${item.path} (${t.name}) backs up ${t.fullName}, as tasks[${dup}] already does; use one task per dataset`);
    byDataset.set(t.fullName, i);
  });
  tasks.forEach((t, i) => {
    const j = tasks.findIndex((o) => covers(o, t.fullName));
    if (j >= 0)
      c.list![i]!.fail(
        `${c.list![i]!.path} (${t.name}) backs up ${t.fullName}, which the recursive tasks[${j}] (${tasks[j]!.name}) already backs up as a child; add it to that task's exclude or drop one of them`,
      );
  });
  // Each task keeps its local state in base_dir/<pool>/<dataset>/: a task below another whose
  // first name there is one the other's directory uses (spill, zrb.lock, …) would share it, and
  // the other's cleanup would remove its state and lock.
  tasks.forEach((t, i) => {
    for (const [j, o] of tasks.entries()) {
      const why = t.fullName.startsWith(`${o.fullName}/`) ? runDirNameProblem(t.fullName.slice(o.fullName.length + 1).split("/")[0]!) : undefined;
      if (why === undefined) continue;
      c.list![i]!.fail(`${c.list![i]!.path} (${t.name}) backs up ${t.fullName}, whose local state would sit in the directory of tasks[${j}] (${o.name}, ${o.fullName}): ${why}; back it up from a config with another base_dir`);
      return;
    }
  });
  return tasks;
}

// ---------------------------------------------------------------------------------------------
// s3

const S3 = object({
  enabled: bool()
    .default(false)
    .doc("`true` to upload to the bucket. When `false` (or omitted, as in the original zrb) objects go to `local_store` and the other `s3` keys are optional."),
  bucket: str()
    .check((b) => {
      const why = bucketProblem(b);
      return why && `${quote(b)} is not a valid bucket name: ${why} (${BUCKET_RULES})`;
    })
    .default("")
    .rule((s3, c) => {
      if (s3.enabled === true && s3.bucket === "") c.missing("bucket", "s3.bucket is required when s3.enabled is true (the name of an existing bucket)");
    })
    .doc("An existing bucket. S3 naming rules: 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit, no `..`, not an IP address.", {
      default: "— (**required** when enabled)",
    }),
  prefix: str({ keepBlank: true })
    .then((raw, c) => {
      const p = checkPrefix(raw);
      return "problem" in p ? c.problem(PREFIX_MESSAGES[p.problem](raw)) : p.prefix;
    })
    .default("")
    .doc(
      "Key prefix for everything zrb writes. It is normalised: surrounding spaces and a leading `/` are dropped and a trailing `/` added (`zrb` → `zrb/`). `.`, `..` and empty (`//`) segments, backslashes and control characters are refused. At most 512 bytes.",
    ),
  region: str()
    .check((r) => (/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(r) ? undefined : `must be a region name such as us-east-1 (letters, digits, '-', '_', '.'), got ${quote(r)}`))
    .default("us-east-1")
    .doc("Region name. Other providers use their own (`auto` on R2, `garage` on Garage, …)."),
  endpoint: str()
    .then((raw, c) => {
      const e = checkEndpoint(raw);
      return "problem" in e ? c.problem(e.problem) : e.endpoint;
    })
    .named("http(s) URL")
    .optional()
    .doc(
      "The endpoint of an S3-compatible service (MinIO, Ceph, B2, Wasabi, R2, Garage). Setting it turns on path-style addressing. Must not contain a user name, password, query or fragment. A trailing `/` is dropped. Example: `http://127.0.0.1:9000`.",
      { default: "AWS" },
    ),
  checksum_mode: enumOf(CHECKSUM_MODES, "one of", { keepBlank: true })
    .default("WHEN_REQUIRED")
    .doc(
      "When the AWS SDK adds request checksums and validates response checksums. `WHEN_SUPPORTED` is the SDK's own default, but some services (Ceph radosgw among them) reject the streamed uploads it produces.",
      { new: true },
    ),
  storage_class: object({
    manifest: storageClass()
      .default("STANDARD")
      .doc("Storage class for manifests and the per-level head records. They are small and read on every run, so keep them in a class that needs no restore."),
    backup_data: list(storageClass(true), {
      example: "storage classes by level, e.g. [STANDARD, DEEP_ARCHIVE]",
      itemHint: "a storage class such as STANDARD",
      min: 1,
      minMessage: "must list at least one storage class (e.g. [STANDARD]), got an empty list",
    })
      .default(["STANDARD"])
      .doc(
        "Storage class for data parts, indexed by backup level: entry 0 for level 0, entry 1 for level 1, and so on. A level past the end of the list uses the **last** entry. The original zrb crashed there.",
      ),
  }).default(),
  retry: object({
    max_attempts: int(1, 100).default(5).doc("Attempts per S3 request, 1 to 100."),
  }).default(),
  concurrency: int(1, 64)
    .default(8)
    .doc(
      "Connections to the bucket for the whole run, shared by upload and download: a backup sends at most this many multipart parts at once (of all the parts it is uploading; the oldest part first), a restore or verify fetches parts as 4 MiB ranged GETs, at most this many at once (of all the parts downloading ahead; the next part first). One TCP connection to a bucket 20–100 ms away carries a fraction of the link: a link of L MB/s where one connection reaches C MB/s needs about L / C, plus one or two so that the link stays busy while a request ends and the next begins (docs/config.md: choosing s3.concurrency). Memory: one 4 MiB range buffer per connection when downloading, and one spare per four connections (40 MiB at 8; about twice that in RSS with the HTTP client's buffers); uploads stream each part from the spill file. `bandwidth_limit` caps the sum.",
      { new: true },
    ),
  request_timeout: duration({ min: SECOND, max: HOUR })
    .default(60 * SECOND)
    .doc(
      "A request is stalled when no byte moves for this long, when its response has not begun this long after its body was sent, or when it moves less than 1 KiB in this long (a server that drips). A stalled request is aborted and retried (one line per retry); after `retry.max_attempts` the run ends with exit 6, naming the endpoint. Not a total: a big part may take hours. From `1s` to `1h`.",
      { new: true },
    ),
  bandwidth_limit: rate({ min: 1024, max: 1024 ** 4 })
    .optional()
    .doc(
      "Limit for all uploads and downloads of a run together, e.g. `20MiB/s` (1024-based). `--bwlimit` on `backup`, `restore` and `verify` overrides it for one run.",
      { new: true, default: "no limit" },
    ),
  bandwidth_schedule: bandwidthSchedule()
    .optional()
    .doc(
      "Bandwidth by the clock, in local time: entries `HH:MM,RATE` or `HH:MM,off`, written as one string (`\"08:00,5MiB/s 23:00,off\"`, rclone's form) or as a list of entries. From each entry's time on its rate holds; before the day's first entry the last one does (from the day before). The limit changes while a run is going and is shown in progress lines. Replaces `bandwidth_limit` (set one of them); `--bwlimit` takes the same form and overrides both for one run.",
      { new: true, default: "no schedule" },
    ),
  object_lock: object({
    mode: enumOf(OBJECT_LOCK_MODES, "one of")
      .required("GOVERNANCE or COMPLIANCE")
      .doc("`GOVERNANCE` (an account with s3:BypassGovernanceRetention can still delete) or `COMPLIANCE` (nobody can, not even the root account, until the date)."),
    days: int(1, 36500).required("a whole number of days such as 30").doc("Days every object zrb writes stays locked; the objects a newer backup depends on are extended to this many days from that backup."),
  })
    .optional()
    .doc(
      "Object lock (the bucket must have been created with object lock enabled; `zrb check` checks it): every manifest and part is written with a retain-until date, and when a new incremental depends on older backups their objects are extended, so nothing a kept point depends on can be deleted before it (docs/security.md).",
      { new: true, default: "none" },
    ),
}).then((s3, c) => {
  if (s3.bandwidthLimit !== undefined && s3.bandwidthSchedule !== undefined)
    c.problem("sets both bandwidth_limit and bandwidth_schedule; keep one (a one-entry schedule such as \"00:00,20MiB/s\" is a constant limit)");
  return s3;
});

// ---------------------------------------------------------------------------------------------
// stores[] (config/stores.ts turns them into one config per store)

const CREDENTIALS = object({
  profile: str()
    .check((v) => (/^[A-Za-z0-9._-]{1,64}$/.test(v) ? undefined : `must be a profile name of the shared AWS credentials file, got ${quote(v)}`))
    .optional()
    .doc("A profile of the shared credentials file (`~/.aws/credentials`) for this store."),
  access_key_id_env: str()
    .check(envNameProblem)
    .optional()
    .doc("The name of the environment variable that holds this store's access key id (the name, never the key: e.g. `ZRB_COLD_KEY_ID`)."),
  secret_access_key_env: str()
    .check(envNameProblem)
    .optional()
    .rule((o, c) => {
      if ((o.accessKeyIdEnv === undefined) !== (o.secretAccessKeyEnv === undefined))
        c.problem("needs both access_key_id_env and secret_access_key_env (the names of two environment variables), or neither");
    })
    .doc("The name of the environment variable that holds this store's secret access key."),
}).then((o, c) => {
  if (o.profile !== undefined && o.accessKeyIdEnv !== undefined) c.problem("sets both profile and access_key_id_env; keep one");
  return o;
});

function envNameProblem(v: string): string | undefined {
  return /^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(v) ? undefined : `must be the name of an environment variable (letters, digits, '_'), got ${quote(v)}`;
}

const STORE = object({
  name: str()
    .check(storeNameProblem)
    .required("a name such as hot or cold")
    .doc("Unique name, used by `tasks[].stores` and `--store`. A store named `default` keeps its local state where a config with one `s3` section keeps it; any other store keeps it under `<base_dir>/stores/<name>/`."),
  s3: S3.optional().doc("The bucket, with the keys of the top-level `s3` section (`enabled` may be left out: a store's `s3` section is on unless it says `enabled: false`).", {
    default: "— (a local directory store)",
  }),
  local_store: absolutePath()
    .optional()
    .doc("The directory of a local store (no `s3` section, or `s3.enabled: false`).", { default: "`<base_dir>/stores/<name>/store`" }),
  retention: RETENTION.optional().doc("Replaces `tasks[].retention` for this store: e.g. a hot store keeping 14 daily backups and a cold one keeping 24 monthly ones.", {
    default: "the task's",
  }),
  credentials: CREDENTIALS.optional().doc("Where this store's S3 credentials come from, by name only (secrets are never written in the config). Without it, the usual AWS environment and files.", {
    default: "the AWS default chain",
  }),
});

// ---------------------------------------------------------------------------------------------
// monitoring, zfs

const MONITORING = object({
  metrics_file: absolutePath()
    .check((p) => (p.endsWith(".prom") ? undefined : `must end in .prom (the node_exporter textfile collector reads only those), got ${quote(p)}`))
    .optional()
    .doc(
      "A Prometheus textfile-collector file (`…/node_exporter/textfile_collector/zrb.prom`), rewritten atomically after every backup, restore, verify and prune with the `zrb_*_last_*` metrics of docs/monitoring.md. Its directory must exist.",
      { new: true },
    ),
  ping_url: str()
    .check(pingUrlProblem)
    .named("http(s) URL")
    .optional()
    .doc(
      "A healthchecks-style URL: `zrb backup` GETs `<url>/start` when it starts, `<url>` when it succeeds and `<url>/fail` when it fails (10 s timeout; a failing ping is logged and never fails the backup). The URL may carry credentials; zrb never prints more of it than its scheme and host.",
      { new: true },
    ),
});

const ZFS = object({
  stall_timeout: duration({ min: SECOND, max: 7 * 24 * HOUR })
    .default(HOUR)
    .doc(
      "`zfs send` that produces no byte, or `zfs receive` that takes no byte (or has not exited after the stream's last byte), for this long is stopped with exit 5 and a message saying which. Generous on purpose: a busy pool can pause a stream for minutes.",
      { new: true },
    ),
});

const DRILL = object({
  dir: absolutePath()
    .optional()
    .doc(
      "Where `zrb drill` and `zrb restore --path` put the sparse file of their throwaway pool (`zrbdrill<random>.img`), its lock and its mount points. It must belong to zrb's user, be closed to group and others, and sit under directories no other user can rename it in (base_dir's rule; refused with exit 9 otherwise). It needs free space for the restored streams (checked first, exit 9); only entries named `zrbdrill<hex>…` in it are ever removed, and only when no running zrb holds their lock.",
      { new: true, default: "`<base_dir>/drill`" },
    ),
  private_key: absolutePath()
    .optional()
    .doc(
      "The age identity file `zrb drill` uses when `--private-key` is not given, and the condition for the monthly `zrb-drill@TASK.timer` of `zrb systemd install`: a drill must decrypt, so this key then lives on this host next to the backups. Set it on a restore or drill host, or on the NAS only when that trade is wanted (docs/restore.md).",
      { new: true, default: "none: no drill timer" },
    ),
});

const PLAN = object({
  prices: absolutePath()
    .optional()
    .doc("A YAML price file for `zrb plan` (the form is in docs/plan.md): its providers are added to the built-in table or replace built-in ones; its `min_days` are also what `zrb prune` waits out. `--prices` overrides it for `zrb plan`.", {
      new: true,
      default: "the built-in table",
    }),
  provider: str()
    .check((v) => (/^[a-z0-9][a-z0-9_-]{0,31}$/.test(v) ? undefined : `must be a provider name of the price table such as aws, b2, wasabi or r2, got ${quote(v)}`))
    .optional()
    .doc("The provider whose prices `zrb plan` uses (`aws`, `b2`, `wasabi`, `r2`, or one of the price file), and whose minimum storage durations `zrb prune` waits out (Wasabi: 90 days of every object; docs/retention.md). `--provider` overrides it for `zrb plan`.", {
      new: true,
      default: "from s3.endpoint's host",
    }),
});

// ---------------------------------------------------------------------------------------------
// The file

/** The default `workers`: one per CPU core, at most this many. */
export const MAX_DEFAULT_WORKERS = 4;

/** One encryption worker per CPU core (as the OS lets this process use them), 1 to MAX_DEFAULT_WORKERS. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(MAX_DEFAULT_WORKERS, availableParallelism()));
}

/** At least one recipient, from age_public_key or age_recipients. */
function needRecipient(o: Siblings, c: Ctx): void {
  if (o.agePublicKey !== undefined || (o.ageRecipients as string[] | undefined)?.length) return;
  const pub = c.get("age_public_key");
  const rec = c.get("age_recipients");
  const msg = "no age recipient: set age_public_key (or age_recipients) to the public key (age1…) printed by age-keygen";
  c.missing("age_public_key", msg, pub.present ? pub.at : rec.present ? rec.at : null);
}

export const ROOT = object(
  {
    base_dir: absolutePath()
      .required("an absolute path such as /var/lib/zrb")
      .doc(
        "Local state: `run/<pool>/<dataset>/` holds the resume state, the last-backup record and the lock; spill and restore scratch files go below it too. Created 0700 if missing; it must be owned by the user zrb runs as and writable by nobody else (a tmpfs needs `mode=0700`), else every run refuses (exit 9). Example: `/var/lib/zrb`.",
      ),
    age_public_key: recipient()
      .optional()
      .doc("The public key (`age1…`, printed by `age-keygen`) every part is encrypted to. Optional if `age_recipients` is given."),
    age_recipients: list(recipient(), { example: "e.g. [age1…, age1…]", itemHint: "an age public key (age1…)" })
      .optional()
      .rule(needRecipient)
      .doc("More recipients, merged with `age_public_key`. Duplicates are dropped. There must be at least one recipient in total.", {
        new: true,
        default: "`[]`",
      }),
    chunk_size: size({ min: 64 * 1024, max: 5 * 1024 * GiB, why: "the S3 object size limit" })
      .default(3 * GiB)
      .doc("Size of each encrypted part (one object each). From `64KiB` to `5TiB` (the S3 object limit).", { new: true }),
    workers: int(1, 64)
      .default(defaultWorkers)
      .doc(
        "Encryption workers: threads that seal (at restore: open) 1 MiB runs of age blocks, all of them on every part at once; 1 to 64. Also how many parts may be in flight: local spill space is at most `(workers + 1) × chunk_size`. Reading the stream, its BLAKE3 and writing the spill file are one thread each, so more workers than CPU cores do not help; each costs ≈ 30 MiB of memory (see docs/bench.md).",
        { new: true, default: `the number of CPU cores, at most ${MAX_DEFAULT_WORKERS}` },
      ),
    signing_key: absolutePath()
      .optional()
      .field("signingKeyFile")
      .doc(
        "The signing key file (`zrb_signing.key` from `zrb genkey`, mode 0600) that stays on the NAS: every manifest and heads file is signed with it, restore checks the signature with the verification key (docs/security.md). Without it, backups are not authenticated.",
        { new: true, default: "none" },
      ),
    verify_keys: oneOrList(verifyKey(), { example: "e.g. [zrbverify1…]", itemHint: "a verification key (zrbverify1…)" })
      .default([])
      .doc(
        "Verification keys (`zrbverify1…`, printed by `zrb genkey`) that backups may be signed with: on a host without `signing_key` (a prune or monitoring host), `prune`, `cleanup`, `status`, `list`, `verify` and `restore` trust only records signed by one of them (with `signing_key` set, its own key counts too). Several keys: backups signed before and after a key rotation. One string is accepted too. Without any key, `prune` and `cleanup` refuse to delete (exit 3) unless `--allow-unsigned` is given.",
        { new: true, default: "`[]`" },
      ),
    prune: object({
      orphan_grace: duration({ min: 0, max: 365 * 24 * HOUR })
        .default(48 * HOUR)
        .doc(
          "A part or multipart upload that no manifest names and no in-flight marker claims is left alone by `prune` and `cleanup` until it is this old: it may belong to a backup running on another host whose marker has not been written yet. It is also how long after a backup's last sign of life (its marker written, a part stored, an upload begun) `zrb cleanup --abandon` refuses to give it up. `0s` turns the grace off, for both. `zrb cleanup --older-than` overrides it for one run.",
          { new: true },
        ),
    })
      .default()
      .doc("How anything that deletes treats what it cannot account for.", { new: true, default: "see below" }),
    local_store: absolutePath()
      .default((o) => posix.join(o.baseDir as string, "store"))
      .doc("Where objects go when `s3.enabled` is false.", { new: true, default: "`<base_dir>/store`" }),
    s3: S3.default().doc("The object store (one store, named `default`). Use either `s3` or `stores`.", { default: "see below" }),
    stores: list(STORE, { example: "one entry per destination, each with name and s3", itemHint: "name and s3 (or local_store)", min: 1 })
      .optional()
      .doc(
        "Several destinations, each with its own chain, storage classes, retention, object lock, bandwidth limit and credentials (docs/config.md, \"Several stores\"). `zrb backup` sends to every store of the task; the other commands take `--store NAME`. Use either `s3` or `stores`.",
        { new: true, default: "— (the `s3` section is the one store)" },
      ),
    monitoring: MONITORING.default().doc("Metrics and pings for unattended runs.", { new: true, default: "see below" }),
    zfs: ZFS.default().doc("How long zfs may stall.", { new: true, default: "see below" }),
    drill: DRILL.default().doc("Throwaway pools of `zrb drill` and `zrb restore --path`.", { new: true, default: "see below" }),
    plan: PLAN.default().doc("Prices for `zrb plan`'s estimate.", { new: true, default: "see below" }),
    tasks: list(TASK, {
      example: "one entry per dataset, each with name, pool and dataset",
      itemHint: "name, pool and dataset",
      min: 1,
      minMessage: "must list at least one task (name, pool, dataset)",
    })
      .then(uniqueTasks)
      .named("list")
      .required("a list of tasks, each with name, pool and dataset")
      .doc("What to back up: one entry per dataset (or per tree, with `recursive`). It must have at least one task. Two tasks may not back up the same dataset, because they would share its state and its place in the bucket; nor may a task back up a child that a recursive task already covers, nor a dataset named `spill` (or ending in `.lock` or `.yaml`) right below another task's, whose local state would share that task's directory."),
  },
  { expect: "a mapping of keys (base_dir, age_public_key, s3, tasks)" },
).then((o, c) => {
  const { agePublicKey, ageRecipients, ...rest } = o;
  const recipients = [...new Set([...(agePublicKey !== undefined ? [agePublicKey] : []), ...(ageRecipients ?? [])])];
  if (!rest.tasks.some((t) => t.enabled)) {
    c.warn(`no task is enabled in ${c.file}; tasks default to enabled: false, so set enabled: true on those to back up`);
  }
  if (!rest.s3.enabled && rest.s3.bucket !== "") {
    c.warn(`s3.bucket is set but s3.enabled is not true in ${c.file}, so backups go to ${rest.localStore}; set s3.enabled: true to use the bucket`);
  }
  return resolveStores({ path: c.file, ...rest, recipients }, c);
});

/** A validated config; `path` is the file it was read from. */
export type Config = Infer<typeof ROOT>;
export type Task = Config["tasks"][number];
export type ChecksumMode = (typeof CHECKSUM_MODES)[number];
