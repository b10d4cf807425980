/**
 * Test rig: real zfs-fuse pools and a real Ceph radosgw for e2e tests.
 *
 *   s3Rig()      -> endpoint + credentials of a radosgw (test/rig/rgw.sh up, once per process)
 *   zfsRig()     -> the zfs-fuse daemon is running (test/rig/zfs-fuse.sh up, once per process)
 *   makePool()   -> a fresh file-backed pool `zrbt<hex>` mounted under /var/tmp/zrb-test-pools/
 *   makeBucket() / emptyAndDeleteBucket() / s3Client()
 *   run(), hashTree() (content, mode, mtime, empty dirs, symlinks), writeRandomFile(), snapshotGuid(),
 *   userrefs(), tmpDir()
 *
 * scripts/test.sh brings the rig up before `bun test`, so these calls are quick there.
 * Run alone on a cold machine, s3Rig() takes ~15 s: call it from a beforeAll with a
 * timeout (bun's default is 5 s, and bun 1.4.4 ignores bunfig's [test] timeout).
 *
 * Pools and buckets not destroyed by their test are removed after the run by
 * cleanupRig() (called from test/helpers/preload.ts).
 *
 * zfs-fuse (0.7, pool version 23) facts, checked on a real pool:
 *   works:  `zfs get -H -p -o value guid|userrefs|createtxg <snap>` (exact numbers);
 *           `zfs list -H -o name,createtxg -t snapshot -d 1 pool/ds` (also `-s createtxg`);
 *           `zfs send <snap>`, `send -i a b`, `send -I @a b`, `send -R -D -p -v`;
 *           `zfs receive -u -F`, `-d`, `-e`, `-n -v` (-u and -e work although the usage
 *           text does not list them); `zfs hold [-r]` / `zfs release [-r]`; a held
 *           snapshot refuses `zfs destroy` ("dataset is busy").
 *   lacks:  `zfs list -p` (invalid option), `zfs list -j`;
 *           `zfs send -w -c -n -P -t -L -e` (all "invalid option");
 *           `zfs receive -s`, and no `receive_resume_token` property;
 *           `zfs bookmark` and `zfs version` (unrecognized command);
 *           `zfs holds` is in the usage text but fails: "internal error:
 *           /usr/lib/zfs/pyzfs.py not found" (exit 255) -> read `userrefs` instead.
 *   quirk:  `zfs list -o guid` is humanized even with -H ("1.02E"): use `zfs get -H -p`.
 *           Reading a received, mounted fs changes atime and breaks the next
 *           incremental: receive with -u.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { lstat, mkdir, open, readdir, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";

const RIG_DIR = join(import.meta.dir, "..", "rig");
const POOL_DIR = "/var/tmp/zrb-test-pools";

export interface S3Rig {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: Uint8Array | string;
  env?: Record<string, string>;
  cwd?: string;
  allowFail?: boolean;
}

/** Run a command to completion. Throws (command + stderr in the message) on a non-zero exit unless allowFail. */
export async function run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  const stdin =
    opts.stdin === undefined ? "ignore" : typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin;
  const proc = Bun.spawn(cmd, {
    stdin,
    stdout: "pipe",
    stderr: "pipe",
    cwd: opts.cwd,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0 && !opts.allowFail) {
    throw new Error(`command failed (exit ${code}): ${cmd.join(" ")}\n${stderr.trim()}`);
  }
  return { code, stdout, stderr };
}

let s3Once: Promise<S3Rig> | undefined;
/** Bring up (or reuse) the radosgw on ZRB_TEST_RGW_PORT (default 7480). Memoized per process. */
export function s3Rig(): Promise<S3Rig> {
  s3Once ??= run(["bash", join(RIG_DIR, "rgw.sh"), "up"]).then(() => ({
    endpoint: `http://127.0.0.1:${process.env.ZRB_TEST_RGW_PORT || "7480"}`,
    region: "us-east-1",
    accessKeyId: "TESTKEY",
    secretAccessKey: "TESTSECRET",
  }));
  s3Once.catch(() => (s3Once = undefined));
  return s3Once;
}

let zfsOnce: Promise<void> | undefined;
/** Start (or reuse) the zfs-fuse daemon. Memoized per process. */
export function zfsRig(): Promise<void> {
  zfsOnce ??= run(["bash", join(RIG_DIR, "zfs-fuse.sh"), "up"]).then(() => undefined);
  zfsOnce.catch(() => (zfsOnce = undefined));
  return zfsOnce;
}

const livePools = new Set<string>();
const liveBuckets = new Map<string, S3Rig>();

function rid(): string {
  return randomBytes(5).toString("hex");
}

export interface TestPool {
  /** pool name, e.g. zrbt0a1b2c3d4e */
  pool: string;
  /** mountpoint of the pool's root dataset */
  dir: string;
  destroy(): Promise<void>;
}

/** A fresh pool on a sparse file vdev (default 256 MiB; zfs-fuse needs >= 64 MiB). */
export async function makePool(opts: { sizeMiB?: number } = {}): Promise<TestPool> {
  const sizeMiB = opts.sizeMiB ?? 256;
  if (sizeMiB < 64) throw new Error(`makePool: sizeMiB ${sizeMiB} < 64 (zfs-fuse minimum vdev size)`);
  await zfsRig();
  await mkdir(POOL_DIR, { recursive: true });
  const pool = `zrbt${rid()}`;
  const file = join(POOL_DIR, `${pool}.img`);
  const dir = join(POOL_DIR, `${pool}.mnt`);
  const fh = await open(file, "w");
  try {
    await fh.truncate(sizeMiB * 1024 * 1024);
  } finally {
    await fh.close();
  }
  try {
    await run(["zpool", "create", "-m", dir, pool, file]);
  } catch (e) {
    await rm(file, { force: true });
    throw e;
  }
  livePools.add(pool);
  let destroyed = false;
  return {
    pool,
    dir,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      livePools.delete(pool);
      await destroyPool(pool);
    },
  };
}

// FUSE sends RELEASE asynchronously after close(), so right after a test touched
// files zfs-fuse may still count them open ("pool is busy", "dataset is busy"): retry for a while.
async function whileBusy(cmd: string[], gone: RegExp): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const r = await run(cmd, { allowFail: true });
    if (r.code === 0 || gone.test(r.stderr)) return;
    if (!/busy/.test(r.stderr) || attempt >= 40) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.trim()}`);
    await Bun.sleep(250);
  }
}

async function destroyPool(pool: string): Promise<void> {
  await whileBusy(["zpool", "destroy", "-f", pool], /no such pool/);
  await rm(join(POOL_DIR, `${pool}.img`), { force: true });
  await rm(join(POOL_DIR, `${pool}.mnt`), { recursive: true, force: true });
}

/** `zfs destroy -f` of a dataset a test made, retried while zfs-fuse still counts its files open. */
export function destroyDataset(name: string): Promise<void> {
  return whileBusy(["zfs", "destroy", "-f", name], /does not exist|could not find/);
}

/** An S3 client configured for radosgw: path-style, checksums only when required. */
export async function s3Client(s3: S3Rig): Promise<S3Client> {
  const { S3Client } = await import("@aws-sdk/client-s3");
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** Create a fresh bucket `zrbt-<hex>`; returns its name. */
/** A fresh bucket (with `objectLock`: versioned, object lock enabled; lock with GOVERNANCE in tests so cleanup can bypass it). */
export async function makeBucket(s3: S3Rig, opts: { objectLock?: boolean } = {}): Promise<string> {
  const { CreateBucketCommand } = await import("@aws-sdk/client-s3");
  const bucket = `zrbt-${rid()}`;
  const client = await s3Client(s3);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket, ...(opts.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
  } finally {
    client.destroy();
  }
  liveBuckets.set(bucket, s3);
  return bucket;
}

/** Abort all multipart uploads, delete all objects (and versions), then delete the bucket. */
export async function emptyAndDeleteBucket(s3: S3Rig, bucket: string): Promise<void> {
  const sdk = await import("@aws-sdk/client-s3");
  const client = await s3Client(s3);
  try {
    for (;;) {
      const ups = await client.send(new sdk.ListMultipartUploadsCommand({ Bucket: bucket }));
      const list = ups.Uploads ?? [];
      for (const u of list) {
        await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key!, UploadId: u.UploadId! }));
      }
      if (!ups.IsTruncated || list.length === 0) break;
    }
    for (;;) {
      const vs = await client.send(new sdk.ListObjectVersionsCommand({ Bucket: bucket }));
      const ids = [...(vs.Versions ?? []), ...(vs.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key!, VersionId: v.VersionId }));
      if (ids.length > 0) {
        await client.send(new sdk.DeleteObjectsCommand({ Bucket: bucket, BypassGovernanceRetention: true, Delete: { Objects: ids, Quiet: true } }));
      }
      if (!vs.IsTruncated || ids.length === 0) break;
    }
    await client.send(new sdk.DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  liveBuckets.delete(bucket);
}

/** Remove pools and buckets that tests left behind. Called once after all tests (preload.ts). */
export async function cleanupRig(): Promise<void> {
  for (const pool of [...livePools]) {
    livePools.delete(pool);
    await destroyPool(pool).catch((e) => console.error(`rig cleanup: ${e}`));
  }
  for (const [bucket, s3] of [...liveBuckets]) {
    await emptyAndDeleteBucket(s3, bucket).catch((e) => console.error(`rig cleanup: bucket ${bucket}: ${e}`));
  }
}

/**
 * relative path -> what a restore must reproduce of each entry below `dir`, as the VM tier's
 * tree_manifest compares it:
 *   regular file  `file <mode> <mtime ns> <size> <sha256>`
 *   directory     `dir <mode> <mtime ns>` (empty ones too)
 *   symlink       `link <mtime ns> <target>`
 *   anything else `other <mode> <mtime ns>`
 * mode is the octal permission bits (with setuid/setgid/sticky). Keys sorted; `.zfs` and `dir`
 * itself skipped. Reading a tree never changes it (atime is not recorded).
 */
export async function hashTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(d: string): Promise<void> {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.name === ".zfs") continue;
      const p = join(d, e.name);
      const rel = relative(dir, p);
      const st = await lstat(p, { bigint: true });
      const mode = (Number(st.mode) & 0o7777).toString(8);
      if (st.isSymbolicLink()) {
        out[rel] = `link ${st.mtimeNs} ${await readlink(p)}`;
      } else if (st.isDirectory()) {
        out[rel] = `dir ${mode} ${st.mtimeNs}`;
        await walk(p);
      } else if (st.isFile()) {
        out[rel] = `file ${mode} ${st.mtimeNs} ${st.size} ${await sha256File(p)}`;
      } else {
        out[rel] = `other ${mode} ${st.mtimeNs}`;
      }
    }
  }
  if (!(await lstat(dir)).isDirectory()) throw new Error(`hashTree: not a directory: ${dir}`);
  await walk(dir);
  return Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]!]));
}

/** The content hash of a hashTree entry of a regular file (its last field). */
export function contentOf(entry: string | undefined): string | undefined {
  return entry?.startsWith("file ") ? entry.slice(entry.lastIndexOf(" ") + 1) : undefined;
}

// Explicit open/read/close: Bun.file().stream() keeps the fd open after EOF,
// which makes `zpool destroy` fail with "pool is busy".
async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}

/**
 * Write `bytes` of deterministic pseudo-random data (xorshift128, every MiB distinct).
 * The default seed is derived from the path, so different files differ.
 */
export async function writeRandomFile(path: string, bytes: number, seed?: number): Promise<void> {
  let s = seed ?? fnv1a(path);
  // xorshift128 state, seeded by splitmix-like scrambling (never all zero)
  const st = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    s = (Math.imul(s ^ (s >>> 16), 0x85ebca6b) + 0x9e3779b9 + i) >>> 0;
    st[i] = s || 1;
  }
  const CHUNK = 1 << 20;
  const buf = new Uint8Array(CHUNK);
  const words = new Uint32Array(buf.buffer);
  const fh = await open(path, "w");
  try {
    let left = bytes;
    while (left > 0) {
      let x = st[0]!, y = st[1]!, z = st[2]!, w = st[3]!;
      for (let i = 0; i < words.length; i++) {
        const t = x ^ (x << 11);
        x = y; y = z; z = w;
        w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
        words[i] = w;
      }
      st[0] = x; st[1] = y; st[2] = z; st[3] = w;
      const n = Math.min(left, CHUNK);
      await fh.write(buf, 0, n);
      left -= n;
    }
  } finally {
    await fh.close();
  }
}

function fnv1a(str: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) h = Math.imul(h ^ str.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

async function zfsGet(prop: string, ds: string): Promise<string> {
  return (await run(["zfs", "get", "-H", "-p", "-o", "value", prop, ds])).stdout.trim();
}

/** The snapshot's guid as an exact decimal string (not the humanized `zfs list -o guid`). */
export async function snapshotGuid(snap: string): Promise<string> {
  return zfsGet("guid", snap);
}

/** Number of user holds on a snapshot (zfs-fuse has no `zfs holds`). */
export async function userrefs(snap: string): Promise<number> {
  return Number(await zfsGet("userrefs", snap));
}

/** A dataset's mountpoint. */
export async function mountpointOf(ds: string): Promise<string> {
  return (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", ds])).stdout.trim();
}

/** Poll `cond` every 20 ms until it holds; throw after `ms`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** A fresh directory under the OS temp dir. */
export function tmpDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A key pair made by the stock age-keygen: the identity file path and its recipient (age1…). */
export async function ageKeyPair(path: string): Promise<{ keyFile: string; recipient: string }> {
  await run(["age-keygen", "-o", path]);
  return { keyFile: path, recipient: (await run(["age-keygen", "-y", path])).stdout.trim() };
}
