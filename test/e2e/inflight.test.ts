/**
 * A prune host never deletes the NAS's running or interrupted backup (issue 20, defect 3), on
 * zfs-fuse + radosgw with the compiled binary. The split setup of docs/install-nas.md: the NAS
 * (base_dir A, signing_key) uploads through a fault proxy that slows it down; a "prune host"
 * (base_dir B, verify_keys only, orphan_grace 0s unless a test says otherwise) runs prune and
 * cleanup against the same bucket and cannot see the NAS's backup_state.yaml. Only the NAS's
 * signed in-flight marker tells it which parts are not orphans. And whatever deletes parts
 * behind the NAS's back, the NAS never writes a manifest naming a missing part.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { CreateMultipartUploadCommand, DeleteObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { hashTree, makeBucket, makePool, run, s3Client, s3Rig, snapshotGuid, tmpDir, waitFor, writeRandomFile, zfsRig, type S3Rig, type TestPool } from "../helpers/rig.ts";
import { configYaml, expectZrbFail, jsonResult, s3Env, spawnZrb, zrb } from "../helpers/zrb.ts";
import { forward, s3Error, startFaultProxy, type FaultProxy, type ProxyRequest } from "../helpers/faultproxy.ts";
import { getText, listKeys, listUploads, manifests } from "../helpers/audit.ts";

const PREFIX = "zrb/";
let s3: S3Rig;
let client: S3Client;
let pool: TestPool;
let bucket: string;
let work: string;
let env: Record<string, string>;
let proxy: FaultProxy;
let keys: { publicKey: string; verificationKey: string; privateKeyFile: string; signingKeyFile: string };
let seq = 0;

interface Ds {
  name: string;
  fs: string;
  mnt: string;
  /** The NAS's config (base_dir A, signing_key, through the proxy). */
  nas: string;
  /** The prune host's config (base_dir B, verify_keys, orphan_grace 0s by default). */
  host: string;
  runDir: string;
}

/** A dataset with its NAS config and its prune host config. */
async function dataset(name: string, o: { chunkSize?: string; grace?: string; recursive?: boolean } = {}): Promise<Ds> {
  const fs = `${pool.pool}/${name}`;
  await run(["zfs", "create", fs]);
  const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fs])).stdout.trim();
  const doc = (base: string, endpoint: string) =>
    YAML.parse(
      configYaml({
        baseDir: join(work, base),
        recipients: [keys.publicKey],
        bucket,
        s3: { ...s3, endpoint },
        prefix: PREFIX,
        chunkSize: o.chunkSize ?? "256KiB",
        workers: 2,
        tasks: [{ name: "t", pool: pool.pool, dataset: name }],
      }),
    );
  const nas = doc(`nas-${name}`, proxy.endpoint);
  nas.signing_key = keys.signingKeyFile;
  nas.s3.retry.max_attempts = 6;
  const host = doc(`prunehost-${name}`, s3.endpoint);
  host.verify_keys = [keys.verificationKey];
  host.tasks[0].retention = { keep_last: 10 };
  if (o.grace !== "default") host.prune = { orphan_grace: o.grace ?? "0s" };
  if (o.recursive) for (const c of [nas, host]) c.tasks[0].recursive = true;
  writeFileSync(join(work, `${name}-nas.yaml`), YAML.stringify(nas));
  writeFileSync(join(work, `${name}-host.yaml`), YAML.stringify(host));
  return { name, fs, mnt, nas: join(work, `${name}-nas.yaml`), host: join(work, `${name}-host.yaml`), runDir: join(work, `nas-${name}`, "run", pool.pool, name) };
}

async function snap(d: Ds, level: number): Promise<string> {
  const s = `${d.fs}@zrb_level${level}_20260101T0000${String(++seq).padStart(4, "0")}Z`;
  await run(["zfs", "snapshot", s]);
  return s;
}

const backupArgs = (d: Ds, level = 0) => ["backup", "--config", d.nas, "--task", "t", "--level", String(level), "--json"];
const onHost = (d: Ds, cmd: string, ...more: string[]) => [cmd, "--config", d.host, "--task", "t", ...more];
const readState = (d: Ds) => {
  const p = join(d.runDir, "backup_state.yaml");
  return existsSync(p) ? YAML.parse(readFileSync(p, "utf8")) : null;
};
const dataKeys = async (d: Ds, id?: string) => (await listKeys(client, bucket, `${PREFIX}data/${d.fs}/`)).filter((o) => !id || o.key.includes(`/${id}/`)).map((o) => o.key);
const uploadsOf = async (id: string) => (await listUploads(client, bucket)).filter((u) => u.key.includes(`/${id}/`)).map((u) => u.uploadId);
const markerKeyOf = (d: Ds, id: string) => `${PREFIX}manifests/${d.fs}/${id}.inflight.yaml`;
const hasKey = async (key: string) => (await listKeys(client, bucket, key)).some((o) => o.key === key);
const isUploadPart = (r: ProxyRequest) => r.method === "PUT" && /[?&]partNumber=\d+/.test(r.path);
const jsonResult0 = (r: { stdout: string }) => jsonResult(r.stdout);
const uploaded = (d: Ds) => (readState(d)?.chunks ?? []).filter((c: any) => c?.uploaded).length;

/** Verify (exit 0 with the private key) and restore into a fresh dataset: the files must be `expected`. */
async function verifyAndRestore(d: Ds, id: string, source: string, expected: Record<string, string>): Promise<void> {
  const v = await zrb(["verify", "--config", d.host, "--task", "t", "--backup-id", id, "--private-key", keys.privateKeyFile], { env, allowFail: true });
  if (v.code !== 0) console.error(v.stderr);
  expect(v.code).toBe(0);
  const target = `${pool.pool}/r-${d.name}-${++seq}`;
  await zrb(["restore", "--config", d.host, "--task", "t", "--target", target, "--private-key", keys.privateKeyFile, "--backup-id", id], { env });
  try {
    expect(await snapshotGuid(`${target}@${source.split("@")[1]}`)).toBe(await snapshotGuid(source));
    await run(["zfs", "mount", target]);
    expect(await hashTree((await run(["zfs", "get", "-H", "-o", "value", "mountpoint", target])).stdout.trim())).toEqual(expected);
  } finally {
    for (let i = 0; i < 40 && (await run(["zfs", "destroy", "-r", target], { allowFail: true })).code !== 0; i++) await Bun.sleep(250);
  }
}

/** Every part a manifest names is in the bucket with its size. */
async function manifestPartsPresent(d: Ds, id: string): Promise<void> {
  const m = (await manifests(client, bucket, PREFIX, d.fs)).find((x) => x.backupId === id);
  expect(m).toBeDefined();
  const sizes = new Map((await listKeys(client, bucket, `${PREFIX}data/${d.fs}/`)).map((o) => [o.key, o.size]));
  for (const p of m.parts) expect([p.key, sizes.get(PREFIX + p.key)]).toEqual([p.key, p.cipherSize]);
}

/** Start the NAS backup slowed by the proxy (every part after the first `fast` waits `delayMs`), and wait until `n` parts are stored. */
async function startSlow(d: Ds, o: { fast: number; delayMs: number; n: number; multipart?: boolean }) {
  proxy.setDecide((r) => {
    if (r.method !== "PUT" || !r.path.includes(`/data/${d.fs}/`)) return forward;
    const index = Number(/part-(\d+)/.exec(r.path)?.[1] ?? 0);
    if (o.multipart) return isUploadPart(r) && Number(/[?&]partNumber=(\d+)/.exec(r.path)![1]) > 1 && index >= o.fast ? { kind: "forward", delayMs: o.delayMs } : forward;
    return index >= o.fast ? { kind: "forward", delayMs: o.delayMs } : forward;
  });
  const p = await spawnZrb(backupArgs(d), env);
  await waitFor(`${o.n} part(s) stored`, () => uploaded(d) >= o.n, 60_000);
  return p;
}

/** Kill -9 the NAS backup once `n` parts are stored (later parts stall); returns its state. */
async function killMidUpload(d: Ds, n: number): Promise<any> {
  const p = await startSlow(d, { fast: n, delayMs: 600_000, n });
  p.kill("SIGKILL");
  expect(await p.exited).toBe(137);
  proxy.setDecide(() => forward);
  return readState(d);
}

beforeAll(async () => {
  await zfsRig();
  s3 = await s3Rig();
  client = await s3Client(s3);
  pool = await makePool({ sizeMiB: 256 });
  bucket = await makeBucket(s3);
  work = tmpDir("zrb-e2e-inflight-");
  env = s3Env(s3);
  keys = JSON.parse((await zrb(["genkey", "--out-dir", join(work, "keys"), "--json"])).stdout);
  proxy = startFaultProxy({ upstreamPort: Number(new URL(s3.endpoint).port) });
}, 300_000);

afterEach(() => proxy?.check());

afterAll(async () => {
  proxy?.stop();
  await pool?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe("a prune host and a backup in flight on the NAS", () => {
  test("prune and cleanup while the NAS uploads: nothing of the running backup is deleted, its multipart upload survives, the backup finishes, verifies and restores", async () => {
    const d = await dataset("running", { chunkSize: "9MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 20 * 1024 * 1024, 301);
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    // Part 0 goes at full speed; the second half of every later part's multipart upload waits 20 s.
    const p = await startSlow(d, { fast: 1, delayMs: 20_000, n: 1, multipart: true });
    await waitFor("part 0 stored and part 1's multipart upload half done", () => readState(d)?.chunks?.[0]?.uploaded && readState(d)?.chunks?.[1]?.multipart?.parts?.length >= 1, 60_000);
    const st = readState(d);
    const marker = YAML.parse(await getText(client, bucket, markerKeyOf(d, st.backupId)));
    expect(marker).toMatchObject({ format: "zrb-inflight/1", backupId: st.backupId, level: 0, startedAt: st.startedAt });
    expect(marker.signature).toBeDefined();
    const parts = await dataKeys(d, st.backupId);
    // The upload the NAS is in the middle of (part 1's: its second half waits in the proxy).
    const uploads = [st.chunks[1].multipart.uploadId];
    expect(parts.length).toBeGreaterThan(0);
    expect(uploads.length).toBeGreaterThan(0);

    const pr = jsonResult((await zrb(onHost(d, "prune", "--json"), { env })).stdout);
    expect(pr.orphans).toEqual([]);
    expect(pr.inflight.map((b: any) => b.backupId)).toEqual([st.backupId]);
    const cl = jsonResult((await zrb(onHost(d, "cleanup", "--json"), { env })).stdout);
    expect(cl.orphans).toEqual([]);
    expect(cl.uploads).toEqual([]);
    expect(cl.inflight.map((b: any) => b.backupId)).toEqual([st.backupId]);
    expect(await dataKeys(d, st.backupId)).toEqual(expect.arrayContaining(parts));
    expect(await uploadsOf(st.backupId)).toEqual(expect.arrayContaining(uploads));

    proxy.setDecide(() => forward);
    const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
    if (code !== 0) console.error(err);
    expect(code).toBe(0);
    const done = jsonResult(out);
    expect(done.backupId).toBe(st.backupId);
    await manifestPartsPresent(d, st.backupId);
    // The NAS deleted its marker (this role may delete); nothing else is left.
    expect(await hasKey(markerKeyOf(d, st.backupId))).toBe(false);
    expect(await uploadsOf(st.backupId)).toEqual([]);
    await verifyAndRestore(d, st.backupId, s, expected);
  }, 300_000);

  test("kill -9 of the NAS backup: prune and cleanup on the prune host spare its parts and uploads, the marker stays, and the NAS rerun resumes and completes", async () => {
    const d = await dataset("killed");
    await writeRandomFile(join(d.mnt, "a.bin"), 3 * 1024 * 1024, 302);
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    const st = await killMidUpload(d, 3);
    const parts = await dataKeys(d, st.backupId);
    expect(parts.length).toBeGreaterThanOrEqual(3);

    const pr = jsonResult((await zrb(onHost(d, "prune", "--json"), { env })).stdout);
    expect(pr.orphans).toEqual([]);
    const cl = jsonResult((await zrb(onHost(d, "cleanup", "--json"), { env })).stdout);
    expect(cl.orphans).toEqual([]);
    expect(cl.inflight).toEqual([expect.objectContaining({ backupId: st.backupId, level: 0 })]);
    expect(await dataKeys(d, st.backupId)).toEqual(parts);
    expect(await hasKey(markerKeyOf(d, st.backupId))).toBe(true);

    const done = jsonResult((await zrb(backupArgs(d), { env })).stdout);
    expect(done.backupId).toBe(st.backupId);
    expect(done.resumed).toBe(true);
    await manifestPartsPresent(d, st.backupId);
    await verifyAndRestore(d, st.backupId, s, expected);
  }, 300_000);

  test("parts deleted behind the NAS's back (an attacker, an old zrb): the resumed backup uploads them again and never writes a manifest naming a missing part", async () => {
    const d = await dataset("deleted");
    await writeRandomFile(join(d.mnt, "a.bin"), 3 * 1024 * 1024, 303);
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    const st = await killMidUpload(d, 4);
    const parts = (await dataKeys(d, st.backupId)).sort();
    const victims = [parts[0]!, parts[2]!];
    for (const k of victims) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: k }));
    // And one replaced by something of another size (cut short): as good as missing.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: parts[1]!, Body: "cut short" }));
    // And an upload the killed run began but never recorded (killed between the two): the backup aborts it before its manifest.
    await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: parts[0]! }));

    const r = await zrb(backupArgs(d), { env });
    expect(r.stderr).toContain(`3 part(s) of backup ${st.backupId} are missing from`);
    const done = jsonResult(r.stdout);
    expect(done.backupId).toBe(st.backupId);
    expect(done.resumed).toBe(true);
    await manifestPartsPresent(d, st.backupId);
    for (const k of victims) expect(await hasKey(k)).toBe(true);
    expect(await uploadsOf(st.backupId)).toEqual([]);
    await verifyAndRestore(d, st.backupId, s, expected);
  }, 300_000);

  test("parts that keep vanishing: the backup fails with exit 6 naming them and writes no manifest", async () => {
    const d = await dataset("vanishing");
    await writeRandomFile(join(d.mnt, "a.bin"), 1024 * 1024, 304);
    await snap(d, 0);
    // Something deletes part 1 whenever it appears; the listing that confirms the parts is slowed so that it always wins.
    proxy.setDecide((r) => (r.method === "GET" && r.path.includes("list-type=2") ? { kind: "forward", delayMs: 1500 } : forward));
    let stop = false;
    const deleter = (async () => {
      while (!stop) {
        for (const k of await dataKeys(d)) if (k.endsWith("part-000001.age")) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: k }));
        await Bun.sleep(100);
      }
    })();
    const line = await expectZrbFail(backupArgs(d), env, 6, "part 1 of backup", "vanished from", "no manifest was written").finally(() => (stop = true));
    await deleter;
    proxy.setDecide(() => forward);
    expect(line).toContain("after 3 re-upload(s)");
    expect(await manifests(client, bucket, PREFIX, d.fs)).toEqual([]);
  }, 300_000);

  test("cleanup --abandon ID removes a killed backup's marker, uploads and parts; refused for a finished backup and for this host's own interrupted one", async () => {
    const d = await dataset("abandon");
    await writeRandomFile(join(d.mnt, "a.bin"), 2 * 1024 * 1024, 305);
    await snap(d, 0);
    const finished = jsonResult((await zrb(backupArgs(d), { env })).stdout).backupId;
    await writeRandomFile(join(d.mnt, "b.bin"), 2 * 1024 * 1024, 306);
    await snap(d, 0);
    const st = await killMidUpload(d, 2);
    expect((await dataKeys(d, st.backupId)).length).toBeGreaterThanOrEqual(2);

    await expectZrbFail(onHost(d, "cleanup", "--abandon", finished), env, 2, `backup ${finished} of ${d.fs} is finished`);
    await expectZrbFail(["cleanup", "--config", d.nas, "--task", "t", "--abandon", st.backupId], env, 2, "this host's interrupted backup", "the next backup");
    await expectZrbFail(onHost(d, "cleanup", "--abandon", "20990101T000000Z-L0-000000"), env, 2, "holds nothing of a backup");
    // Killed seconds ago: as far as this host can tell it may still be running on the NAS.
    await expectZrbFail(onHost(d, "cleanup", "--abandon", st.backupId, "--older-than", "1h"), env, 4, `backup ${st.backupId} of ${d.fs} was active`, "within --older-than 1h, so it may still be running", "rerun with --older-than 0s; nothing was removed");
    // Without --older-than the config's grace decides (prune.orphan_grace, 1h here).
    const graced = YAML.parse(readFileSync(d.host, "utf8"));
    graced.prune = { orphan_grace: "1h" };
    writeFileSync(`${d.host}.grace.yaml`, YAML.stringify(graced));
    await expectZrbFail(["cleanup", "--config", `${d.host}.grace.yaml`, "--task", "t", "--abandon", st.backupId], env, 4, "within prune.orphan_grace 1h, so it may still be running");
    const dry = jsonResult((await zrb(onHost(d, "cleanup", "--abandon", st.backupId, "--dry-run", "--json"), { env })).stdout);
    expect(dry.parts.length).toBeGreaterThanOrEqual(2);
    expect(await hasKey(markerKeyOf(d, st.backupId))).toBe(true);
    // A part the store will not delete (a role without the right, an object lock): the marker
    // stays, so what is left stays claimed, and a later run finishes the job.
    proxy.setDecide((q) =>
      q.method === "DELETE" && decodeURIComponent(q.path).includes(`/${st.backupId}/part-000000.age`) ? { kind: "reply", response: s3Error(403, "Forbidden", "AccessDenied", "Access Denied") } : forward,
    );
    // (The prune host's config, through the fault proxy.)
    const viaProxy = YAML.parse(readFileSync(d.host, "utf8"));
    viaProxy.s3.endpoint = proxy.endpoint;
    writeFileSync(`${d.host}.proxy.yaml`, YAML.stringify(viaProxy));
    const partial = await zrb(["cleanup", "--config", `${d.host}.proxy.yaml`, "--task", "t", "--abandon", st.backupId, "--json"], { env, allowFail: true });
    proxy.setDecide(() => forward);
    expect(partial.stderr).toContain(`1 of ${dry.parts.length} parts of the abandoned backup ${st.backupId} could not be deleted`);
    // Not done: exit 6, so that no script takes it for given up.
    expect(partial.code).toBe(6);
    expect(partial.stderr).toContain(`cleanup --abandon ${st.backupId}: the store would not delete 1 object(s) of backup ${st.backupId} of ${d.fs} (object lock or no delete right); its in-flight marker is kept to protect them; rerun --abandon once the store allows it`);
    expect(jsonResult(partial.stdout).left).toEqual([expect.stringContaining(`/${st.backupId}/part-000000.age`), `manifests/${d.fs}/${st.backupId}.inflight.yaml`]);
    expect(await hasKey(markerKeyOf(d, st.backupId))).toBe(true);
    expect((await dataKeys(d, st.backupId)).length).toBe(1);
    const r = jsonResult((await zrb(onHost(d, "cleanup", "--abandon", st.backupId, "--json"), { env })).stdout);
    expect(r.marker).toBe(`manifests/${d.fs}/${st.backupId}.inflight.yaml`);
    expect(await dataKeys(d, st.backupId)).toEqual([]);
    expect(await uploadsOf(st.backupId)).toEqual([]);
    expect(await hasKey(markerKeyOf(d, st.backupId))).toBe(false);
    // An id that names no level is looked for in the whole dataset's data: only its own objects go.
    const odd = `${PREFIX}data/${d.fs}/level0/manual-copy/part-000000.age`;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: odd, Body: "copied by hand" }));
    const oddRun = jsonResult((await zrb(onHost(d, "cleanup", "--abandon", "manual-copy", "--json"), { env })).stdout);
    expect(oddRun.parts.map((x: any) => x.key)).toEqual([odd.slice(PREFIX.length)]);
    expect(await hasKey(odd)).toBe(false);
    // The finished backup is untouched, and the NAS's rerun sends what was abandoned again.
    expect((await dataKeys(d, finished)).length).toBeGreaterThan(0);
    const done = jsonResult((await zrb(backupArgs(d), { env })).stdout);
    expect(done.backupId).toBe(st.backupId);
    await manifestPartsPresent(d, st.backupId);
  }, 300_000);
});

describe("what no marker claims", () => {
  test("a part that appears while prune runs (a backup started after prune read the markers) is not prune's to judge: kept, even with orphan_grace 0s", async () => {
    const d = await dataset("latecomer");
    await writeRandomFile(join(d.mnt, "a.bin"), 300_000, 309);
    await snap(d, 0);
    jsonResult((await zrb(backupArgs(d), { env })).stdout);
    const late = `${PREFIX}data/${d.fs}/level0/${new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}-L0-a1b2c3/part-000000.age`;
    const viaProxy = YAML.parse(readFileSync(d.host, "utf8"));
    viaProxy.s3.endpoint = proxy.endpoint;
    writeFileSync(`${d.host}.proxy.yaml`, YAML.stringify(viaProxy));
    // Once prune has listed the data and asks for the manifests' listing, the part lands (and the
    // listing waits for it): prune's first listing did not show it, its second one does.
    let put: Promise<unknown> | undefined;
    proxy.setDecide((q) => {
      if (!put && q.method === "GET" && q.path.includes("list-type=2") && decodeURIComponent(q.path).includes(`${PREFIX}manifests/${d.fs}/`)) {
        put = client.send(new PutObjectCommand({ Bucket: bucket, Key: late, Body: "a new backup's first part" }));
        return { kind: "forward", delayMs: 500 };
      }
      return forward;
    });
    const r = jsonResult((await zrb(["prune", "--config", `${d.host}.proxy.yaml`, "--task", "t", "--json"], { env })).stdout);
    proxy.setDecide(() => forward);
    expect(put).toBeDefined();
    await put;
    expect(r.orphans.map((o: any) => o.key)).not.toContain(late.slice(PREFIX.length));
    expect(await hasKey(late)).toBe(true);
    // The next prune sees it from its first listing: an orphan (no marker, no manifest), old enough at 0s.
    const next = jsonResult((await zrb(onHost(d, "prune", "--json"), { env })).stdout);
    expect(next.orphans.map((o: any) => o.key)).toEqual([late.slice(PREFIX.length)]);
    expect(await hasKey(late)).toBe(false);
  }, 300_000);

  test("an orphan younger than prune.orphan_grace is spared and reported; once older it is deleted; an untrusted marker protects nothing and is left alone", async () => {
    const d = await dataset("grace", { grace: "default" });
    await writeRandomFile(join(d.mnt, "a.bin"), 300_000, 307);
    await snap(d, 0);
    const done = jsonResult((await zrb(backupArgs(d), { env })).stdout).backupId;
    const stray = `${PREFIX}data/${d.fs}/level0/20261201T000000Z-L0-abcdef/part-000000.age`;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: stray, Body: "stray" }));
    // A forged marker (unsigned) claiming another stray backup's parts.
    const forgedId = "20261201T000000Z-L0-fedcba";
    const forgedPart = `${PREFIX}data/${d.fs}/level0/${forgedId}/part-000000.age`;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: forgedPart, Body: "forged" }));
    const forged = { format: "zrb-inflight/1", backupId: forgedId, level: 0, host: "nas", startedAt: "2026-12-01T00:00:00Z", updatedAt: "2026-12-01T00:00:00Z", progress: { bytes: 0, parts: 0 } };
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: markerKeyOf(d, forgedId), Body: YAML.stringify(forged) }));

    const cl = await zrb(onHost(d, "cleanup", "--json"), { env });
    const young = jsonResult(cl.stdout);
    expect(young.orphans).toEqual([]);
    expect(young.spared.map((x: any) => x.key).sort()).toEqual([stray.slice(PREFIX.length), forgedPart.slice(PREFIX.length)].sort());
    expect(young.spared[0].why).toContain("prune.orphan_grace 2d");
    expect(young.untrustedMarkers).toEqual([{ key: `manifests/${d.fs}/${forgedId}.inflight.yaml`, why: expect.stringContaining("not signed") }]);
    expect(cl.stderr).toContain("is not trusted: it is not signed");
    const pr = jsonResult((await zrb(onHost(d, "prune", "--json"), { env })).stdout);
    expect(pr.orphans).toEqual([]);
    expect(pr.spared.length).toBe(2);
    expect(await hasKey(stray)).toBe(true);

    // Three days later (the clock of the prune host) both are old enough; the forged marker stays.
    const later = { ...env, ZRB_NOW: new Date(Date.now() + 3 * 86_400_000).toISOString() };
    const old = jsonResult((await zrb(onHost(d, "prune", "--json"), { env: later })).stdout);
    expect(old.orphans.map((o: any) => o.key).sort()).toEqual([stray.slice(PREFIX.length), forgedPart.slice(PREFIX.length)].sort());
    expect(await hasKey(stray)).toBe(false);
    expect(await hasKey(forgedPart)).toBe(false);
    expect(await hasKey(markerKeyOf(d, forgedId))).toBe(true);
    // --older-than 0s overrides the grace for one run.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: stray, Body: "stray" }));
    const now0 = jsonResult((await zrb(onHost(d, "cleanup", "--older-than", "0s", "--json"), { env })).stdout);
    expect(now0.orphans.map((o: any) => o.key)).toEqual([stray.slice(PREFIX.length)]);
    // The finished backup was never in question.
    expect((await dataKeys(d, done)).length).toBeGreaterThan(0);
  }, 300_000);

  test("a marker whose manifest is written is moot: cleanup deletes it", async () => {
    const d = await dataset("moot");
    await writeRandomFile(join(d.mnt, "a.bin"), 300_000, 308);
    await snap(d, 0);
    // A NAS role without delete right leaves its marker: refuse the NAS's DELETE of it.
    proxy.setDecide((r) =>
      r.method === "DELETE" && r.path.includes(".inflight.yaml")
        ? { kind: "reply", response: s3Error(403, "Forbidden", "AccessDenied", "Access Denied") }
        : forward,
    );
    const mark = proxy.log.length;
    const r = await zrb(backupArgs(d), { env });
    proxy.setDecide(() => forward);
    const id = jsonResult(r.stdout).backupId;
    expect(r.stderr).not.toContain("inflight");
    // What the markers and the part check cost a backup that is not slow: one marker PUT, one
    // DELETE, one listing of the backup's own parts (2 parts here; a listing page holds 1000).
    const reqs = proxy.log.slice(mark);
    const own = (p: string) => decodeURIComponent(p).includes(`${PREFIX}data/${d.fs}/level0/${id}/`);
    expect(reqs.filter((q) => q.path.includes(".inflight.yaml")).map((q) => q.method)).toEqual(["PUT", "DELETE"]);
    expect(reqs.filter((q) => q.method === "GET" && q.path.includes("list-type=2") && own(q.path)).length).toBe(1);
    expect(reqs.filter((q) => q.method === "PUT" && own(q.path)).length).toBe(2);
    expect(await hasKey(markerKeyOf(d, id))).toBe(true);
    const cl = jsonResult((await zrb(onHost(d, "cleanup", "--json"), { env })).stdout);
    expect(cl.mootMarkers).toEqual([`manifests/${d.fs}/${id}.inflight.yaml`]);
    expect(cl.inflight).toEqual([]);
    expect(await hasKey(markerKeyOf(d, id))).toBe(false);
  }, 300_000);
});

describe("a recursive task", () => {
  test("a child's backup killed mid-upload: cleanup and prune of the tree from the prune host spare it, and the rerun resumes it", async () => {
    const d = await dataset("tree", { recursive: true });
    const kid = `${d.fs}/kid`;
    await run(["zfs", "create", kid]);
    await writeRandomFile(join(d.mnt, "root.bin"), 100_000, 309);
    await writeRandomFile(join((await run(["zfs", "get", "-H", "-o", "value", "mountpoint", kid])).stdout.trim(), "kid.bin"), 2 * 1024 * 1024, 310);
    await zrb(["snapshot", "--config", d.nas, "--task", "t", "--level", "0"], { env });
    const kidState = join(d.runDir, "kid", "backup_state.yaml");
    const kidUploaded = () => (existsSync(kidState) ? (YAML.parse(readFileSync(kidState, "utf8"))?.chunks ?? []).filter((c: any) => c?.uploaded).length : 0);
    proxy.setDecide((r) => (r.method === "PUT" && r.path.includes(`/data/${kid}/`) && !/part-00000[01]/.test(r.path) ? { kind: "stall" } : forward));
    const p = await spawnZrb(backupArgs(d), env);
    await waitFor("two parts of the child stored", () => kidUploaded() >= 2, 60_000);
    p.kill("SIGKILL");
    await p.exited;
    proxy.setDecide(() => forward);
    const st = YAML.parse(readFileSync(kidState, "utf8"));
    const parts = (await listKeys(client, bucket, `${PREFIX}data/${kid}/`)).map((o) => o.key);
    expect(parts.length).toBeGreaterThanOrEqual(2);
    expect(await hasKey(`${PREFIX}manifests/${kid}/${st.backupId}.inflight.yaml`)).toBe(true);

    const cl = jsonResult0(await zrb(onHost(d, "cleanup", "--json"), { env }));
    const kidResult = cl.children.find((c: any) => c.child === "kid").result;
    expect(kidResult.orphans).toEqual([]);
    expect(kidResult.inflight.map((b: any) => b.backupId)).toEqual([st.backupId]);
    await zrb(onHost(d, "prune"), { env });
    expect((await listKeys(client, bucket, `${PREFIX}data/${kid}/`)).map((o) => o.key)).toEqual(parts);

    const done = jsonResult((await zrb(backupArgs(d), { env })).stdout);
    expect(done.children.find((c: any) => c.child === "kid")).toMatchObject({ status: "ok", backupId: st.backupId });
    const m = (await manifests(client, bucket, PREFIX, kid)).find((x) => x.backupId === st.backupId);
    const sizes = new Map((await listKeys(client, bucket, `${PREFIX}data/${kid}/`)).map((o) => [o.key, o.size]));
    for (const part of m.parts) expect(sizes.get(PREFIX + part.key)).toBe(part.cipherSize);
  }, 300_000);
});

