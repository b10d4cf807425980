/**
 * Every `zfs` invocation lives here. Capabilities are detected once per run from the
 * command's own usage text (zfs-fuse lacks many modern flags; OpenZFS 2.x has them).
 * The binary can be overridden with ZRB_ZFS (used by fault-injection tests only).
 */
import { ExitCode, ZrbError, zfsError } from "../util/errors.ts";
import { firstLine, parseFailure } from "./errors.ts";
import { now } from "../util/clock.ts";

export interface ZfsCaps {
  /** `zfs version` answered (OpenZFS ≥ 0.8). */
  openzfs: boolean;
  version: string;
  sendFlags: Set<string>;
  recvFlags: Set<string>;
  /** `zfs list -p` (parsable numbers). */
  listParsable: boolean;
  /** `zfs holds` works. */
  holds: boolean;
}

export interface Snapshot {
  /** Full name: pool/fs@snap */
  name: string;
  /** Part after '@'. */
  short: string;
  guid: string;
  createtxg: bigint;
}

export function zfsBin(): string {
  return process.env.ZRB_ZFS || "zfs";
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run zfs with args; never throws for a non-zero exit (callers decide), only if zfs is missing. */
export async function zfsRun(args: string[], opts: { stdin?: string } = {}): Promise<RunResult> {
  let proc;
  try {
    proc = Bun.spawn([zfsBin(), ...args], {
      stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
  } catch (err) {
    throw missingZfs(err);
  }
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

export function missingZfs(err: unknown): ZrbError {
  return new ZrbError(
    `cannot run '${zfsBin()}': ${(err as Error)?.message ?? err}; install the ZFS utilities (zfsutils-linux) or put zfs on PATH`,
    ExitCode.ZFS,
    { cause: err },
  );
}

async function zfsOk(args: string[], what: string): Promise<string> {
  const r = await zfsRun(args);
  if (r.code !== 0) throw zfsError(`${what} failed: zfs ${args.join(" ")}: ${firstLine(r.stderr) || `exit ${r.code}`}`);
  return r.stdout;
}

export { firstLine };

function flagsOf(usage: string, command: string): Set<string> {
  const flags = new Set<string>();
  for (const line of usage.split("\n")) {
    const t = line.trim();
    if (!t.startsWith(command + " ")) continue;
    for (const m of t.matchAll(/\[-([A-Za-z]+)/g)) for (const c of m[1]!) flags.add(c);
    for (const m of t.matchAll(/\[-\[([A-Za-z]+)\]/g)) for (const c of m[1]!) flags.add(c);
    // A flag outside brackets: OpenZFS lists `receive -A <filesystem|volume>` alone.
    for (const m of t.matchAll(/(?<=\s)-([A-Za-z])(?=\s|$)/g)) flags.add(m[1]!);
  }
  return flags;
}

let capsCache: Promise<ZfsCaps> | undefined;

/** Detect what this zfs can do, once per process. */
export function detectCaps(): Promise<ZfsCaps> {
  capsCache ??= (async () => {
    // Both at once: every zrb command pays for this before its first real zfs call.
    const [usage, ver] = await Promise.all([zfsRun([]) /* prints usage to stderr, exits 2 */, zfsRun(["version"])]);
    const text = usage.stdout + usage.stderr;
    if (!/send/.test(text)) throw zfsError(`'${zfsBin()}' does not look like the zfs command (no usage text)`);
    const openzfs = ver.code === 0 && /zfs/i.test(ver.stdout);
    const version = openzfs ? (ver.stdout.split("\n")[0] ?? "").trim() : "zfs (legacy, e.g. zfs-fuse)";
    const sendFlags = flagsOf(text, "send");
    const recvFlags = new Set([...flagsOf(text, "receive"), ...flagsOf(text, "recv")]);
    const listFlags = flagsOf(text, "list");
    return {
      openzfs,
      version,
      sendFlags,
      recvFlags,
      listParsable: listFlags.has("p"),
      holds: openzfs,
    };
  })();
  return capsCache;
}

/** Test hook: forget detected capabilities (tests switch ZRB_ZFS). */
export function resetCaps(): void {
  capsCache = undefined;
}

export async function datasetExists(name: string): Promise<boolean> {
  const r = await zfsRun(["list", "-H", "-o", "name", name]);
  return r.code === 0;
}

/**
 * Whether dataset `name` is missing, for a caller that destroys what it believes it created:
 * true only when zfs says it does not exist, false when zfs lists it. Throws a zfs error (exit 5)
 * when zfs fails otherwise (datasetExists would call that "missing").
 */
export async function datasetSurelyMissing(name: string): Promise<boolean> {
  const r = await zfsRun(["list", "-H", "-o", "name", name]);
  if (r.code === 0) return false;
  const f = parseFailure(r.stderr);
  if (f.kind === "not-found") return true;
  throw zfsError(`cannot tell whether ${name} exists: ${f.line}`);
}

export async function poolExists(pool: string): Promise<boolean> {
  return datasetExists(pool);
}

/** A dataset's type, and where it is mounted (null: not a mounted filesystem with a path). */
export interface MountInfo {
  type: string;
  mountpoint: string | null;
}

/**
 * type, mountpoint and mounted of `fs` in one zfs call (a file catalog and a drill need all
 * three; three calls cost ≈ 0.1–0.3 s each on a slow box). Null when `fs` does not exist.
 */
export async function mountInfo(fs: string): Promise<MountInfo | null> {
  const r = await zfsRun(["get", "-H", "-o", "property,value", "type,mountpoint,mounted", fs]);
  if (r.code !== 0) return null;
  const v = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const tab = line.indexOf("\t");
    if (tab > 0) v.set(line.slice(0, tab), line.slice(tab + 1));
  }
  const mp = v.get("mountpoint") ?? "";
  return { type: v.get("type") ?? "", mountpoint: mp.startsWith("/") && v.get("mounted") === "yes" ? mp : null };
}

/** Property value of one dataset/snapshot (parsable), or null if it does not exist. */
export async function getProp(name: string, prop: string): Promise<string | null> {
  const r = await zfsRun(["get", "-H", "-p", "-o", "value", prop, name]);
  if (r.code !== 0) return null;
  return r.stdout.trim();
}

/**
 * The snapshots of one filesystem (not its children), ordered by createtxg.
 * One `zfs get` call: zfs-fuse humanizes `zfs list -o guid` even with -H, `get -p` does not.
 */
export async function listSnapshots(fs: string): Promise<Snapshot[]> {
  const out = await zfsOk(
    ["get", "-H", "-p", "-r", "-d", "1", "-o", "name,property,value", "guid,createtxg", fs],
    `listing snapshots of ${fs}`,
  );
  const byName = new Map<string, { guid?: string; txg?: bigint }>();
  for (const line of out.split("\n")) {
    const [name, prop, value] = line.split("\t");
    if (!name || !value || !name.startsWith(fs + "@")) continue;
    const e = byName.get(name) ?? {};
    if (prop === "guid") e.guid = value;
    if (prop === "createtxg") e.txg = BigInt(value);
    byName.set(name, e);
  }
  const snaps: Snapshot[] = [];
  for (const [name, e] of byName) {
    if (e.guid === undefined || e.txg === undefined) continue;
    snaps.push({ name, short: name.slice(fs.length + 1), guid: e.guid, createtxg: e.txg });
  }
  snaps.sort((a, b) => (a.createtxg < b.createtxg ? -1 : a.createtxg > b.createtxg ? 1 : 0));
  return snaps;
}

/** Snapshot name prefix of a level: the underscore keeps zrb_level1_ from matching zrb_level10_. */
export function levelPrefix(level: number): string {
  return `zrb_level${level}_`;
}

/** Newest snapshot (by createtxg) whose short name starts with zrb_level<N>_. */
export function newestLevelSnapshot(snaps: Snapshot[], level: number): Snapshot | undefined {
  const p = levelPrefix(level);
  return snaps.filter((s) => s.short.startsWith(p)).at(-1);
}

/** UTC timestamp with seconds, safe in a snapshot name: 20261124T112233Z */
export function snapshotTimestamp(d = now()): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

/**
 * The level and time of a snapshot named the way `zrb snapshot` names them,
 * zrb_level<N>_YYYYMMDDTHHMMSSZ; null for any other name (a name a user chose, even one that
 * starts with zrb_level<N>_, is never taken for one of zrb's).
 */
export function parseZrbSnapshotName(short: string): { level: number; time: Date } | null {
  const m = /^zrb_level(\d{1,2})_(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(short);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(2).map(Number) as [number, number, number, number, number, number];
  const time = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Reject impossible dates (20260231T…) rather than letting Date roll them over.
  if (time.getUTCMonth() !== mo - 1 || time.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return null;
  return { level: Number(m[1]), time };
}

/** `zfs snapshot [-r] fs@short`; with `recursive`, one atomic snapshot of fs and every descendant. */
export async function createSnapshot(fs: string, short: string, opts: { recursive?: boolean } = {}): Promise<string> {
  const name = `${fs}@${short}`;
  await zfsOk(["snapshot", ...(opts.recursive ? ["-r"] : []), name], `creating ${opts.recursive ? "recursive snapshot" : "snapshot"} ${name}`);
  return name;
}

export type DatasetType = "filesystem" | "volume";

/** fs and every filesystem and volume below it, as `zfs list -r` gives them (fs first). */
export async function listTree(fs: string): Promise<{ name: string; type: DatasetType }[]> {
  const out = await zfsOk(["list", "-H", "-r", "-t", "filesystem,volume", "-o", "name,type", fs], `listing the datasets below ${fs}`);
  return out
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const tab = l.lastIndexOf("\t");
      return { name: l.slice(0, tab), type: l.slice(tab + 1) === "volume" ? "volume" : "filesystem" };
    });
}

/** Place a user hold; an existing hold with the same tag counts as success. */
export async function hold(tag: string, snap: string): Promise<void> {
  if (!(await holdIfExists(tag, snap))) throw zfsError(`cannot hold ${snap} with tag '${tag}': it does not exist`);
}

/** Place a user hold if the snapshot exists: false when it does not (it was destroyed meanwhile). */
export async function holdIfExists(tag: string, snap: string): Promise<boolean> {
  const r = await zfsRun(["hold", tag, snap]);
  if (r.code === 0) return true;
  const f = parseFailure(r.stderr);
  if (f.kind === "tag-exists") return true;
  if (f.kind === "not-found" && !(await datasetExists(snap))) return false;
  throw zfsError(`cannot hold ${snap} with tag '${tag}': ${f.line}`);
}

/** Release a user hold; a missing hold or snapshot counts as success. */
export async function release(tag: string, snap: string): Promise<void> {
  const r = await zfsRun(["release", tag, snap]);
  if (r.code === 0) return;
  const f = parseFailure(r.stderr);
  if (f.kind === "no-such-tag" || f.kind === "not-found") return;
  throw zfsError(`cannot release hold '${tag}' on ${snap}: ${f.line}`);
}

/** userrefs of every snapshot of fs, in one call. */
export async function userRefs(fs: string): Promise<Map<string, number>> {
  const out = await zfsOk(["get", "-H", "-p", "-r", "-d", "1", "-o", "name,value", "userrefs", fs], `reading holds of ${fs}`);
  const m = new Map<string, number>();
  for (const line of out.split("\n")) {
    const [name, value] = line.split("\t");
    if (name?.startsWith(fs + "@") && value) m.set(name, Number(value));
  }
  return m;
}

export interface SendPlan {
  snapshot: string;
  /** Incremental base (full name), if any. */
  from?: string;
  /** Flags actually used, e.g. ["-L", "-c"] — recorded in the manifest. */
  flags: string[];
}

/**
 * Choose send flags from capabilities and the dataset's properties; `properties` adds `-p`
 * (tasks[].send_properties) where this zfs has it.
 */
export async function planSend(snapshot: string, from: string | undefined, caps: ZfsCaps, opts: { properties?: boolean } = {}): Promise<SendPlan> {
  const flags: string[] = [];
  if (opts.properties && caps.sendFlags.has("p")) flags.push("-p");
  const fs = snapshot.split("@")[0]!;
  const enc = caps.openzfs ? await getProp(fs, "encryption") : null;
  const encrypted = enc !== null && enc !== "off" && enc !== "-";
  if (encrypted && caps.sendFlags.has("w")) {
    flags.push("-w"); // raw: the data stays encrypted with the dataset's own key
  } else {
    if (caps.sendFlags.has("L")) flags.push("-L");
    if (caps.sendFlags.has("e")) flags.push("-e");
    if (caps.sendFlags.has("c")) flags.push("-c");
  }
  return { snapshot, from, flags };
}

export function sendArgs(plan: SendPlan): string[] {
  return ["send", ...plan.flags, ...(plan.from ? ["-i", plan.from] : []), plan.snapshot];
}

/**
 * What `zfs send` of this plan will produce, in bytes: `zfs send -n -P` where zfs has it
 * (OpenZFS), else the snapshot's `written@<base>` (incremental) or `referenced` (full); null
 * when neither is known (zfs-fuse has no `written`). For progress and ETA only.
 */
export async function estimateSend(plan: SendPlan, caps: ZfsCaps): Promise<{ bytes: number; source: string } | null> {
  if (caps.sendFlags.has("n") && caps.sendFlags.has("P")) {
    const r = await zfsRun(["send", "-n", "-P", ...sendArgs(plan).slice(1)]);
    const m = /^size\s+(\d+)\s*$/m.exec(`${r.stdout}\n${r.stderr}`);
    if (r.code === 0 && m) return { bytes: Number(m[1]), source: "zfs send -nP" };
  }
  const prop = plan.from ? `written@${plan.from.split("@")[1]}` : "referenced";
  const v = await getProp(plan.snapshot, prop);
  return v !== null && /^\d+$/.test(v) ? { bytes: Number(v), source: prop.replace(/@.*/, "") } : null;
}

/** `zfs send` of `plan`, its stdout a new pipe of the runtime's or the given descriptor (a pipe's write end). */
export function spawnSend(plan: SendPlan): Bun.Subprocess<"ignore", "pipe", "pipe">;
export function spawnSend(plan: SendPlan, stdout: number): Bun.Subprocess<"ignore", number, "pipe">;
export function spawnSend(plan: SendPlan, stdout: "pipe" | number = "pipe") {
  try {
    return Bun.spawn([zfsBin(), ...sendArgs(plan)], { stdin: "ignore", stdout, stderr: "pipe" });
  } catch (err) {
    throw missingZfs(err);
  }
}

export interface RecvOptions {
  force: boolean;
  /** Receive with -s (resumable) where supported. */
  resumable: boolean;
}

export function recvArgs(target: string, opts: RecvOptions, caps: ZfsCaps): string[] {
  const args = ["receive", "-u"];
  if (opts.force) args.push("-F");
  if (opts.resumable && caps.recvFlags.has("s")) args.push("-s");
  args.push(target);
  return args;
}

export function spawnReceive(target: string, opts: RecvOptions, caps: ZfsCaps) {
  try {
    return Bun.spawn([zfsBin(), ...recvArgs(target, opts, caps)], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  } catch (err) {
    throw missingZfs(err);
  }
}

/** Abort a resumable partial receive (OpenZFS `zfs receive -A`); a zfs without -A has none to abort. Throws zfs's refusal (e.g. no partial state). */
export async function abortReceive(target: string, caps: ZfsCaps): Promise<void> {
  if (!caps.recvFlags.has("A")) return;
  await zfsOk(["receive", "-A", target], `discarding the partially received stream on ${target}`);
}

/** `zfs destroy [-r] name`: true when it is gone (destroyed now or already), false when zfs refused. */
export async function tryDestroy(name: string, opts: { recursive?: boolean } = {}): Promise<boolean> {
  const r = await zfsRun(["destroy", ...(opts.recursive ? ["-r"] : []), name]);
  return r.code === 0 || parseFailure(r.stderr).kind === "not-found";
}

/** `zfs unmount name`; a busy dataset is a one-line error naming it. */
export async function unmount(name: string): Promise<void> {
  const r = await zfsRun(["unmount", name]);
  if (r.code === 0) return;
  throw zfsError(`cannot unmount ${name} before receiving into it with --force: ${firstLine(r.stderr) || `exit ${r.code}`}; close what uses it (files, shares) and rerun`);
}
