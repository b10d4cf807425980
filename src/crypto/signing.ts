/**
 * Who wrote a backup. The NAS encrypts to a public key that is no secret, so anyone who can
 * write to the bucket can also write valid age parts and a manifest with matching hashes. A
 * signature made on the NAS with a key that never leaves it, checked at restore with the
 * matching verification key, is what tells zrb's own backups from forged ones.
 *
 * Ed25519 from @noble/curves (audited; no curve code here). Keys are bech32 like age's:
 *   signing key       ZRB-SIGNING-KEY-1…   (32-byte seed; zrb_signing.key, 0600, on the NAS only)
 *   verification key  zrbverify1…          (32-byte public key; also a comment line in the
 *                                           offline zrb_private.key, which stock age ignores)
 * A signature covers a domain tag and the canonical JSON (sorted keys, no spaces) of what it
 * signs, so it binds every field: pool, dataset, ids, levels, guids, sizes and hashes.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { bech32 } from "@scure/base";
import { stat } from "node:fs/promises";
import { ZrbError, cryptoError, fsError } from "../util/errors.ts";
import { log } from "../util/log.ts";

const SIGNING_HRP = "zrb-signing-key-";
const VERIFY_HRP = "zrbverify";

export interface Signature {
  alg: "ed25519";
  /** The verification key that checks it (zrbverify1…). */
  key: string;
  /** base64 of the 64-byte signature. */
  value: string;
}

export interface SigningKey {
  seed: Uint8Array;
  verifyKey: string;
}

function encode(hrp: string, bytes: Uint8Array): string {
  return bech32.encode(hrp, bech32.toWords(bytes), 200);
}

function decode(hrp: string, s: string): Uint8Array | null {
  try {
    const d = bech32.decode(s.toLowerCase() as `${string}1${string}`, 200);
    if (d.prefix !== hrp) return null;
    const b = bech32.fromWords(d.words);
    return b.length === 32 ? b : null;
  } catch {
    return null;
  }
}

export function verifyKeyOf(seed: Uint8Array): string {
  return encode(VERIFY_HRP, ed25519.getPublicKey(seed));
}

/** A new signing key: the file text (write it 0600) and its verification key. */
export function generateSigningKey(created: string): { fileText: string; verifyKey: string } {
  const seed = ed25519.utils.randomSecretKey();
  const verifyKey = verifyKeyOf(seed);
  const key = encode(SIGNING_HRP, seed).toUpperCase();
  return {
    fileText: `# zrb signing key: stays on the NAS (config signing_key), never in the bucket\n# created: ${created}\n# verification key: ${verifyKey}\n${key}\n`,
    verifyKey,
  };
}

/** A verification key as given (zrbverify1…), checked; null if it is not one. */
export function parseVerifyKey(s: string): string | null {
  const t = s.trim().toLowerCase();
  return decode(VERIFY_HRP, t) ? t : null;
}

/** The verification key recorded in an identity file (`# zrb verification key: zrbverify1…`), if any. */
export function verifyKeyInIdentityText(text: string): string | undefined {
  const m = /^#\s*zrb verification key:\s*(zrbverify1\S+)\s*$/im.exec(text);
  return m ? (parseVerifyKey(m[1]!) ?? undefined) : undefined;
}

/** Read a signing key file (one ZRB-SIGNING-KEY-1… line, comments allowed). Errors never show key material. */
export async function readSigningKey(path: string): Promise<SigningKey> {
  let text: string;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw cryptoError(`signing key ${path} is not a regular file; point signing_key at the zrb_signing.key written by zrb genkey`);
    if ((st.mode & 0o077) !== 0)
      log.warn(`signing key ${path} can be read by other users (mode 0${(st.mode & 0o777).toString(8)}); whoever reads it can sign forged backups: run chmod 600 ${path}`);
    text = await Bun.file(path).text();
  } catch (err) {
    if (err instanceof ZrbError) throw err;
    if ((err as { code?: string }).code === "ENOENT") throw cryptoError(`signing key ${path} does not exist; copy zrb_signing.key from where you ran zrb genkey, or fix signing_key`);
    throw fsError(err, "reading signing key", path);
  }
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  const seed = lines.length === 1 ? decode(SIGNING_HRP, lines[0]!) : null;
  if (!seed) throw cryptoError(`signing key ${path} is not a zrb signing key (one ZRB-SIGNING-KEY-1… line); use the zrb_signing.key written by zrb genkey`);
  return { seed, verifyKey: verifyKeyOf(seed) };
}

/** JSON with object keys sorted at every level and no spaces: one byte string per value. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x === undefined ? null : x)).join(",")}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
}

function message(domain: string, body: unknown): Uint8Array {
  return new TextEncoder().encode(`${domain}\n${canonicalJson(body)}`);
}

export function sign(key: SigningKey, domain: string, body: unknown): Signature {
  return { alg: "ed25519", key: key.verifyKey, value: Buffer.from(ed25519.sign(message(domain, body), key.seed)).toString("base64") };
}

/** Why `sig` does not prove that the holder of `verifyKey` signed `body` under `domain`, or undefined. */
export function signatureProblem(sig: unknown, verifyKey: string, domain: string, body: unknown): string | undefined {
  const s = sig as Signature | undefined;
  if (!s) return "it is not signed";
  if (typeof s !== "object" || s.alg !== "ed25519" || typeof s.value !== "string" || typeof s.key !== "string") return "its signature is malformed";
  if (s.key !== verifyKey) return `it is signed by another key (${String(s.key).slice(0, 20)}…), not ${verifyKey.slice(0, 20)}…`;
  const pub = decode(VERIFY_HRP, verifyKey)!;
  let ok = false;
  try {
    ok = ed25519.verify(Buffer.from(s.value, "base64"), message(domain, body), pub);
  } catch {
    ok = false;
  }
  return ok ? undefined : "its signature does not match its content";
}
