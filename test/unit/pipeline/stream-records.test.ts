/**
 * The stream-record checks of the parallel data path, on the full pass itself (not the ranged
 * pre-check of restore/ends.ts): receiveParts() and verifyBackups() read the decrypted stream's
 * BEGIN and END records as they stream it. A stream whose hashes all match its manifest but
 * whose END record names another snapshot is refused by receiveParts() before the withheld
 * tail — which holds that END record — is written (nothing reaches the receiver that would let
 * it commit), and verify reports its records as a mismatch. The parts are real age files in a
 * local-directory store, opened by real crypto Workers.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgeEncryptStream } from "../../../src/crypto/age.ts";
import { createBlake3 } from "../../../src/crypto/blake3.ts";
import { preflightIdentity } from "../../../src/pipeline/restore/decrypt.ts";
import { checkStreamEnds } from "../../../src/pipeline/restore/ends.ts";
import { pipeWriter, receiveParts, WITHHOLD } from "../../../src/pipeline/restore/receive.ts";
import { verifyBackups } from "../../../src/pipeline/verify.ts";
import { startThreads, type Threads } from "../../../src/pipeline/parallel/index.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { partKey } from "../../../src/store/layout.ts";
import { StoreError } from "../../../src/store/store.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import { RECORD_SIZE } from "../../../src/zfs/stream.ts";
import { ageKeyPair } from "../../helpers/rig.ts";
import { beginRecord, endRecord } from "../../helpers/send-records.ts";
import { pseudoRandom, sha256Hex } from "../store/helpers.ts";

const PART = 1 << 20;
const GUID = "1234567890123";
const OTHER = "987654321";
/** The base snapshot of the incremental cases. */
const BASE = "55555555555";

let dir: string;
let store: LocalStore;
let identity: string;
let recipient: string;
let threads: Threads;

/** A zfs send stream: BEGIN (creating `toguid` from `fromguid`, "0" a full), `body` bytes, END naming `endGuid`. */
function stream(toguid: string, endGuid: string, body: number, seed: number, fromguid = "0"): Uint8Array {
  return Buffer.concat([beginRecord(toguid, fromguid), pseudoRandom(body, seed), endRecord(endGuid)]);
}

async function blake3(b: Uint8Array): Promise<string> {
  const h = await createBlake3();
  h.update(b);
  return h.digestHex();
}

/**
 * Store `data` as a backup of snapshot GUID in PART-sized age parts, with a manifest whose every
 * hash matches: a level 0, or with `parentGuid` a level 1 on top of snapshot BASE.
 */
async function storeBackup(backupId: string, data: Uint8Array, parentGuid?: string): Promise<Manifest> {
  const level = parentGuid ? 1 : 0;
  const parts: Manifest["parts"] = [];
  for (let index = 0, off = 0; off < data.length; index++, off += PART) {
    const plain = data.subarray(off, Math.min(data.length, off + PART));
    const enc = await AgeEncryptStream.create([recipient]);
    // push() returns a view valid until the next call: copy it.
    const cipher = Buffer.concat([Buffer.from(enc.push(plain)), Buffer.from(enc.finish())]);
    const key = partKey("tank", "ds", level, backupId, index);
    await store.put(key, cipher);
    parts.push({ index, key, plainSize: plain.length, cipherSize: cipher.length, sha256: sha256Hex(cipher), blake3: await blake3(plain) });
  }
  const now = new Date().toISOString();
  return {
    format: "zrb-manifest/1",
    backupId,
    pool: "tank",
    dataset: "ds",
    level,
    snapshot: { name: `tank/ds@zrb_level${level}_x`, guid: GUID, createtxg: "2" },
    parent: parentGuid ? { name: "tank/ds@zrb_level0_x", guid: parentGuid, createtxg: "1", backupId: "BASE-L0", level: 0 } : null,
    send: { flags: [], zfs: "test" },
    stream: { size: data.length, blake3: await blake3(data) },
    recipients: [recipient],
    storageClass: "STANDARD",
    chunkSize: PART,
    parts,
    tool: { name: "zrb", version: "test" },
    host: "test",
    startedAt: now,
    finishedAt: now,
  } as Manifest;
}

/** receiveParts() into a collector: what was written, and what it threw. */
async function receive(m: Manifest): Promise<{ written: Buffer; err?: unknown }> {
  const got: Uint8Array[] = [];
  const scratch = mkdtempSync(join(dir, "scratch-"));
  const opts = { identities: [identity], scratch, ahead: 2, threads, target: "tank/restored" };
  try {
    await receiveParts(store, m, opts, async (b) => void got.push(b.slice()));
    return { written: Buffer.concat(got) };
  } catch (err) {
    return { written: Buffer.concat(got), err };
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zrb-records-"));
  store = new LocalStore(join(dir, "store"));
  const { keyFile, recipient: r } = await ageKeyPair(join(dir, "key.txt"));
  recipient = r;
  identity = readFileSync(keyFile, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  threads = await startThreads(2, (e) => {
    throw e;
  });
});

afterAll(() => {
  threads?.terminate();
  rmSync(dir, { recursive: true, force: true });
});

describe("stream records on the full pass (parallel opening)", () => {
  test("a stream that begins and ends as its manifest says is written whole, in order", async () => {
    const data = stream(GUID, GUID, 3 * PART + 12345, 1);
    const m = await storeBackup("GOOD", data);
    const r = await receive(m);
    expect(r.err).toBeUndefined();
    expect(r.written.equals(Buffer.from(data))).toBe(true);
  });

  test("a stream shorter than the withheld tail is written whole, once everything matched", async () => {
    const data = stream(GUID, GUID, 1000, 3);
    expect(data.length).toBeLessThan(WITHHOLD);
    const r = await receive(await storeBackup("SHORT", data));
    expect(r.err).toBeUndefined();
    expect(r.written.equals(Buffer.from(data))).toBe(true);
  });

  test("into a process through a pipe that is full (as restore writes into zfs receive), what arrives is the stream: the sink copies what it cannot write at once, so the buffers reused right after do not change it", async () => {
    const data = stream(GUID, GUID, 5 * PART + 777, 4);
    const m = await storeBackup("PIPE", data);
    // The reader starts late: the pipe fills and most writes are left to the sink.
    const sink = Bun.spawn(["sh", "-c", "sleep 0.5; sha256sum"], { stdin: "pipe", stdout: "pipe" });
    const write = pipeWriter(sink.stdin, async () => new Error("sha256sum died"));
    const scratch = mkdtempSync(join(dir, "scratch-"));
    await receiveParts(store, m, { identities: [identity], scratch, ahead: 2, threads, target: "tank/restored" }, write);
    await sink.stdin.end();
    expect((await new Response(sink.stdout).text()).split(" ")[0]).toBe(sha256Hex(data));
    expect(await sink.exited).toBe(0);
  });

  test("into a receiver that takes no byte: the write fails as a stall once the pipe stayed full that long, not as a receiver that died", async () => {
    const proc = Bun.spawn(["sleep", "30"], { stdin: "pipe" });
    try {
      const write = pipeWriter(proc.stdin, async () => new Error("died"), { ms: 200, error: () => new Error("stalled") });
      let err: Error | undefined;
      for (let i = 0; i < 256 && !err; i++) await write(new Uint8Array(1 << 20)).catch((e) => (err = e));
      expect(err?.message).toBe("stalled");
    } finally {
      proc.kill();
    }
  });

  test("an END record naming another snapshot (every hash matching): refused, the withheld tail never written", async () => {
    const data = stream(GUID, OTHER, 3 * PART + 12345, 2);
    const m = await storeBackup("BADEND", data);
    const r = await receive(m);
    expect(r.err).toBeInstanceOf(ZrbError);
    expect((r.err as ZrbError).exitCode).toBe(ExitCode.INTEGRITY);
    expect((r.err as ZrbError).message).toBe(
      `backup BADEND is not the zfs stream its manifest describes: its END record names snapshot guid ${OTHER}, the manifest says ${GUID}; nothing was committed to tank/restored`,
    );
    // Everything but the withheld tail went through, and the tail (with the END record) did not.
    expect(r.written.length).toBe(data.length - WITHHOLD);
    expect(r.written.equals(Buffer.from(data.subarray(0, data.length - WITHHOLD)))).toBe(true);
  });

  test("verify reads the same records: ok for the good stream, a mismatch (and not ok) for the bad END", async () => {
    const good = await storeBackup("VGOOD", stream(GUID, GUID, 2 * PART + 7, 3));
    const bad = await storeBackup("VBAD", stream(GUID, OTHER, 2 * PART + 7, 4));
    for (const [m, records, ok] of [[good, "ok", true], [bad, "mismatch", false]] as const) {
      const report = await verifyBackups(store, [m], { identities: [identity], scratch: join(dir, "verify"), workers: 2 });
      expect(report.backups[0]!.streamBlake3).toBe("ok");
      expect(report.backups[0]!.streamRecords).toBe(records);
      expect(report.ok).toBe(ok);
      expect(report.parts.every((p) => p.ok)).toBe(true);
    }
  });
});

/**
 * The same checks on an incremental (a level 1: BEGIN with a parent): its END record must be
 * checked exactly as a full's is. A truncated incremental, or one ending in another snapshot's
 * END, with every hash made to match, must not reach the receiver whole.
 */
describe("stream records of an incremental (BEGIN with a parent)", () => {
  test("an incremental that begins from its base and ends with its own END is written whole", async () => {
    const data = stream(GUID, GUID, 2 * PART + 99, 11, BASE);
    const m = await storeBackup("INCGOOD", data, BASE);
    const r = await receive(m);
    expect(r.err).toBeUndefined();
    expect(r.written.equals(Buffer.from(data))).toBe(true);
  });

  test("an incremental cut before its END record: refused, the withheld tail never written", async () => {
    const whole = stream(GUID, GUID, 2 * PART + 99, 12, BASE);
    const cut = whole.subarray(0, whole.length - 312);
    const m = await storeBackup("INCCUT", cut, BASE);
    const r = await receive(m);
    expect(r.err).toBeInstanceOf(ZrbError);
    expect((r.err as ZrbError).exitCode).toBe(ExitCode.INTEGRITY);
    expect((r.err as ZrbError).message).toStartWith("backup INCCUT is not the zfs stream its manifest describes: its last record is of type ");
    expect((r.err as ZrbError).message).toContain("not END (a truncated or foreign stream); nothing was committed to tank/restored");
    expect(r.written.length).toBe(cut.length - WITHHOLD);
  });

  test("an incremental ending with another snapshot's END record: refused, the withheld tail never written", async () => {
    const data = stream(GUID, OTHER, 2 * PART + 99, 13, BASE);
    const m = await storeBackup("INCOTHER", data, BASE);
    const r = await receive(m);
    expect(r.err).toBeInstanceOf(ZrbError);
    expect((r.err as ZrbError).exitCode).toBe(ExitCode.INTEGRITY);
    expect((r.err as ZrbError).message).toBe(
      `backup INCOTHER is not the zfs stream its manifest describes: its END record names snapshot guid ${OTHER}, the manifest says ${GUID}; nothing was committed to tank/restored`,
    );
    expect(r.written.length).toBe(data.length - WITHHOLD);
  });

  test("verify: ok for the good incremental, a mismatch for the cut one and for the foreign END", async () => {
    const good = await storeBackup("VINCGOOD", stream(GUID, GUID, PART + 5, 14, BASE), BASE);
    const cut = await storeBackup("VINCCUT", stream(GUID, GUID, PART + 5, 15, BASE).subarray(0, PART + 5 + 312), BASE);
    const other = await storeBackup("VINCOTHER", stream(GUID, OTHER, PART + 5, 16, BASE), BASE);
    for (const [m, records, ok] of [[good, "ok", true], [cut, "mismatch", false], [other, "mismatch", false]] as const) {
      const report = await verifyBackups(store, [m], { identities: [identity], scratch: join(dir, "verify"), workers: 2 });
      expect(report.backups[0]!.streamBlake3).toBe("ok");
      expect(report.backups[0]!.streamRecords).toBe(records);
      expect(report.ok).toBe(ok);
    }
  });
});

/** The object of part `index` of `m` in the store. */
async function partBytes(m: Manifest, index: number): Promise<Uint8Array> {
  return new Uint8Array(await new Response(await store.getStream(m.parts[index]!.key)).arrayBuffer());
}

/** A private key that opens none of the backups. */
async function otherIdentity(): Promise<string> {
  const { keyFile } = await ageKeyPair(join(mkdtempSync(join(dir, "other-")), "key.txt"));
  return readFileSync(keyFile, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
}

/** Part `index` of `m` stored again with one byte `from` its end flipped. */
async function damage(m: Manifest, index: number, from = 1): Promise<void> {
  const b = await partBytes(m, index);
  b[b.length - from]! ^= 1;
  await store.put(m.parts[index]!.key, b);
}

/**
 * The rest of what the full pass checks before the withheld tail goes out: the whole stream's
 * size and BLAKE3, an incremental's base, and each part's SHA-256 — a part sealed anew around
 * the same plaintext keeps its BLAKE3 and is still refused, before any of its bytes is written.
 */
describe("the full pass refuses the rest, the withheld tail never written", () => {
  async function refused(m: Manifest, data: Uint8Array, message: string, written = data.length - (1 << 20)): Promise<void> {
    const r = await receive(m);
    expect(r.err).toBeInstanceOf(ZrbError);
    expect((r.err as ZrbError).exitCode).toBe(ExitCode.INTEGRITY);
    expect((r.err as ZrbError).message).toContain(message);
    expect(r.written.length).toBeLessThanOrEqual(written);
    expect(r.written.equals(Buffer.from(data.subarray(0, r.written.length)))).toBe(true);
  }

  test("a manifest whose stream size is not what the parts add up to", async () => {
    const data = stream(GUID, GUID, 2 * PART + 99, 21);
    const m = await storeBackup("SIZE", data);
    await refused({ ...m, stream: { ...m.stream, size: data.length + 1 } }, data, `the parts add up to ${data.length} bytes, manifest says ${data.length + 1}`);
  });

  test("a manifest whose stream BLAKE3 is not the stream's", async () => {
    const data = stream(GUID, GUID, 2 * PART + 99, 22);
    const m = await storeBackup("WHOLEB3", data);
    await refused({ ...m, stream: { ...m.stream, blake3: "0".repeat(64) } }, data, `stream BLAKE3 is ${m.stream.blake3}, manifest says ${"0".repeat(64)}`);
  });

  test("an incremental from another base than its manifest's", async () => {
    const data = stream(GUID, GUID, 2 * PART + 99, 23, OTHER);
    await refused(await storeBackup("INCBASE", data, BASE), data, `its BEGIN record is based on guid ${OTHER}, the manifest says based on ${BASE}`);
  });

  test("a part sealed anew around the same plaintext (its BLAKE3 right, its SHA-256 not): refused before a byte of it is written", async () => {
    const data = stream(GUID, GUID, 3 * PART + 99, 24);
    const m = await storeBackup("RESEALED", data);
    const enc = await AgeEncryptStream.create([recipient]);
    await store.put(m.parts[2]!.key, Buffer.concat([Buffer.from(enc.push(data.subarray(2 * PART, 3 * PART))), Buffer.from(enc.finish())]));
    await refused(m, data, `part 2 of backup RESEALED (${store.urlOf(m.parts[2]!.key)}): ciphertext SHA-256 is `, 2 * PART - (1 << 20));
  });
});

describe("verify's verdicts", () => {
  const verify = (m: Manifest, o: { only?: Set<string>; sample?: number; identities?: string[]; store?: LocalStore } = {}) =>
    verifyBackups(o.store ?? store, [m], { identities: [identity], scratch: join(dir, "verify"), workers: 2, ...o });

  test("a damaged part: it FAILED naming its SHA-256, the others are ok, the stream is not checked, and the report is not ok", async () => {
    const m = await storeBackup("VDAMAGED", stream(GUID, GUID, 3 * PART + 5, 31));
    await damage(m, 1, 100);
    const report = await verify(m);
    expect(report.ok).toBe(false);
    expect(report.parts.map((p) => p.ok)).toEqual([true, false, true, true]);
    expect(report.parts[1]!.error).toContain("ciphertext SHA-256 is ");
    expect(report.backups[0]!.streamBlake3).toBe("not checked");
  });

  test("a stream BLAKE3 that is not the manifest's, every part right: a mismatch, and the report is not ok", async () => {
    const m = await storeBackup("VWHOLE", stream(GUID, GUID, 2 * PART + 5, 32));
    const report = await verify({ ...m, stream: { ...m.stream, blake3: "0".repeat(64) } });
    expect(report.parts.every((p) => p.ok)).toBe(true);
    expect(report.backups[0]!.streamBlake3).toBe("mismatch");
    expect(report.backups[0]!.error).toBe(`backup VWHOLE: stream BLAKE3 is ${m.stream.blake3}, manifest says ${"0".repeat(64)}`);
    expect(report.ok).toBe(false);
  });

  test("some parts only (a rotation's slice, --sample): they are ok, and the stream is not checked", async () => {
    const m = await storeBackup("VSOME", stream(GUID, GUID, 3 * PART + 5, 33));
    for (const o of [{ only: new Set(["VSOME/1", "VSOME/2"]) }, { sample: 2 }]) {
      const report = await verify(m, o);
      expect(report.ok).toBe(true);
      expect(report.backups[0]).toMatchObject({ checked: 2, streamBlake3: "not checked", streamRecords: "not checked" });
    }
  });

  test("--sample of as many parts as there are (or more) checks them all, and the stream too", async () => {
    const m = await storeBackup("VALL", stream(GUID, GUID, 3 * PART + 5, 35));
    for (const sample of [m.parts.length, m.parts.length + 3]) {
      const report = await verify(m, { sample });
      expect(report.ok).toBe(true);
      expect(report.backups[0]).toMatchObject({ checked: m.parts.length, streamBlake3: "ok" });
    }
  });

  test("a key that opens no part stops verify as such; a store that cannot be reached, as the store's (exit 6): no part is judged damaged", async () => {
    const m = await storeBackup("VKEY", stream(GUID, GUID, PART + 5, 34));
    await expect(verify(m, { identities: [await otherIdentity()] })).rejects.toMatchObject({ errorKind: "no-identity" });
    const down = Object.create(store) as LocalStore;
    down.getStream = async () => {
      throw new StoreError("transient", "connection reset");
    };
    await expect(verify(m, { store: down })).rejects.toMatchObject({ exitCode: ExitCode.STORE, message: "connection reset" });
  });
});

/**
 * The ranged pre-check (restore/ends.ts checkStreamEnds), before zfs receive is started: only
 * the stream's first and last records are read, across the parts that hold them.
 */
describe("the ranged pre-check before zfs receive starts", () => {
  const refusal = (id: string, why: string) => ({ exitCode: ExitCode.INTEGRITY, message: `backup ${id} is not the zfs stream its manifest describes: ${why}; nothing was sent to zfs receive` });

  test("a full and an incremental that begin and end as their manifests say pass, also with the END record split over the last two parts", async () => {
    for (const [id, data, base] of [["EFULL", stream(GUID, GUID, 2 * PART - 500, 41), undefined], ["EINC", stream(GUID, GUID, 3 * PART - 100, 42, BASE), BASE]] as const) {
      const m = await storeBackup(id, data, base);
      expect(m.parts.at(-1)!.plainSize).toBeLessThan(RECORD_SIZE * 2);
      await checkStreamEnds(store, m, [identity]);
    }
  });

  test("a foreign END, a cut stream, another base: refused with the reason", async () => {
    const cut = stream(GUID, GUID, PART + 5, 44);
    const cases = [
      ["EOTHER", stream(GUID, OTHER, PART + 5, 43), undefined, `its END record names snapshot guid ${OTHER}, the manifest says ${GUID}`],
      ["ECUT", cut.subarray(0, cut.length - RECORD_SIZE), undefined, "its last record is of type "],
      ["EBASE", stream(GUID, GUID, PART + 5, 45, OTHER), BASE, `its BEGIN record is based on guid ${OTHER}, the manifest says based on ${BASE}`],
    ] as const;
    for (const [id, data, base, why] of cases) {
      const err = await checkStreamEnds(store, await storeBackup(id, data, base), [identity]).catch((e) => e);
      expect(err, id).toBeInstanceOf(ZrbError);
      expect(err.exitCode, id).toBe(ExitCode.INTEGRITY);
      expect(err.message, id).toStartWith(`backup ${id} is not the zfs stream its manifest describes: ${why}`);
      expect(err.message, id).toEndWith("; nothing was sent to zfs receive");
    }
  });

  test("a damaged last part is named with its SHA-256; sizes that do not fit the age format are refused", async () => {
    const m = await storeBackup("EDAMAGED", stream(GUID, GUID, PART + 5, 46));
    await damage(m, 1);
    await expect(checkStreamEnds(store, m, [identity])).rejects.toMatchObject({ exitCode: ExitCode.INTEGRITY, message: expect.stringContaining(`part 1 of backup EDAMAGED (${store.urlOf(m.parts[1]!.key)}): ciphertext SHA-256 is `) });
    const n = await storeBackup("ESIZES", stream(GUID, GUID, PART + 5, 47));
    const last = n.parts[1]!;
    const off = { ...n, stream: { ...n.stream, size: n.stream.size - 1 }, parts: [n.parts[0]!, { ...last, plainSize: last.plainSize - 1 }] };
    await expect(checkStreamEnds(store, off, [identity])).rejects.toMatchObject(refusal("ESIZES", `part 1: ${last.plainSize - 1} plaintext bytes make a ${last.cipherSize - 1}-byte age file, the manifest says ${last.cipherSize}`));
  });

  test("a compound (-p) stream from zfs send passes: its property header is read to its end", async () => {
    const bytes = new Uint8Array(readFileSync(join(import.meta.dir, "..", "..", "fixtures", "streams", "zfs-fuse-send-p.stream")));
    const m = await storeBackup("EPROPS", bytes);
    await checkStreamEnds(store, { ...m, snapshot: { ...m.snapshot, guid: "15094805400403777129" } }, [identity]);
  });

  test("a key that opens none of the chain's recipients is refused before any download (preflightIdentity)", async () => {
    const m = await storeBackup("EKEY", stream(GUID, GUID, 1000, 48));
    await preflightIdentity(store, m, [identity]);
    await expect(preflightIdentity(store, m, [await otherIdentity()])).rejects.toMatchObject({ errorKind: "no-identity" });
  });
});
