/**
 * BLAKE3 of the raw `zfs send` stream (recorded in the manifest, compared with `b3sum`).
 *
 * Backends:
 * - native: the N-API build of `@napi-rs/blake-hash` (≈ 11× faster than wasm). The `.node`
 *   file is `require`d by a literal path per architecture, never through the package's
 *   index.js platform switch, so that `bun build --compile` embeds it in the binary.
 * - wasm: `hash-wasm`'s BLAKE3, used when the native addon cannot load (another libc or
 *   architecture, a noexec `$TMPDIR` inside a compiled binary, or `ZRB_NO_NATIVE=1`).
 *
 * `createBlake3()` is async because hash-wasm only instantiates asynchronously. Deliberately
 * no top-level await here: Bun drops messages posted to a Worker before the worker's module
 * graph has finished evaluating, so a TLA in a module that workers import turns into a hang.
 */
import type { IHasher } from "hash-wasm";

export interface Hasher {
  update(data: Uint8Array): void;
  /** Finishes the hash; the hasher must not be used afterwards. */
  digestHex(): string;
}

interface NativeBlake3Hasher {
  update(input: Buffer): unknown;
  digest(format?: string): string;
}
type NativeBlake3Ctor = new () => NativeBlake3Hasher;

/** True when the user asked for the portable code paths only (also used by sodium.ts). */
export function nativeDisabled(): boolean {
  const v = process.env.ZRB_NO_NATIVE;
  return v !== undefined && v !== "" && v !== "0";
}

/** Why the native addon is not used (for `zrb --version --verbose`); undefined when it is. */
let whyNotNative: string | undefined;

function loadNative(): NativeBlake3Ctor | null {
  if (nativeDisabled()) return (whyNotNative = "ZRB_NO_NATIVE is set"), null;
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64"))
    return (whyNotNative = `no native build for ${process.platform}-${process.arch}`), null;
  try {
    // Literal paths: the bundler embeds exactly these files in a compiled binary.
    if (process.arch === "x64") {
      return require("@napi-rs/blake-hash-linux-x64-gnu/blake.linux-x64-gnu.node").Blake3Hasher as NativeBlake3Ctor;
    }
    return require("@napi-rs/blake-hash-linux-arm64-gnu/blake.linux-arm64-gnu.node").Blake3Hasher as NativeBlake3Ctor;
  } catch (err) {
    whyNotNative = (err as Error)?.message ?? String(err); // fall back to wasm
  }
  return null;
}

const NativeHasher = loadNative();

export function blake3Backend(): "native" | "wasm" {
  return NativeHasher ? "native" : "wasm";
}

/** Why blake3Backend() is "wasm" (undefined when it is "native"). */
export function blake3WhyNotNative(): string | undefined {
  return whyNotNative;
}

class NativeBlake3 implements Hasher {
  private readonly h: NativeBlake3Hasher;
  constructor(Ctor: NativeBlake3Ctor) {
    this.h = new Ctor();
  }
  update(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    // A Buffer view over the same memory: no copy.
    this.h.update(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
  digestHex(): string {
    return this.h.digest("hex");
  }
}

class WasmBlake3 implements Hasher {
  constructor(private readonly w: IHasher) {}
  update(data: Uint8Array): void {
    this.w.update(data);
  }
  digestHex(): string {
    return this.w.digest("hex");
  }
}

/** A BLAKE3 hasher on the best available backend (see blake3Backend()). */
export async function createBlake3(): Promise<Hasher> {
  return NativeHasher ? new NativeBlake3(NativeHasher) : createBlake3Wasm();
}

/** A BLAKE3 hasher on the portable wasm backend, whatever blake3Backend() says. */
export async function createBlake3Wasm(): Promise<Hasher> {
  // Each hasher owns a wasm instance (the compiled module is cached: ≈ 0.3 ms after the first).
  // Loaded on first use only: importing hash-wasm costs ≈ 10 ms of startup.
  const { createBLAKE3 } = await import("hash-wasm");
  return new WasmBlake3((await createBLAKE3()).init());
}
