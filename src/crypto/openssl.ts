/**
 * ChaCha20-Poly1305 from the host's OpenSSL `libcrypto` (through bun:ffi), when it has one.
 *
 * Why: the payload cipher is the largest single cost of a backup and of a restore on a small
 * NAS, and OpenSSL's x86-64 assembly seals 64 KiB blocks ≈ 2.7× faster than the libsodium we
 * embed (measured on the 2-core box: 0.47 against 1.25 CPU s per GiB; src/crypto/README.md).
 * It is not embedded: zrb stays one file, and a host without `libcrypto.so.3` or `.so.1.1`
 * (or whose library fails the known-answer test below, e.g. a FIPS build that refuses
 * ChaCha20) gets libsodium as before (sodium.ts). `ZRB_NO_OPENSSL=1` or `ZRB_NO_NATIVE=1`
 * turns it off.
 *
 * One cipher context per thread (each Worker loads this module itself), reused for every
 * block. The sizes are checked by the caller (sodium.ts) before any pointer is handed over.
 */
import { nativeDisabled } from "./blake3.ts";

const LIBRARIES = ["libcrypto.so.3", "libcrypto.so.1.1"];
const CTRL_GET_TAG = 0x10;
const CTRL_SET_TAG = 0x11;
const TAG = 16;
/** OpenSSL takes lengths as C ints; the payload's blocks are 64 KiB. */
const MAX_LEN = 0x7fff_ffff - TAG;

export interface OpensslAead {
  /** The library's file name and version, e.g. `libcrypto.so.3, OpenSSL 3.0.17 1 Jul 2025`. */
  readonly name: string;
  /** Seals `plain` into `dst` (exactly plain.length + 16 bytes; `dst` may start where `plain` does). */
  seal(dst: Uint8Array, plain: Uint8Array, nonce12: Uint8Array, key32: Uint8Array): void;
  /** Opens `sealed` into `dst` (exactly sealed.length − 16 bytes); false, with `dst` zeroed, when it does not authenticate. */
  open(dst: Uint8Array, sealed: Uint8Array, nonce12: Uint8Array, key32: Uint8Array): boolean;
}

let whyNot: string | undefined;
let loaded: OpensslAead | null | undefined;

/** OpenSSL's AEAD, loaded on first use (a command that seals or opens nothing never loads it); null when the host has none that passes. */
export function openssl(): OpensslAead | null {
  if (loaded === undefined) loaded = load();
  return loaded;
}

/** Why openssl() is null (undefined when it is not). */
export function opensslWhyNot(): string | undefined {
  openssl();
  return whyNot;
}

function load(): OpensslAead | null {
  if (nativeDisabled()) return (whyNot = "ZRB_NO_NATIVE is set"), null;
  const off = process.env.ZRB_NO_OPENSSL;
  if (off !== undefined && off !== "" && off !== "0") return (whyNot = "ZRB_NO_OPENSSL is set"), null;
  let ffi: typeof import("bun:ffi");
  try {
    ffi = require("bun:ffi");
  } catch (err) {
    return (whyNot = `bun:ffi: ${(err as Error).message}`), null;
  }
  const { dlopen, FFIType: T, ptr } = ffi;
  /** A pointer n bytes further on (the ones ptr() gives are plain numbers). */
  const at = (p: import("bun:ffi").Pointer, n: number) => (p + n) as import("bun:ffi").Pointer;
  const p = T.ptr, i32 = T.i32;
  const symbols = {
    OpenSSL_version: { args: [i32], returns: T.cstring },
    EVP_chacha20_poly1305: { args: [], returns: p },
    EVP_CIPHER_CTX_new: { args: [], returns: p },
    EVP_EncryptInit_ex: { args: [p, p, p, p, p], returns: i32 },
    EVP_EncryptUpdate: { args: [p, p, p, p, i32], returns: i32 },
    EVP_EncryptFinal_ex: { args: [p, p, p], returns: i32 },
    EVP_DecryptInit_ex: { args: [p, p, p, p, p], returns: i32 },
    EVP_DecryptUpdate: { args: [p, p, p, p, i32], returns: i32 },
    EVP_DecryptFinal_ex: { args: [p, p, p], returns: i32 },
    EVP_CIPHER_CTX_ctrl: { args: [p, i32, i32, p], returns: i32 },
  } as const;
  let lib: ReturnType<typeof dlopen<typeof symbols>> | undefined;
  let file = "";
  const errors: string[] = [];
  for (const f of LIBRARIES) {
    try {
      lib = dlopen(f, symbols);
      file = f;
      break;
    } catch (err) {
      errors.push(`${f}: ${firstLine((err as Error).message)}`);
    }
  }
  if (!lib) return (whyNot = `no OpenSSL libcrypto (${errors.join("; ")})`), null;
  const s = lib.symbols;
  const cipher = s.EVP_chacha20_poly1305();
  const enc = s.EVP_CIPHER_CTX_new();
  const dec = s.EVP_CIPHER_CTX_new();
  if (!cipher || !enc || !dec || s.EVP_EncryptInit_ex(enc, cipher, null, null, null) !== 1 || s.EVP_DecryptInit_ex(dec, cipher, null, null, null) !== 1)
    return (whyNot = `${file} has no usable ChaCha20-Poly1305`), null;
  // Where OpenSSL writes a length. Its pointer is taken at each call: a small typed array's
  // storage may move between calls (a pointer kept from load time was written through stale).
  const outLen = new Int32Array(new SharedArrayBuffer(4));
  // bun:ffi's ptr() refuses an empty view: an empty block is sealed from (and opened into) this byte.
  const none = new Uint8Array(1);

  const aead: OpensslAead = {
    name: `${file}, ${s.OpenSSL_version(0)}`,
    seal(dst, plain, nonce12, key32) {
      if (plain.length > MAX_LEN) throw new RangeError(`OpenSSL ChaCha20-Poly1305: ${plain.length} bytes at once is more than a C int`);
      const pd = ptr(dst);
      if (s.EVP_EncryptInit_ex(enc, null, null, ptr(key32), ptr(nonce12)) !== 1) throw new Error("OpenSSL ChaCha20-Poly1305: setting the key failed");
      let n = 0;
      if (plain.length) {
        if (s.EVP_EncryptUpdate(enc, pd, ptr(outLen), ptr(plain), plain.length) !== 1) throw new Error("OpenSSL ChaCha20-Poly1305: encryption failed");
        n = outLen[0]!;
      }
      if (s.EVP_EncryptFinal_ex(enc, plain.length ? at(pd, n) : ptr(none), ptr(outLen)) !== 1) throw new Error("OpenSSL ChaCha20-Poly1305: encryption failed");
      n += outLen[0]!;
      if (n !== plain.length) throw new Error(`OpenSSL ChaCha20-Poly1305: ${n} bytes out for ${plain.length} in`);
      if (s.EVP_CIPHER_CTX_ctrl(enc, CTRL_GET_TAG, TAG, at(pd, n)) !== 1) throw new Error("OpenSSL ChaCha20-Poly1305: reading the tag failed");
    },
    open(dst, sealed, nonce12, key32) {
      const len = sealed.length - TAG;
      if (len > MAX_LEN) throw new RangeError(`OpenSSL ChaCha20-Poly1305: ${len} bytes at once is more than a C int`);
      const pd = len ? ptr(dst) : ptr(none);
      const ps = ptr(sealed);
      let ok =
        s.EVP_DecryptInit_ex(dec, null, null, ptr(key32), ptr(nonce12)) === 1 &&
        s.EVP_CIPHER_CTX_ctrl(dec, CTRL_SET_TAG, TAG, at(ps, len)) === 1 &&
        (len === 0 || (s.EVP_DecryptUpdate(dec, pd, ptr(outLen), ps, len) === 1 && outLen[0] === len));
      ok = ok && s.EVP_DecryptFinal_ex(dec, len ? at(pd, len) : pd, ptr(outLen)) === 1 && outLen[0] === 0;
      // OpenSSL writes the plaintext before it checks the tag: none of it may be seen.
      if (!ok) dst.fill(0, 0, len);
      return ok;
    },
  };
  const why = knownAnswer(aead);
  if (why) return (whyNot = `${file} failed the known-answer test: ${why}`), null;
  return aead;
}

function firstLine(s: string): string {
  return s.split("\n")[0]!.trim();
}

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));

/**
 * RFC 8439 §2.8.2's key, nonce and plaintext without its AAD (age uses none), and an empty
 * block, against the bytes libsodium and @noble/ciphers both give (the ciphertext is the RFC's;
 * with the RFC's AAD they give its tag too); null when all hold.
 */
function knownAnswer(a: OpensslAead): string | null {
  const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const nonce = hex("070000004041424344454647");
  const plain = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
  const want = hex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116" +
      "6a23a4681fd59456aea1d29f82477216",
  );
  const sealed = new Uint8Array(plain.length + TAG);
  a.seal(sealed, plain, nonce, key);
  if (!equal(sealed, want)) return "a sealed block differs from the expected bytes";
  const back = new Uint8Array(plain.length);
  if (!a.open(back, sealed, nonce, key) || !equal(back, plain)) return "a sealed block did not open";
  sealed[0]! ^= 1;
  if (a.open(back, sealed, nonce, key)) return "a modified block opened";
  if (back.some((b) => b !== 0)) return "a block that did not open left plaintext behind";
  const empty = new Uint8Array(TAG);
  a.seal(empty, new Uint8Array(0), nonce, key);
  if (!equal(empty, hex("a0784d7a4716f3feb4f64e7f4b39bf04"))) return "an empty block differs from the expected tag";
  if (!a.open(new Uint8Array(0), empty, nonce, key)) return "an empty block did not open";
  return null;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

