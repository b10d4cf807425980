/**
 * ChaCha20-Poly1305 (IETF, 12-byte nonce, 16-byte tag) for the age payload STREAM.
 *
 * Backends, the first that loads:
 * - openssl: the host's OpenSSL libcrypto through bun:ffi (openssl.ts), ≈ 2.7× faster than
 *   libsodium on x86-64; not embedded, so it is used only where the host has it and it passes
 *   a known-answer test at load.
 * - native: libsodium from `sodium-native`'s prebuilt addon, `require`d by a literal path
 *   per architecture so that `bun build --compile` embeds it (the package's index.js loads
 *   it through `require-addon` with a computed path, which a compiled binary cannot embed).
 *   We call the raw binding directly; it `assert()`s sizes in C (an abort, not an
 *   exception), so every size is checked here first.
 * - js: `@noble/ciphers` (pure JS, ≈ 10× slower), used when the addon cannot load (glibc
 *   older than 2.33, another architecture, a noexec `$TMPDIR` inside a compiled binary, or
 *   `ZRB_NO_NATIVE=1`).
 *
 * All three write into caller-provided buffers: the hot loop allocates no chunk-sized memory.
 */
import { nativeDisabled } from "./blake3.ts";
import { openssl, opensslWhyNot } from "./openssl.ts";

type NobleChacha = typeof import("@noble/ciphers/chacha.js").chacha20poly1305;
let noble: NobleChacha | null = null;
/** Loaded on first use only (importing it costs ≈ 10 ms of startup). */
function chacha20poly1305(key: Uint8Array, nonce: Uint8Array) {
  noble ??= (require("@noble/ciphers/chacha.js") as typeof import("@noble/ciphers/chacha.js")).chacha20poly1305;
  return noble(key, nonce);
}

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

interface SodiumBinding {
  crypto_aead_chacha20poly1305_ietf_encrypt(
    c: Uint8Array,
    m: Uint8Array,
    ad: Uint8Array | undefined,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(
    m: Uint8Array,
    c: Uint8Array,
    ad: Uint8Array | undefined,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  crypto_aead_chacha20poly1305_ietf_ABYTES: number;
  crypto_aead_chacha20poly1305_ietf_NPUBBYTES: number;
  crypto_aead_chacha20poly1305_ietf_KEYBYTES: number;
}

/** Why the native addon is not used (for `zrb --version --verbose`); undefined when it is. */
let whyNotNative: string | undefined;

function loadNative(): SodiumBinding | null {
  if (nativeDisabled()) return (whyNotNative = "ZRB_NO_NATIVE is set"), null;
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64"))
    return (whyNotNative = `no native build for ${process.platform}-${process.arch}`), null;
  let b: SodiumBinding;
  try {
    // Literal paths: the bundler embeds exactly these files in a compiled binary.
    if (process.arch === "x64") b = require("sodium-native/prebuilds/linux-x64/sodium-native.node");
    else b = require("sodium-native/prebuilds/linux-arm64/sodium-native.node");
  } catch (err) {
    return (whyNotNative = (err as Error)?.message ?? String(err)), null;
  }
  // Refuse a binding whose constants differ from what the checks below assume.
  if (
    typeof b?.crypto_aead_chacha20poly1305_ietf_encrypt !== "function" ||
    typeof b.crypto_aead_chacha20poly1305_ietf_decrypt !== "function" ||
    b.crypto_aead_chacha20poly1305_ietf_ABYTES !== TAG_BYTES ||
    b.crypto_aead_chacha20poly1305_ietf_NPUBBYTES !== NONCE_BYTES ||
    b.crypto_aead_chacha20poly1305_ietf_KEYBYTES !== KEY_BYTES
  ) {
    return (whyNotNative = "the libsodium binding's ChaCha20-Poly1305 functions or sizes are not the expected ones"), null;
  }
  return b;
}

/** libsodium, loaded on first use when OpenSSL is not used (or a test asks for it). */
let sodium: SodiumBinding | null | undefined;
function libsodium(): SodiumBinding | null {
  if (sodium === undefined) sodium = loadNative();
  return sodium;
}

let chosen: AeadBackend | undefined;
/** The backend in use, chosen on first use: a command that seals or opens nothing loads none of them. */
export function aeadBackend(): AeadBackend {
  return (chosen ??= openssl() ? "openssl" : libsodium() ? "native" : "js");
}

/** What aeadBackend() runs on and what it passed over, for `zrb --version --verbose`. */
export function aeadDescription(): string {
  const b = aeadBackend();
  if (b === "openssl") return `openssl (${openssl()!.name})`;
  if (b === "native") return `native (libsodium, sodium-native; OpenSSL not used: ${opensslWhyNot() ?? "unknown"})`;
  return `js (@noble/ciphers; native addon not used: ${whyNotNative ?? "unknown"})`;
}

function checkKeyNonce(nonce: Uint8Array, key: Uint8Array): void {
  if (nonce.byteLength !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
  if (key.byteLength !== KEY_BYTES) throw new RangeError(`key must be ${KEY_BYTES} bytes`);
}

/** `buf` itself when it already has length n, else a view of its first n bytes. */
function exact(buf: Uint8Array, n: number, what: string): Uint8Array {
  if (buf.byteLength === n) return buf;
  if (buf.byteLength < n) throw new RangeError(`${what} buffer too small: ${buf.byteLength} < ${n}`);
  return buf.subarray(0, n);
}

function assertNoOverlap(a: Uint8Array, b: Uint8Array): void {
  if (a.buffer !== b.buffer) return;
  const a0 = a.byteOffset, a1 = a0 + a.byteLength, b0 = b.byteOffset, b1 = b0 + b.byteLength;
  if (a0 < b1 && b0 < a1 && a.byteLength > 0 && b.byteLength > 0) {
    throw new RangeError("input and output buffers must not overlap");
  }
}

export type AeadBackend = "openssl" | "native" | "js";

/** dst = seal(plain): sizes already checked; dst may start where plain does (in place). */
function sealWith(b: AeadBackend, dst: Uint8Array, plain: Uint8Array, nonce12: Uint8Array, key32: Uint8Array): void {
  if (b === "openssl") return openssl()!.seal(dst, plain, nonce12, key32);
  if (b === "native") {
    const r = libsodium()!.crypto_aead_chacha20poly1305_ietf_encrypt(dst, plain, undefined, nonce12, key32);
    if (r !== dst.byteLength) throw new Error(`ChaCha20-Poly1305 encryption failed (${r})`);
    return;
  }
  chacha20poly1305(key32, nonce12).encrypt(plain, dst);
}

/** dst = open(sealed), or false (dst holds no plaintext) when it does not authenticate; sizes already checked. */
function openWith(b: AeadBackend, dst: Uint8Array, sealed: Uint8Array, nonce12: Uint8Array, key32: Uint8Array): boolean {
  if (b === "openssl") return openssl()!.open(dst, sealed, nonce12, key32);
  if (b === "native") return libsodium()!.crypto_aead_chacha20poly1305_ietf_decrypt(dst, sealed, undefined, nonce12, key32) === dst.byteLength;
  try {
    chacha20poly1305(key32, nonce12).decrypt(sealed, dst);
    return true;
  } catch {
    return false;
  }
}

/** The three operations on one backend. */
export interface Aead {
  /**
   * Encrypts `plain` into `out` (ciphertext || 16-byte tag) and returns the number of bytes
   * written (`plain.length + 16`). `out` may be longer than needed; it must not overlap `plain`.
   * Throws RangeError on a wrong size or overlap.
   */
  sealChunk(out: Uint8Array, plain: Uint8Array, nonce12: Uint8Array, key32: Uint8Array): number;
  /**
   * Decrypts `sealed` (ciphertext || tag) into `out` and returns the plaintext length
   * (`sealed.length - 16`), or -1 when authentication fails (wrong key, nonce or a modified
   * byte; `out` then holds no plaintext). `out` may be longer than needed; it must not overlap `sealed`.
   */
  openChunk(out: Uint8Array, sealed: Uint8Array, nonce12: Uint8Array, key32: Uint8Array): number;
  /**
   * Seals in place: `buf` holds `plainLen` bytes of plaintext followed by room for the tag
   * (`buf.length` ≥ plainLen + 16); afterwards its first plainLen + 16 bytes are ciphertext ||
   * tag. Returns plainLen + 16.
   */
  sealInPlace(buf: Uint8Array, plainLen: number, nonce12: Uint8Array, key32: Uint8Array): number;
}

function aead(b: AeadBackend): Aead {
  return {
    sealChunk(out, plain, nonce12, key32) {
      checkKeyNonce(nonce12, key32);
      const dst = exact(out, plain.byteLength + TAG_BYTES, "output");
      assertNoOverlap(dst, plain);
      sealWith(b, dst, plain, nonce12, key32);
      return dst.byteLength;
    },
    openChunk(out, sealed, nonce12, key32) {
      checkKeyNonce(nonce12, key32);
      if (sealed.byteLength < TAG_BYTES) return -1;
      const dst = exact(out, sealed.byteLength - TAG_BYTES, "output");
      assertNoOverlap(dst, sealed);
      return openWith(b, dst, sealed, nonce12, key32) ? dst.byteLength : -1;
    },
    sealInPlace(buf, plainLen, nonce12, key32) {
      checkKeyNonce(nonce12, key32);
      const dst = exact(buf, plainLen + TAG_BYTES, "output");
      sealWith(b, dst, dst.subarray(0, plainLen), nonce12, key32);
      return dst.byteLength;
    },
  };
}

let active: Aead | undefined;
const use = () => (active ??= aead(aeadBackend()));
export const sealChunk: Aead["sealChunk"] = (out, plain, nonce12, key32) => use().sealChunk(out, plain, nonce12, key32);
export const openChunk: Aead["openChunk"] = (out, sealed, nonce12, key32) => use().openChunk(out, sealed, nonce12, key32);
export const sealInPlace: Aead["sealInPlace"] = (buf, plainLen, nonce12, key32) => use().sealInPlace(buf, plainLen, nonce12, key32);

/** One backend, whatever aeadBackend() says (tests and comparisons); null when it cannot load here. */
export function aeadWith(b: AeadBackend): Aead | null {
  if (b === "openssl" && !openssl()) return null;
  if (b === "native" && !libsodium()) return null;
  return aead(b);
}

/** The pure-JS backend, whatever aeadBackend() says (for tests and comparisons). */
export const jsAead = aead("js");
