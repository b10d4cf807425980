/**
 * `zrb --version [--verbose]`. With --verbose it also names the runtime and the crypto code
 * paths this binary runs on — the native addons (BLAKE3; ChaCha20-Poly1305 from the host's OpenSSL
 * or the embedded libsodium) or the portable fallbacks, and why a fallback was taken — so that a build for another CPU (the
 * arm64 binary under qemu in CI) can prove its addons load, and a user on a noexec $TMPDIR
 * or an old glibc can see why zrb runs ≈ 10× slower; how `zfs send` is read (util/os-pipe.ts);
 * and how its heap is sized (heap.ts).
 */
import { blake3Backend, blake3WhyNotNative } from "../crypto/blake3.ts";
import { aeadDescription } from "../crypto/sodium.ts";
import { heapLine } from "../heap.ts";
import { usageError } from "../util/errors.ts";
import { pipeDescription } from "../util/os-pipe.ts";
import { VERSION } from "../version.ts";

function line(what: string, backend: string, native: string, fallback: string, whyNot: string | undefined): string {
  return backend === "native" ? `${what}: native (${native})` : `${what}: ${backend} (${fallback}; native addon not used: ${whyNot ?? "unknown"})`;
}

/** The text `zrb --version` prints for these arguments (after the --version itself). */
export function versionText(args: string[]): string {
  const extra = args.find((a) => a !== "--verbose");
  if (extra !== undefined) throw usageError(`zrb --version: unexpected argument ${JSON.stringify(extra)}; the only option is --verbose`);
  if (!args.length) return `zrb ${VERSION}\n`;
  return [
    `zrb ${VERSION}`,
    `runtime: bun ${Bun.version}, ${process.platform}-${process.arch}`,
    line("BLAKE3", blake3Backend(), "@napi-rs/blake-hash", "hash-wasm", blake3WhyNotNative()),
    `ChaCha20-Poly1305: ${aeadDescription()}`,
    `zfs send read through: ${pipeDescription()}`,
    heapLine(),
  ].join("\n") + "\n";
}
