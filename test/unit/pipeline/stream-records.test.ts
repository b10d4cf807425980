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
import { pipeWriter, receiveParts, WITHHOLD } from "../../../src/pipeline/restore/receive.ts";
import { verifyBackups } from "../../../src/pipeline/verify.ts";
import { startThreads, type Threads } from "../../../src/pipeline/parallel/index.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { partKey } from "../../../src/store/layout.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
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
