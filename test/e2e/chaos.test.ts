/**
 * Chaos: the compiled binary against zfs-fuse + radosgw, attacked for N seeded iterations,
 * with every kill and every planned fault accounted for (kopia's FaultyStorage is the model:
 * a fault that was planned but never hit is reported, not counted).
 *
 * Each iteration changes files, takes a snapshot (levels cycling 0..3) and backs it up, with
 * either small chunks (256 KiB) or big ones (9 MiB: above the 8 MiB single-PUT limit, so every
 * full chunk is a multipart upload whose create, parts, complete and abort can be hit). Then:
 *   - kill: the run is killed (3 in 4 SIGKILL, else SIGTERM) at a random instant of a typical
 *     run, or — in most big-chunk iterations — right after the state file records a multipart
 *     upload (its later parts forwarded late). Reruns may be killed too. A kill LANDED when the
 *     process died of that signal (SIGKILL: killed by it; SIGTERM: exit 143) and the backup was
 *     not finished at that moment: afterwards its state file is still there, or heads.yaml
 *     does not name the iteration's snapshot (a finished run writes heads, then removes its
 *     state). Runs that finished before the signal, or whose work was done when it came, are
 *     counted apart. A multipart upload recorded in the state before a rerun and continued by
 *     that rerun (an UploadPart or Complete with its upload id reached radosgw) is a resume.
 *   - fault: a plan of 2–6 faults, each on the n-th request of a kind this run sends (part
 *     PUT, UploadPart, create/complete multipart, HEAD, manifest/heads PUT, heads GET, list):
 *     503, 500, connection reset, request body cut, response body cut, reply lost after the
 *     server acted. At most 2 per kind, so s3.retry.max_attempts (4) must absorb them: the run
 *     must succeed in one go (with retries disabled it fails). A planned fault counts as hit
 *     only if the proxy really applied it.
 * After each iteration: no leaked holds, no lock or state, no incomplete multipart upload, no
 * orphan object. At the end every chain (each level 0 and what builds on it) is restored with
 * `zrb restore` into a fresh dataset: every backup's snapshot must be there with the guid of
 * the snapshot it was taken from and exactly its files (content, mode, mtime, dirs, links).
 *
 *   ZRB_CHAOS_RUNS  iterations (default 16: CI's reduced run, ≈ 1–2 min; `bun run chaos` runs 100)
 *   ZRB_CHAOS_SEED  seed (default 1; printed, so a failure can be replayed)
 *
 * Prints exactly
 *   chaos: N runs, K kills landed (S SIGKILL, T SIGTERM), F faults hit, P multipart resumes, C chains restored, 0 lost
 * then a line of details, and fails if K, F, P or C is 0 or anything was lost. A second test
 * attacks a task with two stores (below).
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { hashTree, makeBucket, mountpointOf, run, s3Client, snapshotGuid, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, jsonResult, spawnZrb, zrb } from "../helpers/zrb.ts";
import { forward, internalError, prng, slowDown, type FaultProxy, type ProxyAction, type ProxyRequest } from "../helpers/faultproxy.ts";
import { audit, auditStores, cleanAudit, getText, manifests, userrefsOf } from "../helpers/audit.ts";
import { SINGLE_PUT_MAX } from "../../src/store/s3.ts";

const RUNS = Number(process.env.ZRB_CHAOS_RUNS || 16);
const SEED = Number(process.env.ZRB_CHAOS_SEED || 1);
const PREFIX = "zrb/";
const MiB = 1024 * 1024;
const BIG_CHUNK = 9 * MiB;

let sc: Scene;
let client: S3Client;
let proxy: FaultProxy;
let fs: string;
let mnt: string;
let runDir: string;
/** Configs by chunk size; the restore config talks to radosgw directly. */
const cfg = { small: "", big: "", restore: "" };

beforeAll(async () => {
  expect(BIG_CHUNK).toBeGreaterThan(SINGLE_PUT_MAX);
  sc = await scene({ name: "chaos", poolMiB: 512, dataset: "chaos", proxy: true });
  ({ fs, mnt, proxy } = { fs: sc.fs, mnt: sc.mnt, proxy: sc.proxy! });
  client = await s3Client(sc.s3);
  const base = join(sc.work, "base");
  runDir = join(base, "run", sc.pool.pool, "chaos");
  const write = (name: string, o: { chunkSize: string; endpoint: string; baseDir: string }) => {
    const doc = YAML.parse(
      configYaml({ ...o, recipients: [sc.recipient], bucket: sc.bucket, s3: { ...sc.s3, endpoint: o.endpoint }, prefix: PREFIX, workers: 2, tasks: [{ name: "c", pool: sc.pool.pool, dataset: "chaos" }] }),
    );
    doc.s3.retry.max_attempts = 4;
    const path = join(sc.work, `${name}.yaml`);
    writeFileSync(path, YAML.stringify(doc));
    return path;
  };
  cfg.small = write("small", { chunkSize: "256KiB", endpoint: proxy.endpoint, baseDir: base });
  cfg.big = write("big", { chunkSize: `${BIG_CHUNK / MiB}MiB`, endpoint: proxy.endpoint, baseDir: base });
  cfg.restore = write("restore", { chunkSize: "1MiB", endpoint: sc.s3.endpoint, baseDir: join(sc.work, "base-restore") });
}, 300_000);

afterEach(() => proxy?.check());

afterAll(async () => {
  client?.destroy();
  await sc?.close();
}, 120_000);

// ───────────────────────────── the data ─────────────────────────────

/** Random edits: new files, rewrites, deletions, renames. Big iterations add 10–13 MiB in one file. */
async function mutate(rand: () => number, i: number, big: boolean): Promise<void> {
  const d = join(mnt, "d");
  mkdirSync(d, { recursive: true });
  if (big) {
    // At most one older big file stays, so a level 0 stays a few chunks.
    for (const f of readdirSync(d).filter((f) => f.startsWith("big")).sort().slice(0, -1)) rmSync(join(d, f));
    await writeRandomFile(join(d, `big${String(i).padStart(4, "0")}.bin`), 10 * MiB + Math.floor(rand() * 3 * MiB), Math.floor(rand() * 2 ** 31));
  }
  const files = readdirSync(d).filter((f) => !f.startsWith("big"));
  const n = 1 + Math.floor(rand() * 3);
  for (let k = 0; k < n; k++) await writeRandomFile(join(d, `f${i}-${k}.bin`), Math.floor(rand() * 600_000), Math.floor(rand() * 2 ** 31));
  if (files.length > 6 && rand() < 0.6) rmSync(join(d, files[Math.floor(rand() * files.length)]!), { force: true });
  if (files.length > 24) for (const f of files.slice(0, 3)) rmSync(join(d, f), { force: true }); // long runs stay small
  if (files.length > 2 && rand() < 0.4) {
    const f = files[Math.floor(rand() * files.length)]!;
    if (existsSync(join(d, f))) renameSync(join(d, f), join(d, `r${i}-${f}`));
  }
  if (files.length > 0 && rand() < 0.3) {
    const f = files[Math.floor(rand() * files.length)]!;
    if (existsSync(join(d, f))) await writeRandomFile(join(d, f), Math.floor(rand() * 400_000), i);
  }
}

/** Keep the pool small: drop snapshots nobody holds, except the newest. */
async function prune(keep: string): Promise<void> {
  for (const [snap, n] of await userrefsOf(fs)) if (n === 0 && snap !== keep) await run(["zfs", "destroy", snap], { allowFail: true });
}

// ───────────────────────────── bookkeeping ─────────────────────────────

interface PlannedFault {
  kind: string;
  nth: number;
  action: ProxyAction;
  /** Sequence number of the request it was applied to. */
  at?: number;
}

const tally = {
  sigkill: 0,
  sigterm: 0,
  /** Runs that finished before the kill instant came. */
  early: 0,
  /** Runs that died of the signal after their backup was done (state gone, heads updated). */
  afterDone: 0,
  /** Landed kills while the state recorded a multipart upload in flight. */
  midMultipart: 0,
  planned: 0,
  hit: 0,
  missed: [] as string[],
  resumes: 0,
  chains: 0,
  lost: 0,
  bigIterations: 0,
};

const statePath = () => join(runDir, "backup_state.yaml");
const readState = (): any => (existsSync(statePath()) ? YAML.parse(readFileSync(statePath(), "utf8")) : null);

/** Multipart uploads the state records for chunks not yet uploaded. */
function recordedUploads(): string[] {
  return (readState()?.chunks ?? []).filter((c: any) => c && !c.uploaded && c.multipart?.uploadId).map((c: any) => c.multipart.uploadId);
}

/** The backup of `snap` at `level` is finished: heads.yaml names it and no state is left. */
async function finished(snap: string, level: number): Promise<boolean> {
  if (existsSync(statePath())) return false;
  const heads = await getText(client, sc.bucket, `${PREFIX}manifests/${fs}/heads.yaml`).then(YAML.parse, () => null);
  return heads?.levels?.[level]?.snapshot?.name === snap;
}

/** Recorded uploads that requests of this slice of the log continued (a part or the completion reached radosgw). */
function continued(uploads: string[], from: number): number {
  const log = proxy.log.slice(from);
  return uploads.filter((id) =>
    log.some((q) => q.action === "forward" && (q.method === "PUT" || q.method === "POST") && decodeURIComponent(q.path).includes(`uploadId=${id}`)),
  ).length;
}

const backupArgs = (level: number, big: boolean) => ["backup", "--config", big ? cfg.big : cfg.small, "--task", "c", "--level", String(level), "--json"];

function checkOutput(stderr: string, code: number, ctx: string): void {
  const errLines = stderr.split("\n").filter((l) => l.startsWith("zrb: "));
  if (stderr.includes("zrb: internal error") || /^\s+at /m.test(stderr) || errLines.length > 1 || (code !== 0 && errLines.length !== 1))
    throw new Error(`${ctx}: exit ${code}, unexpected output:\n${stderr}`);
}

// ───────────────────────────── kill iterations ─────────────────────────────

interface Iter {
  i: number;
  level: number;
  big: boolean;
  snap: string;
  rand: () => number;
  ctx: string;
  /** ms a clean run of this chunk size takes here (moving average). */
  typical: { small: number; big: number };
}

/** Wait until the state records a multipart upload with a part done, or the run ends. */
async function untilMultipart(p: { exitCode: number | null }): Promise<boolean> {
  for (;;) {
    if (p.exitCode !== null) return false;
    const st = (() => {
      try {
        return readState();
      } catch {
        return null; // a rename in progress
      }
    })();
    if ((st?.chunks ?? []).some((c: any) => c && !c.uploaded && c.multipart?.parts?.length >= 1)) return true;
    await Bun.sleep(10);
  }
}

/** Snapshots heads.yaml names (each carries zrb's one persistent base hold). */
async function headSnapshots(): Promise<Set<string>> {
  const heads = await getText(client, sc.bucket, `${PREFIX}manifests/${fs}/heads.yaml`).then(YAML.parse, () => null);
  return new Set(Object.values<any>(heads?.levels ?? {}).map((h) => h.snapshot.name));
}

interface Before {
  /** A lock (and send holds) a SIGKILLed predecessor leaked, not yet taken over. */
  staleLock: boolean;
  heads: Set<string>;
}

/**
 * A SIGTERMed run leaves neither its lock nor a send hold: every held snapshot is a head
 * (before or after the run) with one hold. Holds a SIGKILLed predecessor leaked may remain
 * when the run stopped before taking them over, so they are judged only without one.
 */
async function checkSigtermLeftNothing(pid: number, before: Before, err: string, ctx: string): Promise<void> {
  // Silent only if the signal came before zrb installed its handler (start-up: nothing held yet).
  if (err.trim() !== "") checkOutput(err, 143, ctx);
  const lock = join(runDir, "zrb.lock");
  if (existsSync(lock) && JSON.parse(readFileSync(lock, "utf8")).pid === pid) throw new Error(`${ctx}: SIGTERM left its lock; stderr:\n${err}`);
  if (before.staleLock) return;
  const heads = new Set([...before.heads, ...(await headSnapshots())]);
  const bad = [...(await userrefsOf(fs))].filter(([snap, n]) => n > (heads.has(snap) ? 1 : 0));
  if (bad.length) throw new Error(`${ctx}: SIGTERM left holds: ${JSON.stringify(bad)}; stderr:\n${err}`);
}

/** One run killed at a random instant (or on a multipart event); counts whether the kill landed. */
async function killedRun(it: Iter, attempt: number): Promise<void> {
  const { rand, big } = it;
  const ctx = `${it.ctx}, attempt ${attempt}`;
  const onEvent = big && rand() < 0.7;
  // Multipart parts after the first come late, so a kill lands while the upload is open.
  const late = 800 + Math.floor(rand() * 1200);
  proxy.setDecide((r) => (big && /[?&]partNumber=([2-9]|\d\d)/.test(r.path) ? { kind: "forward", delayMs: late } : forward));
  const before: Before = { staleLock: existsSync(join(runDir, "zrb.lock")), heads: await headSnapshots() };
  const p = await spawnZrb(backupArgs(it.level, big), sc.env);
  const outP = new Response(p.stdout).text();
  const errP = new Response(p.stderr).text();
  const at = 20 + Math.floor(rand() * (big ? it.typical.big : it.typical.small) * 0.85);
  const sig = rand() < 0.25 ? "SIGTERM" : "SIGKILL";
  let ready: boolean;
  if (onEvent) {
    ready = await untilMultipart(p);
    if (ready) await Bun.sleep(Math.floor(rand() * 150));
  } else ready = await Promise.race([p.exited.then(() => false), Bun.sleep(at).then(() => true)]);
  ready &&= p.exitCode === null;
  const midMultipart = ready && recordedUploads().length > 0;
  if (ready) p.kill(sig);
  const code = await p.exited;
  const [out, err] = await Promise.all([outP, errP]);
  const died = sig === "SIGKILL" ? p.signalCode === "SIGKILL" : code === 143;
  if (!ready || !died) {
    // It finished before the signal (or in spite of it).
    if (code !== 0) checkOutput(err, code, ctx);
    if (code !== 0) throw new Error(`${ctx}: exit ${code}: ${err}`);
    jsonResult(out);
    tally.early++;
    return;
  }
  if (sig === "SIGTERM") await checkSigtermLeftNothing(p.pid, before, err, ctx);
  if (await finished(it.snap, it.level)) {
    tally.afterDone++;
    return;
  }
  if (sig === "SIGKILL") tally.sigkill++;
  else tally.sigterm++;
  if (midMultipart) tally.midMultipart++;
}

async function killIteration(it: Iter): Promise<void> {
  for (let attempt = 0; !(await finished(it.snap, it.level)); attempt++) {
    if (attempt > 12) throw new Error(`${it.ctx}: no success after ${attempt} attempts`);
    const uploads = recordedUploads();
    const from = proxy.log.length;
    if (attempt === 0 || (attempt < 4 && it.rand() < 0.35)) await killedRun(it, attempt);
    else {
      proxy.setDecide(() => forward);
      const started = performance.now();
      const r = await zrb(backupArgs(it.level, it.big), { env: sc.env, allowFail: true });
      checkOutput(r.stderr, r.code, `${it.ctx}, attempt ${attempt}`);
      if (r.code !== 0) throw new Error(`${it.ctx}, attempt ${attempt}: exit ${r.code}: ${r.stderr}`);
      const ms = performance.now() - started;
      const k = it.big ? "big" : "small";
      it.typical[k] = Math.max(300, Math.round(0.5 * it.typical[k] + 0.5 * ms));
    }
    tally.resumes += continued(uploads, from);
  }
}

// ───────────────────────────── fault iterations ─────────────────────────────

/** The kinds of request a fault can be planned on. */
const KINDS: Record<string, (r: ProxyRequest) => boolean> = {
  "part PUT": (r) => r.method === "PUT" && r.path.includes("/data/") && !r.path.includes("uploadId="),
  UploadPart: (r) => r.method === "PUT" && /[?&]partNumber=/.test(r.path),
  "create multipart": (r) => r.method === "POST" && /[?&]uploads(=|&|$)/.test(r.path),
  "complete multipart": (r) => r.method === "POST" && r.path.includes("uploadId="),
  "manifest PUT": (r) => r.method === "PUT" && r.path.includes(".manifest.yaml"),
  "heads PUT": (r) => r.method === "PUT" && r.path.includes("heads.yaml"),
  "heads GET": (r) => r.method === "GET" && r.path.includes("heads.yaml"),
  HEAD: (r) => r.method === "HEAD",
  list: (r) => r.method === "GET" && /[?&](list-type=2|uploads)/.test(r.path),
};

function faultFor(kind: string, rand: () => number): ProxyAction {
  const writes = kind === "part PUT" || kind === "UploadPart";
  const x = rand();
  if (x < 0.25) return { kind: "reply", response: slowDown() };
  if (x < 0.45) return { kind: "reply", response: internalError() };
  if (x < 0.65) return { kind: "reset" };
  if (x < 0.8 && writes) return { kind: "cut", afterBytes: Math.floor(rand() * 100_000) };
  if (x < 0.8 && kind === "heads GET") return { kind: "cutResponse", afterBytes: Math.floor(rand() * 40) };
  return kind === "HEAD" || kind === "heads GET" || kind === "list" ? { kind: "reset" } : { kind: "dropResponse" };
}

/** Kinds a run sends once (a second one is the retry of the first); the others come several times. */
const ONCE = new Set(["manifest PUT", "heads PUT", "list", "create multipart", "complete multipart", "HEAD"]);

function planFaults(rand: () => number, big: boolean): PlannedFault[] {
  // Only kinds this run sends: small chunks are single PUTs, big ones multipart (then HEAD-checked).
  const multipart = new Set(["UploadPart", "create multipart", "complete multipart", "HEAD"]);
  const kinds = Object.keys(KINDS).filter((k) => (big ? k !== "part PUT" : !multipart.has(k)));
  const plan: PlannedFault[] = [];
  const add = (kind: string, nth: number) => {
    if (plan.some((f) => f.kind === kind && f.nth === nth) || plan.filter((f) => f.kind === kind).length >= 2) return;
    plan.push({ kind, nth, action: faultFor(kind, rand) });
  };
  const n = 2 + Math.floor(rand() * 3);
  for (let k = 0; k < n; k++) {
    const kind = kinds[Math.floor(rand() * kinds.length)]!;
    if (!ONCE.has(kind)) add(kind, 1 + Math.floor(rand() * (kind === "heads GET" ? 2 : 3))); // heads: read at start and end
    else {
      // A second fault on a kind sent once hits its retry: a burst, still within the budget.
      add(kind, 1);
      if (rand() < 0.3) add(kind, 2);
    }
  }
  return plan;
}

async function faultIteration(it: Iter): Promise<void> {
  const r2 = prng(SEED * 1000 + it.i);
  const plan = planFaults(r2, it.big);
  const seen = new Map<string, number>();
  proxy.setDecide((r): ProxyAction => {
    const kind = Object.keys(KINDS).find((k) => KINDS[k]!(r));
    if (kind) {
      const nth = (seen.get(kind) ?? 0) + 1;
      seen.set(kind, nth);
      const f = plan.find((p) => p.kind === kind && p.nth === nth);
      if (f) {
        f.at = r.n;
        return f.action;
      }
    }
    return r2() < 0.1 ? { kind: "forward", delayMs: Math.floor(r2() * 300) } : forward;
  });
  const r = await zrb(backupArgs(it.level, it.big), { env: sc.env, allowFail: true });
  proxy.setDecide(() => forward);
  checkOutput(r.stderr, r.code, it.ctx);
  // Every planned fault is within the retry budget: the run must get through in one go.
  if (r.code !== 0) throw new Error(`${it.ctx}: the planned faults ${JSON.stringify(plan.map((f) => `${f.action.kind} on ${f.kind} #${f.nth}`))} were not absorbed: exit ${r.code}: ${r.stderr}`);
  for (const f of plan) {
    const hit = f.at !== undefined && proxy.log.find((q) => q.n === f.at)?.fault === true;
    tally.planned++;
    if (hit) tally.hit++;
    else tally.missed.push(`iteration ${it.i}: ${f.action.kind} on ${f.kind} #${f.nth}`);
  }
}

// ───────────────────────────── the end: every chain ─────────────────────────────

interface Taken {
  guid: string;
  tree: Record<string, string>;
}

/** Restore each chain's newest backup; every backup in it must come back as its snapshot. */
async function restoreEveryChain(taken: Map<string, Taken>): Promise<void> {
  const ms = await manifests(client, sc.bucket, PREFIX, fs);
  const byId = new Map(ms.map((m) => [m.backupId, m]));
  const parents = new Set(ms.map((m) => m.parent?.backupId).filter(Boolean));
  const covered = new Set<string>();
  for (const leaf of ms.filter((m) => !parents.has(m.backupId))) {
    const chain: any[] = [];
    for (let m = leaf; m; m = m.parent ? byId.get(m.parent.backupId) : undefined) chain.unshift(m);
    const target = `${sc.pool.pool}/chain${tally.chains + tally.lost}`;
    const r = await zrb(["restore", "--config", cfg.restore, "--task", "c", "--target", target, "--private-key", sc.keyFile, "--backup-id", leaf.backupId], {
      env: sc.env,
      allowFail: true,
    });
    let ok = r.code === 0 && chain[0].level === 0;
    if (!ok) console.error(`chaos: chain of ${leaf.backupId} did not restore (exit ${r.code}): ${r.stderr}`);
    for (const m of ok ? chain : []) {
      const want = taken.get(m.snapshot.name)!;
      const snap = `${target}@${m.snapshot.name.split("@")[1]}`;
      const same = (await snapshotGuid(snap)) === want.guid && m.snapshot.guid === want.guid && JSON.stringify(await treeOf(snap)) === JSON.stringify(want.tree);
      if (!same) console.error(`chaos: ${snap} (backup ${m.backupId}) differs from the snapshot it was taken from`);
      ok &&= same;
      covered.add(m.backupId);
    }
    if (ok) tally.chains++;
    else tally.lost++;
    await run(["zfs", "destroy", "-r", target], { allowFail: true });
  }
  // Every part of every backup is in the bucket with its recorded size, and every backup was in a chain.
  for (const m of ms) {
    let ok = covered.has(m.backupId);
    for (const p of m.parts) {
      const h = await client.send(new HeadObjectCommand({ Bucket: sc.bucket, Key: PREFIX + p.key })).catch(() => null);
      ok &&= h?.ContentLength === p.cipherSize;
    }
    if (!ok) tally.lost++;
  }
}

/** A restored snapshot's files, through a temporary clone (never mounting the target itself). */
async function treeOf(snap: string): Promise<Record<string, string>> {
  const clone = `${sc.pool.pool}/chk`;
  await run(["zfs", "clone", snap, clone]);
  try {
    return await hashTree(await mountpointOf(clone));
  } finally {
    for (let i = 0; i < 40 && (await run(["zfs", "destroy", clone], { allowFail: true })).code !== 0; i++) await Bun.sleep(250);
  }
}

// ───────────────────────────── the test ─────────────────────────────

test(`chaos: ${RUNS} seeded iterations of kill -9 / SIGTERM / planned S3 faults, small and multipart chunks, then every chain restored`, async () => {
  const rand = prng(SEED);
  const taken = new Map<string, Taken>();
  const typical = { small: 1200, big: 3000 };
  const t0 = Date.now();

  for (let i = 0; i < RUNS; i++) {
    const level = i % 4;
    const big = i % 3 === 1 || rand() < 0.15;
    if (big) tally.bigIterations++;
    await mutate(rand, i, big);
    const snap = `${fs}@zrb_level${level}_20260101T${String(i).padStart(6, "0")}Z`;
    await run(["zfs", "snapshot", snap]);
    taken.set(snap, { guid: await snapshotGuid(snap), tree: await hashTree(mnt) });
    const mode = rand() < 0.6 ? "kill" : "fault";
    const it: Iter = { i, level, big, snap, rand, typical, ctx: `iteration ${i} (seed ${SEED}, level ${level}, ${big ? "9 MiB" : "256 KiB"} chunks, ${mode})` };
    if (mode === "kill") await killIteration(it);
    else await faultIteration(it);
    proxy.setDecide(() => forward);
    if (!(await finished(snap, level))) throw new Error(`${it.ctx}: backup not finished`);
    const a = await audit({ client, bucket: sc.bucket, prefix: PREFIX, fs, runDir });
    if (JSON.stringify(a) !== JSON.stringify(cleanAudit)) throw new Error(`${it.ctx}: audit not clean: ${JSON.stringify(a)}`);
    await prune(snap);
  }
  expect((await manifests(client, sc.bucket, PREFIX, fs)).map((m) => m.snapshot.name).sort()).toEqual([...taken.keys()].sort());

  await restoreEveryChain(taken);
  const kills = tally.sigkill + tally.sigterm;
  console.log(
    `chaos: ${RUNS} runs, ${kills} kills landed (${tally.sigkill} SIGKILL, ${tally.sigterm} SIGTERM), ${tally.hit} faults hit, ` +
      `${tally.resumes} multipart resumes, ${tally.chains} chains restored, ${tally.lost} lost`,
  );
  console.log(
    `chaos: seed ${SEED}; ${tally.bigIterations} iterations with ${BIG_CHUNK / MiB} MiB chunks; ${tally.midMultipart} kills landed mid-multipart; ` +
      `${tally.early} runs finished before their kill, ${tally.afterDone} died after their work was done; ` +
      `${tally.hit} of ${tally.planned} planned faults hit${tally.missed.length ? ` (not hit: ${tally.missed.join("; ")})` : ""}; ${Math.round((Date.now() - t0) / 1000)} s`,
  );
  expect(tally.lost).toBe(0);
  expect(kills).toBeGreaterThan(0);
  expect(tally.hit).toBeGreaterThan(0);
  expect(tally.resumes).toBeGreaterThan(0);
  expect(tally.chains).toBeGreaterThan(0);
}, 600_000 + RUNS * 60_000);

// ───────────────────────────── two stores ─────────────────────────────

/**
 * The same attacks on a task with two stores (issue 25): store "a" behind the fault proxy, store
 * "b" straight to radosgw on a bucket of its own. Each attempt is killed (SIGKILL at a random
 * instant), or runs while "a" answers every request with 503 (then "b" must get the backup, the
 * run must end with exit 6 and one summary line per store), or runs clean. Until both stores
 * have the snapshot; after each iteration both audits are clean, each snapshot carrying one
 * hold per store whose heads name it. At the end the newest backup is restored from each store
 * and must equal the snapshot it was taken from.
 *   ZRB_CHAOS_STORE_RUNS  iterations (default 6)
 */
const STORE_RUNS = Number(process.env.ZRB_CHAOS_STORE_RUNS || 6);

test(`chaos, two stores: ${STORE_RUNS} seeded iterations of kill -9 and one store down, each store catching up on its own chain`, async () => {
  const rand = prng(SEED + 7);
  const fs2 = `${sc.pool.pool}/chaos2`;
  await run(["zfs", "create", fs2]);
  const mnt2 = await mountpointOf(fs2);
  const bucketB = await makeBucket(sc.s3);
  const base = join(sc.work, "base2");
  const stores = [
    { name: "a", bucket: sc.bucket, prefix: "zrb2/", endpoint: proxy.endpoint },
    { name: "b", bucket: bucketB, prefix: "zrb/", endpoint: sc.s3.endpoint },
  ];
  const doc = {
    base_dir: base,
    age_public_key: sc.recipient,
    chunk_size: "256KiB",
    workers: 2,
    stores: stores.map((s) => ({ name: s.name, s3: { bucket: s.bucket, prefix: s.prefix, region: sc.s3.region, endpoint: s.endpoint, retry: { max_attempts: 2 }, request_timeout: "5s" } })),
    tasks: [{ name: "c2", pool: sc.pool.pool, dataset: "chaos2", enabled: true }],
  };
  const cfg2 = join(sc.work, "two-stores.yaml");
  writeFileSync(cfg2, YAML.stringify(doc));
  const audited = stores.map((s) => ({ bucket: s.bucket, prefix: s.prefix, runDir: join(base, "stores", s.name, "run", sc.pool.pool, "chaos2") }));
  const headOf = async (s: (typeof stores)[number], level: number) =>
    (await getText(client, s.bucket, `${s.prefix}manifests/${fs2}/heads.yaml`).then(YAML.parse, () => null))?.levels?.[level]?.snapshot?.name;
  // Done: both heads name the snapshot and no store has resume state or a lock file left (a run
  // killed after its heads but before its bookkeeping is not done: a kill -9 leaves the lock file,
  // dead by flock, which the next run takes over and removes).
  const done = async (snap: string, level: number) =>
    audited.every((a) => !existsSync(join(a.runDir, "backup_state.yaml")) && !existsSync(join(a.runDir, "zrb.lock"))) &&
    (await Promise.all(stores.map((s) => headOf(s, level)))).every((n) => n === snap);
  const t = { kills: 0, downs: 0, clean: 0 };
  let last = { snap: "", tree: {} as Record<string, string> };
  for (let i = 0; i < STORE_RUNS; i++) {
    const level = i % 3;
    for (let k = 0; k < 1 + Math.floor(rand() * 2); k++) await writeRandomFile(join(mnt2, `f${i}-${k}.bin`), 50_000 + Math.floor(rand() * 500_000), Math.floor(rand() * 2 ** 31));
    const snap = `${fs2}@zrb_level${level}_20260201T${String(i).padStart(6, "0")}Z`;
    await run(["zfs", "snapshot", snap]);
    last = { snap, tree: await hashTree(mnt2) };
    const args = ["backup", "--config", cfg2, "--task", "c2", "--level", String(level)];
    for (let attempt = 0; !(await done(snap, level)); attempt++) {
      const ctx = `two stores, iteration ${i} (seed ${SEED}), attempt ${attempt}`;
      if (attempt > 12) throw new Error(`${ctx}: no success`);
      const x = attempt < 3 ? rand() : 1;
      if (x < 0.45) {
        const p = await spawnZrb(args, sc.env);
        const errP = new Response(p.stderr).text();
        const killed = await Promise.race([p.exited.then(() => false), Bun.sleep(30 + Math.floor(rand() * 1500)).then(() => true)]);
        if (killed) p.kill("SIGKILL");
        const code = await p.exited;
        if (!killed || p.signalCode !== "SIGKILL") checkOutput(await errP, code, ctx);
        else t.kills++;
      } else if (x < 0.7) {
        proxy.setDecide(() => ({ kind: "reply", response: slowDown() }));
        const r = await zrb(args, { env: sc.env, allowFail: true });
        proxy.setDecide(() => forward);
        checkOutput(r.stderr, r.code, ctx);
        // "a" down: "b" gets it anyway (or had it already); the run says so per store.
        if (r.code !== 6 || !/store a: failed \(exit 6\)/.test(r.stderr) || !/store b: ok/.test(r.stderr)) throw new Error(`${ctx}: with store a down, expected exit 6 and b ok:\n${r.stderr}`);
        if ((await headOf(stores[1]!, level)) !== snap) throw new Error(`${ctx}: store b did not get ${snap} while a was down`);
        t.downs++;
      } else {
        const r = await zrb(args, { env: sc.env, allowFail: true });
        checkOutput(r.stderr, r.code, ctx);
        if (r.code !== 0) throw new Error(`${ctx}: exit ${r.code}: ${r.stderr}`);
        t.clean++;
      }
    }
    const a = await auditStores({ client, fs: fs2, stores: audited });
    for (const [j, x] of a.entries()) if (JSON.stringify(x) !== JSON.stringify(cleanAudit)) throw new Error(`two stores, iteration ${i}: audit of store ${stores[j]!.name} not clean: ${JSON.stringify(x)}`);
  }
  // Each store's own chain restores the newest snapshot exactly.
  for (const s of stores) {
    const target = `${sc.pool.pool}/two-${s.name}`;
    await zrb(["restore", "--config", cfg2, "--task", "c2", "--store", s.name, "--target", target, "--private-key", sc.keyFile], { env: sc.env });
    expect(await treeOf(`${target}@${last.snap.split("@")[1]}`)).toEqual(last.tree);
    await run(["zfs", "destroy", "-r", target], { allowFail: true });
  }
  console.log(`chaos, two stores: ${STORE_RUNS} runs, ${t.kills} kills landed, ${t.downs} runs with store a down, ${t.clean} clean runs`);
  expect(t.kills + t.downs).toBeGreaterThan(0);
}, 600_000);
