/**
 * A Worker that dies in the middle of a run (parallel/index.ts withThreads): the run must stop at
 * once and end with one clear line naming the Worker — not carry on with the Workers left, and
 * not report the run the dead Worker had as a damaged part. The crash is a real one: a
 * Worker subclass (installed as the global Worker for the run) posts one `open` message with a
 * slot far outside the shared arena, and the crypto worker throws before its error handling, as
 * a bug would: it dies without answering.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgeEncryptStream } from "../../../src/crypto/age.ts";
import { createBlake3 } from "../../../src/crypto/blake3.ts";
import { verifyBackups, type PartCheck } from "../../../src/pipeline/verify.ts";
import { withThreads } from "../../../src/pipeline/parallel/index.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { partKey } from "../../../src/store/layout.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import { ageKeyPair } from "../../helpers/rig.ts";
import { beginRecord, endRecord } from "../../helpers/send-records.ts";
import { pseudoRandom, sha256Hex } from "../store/helpers.ts";

const PART = 1 << 20;
const GUID = "1234567890123";
const RealWorker = globalThis.Worker;

let dir: string;
let store: LocalStore;
let identity: string;
let recipient: string;

/**
 * Run `fn` with the global Worker replaced: the `poisonAt`-th `open` message any worker is sent
 * names a slot outside the arena, which crashes the crypto worker that takes it.
 */
async function withPoisonedWorkers<T>(poisonAt: number, fn: () => Promise<T>): Promise<T> {
  let opens = 0;
  class Poisoned extends RealWorker {
    override postMessage(m: any, ...rest: any[]): void {
      if (m?.type === "open" && ++opens === poisonAt) m = { ...m, slot: 1 << 30 };
      (super.postMessage as any)(m, ...rest);
    }
  }
  globalThis.Worker = Poisoned as typeof Worker;
  try {
    return await fn();
  } finally {
    globalThis.Worker = RealWorker;
  }
}

async function blake3(b: Uint8Array): Promise<string> {
  const h = await createBlake3();
  h.update(b);
  return h.digestHex();
}

/** A level-0 backup of `parts` full PART-sized parts whose every hash and record matches. */
async function storeBackup(backupId: string, parts: number): Promise<Manifest> {
  const data = Buffer.concat([beginRecord(GUID), pseudoRandom(parts * PART - 624, 7), endRecord(GUID)]);
  const out: Manifest["parts"] = [];
  for (let index = 0; index < parts; index++) {
    const plain = data.subarray(index * PART, (index + 1) * PART);
    const enc = await AgeEncryptStream.create([recipient]);
    const cipher = Buffer.concat([Buffer.from(enc.push(plain)), Buffer.from(enc.finish())]);
    const key = partKey("tank", "ds", 0, backupId, index);
    await store.put(key, cipher);
    out.push({ index, key, plainSize: plain.length, cipherSize: cipher.length, sha256: sha256Hex(cipher), blake3: await blake3(plain) });
  }
  const now = new Date().toISOString();
  return {
    format: "zrb-manifest/1",
    backupId,
    pool: "tank",
    dataset: "ds",
    level: 0,
    snapshot: { name: "tank/ds@zrb_level0_x", guid: GUID, createtxg: "1" },
    parent: null,
    send: { flags: [], zfs: "test" },
    stream: { size: data.length, blake3: await blake3(data) },
    recipients: [recipient],
    storageClass: "STANDARD",
    chunkSize: PART,
    parts: out,
    tool: { name: "zrb", version: "test" },
    host: "test",
    startedAt: now,
    finishedAt: now,
  } as Manifest;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zrb-worker-death-"));
  store = new LocalStore(join(dir, "store"));
  const { keyFile, recipient: r } = await ageKeyPair(join(dir, "key.txt"));
  recipient = r;
  identity = readFileSync(keyFile, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a Worker that dies mid-run", () => {
  test("verify stops at once with one line naming the crypto worker; no part is reported damaged", async () => {
    const m = await storeBackup("DIES", 6);
    const checked: PartCheck[] = [];
    const err = await withPoisonedWorkers(3, () =>
      verifyBackups(store, [m], { identities: [identity], scratch: join(dir, "verify"), workers: 2, onPart: async (r) => void checked.push(r) }),
    ).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(ZrbError);
    expect((err as ZrbError).exitCode).toBe(ExitCode.FAILURE);
    expect((err as ZrbError).message).toMatch(/^verify stopped: its crypto worker crashed: RangeError: .+; rerun it$/);
    expect((err as ZrbError).message).not.toContain("\n");
    // At once: the parts after the one being opened were never checked, and none was called bad.
    expect(checked.length).toBeLessThan(m.parts.length);
    expect(checked.every((c) => c.ok)).toBe(true);
  });

  test("the same backup verifies without the crash (the poison is the only fault)", async () => {
    const m = await storeBackup("LIVES", 6);
    const report = await verifyBackups(store, [m], { identities: [identity], scratch: join(dir, "verify"), workers: 2 });
    expect(report.ok).toBe(true);
    expect(report.backups[0]!.streamBlake3).toBe("ok");
  });

  test("a run waiting on something else (a download, a receive) is aborted at once and ends with the Worker's error after its cleanup", async () => {
    const steps: string[] = [];
    const err = await withPoisonedWorkers(1, () =>
      withThreads(2, "restore into tank/r", undefined, async (threads, signal) => {
        // A run of garbage to open: the poisoned message kills the worker that takes it.
        const slot = await threads.buffers.take();
        threads.crypto.open(slot, join(dir, "nothing"), 0, 16, 0, true, new Uint8Array(32)).catch(() => {});
        // Meanwhile the run waits on something that only its signal ends (a stuck download).
        await new Promise<void>((_, reject) => signal.addEventListener("abort", () => reject(new Error("the download was aborted")), { once: true }));
        steps.push("not reached");
      }).finally(() => steps.push("returned")),
    ).then(
      () => undefined,
      (e) => e,
    );
    expect(steps).toEqual(["returned"]);
    expect(err).toBeInstanceOf(ZrbError);
    expect((err as ZrbError).message).toMatch(/^restore into tank\/r stopped: its crypto worker crashed: RangeError: .+; rerun it$/);
  }, 20_000);
});
