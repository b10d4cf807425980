import { expect, test } from "bun:test";
import { join } from "node:path";
import { aeadBackend, jsAead, openChunk, sealChunk, sealInPlace, TAG_BYTES } from "../../../src/crypto/sodium.ts";

const rand = (n: number) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
};

test("the native addon loads here", () => {
  expect(aeadBackend()).toBe("native");
});

test("RFC 8439 §2.8.2 ciphertext (both backends)", () => {
  const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
  // The RFC vector uses AAD and age uses none: the tag differs, the ciphertext does not.
  const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const nonce = hex("070000004041424344454647");
  const plain = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const a = new Uint8Array(plain.length + TAG_BYTES);
  const b = new Uint8Array(plain.length + TAG_BYTES);
  sealChunk(a, plain, nonce, key);
  jsAead.sealChunk(b, plain, nonce, key);
  // Ciphertext (without tag) is AAD-independent: it must equal the RFC's.
  const rfcCipher = hex(`d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
    3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
    92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
    3ff4def08e4b7a9de576d26586cec64b6116`);
  expect(Buffer.from(a.subarray(0, plain.length)).equals(rfcCipher)).toBe(true);
  expect(Buffer.from(a).equals(b)).toBe(true);
});

test("native and JS backends produce identical bytes and open each other's output", () => {
  const key = rand(32);
  const nonce = rand(12);
  for (const n of [0, 1, 15, 16, 17, 63, 64, 65, 1000, 65535, 65536, 1 << 20]) {
    // Unaligned views into bigger buffers, as the age stream uses them.
    const plainBuf = rand(n + 3);
    const plain = plainBuf.subarray(3);
    const outA = new Uint8Array(n + TAG_BYTES + 5);
    const outB = new Uint8Array(n + TAG_BYTES + 5);
    expect(sealChunk(outA.subarray(1), plain, nonce, key)).toBe(n + TAG_BYTES);
    expect(jsAead.sealChunk(outB.subarray(1), plain, nonce, key)).toBe(n + TAG_BYTES);
    expect(Buffer.from(outA).equals(outB)).toBe(true);

    const sealed = outA.subarray(1, 1 + n + TAG_BYTES);
    const backA = new Uint8Array(n + 7);
    const backB = new Uint8Array(n);
    expect(openChunk(backA.subarray(7), sealed, nonce, key)).toBe(n);
    expect(jsAead.openChunk(backB, sealed, nonce, key)).toBe(n);
    expect(Buffer.from(backA.subarray(7)).equals(plain)).toBe(true);
    expect(Buffer.from(backB).equals(plain)).toBe(true);
  }
});

test("sealing in place gives the same bytes as sealing into another buffer (both backends)", () => {
  const key = rand(32);
  const nonce = rand(12);
  for (const n of [0, 1, 16, 65535, 65536]) {
    const plain = rand(n);
    const want = new Uint8Array(n + TAG_BYTES);
    sealChunk(want, plain, nonce, key);
    for (const seal of [sealInPlace, jsAead.sealInPlace]) {
      // A view at an odd offset of a bigger buffer, with room for the tag and more.
      const big = new Uint8Array(n + TAG_BYTES + 9);
      const buf = big.subarray(3);
      buf.set(plain);
      expect(seal(buf, n, nonce, key)).toBe(n + TAG_BYTES);
      expect(Buffer.from(buf.subarray(0, n + TAG_BYTES)).equals(want)).toBe(true);
    }
  }
});

test("authentication failures return -1 on both backends", () => {
  const key = rand(32);
  const nonce = rand(12);
  const plain = rand(1000);
  const sealed = new Uint8Array(1000 + TAG_BYTES);
  sealChunk(sealed, plain, nonce, key);
  const out = new Uint8Array(1000);
  for (const open of [openChunk, jsAead.openChunk]) {
    for (const pos of [0, 500, 999, 1000, 1015]) {
      sealed[pos]! ^= 0x01;
      expect(open(out, sealed, nonce, key)).toBe(-1);
      sealed[pos]! ^= 0x01;
    }
    const otherNonce = nonce.slice();
    otherNonce[11]! ^= 1;
    expect(open(out, sealed, otherNonce, key)).toBe(-1);
    expect(open(out, sealed.subarray(0, 15), nonce, key)).toBe(-1);
    expect(open(out, sealed, nonce, key)).toBe(1000);
  }
});

test("bad sizes throw instead of reaching the C asserts", () => {
  const k = new Uint8Array(32), n = new Uint8Array(12);
  expect(() => sealChunk(new Uint8Array(10), new Uint8Array(10), n, k)).toThrow(/too small/);
  expect(() => sealChunk(new Uint8Array(26), new Uint8Array(10), new Uint8Array(11), k)).toThrow(/nonce/);
  expect(() => sealChunk(new Uint8Array(26), new Uint8Array(10), n, new Uint8Array(16))).toThrow(/key/);
  const buf = new Uint8Array(100);
  expect(() => sealChunk(buf.subarray(5, 31), buf.subarray(0, 10), n, k)).toThrow(/overlap/);
});

test("ZRB_NO_NATIVE=1 selects the JS backend", () => {
  const script = `
    import { aeadBackend } from ${JSON.stringify(join(import.meta.dir, "../../../src/crypto/sodium.ts"))};
    console.log(aeadBackend());`;
  const p = Bun.spawnSync([process.execPath, "-e", script], { env: { ...process.env, ZRB_NO_NATIVE: "1" } });
  expect(p.stdout.toString().trim()).toBe("js");
});
