/**
 * Decrypt: turn one verified ciphertext file back into its slice of the send stream, checking
 * the plaintext size and BLAKE3 against the manifest (age authenticates every 64 KiB chunk on
 * the way), and check before any download that the identity opens the chain at all.
 */
import { open } from "node:fs/promises";
import { AgeDecryptStream } from "../../crypto/age.ts";
import { createBlake3 } from "../../crypto/blake3.ts";
import type { ObjectStore } from "../../store/store.ts";
import type { Manifest, ManifestPart } from "../../state/manifest.ts";
import { ExitCode, ZrbError, cryptoError, integrityError } from "../../util/errors.ts";
import { partName } from "./fetch.ts";

const READ_BUF = 1 << 20;

function ageError(err: unknown, m: Manifest, p: ManifestPart, url: string): ZrbError {
  const msg = (err as Error)?.message ?? String(err);
  if (err instanceof ZrbError && err.exitCode !== ExitCode.INTEGRITY && !/does not match any recipient/.test(msg)) return err;
  if (/does not match any recipient|no identity matched|no matching identit/i.test(msg))
    return cryptoError(
      `this identity does not match any recipient of backup ${m.backupId}; it was encrypted to ${m.recipients.join(", ")}: use the private key file of one of those recipients`,
    );
  return integrityError(`${partName(m, p, url)} does not decrypt: ${msg.split("\n")[0]}`);
}

/**
 * Decrypt one verified ciphertext file, check its plaintext size and BLAKE3 against the
 * manifest, and hand each plaintext piece to `emit` in order.
 */
export async function decryptPart(
  path: string,
  m: Manifest,
  p: ManifestPart,
  identities: string[],
  /** Where the part lives, for messages (ObjectStore.urlOf). */
  url: string,
  emit: (b: Uint8Array) => Promise<void> | void,
): Promise<void> {
  let dec: AgeDecryptStream;
  try {
    dec = await AgeDecryptStream.create(identities);
  } catch (err) {
    throw ageError(err, m, p, url);
  }
  const h = await createBlake3();
  let size = 0;
  const out = async (b: Uint8Array) => {
    if (b.length === 0) return;
    size += b.length;
    if (size > p.plainSize) throw integrityError(`${partName(m, p, url)} decrypts to more than the ${p.plainSize} bytes its manifest records`);
    h.update(b);
    await emit(b);
  };
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(READ_BUF);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      let plain: Uint8Array;
      try {
        plain = await dec.push(buf.subarray(0, bytesRead));
      } catch (err) {
        throw ageError(err, m, p, url);
      }
      await out(plain);
    }
    let last: Uint8Array;
    try {
      last = dec.finish();
    } catch (err) {
      throw ageError(err, m, p, url);
    }
    await out(last);
  } finally {
    await fh.close();
  }
  if (size !== p.plainSize)
    throw integrityError(`${partName(m, p, url)} decrypts to ${size} bytes, manifest says ${p.plainSize}`);
  const digest = h.digestHex();
  if (digest !== p.blake3)
    throw integrityError(`${partName(m, p, url)}: plaintext BLAKE3 is ${digest}, manifest says ${p.blake3}`);
}

/**
 * Check before any download that the identity opens this chain: fetch the age header of
 * the first part (a ranged GET) and unwrap its file key. Only the header is authenticated
 * (age's header MAC); no plaintext is produced or used.
 */
export async function preflightIdentity(store: ObjectStore, m: Manifest, identities: string[]): Promise<void> {
  const p = m.parts[0];
  if (!p) return;
  const end = Math.min(p.cipherSize, 16 * 1024) - 1;
  let head: Uint8Array;
  try {
    head = new Uint8Array(await new Response(await store.getStream(p.key, { start: 0, end })).arrayBuffer());
  } catch {
    return; // the real download reports store problems with more detail
  }
  let dec: AgeDecryptStream;
  try {
    dec = await AgeDecryptStream.create(identities);
    await dec.push(head);
  } catch (err) {
    const e = ageError(err, m, p, store.urlOf(p.key));
    if (e.exitCode === ExitCode.CRYPTO) throw e;
  }
}
