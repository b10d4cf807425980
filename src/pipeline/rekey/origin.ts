/**
 * How a rekeyed part stays checkable before decryption without rekey downloading its payload.
 *
 * The manifest's `sha256` is the SHA-256 of the object as the backup uploaded it: original
 * header ‖ payload. Rekey replaces the header and copies the payload inside the store, so the
 * SHA-256 of the new object could only be had by reading the whole payload once (the download
 * a server-side rewrap exists to avoid). Instead the manifest keeps the original `sha256` and
 * records the new header's size and SHA-256 plus the ORIGINAL header, age-encrypted to the
 * manifest's (new) recipients. A reader with the private key rebuilds original header ‖ payload
 * from the downloaded object and checks it against `sha256`: every byte is checked against a
 * hash the NAS signed at backup time, and the new header against the one rekey signed.
 *
 * Why encrypted: the original header wraps the file key to the OLD recipients; in the clear
 * it would hand the payload back to whoever holds the old key. Sealed to the new recipients it
 * tells nothing to anyone who cannot already decrypt the part. After a second rekey the origin
 * is still the first upload's header, re-sealed to the newest recipients.
 * Without the private key (zrb verify without --private-key) only the new header and the size
 * can be checked; the payload is then checked by decryption (age's per-chunk tags) and BLAKE3.
 */
import { open } from "node:fs/promises";
import { AgeDecryptStream, AgeEncryptStream } from "../../crypto/age.ts";
import type { ManifestPart } from "../../records/manifest.ts";
import { fsError } from "../../util/errors.ts";

/** `prefix` (an original age header and payload nonce) as an age file to `recipients`, base64. */
export async function sealOrigin(prefix: Uint8Array, recipients: string[]): Promise<string> {
  const enc = await AgeEncryptStream.create(recipients);
  const a = enc.push(prefix).slice();
  const b = enc.finish();
  return Buffer.concat([a, b]).toString("base64");
}

/** The original header and payload nonce sealed in `origin`. Throws a crypto error when no identity opens it. */
export async function openOrigin(origin: string, identities: string[]): Promise<Uint8Array> {
  const dec = await AgeDecryptStream.create(identities);
  const a = (await dec.push(Buffer.from(origin, "base64"))).slice();
  const b = dec.finish();
  return Buffer.concat([a, b]);
}

const READ = 1024 * 1024;

/**
 * Why the downloaded file at `path` is not the rekeyed part `p` describes, or undefined. With
 * identities every byte is checked (new header against prefixSha256; original header ‖ payload
 * against sha256); without, the new header only.
 */
export async function rewrappedProblem(path: string, p: ManifestPart, identities?: string[]): Promise<string | undefined> {
  const w = p.rewrap!;
  const origin = identities && identities.length > 0 ? await openOrigin(w.origin, identities) : null;
  const fh = await open(path, "r").catch((e) => {
    throw fsError(e, "reading scratch file", path);
  });
  try {
    const head = new Bun.CryptoHasher("sha256");
    const whole = new Bun.CryptoHasher("sha256");
    if (origin) whole.update(origin);
    const buf = new Uint8Array(READ);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, READ, pos);
      if (bytesRead === 0) break;
      const piece = buf.subarray(0, bytesRead);
      const inHead = Math.max(0, Math.min(bytesRead, w.prefixSize - pos));
      if (inHead > 0) head.update(piece.subarray(0, inHead));
      if (origin && inHead < bytesRead) whole.update(piece.subarray(inHead));
      pos += bytesRead;
      if (!origin && pos >= w.prefixSize) break;
    }
    const h = head.digest("hex");
    if (h !== w.prefixSha256) return `its age header's SHA-256 is ${h}, the rekeyed manifest says ${w.prefixSha256}`;
    if (!origin) return undefined;
    const d = whole.digest("hex");
    if (d !== p.sha256) return `its payload under the original header has SHA-256 ${d}, the manifest says ${p.sha256}`;
    return undefined;
  } finally {
    await fh.close();
  }
}
