/**
 * Runs of age STREAM blocks (crypto/age-stream.ts), sealed and opened in any order, against the
 * in-order AgeEncryptStream / AgeDecryptStream over the same header: byte-identical files for
 * payload sizes around block and run boundaries, the same plaintext back, and the same
 * diagnosis of a modified, cut or extended payload.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { AgeDecryptStream, AgeEncryptStream, createHeader, type AgeHeader } from "../../../src/crypto/age.ts";
import { CHUNK_SIZE, RUN_BLOCKS, RUN_BYTES, RUN_PLAIN, SEALED_CHUNK_SIZE, openRun, sealRun, sealedSize } from "../../../src/crypto/age-stream.ts";
import { generateKeyPair } from "../../../src/crypto/keys.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import { pseudoRandom } from "../store/helpers.ts";

const K = CHUNK_SIZE;
/** Payload sizes around the block (64 KiB) and run (1 MiB) boundaries. */
const SIZES = [0, 1, K - 1, K, K + 1, 2 * K, RUN_PLAIN - 1, RUN_PLAIN, RUN_PLAIN + 1, RUN_PLAIN + K, 2 * RUN_PLAIN, 3 * RUN_PLAIN + 12_345];

let recipient: string;
let identity: string;

beforeAll(async () => {
  const kp = await generateKeyPair();
  recipient = kp.recipient;
  identity = kp.identityFileText.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
});

const copy = (h: AgeHeader): AgeHeader => ({ ...h, prefix: h.prefix.slice(), key: h.key.slice() });

function inOrder(h: AgeHeader, data: Uint8Array): Uint8Array {
  const enc = AgeEncryptStream.fromHeader(copy(h));
  // A plain Uint8Array: its slice() copies (a Buffer's would not), and runs are opened in place.
  return new Uint8Array(Buffer.concat([Buffer.from(enc.push(data)), Buffer.from(enc.finish())]));
}

/** Seal `data` run by run in the given order of runs, each in its own buffer, then lay them out. */
function byRuns(h: AgeHeader, data: Uint8Array, order: (n: number) => number[]): Uint8Array {
  const runs = Math.max(1, Math.ceil(data.length / RUN_PLAIN));
  const sealed: Uint8Array[] = [];
  for (const r of order(runs)) {
    const plain = data.subarray(r * RUN_PLAIN, (r + 1) * RUN_PLAIN);
    const buf = new Uint8Array(RUN_BYTES);
    for (let j = 0; j * K < plain.length; j++) buf.set(plain.subarray(j * K, (j + 1) * K), j * SEALED_CHUNK_SIZE);
    const n = sealRun(buf, plain.length, r * RUN_BLOCKS, r === runs - 1, h.key);
    expect(n).toBe(sealedSize(plain.length));
    sealed[r] = buf.slice(0, n);
  }
  return new Uint8Array(Buffer.concat([h.prefix, ...sealed]));
}

/** Open the payload of `file` run by run in the given order; plaintext in stream order. */
function openByRuns(file: Uint8Array, h: AgeHeader, order: (n: number) => number[]): Uint8Array {
  const payload = file.subarray(h.prefix.length);
  const runs = Math.ceil(payload.length / RUN_BYTES);
  const out: Uint8Array[] = [];
  for (const r of order(runs)) {
    const buf = payload.slice(r * RUN_BYTES, (r + 1) * RUN_BYTES);
    const n = openRun(buf, buf.length, r * RUN_BLOCKS, r === runs - 1, h.key);
    out[r] = buf.slice(0, n);
  }
  return Buffer.concat(out);
}

const forward = (n: number) => Array.from({ length: n }, (_, i) => i);
const backward = (n: number) => forward(n).reverse();

function zrbError(fn: () => unknown): ZrbError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ZrbError);
    return e as ZrbError;
  }
  throw new Error("expected a ZrbError");
}

describe("runs of age blocks", () => {
  for (const n of SIZES) {
    test(`${n} bytes: sealed by runs in any order = sealed in order; opened by runs = the plaintext`, async () => {
      const h = await createHeader([recipient]);
      const data = pseudoRandom(n, n + 1);
      const want = inOrder(h, data);
      for (const order of [forward, backward]) expect(Buffer.from(byRuns(h, data, order)).equals(Buffer.from(want))).toBe(true);
      for (const order of [forward, backward]) expect(Buffer.from(openByRuns(want, h, order)).equals(Buffer.from(data))).toBe(true);
      expect(Buffer.from(want).equals(Buffer.from(byRuns(h, data, forward)))).toBe(true); // opened copies, not the file
      // And the in-order decryptor agrees that the file is the plaintext.
      const dec = await AgeDecryptStream.create([identity]);
      expect(Buffer.concat([Buffer.from(await dec.push(want)), Buffer.from(dec.finish())]).equals(Buffer.from(data))).toBe(true);
    });
  }

  test("a damaged, cut or extended payload is refused with the in-order decryptor's message", async () => {
    const h = await createHeader([recipient]);
    const data = pseudoRandom(2 * RUN_PLAIN + 100, 7);
    const file = inOrder(h, data);
    const payload = file.subarray(h.prefix.length);
    const sequential = async (bytes: Uint8Array) => {
      const dec = await AgeDecryptStream.create([identity]);
      try {
        await dec.push(bytes);
        dec.finish();
      } catch (e) {
        return (e as Error).message;
      }
      return "opened";
    };
    // A flipped byte in block 20 (run 1).
    const flipped = payload.slice(RUN_BYTES, 2 * RUN_BYTES);
    flipped[4 * SEALED_CHUNK_SIZE + 10]! ^= 1;
    const e = zrbError(() => openRun(flipped, flipped.length, RUN_BLOCKS, false, h.key));
    expect(e.exitCode).toBe(ExitCode.INTEGRITY);
    expect(e.message).toBe("age payload chunk 20 failed authentication: the file is corrupted or was modified");
    const whole = file.slice();
    whole[h.prefix.length + RUN_BYTES + 4 * SEALED_CHUNK_SIZE + 10]! ^= 1;
    expect(await sequential(whole)).toBe(e.message);
    // Cut after run 0: its last block opens only as a non-final one.
    const run0 = payload.slice(0, RUN_BYTES);
    const cut = zrbError(() => openRun(run0, run0.length, 0, true, h.key));
    expect(cut.message).toBe("age file is truncated: it ends after chunk 15 without the final chunk");
    expect(await sequential(file.subarray(0, h.prefix.length + RUN_BYTES))).toBe(cut.message);
    // Bytes after a full final block: that block, opened as not final, opens only as final.
    const short = inOrder(h, data.subarray(0, RUN_PLAIN + K)).subarray(h.prefix.length);
    const trailing = short.slice(RUN_BYTES, RUN_BYTES + SEALED_CHUNK_SIZE);
    const t = zrbError(() => openRun(trailing, trailing.length, RUN_BLOCKS, false, h.key));
    expect(t.message).toBe("age file has trailing data after its final chunk (chunk 16)");
  });

  test("the run layout is checked: only the final run may be short or empty", async () => {
    const h = await createHeader([recipient]);
    const buf = new Uint8Array(RUN_BYTES);
    expect(() => sealRun(buf, K + 1, 0, false, h.key)).toThrow(RangeError);
    expect(() => sealRun(buf, 0, 0, false, h.key)).toThrow(RangeError);
    expect(() => sealRun(buf, RUN_PLAIN + 1, 0, true, h.key)).toThrow(RangeError);
    expect(() => openRun(buf, SEALED_CHUNK_SIZE + 1, 0, false, h.key)).toThrow(RangeError);
  });
});
