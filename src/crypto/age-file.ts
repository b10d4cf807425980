/**
 * Whole-file age encryption and decryption with zrb's streams (age.ts): used by the tests that
 * prove the stock `age` CLI and zrb read each other's files, and for small objects held in
 * memory whole (the file catalog, records/file-catalog.ts); never for a data part.
 */
import { open } from "node:fs/promises";
import { AgeDecryptStream, AgeEncryptStream } from "./age.ts";
import { ZrbError, fsError } from "../util/errors.ts";

const FILE_BUF = 4 * 1024 * 1024;

async function writeAll(fh: Awaited<ReturnType<typeof open>>, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += (await fh.write(b, off, b.length - off)).bytesWritten;
}

/** Encrypts inPath into outPath (created or truncated, mode 0600); SHA-256 is of the ciphertext. */
export async function encryptFile(
  inPath: string,
  outPath: string,
  recipients: string[],
): Promise<{ plainSize: number; cipherSize: number; sha256Hex: string }> {
  const enc = await AgeEncryptStream.create(recipients);
  const sha = new Bun.CryptoHasher("sha256");
  let plainSize = 0;
  let cipherSize = 0;
  const inF = await open(inPath, "r").catch((e) => {
    throw fsError(e, "opening file to encrypt", inPath);
  });
  try {
    const outF = await open(outPath, "w", 0o600).catch((e) => {
      throw fsError(e, "creating encrypted file", outPath);
    });
    try {
      const buf = new Uint8Array(FILE_BUF);
      const emit = async (c: Uint8Array) => {
        if (c.length === 0) return;
        sha.update(c);
        cipherSize += c.length;
        await writeAll(outF, c);
      };
      for (;;) {
        const { bytesRead } = await inF.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        plainSize += bytesRead;
        await emit(enc.push(buf.subarray(0, bytesRead)));
      }
      await emit(enc.finish());
    } catch (e) {
      throw e instanceof ZrbError ? e : fsError(e, "writing encrypted file", outPath);
    } finally {
      await outF.close();
    }
  } finally {
    await inF.close();
  }
  return { plainSize, cipherSize, sha256Hex: sha.digest("hex") };
}

/** Decrypts inPath into outPath; on any failure outPath is removed (no unverified plaintext left). */
export async function decryptFile(inPath: string, outPath: string, identities: string[]): Promise<{ plainSize: number }> {
  const dec = await AgeDecryptStream.create(identities);
  let plainSize = 0;
  const inF = await open(inPath, "r").catch((e) => {
    throw fsError(e, "opening file to decrypt", inPath);
  });
  try {
    const outF = await open(outPath, "w", 0o600).catch((e) => {
      throw fsError(e, "creating decrypted file", outPath);
    });
    let ok = false;
    try {
      const buf = new Uint8Array(FILE_BUF);
      const emit = async (p: Uint8Array) => {
        plainSize += p.length;
        await writeAll(outF, p);
      };
      for (;;) {
        const { bytesRead } = await inF.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        await emit(await dec.push(buf.subarray(0, bytesRead)));
      }
      await emit(dec.finish());
      ok = true;
    } catch (e) {
      throw e instanceof ZrbError ? e : fsError(e, "writing decrypted file", outPath);
    } finally {
      await outF.close();
      if (!ok) await Bun.file(outPath).delete().catch(() => {});
    }
  } finally {
    await inF.close();
  }
  return { plainSize };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** A small buffer as one age file to `recipients` (the stream's outputs are copied: they are views). */
export async function encryptBytes(plain: Uint8Array, recipients: string[]): Promise<Uint8Array> {
  const enc = await AgeEncryptStream.create(recipients);
  return concat([enc.push(plain).slice(), enc.finish().slice()]);
}

/** A small age file opened whole: every chunk authenticated, or an integrity/crypto ZrbError. */
export async function decryptBytes(cipher: Uint8Array, identities: string[]): Promise<Uint8Array> {
  const dec = await AgeDecryptStream.create(identities);
  const first = (await dec.push(cipher)).slice();
  return concat([first, dec.finish().slice()]);
}
