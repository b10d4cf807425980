import { expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aeadBackend, aeadWith, openChunk, sealChunk, sealInPlace, TAG_BYTES, type Aead } from "../../../src/crypto/sodium.ts";

// Every backend that loads here: the host's OpenSSL (the default here), the embedded libsodium, the JS fallback.
const backends: [string, Aead][] = (["openssl", "native", "js"] as const).map((b) => [b, aeadWith(b)!]);

const rand = (n: number) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
};

test("OpenSSL's libcrypto is used here, and libsodium loads too", () => {
  expect(aeadBackend()).toBe("openssl");
  expect(aeadWith("openssl")).not.toBeNull();
  expect(aeadWith("native")).not.toBeNull();
});

test("RFC 8439 §2.8.2 ciphertext (every backend)", () => {
  const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
  // The RFC vector uses AAD and age uses none: the tag differs, the ciphertext does not.
  const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const nonce = hex("070000004041424344454647");
  const plain = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  // Ciphertext (without tag) is AAD-independent: it must equal the RFC's.
  const rfcCipher = hex(`d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
    3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
    92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
    3ff4def08e4b7a9de576d26586cec64b6116`);
  const sealed = backends.map(([, a]) => {
    const out = new Uint8Array(plain.length + TAG_BYTES);
    a.sealChunk(out, plain, nonce, key);
    return Buffer.from(out);
  });
  expect(sealed[0]!.subarray(0, plain.length).equals(rfcCipher)).toBe(true);
  for (const s of sealed) expect(s.equals(sealed[0]!)).toBe(true);
});

test("every backend produces identical bytes and opens the others' output, in plain and shared memory", () => {
  const key = rand(32);
  const nonce = rand(12);
  for (const shared of [false, true]) {
    const alloc = (n: number) => (shared ? new Uint8Array(new SharedArrayBuffer(n)) : new Uint8Array(n));
    for (const n of [0, 1, 15, 16, 17, 63, 64, 65, 1000, 65535, 65536, 1 << 20]) {
      // Unaligned views into bigger buffers, as the age stream uses them.
      const plain = alloc(n + 3).subarray(3);
      plain.set(rand(n));
      const outs = backends.map(([, a]) => {
        const out = alloc(n + TAG_BYTES + 5);
        expect(a.sealChunk(out.subarray(1), plain, nonce, key)).toBe(n + TAG_BYTES);
        return out;
      });
      for (const o of outs) expect(Buffer.from(o).equals(Buffer.from(outs[0]!))).toBe(true);
      const sealed = outs[0]!.subarray(1, 1 + n + TAG_BYTES);
      for (const [, a] of backends) {
        const back = alloc(n + 7);
        expect(a.openChunk(back.subarray(7), sealed, nonce, key)).toBe(n);
        expect(Buffer.from(back.subarray(7)).equals(Buffer.from(plain))).toBe(true);
      }
    }
  }
});

test("OpenSSL through FFI stays right while the collector runs between blocks (its pointers are taken at each call)", () => {
  // A pointer kept from one call to the next once pointed at memory the collector had moved.
  const a = aeadWith("openssl")!, ref = aeadWith("native")!;
  const key = rand(32);
  for (let i = 0; i < 200; i++) {
    const n = (i * 7919) % 70000;
    const nonce = rand(12), plain = rand(n);
    const x = new Uint8Array(n + TAG_BYTES), y = new Uint8Array(n + TAG_BYTES);
    a.sealChunk(x, plain, nonce, key);
    ref.sealChunk(y, plain, nonce, key);
    expect(Buffer.from(x).equals(Buffer.from(y))).toBe(true);
    const back = new Uint8Array(n);
    expect(a.openChunk(back, x, nonce, key)).toBe(n);
    expect(Buffer.from(back).equals(Buffer.from(plain))).toBe(true);
    if (i % 20 === 0) Bun.gc(true);
  }
});

test("sealing in place gives the same bytes as sealing into another buffer (every backend)", () => {
  const key = rand(32);
  const nonce = rand(12);
  for (const n of [0, 1, 16, 65535, 65536]) {
    const plain = rand(n);
    const want = new Uint8Array(n + TAG_BYTES);
    sealChunk(want, plain, nonce, key);
    for (const seal of [sealInPlace, ...backends.map(([, a]) => a.sealInPlace)]) {
      // A view at an odd offset of a bigger buffer, with room for the tag and more.
      const big = new Uint8Array(n + TAG_BYTES + 9);
      const buf = big.subarray(3);
      buf.set(plain);
      expect(seal(buf, n, nonce, key)).toBe(n + TAG_BYTES);
      expect(Buffer.from(buf.subarray(0, n + TAG_BYTES)).equals(want)).toBe(true);
    }
  }
});

test("authentication failures return -1 and leave no plaintext on every backend", () => {
  const key = rand(32);
  const nonce = rand(12);
  const plain = rand(1000);
  const sealed = new Uint8Array(1000 + TAG_BYTES);
  sealChunk(sealed, plain, nonce, key);
  const out = new Uint8Array(1000);
  for (const open of [openChunk, ...backends.map(([, a]) => a.openChunk)]) {
    for (const pos of [0, 500, 999, 1000, 1015]) {
      sealed[pos]! ^= 0x01;
      out.fill(0xee);
      expect(open(out, sealed, nonce, key)).toBe(-1);
      // libsodium writes nothing; OpenSSL decrypts first and zeroes it when the tag fails.
      expect(out.every((b) => b === 0xee || b === 0)).toBe(true);
      sealed[pos]! ^= 0x01;
    }
    const otherNonce = nonce.slice();
    otherNonce[11]! ^= 1;
    expect(open(out, sealed, otherNonce, key)).toBe(-1);
    expect(open(out, sealed.subarray(0, 15), nonce, key)).toBe(-1);
    expect(open(out, sealed, nonce, key)).toBe(1000);
  }
});

test("bad sizes throw instead of reaching the C code", () => {
  const k = new Uint8Array(32), n = new Uint8Array(12);
  for (const [, a] of backends) {
    expect(() => a.sealChunk(new Uint8Array(10), new Uint8Array(10), n, k)).toThrow(/too small/);
    expect(() => a.sealChunk(new Uint8Array(26), new Uint8Array(10), new Uint8Array(11), k)).toThrow(/nonce/);
    expect(() => a.sealChunk(new Uint8Array(26), new Uint8Array(10), n, new Uint8Array(16))).toThrow(/key/);
    expect(() => a.openChunk(new Uint8Array(9), new Uint8Array(26), n, k)).toThrow(/too small/);
    const buf = new Uint8Array(100);
    expect(() => a.sealChunk(buf.subarray(5, 31), buf.subarray(0, 10), n, k)).toThrow(/overlap/);
  }
});

test("OpenSSL's libcrypto is loaded on the first seal, not on import (a command that seals nothing never loads it)", () => {
  const script = `
    import { readFileSync } from "node:fs";
    import { sealChunk } from ${JSON.stringify(join(import.meta.dir, "../../../src/crypto/sodium.ts"))};
    const mapped = () => readFileSync("/proc/self/maps", "utf8").includes("libcrypto.so");
    const before = mapped();
    sealChunk(new Uint8Array(17), new Uint8Array(1), new Uint8Array(12), new Uint8Array(32));
    console.log(before, mapped());`;
  const p = Bun.spawnSync([process.execPath, "-e", script]);
  expect(p.stdout.toString().trim()).toBe("false true");
});

test("ZRB_NO_OPENSSL=1 selects libsodium, ZRB_NO_NATIVE=1 the JS backend, and a host without libcrypto libsodium", () => {
  const script = `
    import { aeadBackend, aeadDescription } from ${JSON.stringify(join(import.meta.dir, "../../../src/crypto/sodium.ts"))};
    console.log(aeadBackend() + "\\n" + aeadDescription());`;
  const run = (env: Record<string, string>) => Bun.spawnSync([process.execPath, "-e", script], { env: { ...process.env, ...env } }).stdout.toString().trim().split("\n");
  expect(run({ ZRB_NO_OPENSSL: "1" })).toEqual(["native", "native (libsodium, sodium-native; OpenSSL not used: ZRB_NO_OPENSSL is set)"]);
  expect(run({ ZRB_NO_NATIVE: "1" })).toEqual(["js", "js (@noble/ciphers; native addon not used: ZRB_NO_NATIVE is set)"]);
  expect(run({ ZRB_NO_OPENSSL: "0" })[0]).toBe("openssl");
  // A library named libcrypto.so.3 that is not OpenSSL (zlib under that name, found first through
  // LD_LIBRARY_PATH) is refused at load, and libsodium is used instead.
  const dir = mkdtempSync(join(tmpdir(), "zrb-nolibcrypto-"));
  try {
    const zlib = execFileSync("sh", ["-c", "ls /usr/lib/*-linux-gnu*/libz.so.1 /lib/*-linux-gnu*/libz.so.1 2>/dev/null | head -1"]).toString().trim();
    copyFileSync(zlib, join(dir, "libcrypto.so.3"));
    const [backend, why] = run({ LD_LIBRARY_PATH: dir });
    expect(backend).toBe("native");
    expect(why).toMatch(/^native \(libsodium, sodium-native; OpenSSL not used: no OpenSSL libcrypto \(libcrypto\.so\.3: .*; libcrypto\.so\.1\.1: .*\)\)$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
