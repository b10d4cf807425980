/**
 * Both halves of the parallel data path with real Workers (pipeline/parallel/, backup/sealer.ts,
 * restore/decrypt.ts). Sealing: a part sealed by every crypto worker at once is byte-identical
 * to the same part sealed in order (same header), whatever pieces its bytes arrive in, for sizes
 * around block and run boundaries; the stock age CLI decrypts it; the size and SHA-256 the file
 * worker reports are the file's, and the BLAKE3 the hashing worker reports is the plaintext's. Opening: files made by the stock age CLI, opened by every
 * worker at once, give their plaintext in order; a damaged file is refused with the in-order
 * decryptor's diagnosis, and nothing after the damaged block is ever emitted.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, linkSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgeDecryptStream, AgeEncryptStream, createHeader, type AgeHeader } from "../../../src/crypto/age.ts";
import { CHUNK_SIZE, RUN_PLAIN, SEALED_CHUNK_SIZE } from "../../../src/crypto/age-stream.ts";
import { createBlake3 } from "../../../src/crypto/blake3.ts";
import { PartSealer } from "../../../src/pipeline/backup/sealer.ts";
import { decryptPart } from "../../../src/pipeline/restore/decrypt.ts";
import { startThreads, type Threads } from "../../../src/pipeline/parallel/index.ts";
import type { Manifest, ManifestPart } from "../../../src/records/manifest.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import { ageKeyPair, run } from "../../helpers/rig.ts";
import { pseudoRandom, sha256Hex } from "../store/helpers.ts";

const K = CHUNK_SIZE;
const SIZES = [0, 1, K - 1, K, K + 1, 16 * K - 1, RUN_PLAIN, RUN_PLAIN + 1, 3 * RUN_PLAIN + 5 * K, 5 * RUN_PLAIN + 3];
const PIECES = [1, 7, K - 1, K + 1, RUN_PLAIN + 3, 3, 2 * RUN_PLAIN];

let dir: string;
let keyFile: string;
let recipient: string;
let identity: string;
let threads: Threads;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zrb-parallel-"));
  ({ keyFile, recipient } = await ageKeyPair(join(dir, "key.txt")));
  identity = readFileSync(keyFile, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  // Three crypto workers: runs finish out of order.
  threads = await startThreads(3, (e) => {
    throw e;
  });
});

afterAll(() => {
  threads?.terminate();
  rmSync(dir, { recursive: true, force: true });
});

const copy = (h: AgeHeader): AgeHeader => ({ ...h, prefix: h.prefix.slice(), key: h.key.slice() });

function inOrder(h: AgeHeader, data: Uint8Array): Buffer {
  const enc = AgeEncryptStream.fromHeader(copy(h));
  return Buffer.concat([Buffer.from(enc.push(data)), Buffer.from(enc.finish())]);
}

/** Seal `data` fed in `pieces`; also its BLAKE3 as the hashing worker saw the runs. */
async function sealInParallel(h: AgeHeader, data: Uint8Array, pieces: number[], path: string) {
  const hasher = threads.crypto.newHasher();
  const s = await PartSealer.begin(threads, path, copy(h), [hasher], new AbortController().signal);
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(pieces[i % pieces.length]!, data.length - off);
    await s.push(data.subarray(off, off + n));
    off += n;
  }
  const sealed = s.finish();
  const blake3 = threads.crypto.digest(hasher);
  return { ...(await sealed), blake3: await blake3 };
}

async function b3(data: Uint8Array): Promise<string> {
  const h = await createBlake3();
  h.update(data);
  return h.digestHex();
}

describe("sealing a part on every worker", () => {
  for (const n of SIZES) {
    test(`${n} bytes: byte-identical to sealing in order, whatever the pieces; stock age decrypts it`, async () => {
      const data = pseudoRandom(n, n + 3);
      const h = await createHeader([recipient]);
      const want = inOrder(h, data);
      for (const [i, pieces] of [[1 << 30], PIECES].entries()) {
        const path = join(dir, `part-${n}-${i}.age`);
        const sealed = await sealInParallel(h, data, pieces, path);
        const got = readFileSync(path);
        expect(got.equals(want)).toBe(true);
        expect(sealed).toEqual({ cipherSize: got.length, sha256: sha256Hex(got), blake3: await b3(data) });
        expect(statSync(path).mode & 0o777).toBe(0o600);
        expect(existsSync(path + ".tmp")).toBe(false);
      }
      const cli = Bun.spawn(["age", "-d", "-i", keyFile, join(dir, `part-${n}-1.age`)], { stdout: "pipe", stderr: "inherit" });
      const out = Buffer.from(await new Response(cli.stdout).arrayBuffer());
      expect(await cli.exited).toBe(0);
      expect(out.equals(Buffer.from(data))).toBe(true);
    });
  }
});

function manifestFor(file: string, data: Uint8Array, blake3: string): { m: Manifest; p: ManifestPart } {
  const p: ManifestPart = { index: 0, key: "data/x/part-000000.age", plainSize: data.length, cipherSize: statSync(file).size, sha256: "", blake3 };
  const m = { backupId: "B1", recipients: [recipient], parts: [p] } as unknown as Manifest;
  return { m, p };
}

/** `data` encrypted to the test recipient by the stock age CLI, as the file `name` in the scratch directory. */
async function stockAge(name: string, data: Uint8Array): Promise<string> {
  const plain = join(dir, `${name}.plain`);
  const file = join(dir, `${name}.age`);
  writeFileSync(plain, data);
  expect((await run(["age", "-r", recipient, "-o", file, plain])).code).toBe(0);
  return file;
}

/** Open `file` on every worker against a manifest of `data` (`blake3`, and `over` for the part record, if given). */
async function openInParallel(file: string, data: Uint8Array, blake3?: string, over: Partial<ManifestPart> = {}): Promise<{ out: Buffer; error?: ZrbError }> {
  const made = manifestFor(file, data, blake3 ?? (await b3(data)));
  const p = { ...made.p, ...over };
  const m = { ...made.m, parts: [p] } as Manifest;
  const pieces: Buffer[] = [];
  try {
    await decryptPart(file, m, p, { identities: [identity], url: "store://part", emit: (b) => void pieces.push(Buffer.from(b)), threads });
  } catch (e) {
    expect(e).toBeInstanceOf(ZrbError);
    return { out: Buffer.concat(pieces), error: e as ZrbError };
  }
  return { out: Buffer.concat(pieces) };
}

/** The in-order decryptor's verdict on the same bytes. */
async function inOrderVerdict(bytes: Uint8Array): Promise<string> {
  const dec = await AgeDecryptStream.create([identity]);
  try {
    await dec.push(bytes);
    dec.finish();
    return "ok";
  } catch (e) {
    return (e as Error).message;
  }
}

test("one part keeps every crypto worker busy: its runs are spread over all of them", async () => {
  // (Before issue 13 one Worker sealed a whole chunk: with one part, one core.)
  const before = threads.crypto.finishedPerWorker();
  await sealInParallel(await createHeader([recipient]), pseudoRandom(12 * RUN_PLAIN, 13), [RUN_PLAIN], join(dir, "spread.age"));
  const runs = threads.crypto.finishedPerWorker().map((n, i) => n - before[i]!);
  expect(runs.reduce((a, b) => a + b, 0)).toBe(12);
  for (const n of runs) expect(n).toBeGreaterThan(0);
});

describe("opening a part on every worker", () => {
  for (const n of SIZES) {
    test(`${n} bytes made by stock age: the plaintext, in order`, async () => {
      const data = pseudoRandom(n, n + 5);
      const file = await stockAge(`cli-${n}`, data);
      const r = await openInParallel(file, data);
      expect(r.error).toBeUndefined();
      expect(r.out.equals(Buffer.from(data))).toBe(true);
    });
  }

  test("damaged files: the in-order diagnosis, exit 7, nothing emitted past the damaged block", async () => {
    const data = pseudoRandom(3 * RUN_PLAIN + 100, 9);
    const good = await stockAge("good", data);
    const bytes = readFileSync(good);
    const start = bytes.length - (data.length + 49 * 16) - 16; // header; payload = 49 sealed blocks after the nonce
    const at = (block: number) => start + 16 + block * SEALED_CHUNK_SIZE;
    const cases: [string, Uint8Array, number][] = [];
    const flip = (pos: number) => {
      const b = Uint8Array.from(bytes);
      b[pos]! ^= 1;
      return b;
    };
    cases.push(["block 33 flipped", flip(at(33) + 100), 33]);
    cases.push(["last block flipped", flip(bytes.length - 1), 48]);
    cases.push(["cut after block 31", bytes.subarray(0, at(32)), 32]);
    cases.push(["cut inside the last block", bytes.subarray(0, bytes.length - 5), 48]);
    cases.push(["cut after the nonce", bytes.subarray(0, start + 16), 0]);
    for (const [name, b, block] of cases) {
      const file = join(dir, `bad-${name.replace(/ /g, "-")}.age`);
      writeFileSync(file, b);
      const r = await openInParallel(file, data);
      expect(r.error?.exitCode, name).toBe(ExitCode.INTEGRITY);
      expect(r.error!.message, name).toBe(`part 0 of backup B1 (store://part) does not decrypt: ${await inOrderVerdict(b)}`);
      expect(r.out.length, name).toBeLessThanOrEqual(block * K);
      expect(r.out.equals(Buffer.from(data.subarray(0, r.out.length))), name).toBe(true);
    }
  });

  test("a plaintext BLAKE3 that is not the manifest's: exit 7 naming both", async () => {
    const data = pseudoRandom(RUN_PLAIN + 1, 11);
    const r = await openInParallel(await stockAge("b3", data), data, "0".repeat(64));
    expect(r.error?.exitCode).toBe(ExitCode.INTEGRITY);
    expect(r.error!.message).toBe(`part 0 of backup B1 (store://part): plaintext BLAKE3 is ${await b3(data)}, manifest says ${"0".repeat(64)}`);
  });

  test("a part that decrypts to fewer bytes than the manifest records: exit 7 naming both sizes, even with its BLAKE3 right", async () => {
    const data = pseudoRandom(RUN_PLAIN + 1, 12);
    const r = await openInParallel(await stockAge("short", data), data, undefined, { plainSize: data.length + 1 });
    expect(r.error?.exitCode).toBe(ExitCode.INTEGRITY);
    expect(r.error!.message).toBe(`part 0 of backup B1 (store://part) decrypts to ${data.length} bytes, manifest says ${data.length + 1}`);
  });

  test("a part that decrypts to more bytes than the manifest records: exit 7, nothing emitted past the manifest's size", async () => {
    const data = pseudoRandom(3 * RUN_PLAIN + 7, 13);
    const r = await openInParallel(await stockAge("long", data), data, undefined, { plainSize: RUN_PLAIN });
    expect(r.error?.exitCode).toBe(ExitCode.INTEGRITY);
    expect(r.error!.message).toBe(`part 0 of backup B1 (store://part) decrypts to more than the ${RUN_PLAIN} bytes its manifest records`);
    expect(r.out.length).toBe(RUN_PLAIN);
  });
});

describe("recycled files (FileWriter.recycle)", () => {
  async function writeFile(path: string, data: Uint8Array) {
    const f = threads.files.create(path);
    for (let off = 0; off < data.length; off += threads.buffers.slotSize) {
      const slot = await threads.buffers.take();
      const n = Math.min(threads.buffers.slotSize, data.length - off);
      threads.buffers.view(slot, n).set(data.subarray(off, off + n));
      f.write(slot, n);
    }
    return f.close();
  }

  test("the next file overwrites the kept one (same inode, so its pages are reused) and holds exactly its own bytes: cut when shorter, grown when longer; kept only when wanted", async () => {
    const a = join(dir, "rec-a"), b = join(dir, "rec-b"), c = join(dir, "rec-c");
    const big = pseudoRandom(3 * threads.buffers.slotSize + 17, 41);
    expect((await writeFile(a, big)).size).toBe(big.length);
    const inode = statSync(a).ino;
    threads.files.recycle(a, true);
    expect(existsSync(a)).toBe(false);
    const small = pseudoRandom(1000, 42);
    const w = await writeFile(b, small);
    expect(statSync(b).ino).toBe(inode);
    expect(w).toEqual({ size: small.length, sha256: sha256Hex(small) });
    expect(Buffer.compare(readFileSync(b), Buffer.from(small))).toBe(0);
    expect(statSync(b).mode & 0o777).toBe(0o600);
    threads.files.recycle(b, true);
    const grown = pseudoRandom(2 * threads.buffers.slotSize + 5, 43);
    await writeFile(c, grown);
    expect(statSync(c).ino).toBe(inode);
    expect(Buffer.compare(readFileSync(c), Buffer.from(grown))).toBe(0);
    // No spare left lying about once a file took it; one not wanted is deleted at once.
    expect(readdirSync(dir).filter((n) => n.startsWith(".zrb-spare-"))).toEqual([]);
    threads.files.recycle(c, false);
    expect(existsSync(c)).toBe(false);
    expect(readdirSync(dir).filter((n) => n.startsWith(".zrb-spare-"))).toEqual([]);
  });

  test("a kept file that another name still points at (a hard link) or that others may read is not overwritten: the next file is a new one", async () => {
    const a = join(dir, "rec-link"), other = join(dir, "rec-link-other"), b = join(dir, "rec-link-b");
    const first = pseudoRandom(5000, 44);
    await writeFile(a, first);
    linkSync(a, other);
    threads.files.recycle(a, true);
    await writeFile(b, pseudoRandom(100, 45));
    expect(statSync(b).ino).not.toBe(statSync(other).ino);
    expect(Buffer.compare(readFileSync(other), Buffer.from(first))).toBe(0);
    const c = join(dir, "rec-mode"), d = join(dir, "rec-mode-d");
    await writeFile(c, first);
    chmodSync(c, 0o644);
    threads.files.recycle(c, true);
    await writeFile(d, first);
    // A reused file would have kept its 0644 (its inode number may be handed out again: not compared).
    expect(statSync(d).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((n) => n.startsWith(".zrb-spare-"))).toEqual([]);
  });
});
