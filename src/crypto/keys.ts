/**
 * age keys: the recipients zrb encrypts to (validated again by the age library before use) and
 * the identity files it decrypts with (age-keygen's format: comments, one or more
 * AGE-SECRET-KEY-1… lines). Errors name the file and line, never the key material.
 */
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";
import { stat } from "node:fs/promises";
import { ZrbError, cryptoError, fsError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { verifyKeyInIdentityText } from "./signing.ts";

/**
 * Validates age X25519 recipients (`age1…`) and returns them trimmed. Post-quantum and
 * plugin recipients are refused: the stock `age` CLI that users recover with (Debian's
 * 1.1) cannot decrypt them.
 */
export function parseRecipients(list: string[]): string[] {
  if (list.length === 0) throw cryptoError("no age recipient given; set age_public_key (or age_recipients) to an age1… public key from age-keygen");
  return list.map((raw, i) => {
    const r = String(raw).trim();
    const where = `age recipient #${i + 1}`;
    if (/^age1(pq|tag|tagpq)1/i.test(r))
      throw cryptoError(`${where} is a post-quantum or tag recipient; use an X25519 recipient (age1…) from age-keygen`);
    if (!/^age1/i.test(r)) throw cryptoError(`${where} (${r.slice(0, 12)}…) is not an age public key; expected age1… as printed by age-keygen`);
    try {
      new Encrypter().addRecipient(r.toLowerCase());
    } catch {
      throw cryptoError(`${where} (${r.slice(0, 12)}…) is not a valid age X25519 public key (bad length or checksum); copy it again from age-keygen -y`);
    }
    return r.toLowerCase();
  });
}

export function validIdentity(s: string): boolean {
  if (!s.startsWith("AGE-SECRET-KEY-1")) return false;
  try {
    new Decrypter().addIdentity(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads an identity file in age-keygen format: `#` comments, blank lines, one or more
 * AGE-SECRET-KEY-1… lines. Errors name the file and line, never the key material.
 */
export async function parseIdentityFile(path: string): Promise<string[]> {
  return (await loadIdentityFile(path)).identities;
}

/** The identities of a key file and the zrb verification key recorded in it (a comment line), if any. */
export async function loadIdentityFile(path: string): Promise<{ identities: string[]; verifyKey?: string }> {
  let text: string;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw cryptoError(`identity file ${path} is not a regular file; pass the key file written by zrb genkey or age-keygen`);
    if (st.size > 1024 * 1024) throw cryptoError(`identity file ${path} is ${st.size} bytes, too large for an age key file; pass the file written by zrb genkey or age-keygen`);
    if ((st.mode & 0o077) !== 0)
      log.warn(`identity file ${path} can be read by other users (mode 0${(st.mode & 0o777).toString(8)}); it is the key to every backup: run chmod 600 ${path}`);
    text = await Bun.file(path).text();
  } catch (err) {
    if (err instanceof ZrbError) throw err;
    const code = (err as { code?: string })?.code;
    if (code === "ENOENT") throw cryptoError(`identity file ${path} does not exist; pass the key file written by zrb genkey or age-keygen`);
    if (code === "EACCES" || code === "EPERM") throw cryptoError(`identity file ${path} is not readable (permission denied); run as its owner (usually root)`);
    throw fsError(err, "reading identity file", path);
  }
  if (text.startsWith("age-encryption.org/") || text.startsWith("-----BEGIN AGE ENCRYPTED FILE-----"))
    throw cryptoError(`identity file ${path} is itself age-encrypted; decrypt it first (age -d) and pass the plain key file`);
  const ids: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("AGE-SECRET-KEY-PQ-1"))
      throw cryptoError(`line ${i + 1} of identity file ${path} is a post-quantum identity; zrb uses X25519 keys (age-keygen without -pq)`);
    if (!validIdentity(line))
      throw cryptoError(`line ${i + 1} of identity file ${path} is not an age X25519 secret key (AGE-SECRET-KEY-1…); check the file is an age-keygen key file`);
    ids.push(line);
  }
  if (ids.length === 0) throw cryptoError(`identity file ${path} contains no AGE-SECRET-KEY-1… line; pass the key file written by zrb genkey or age-keygen`);
  const verifyKey = verifyKeyInIdentityText(text);
  return verifyKey ? { identities: ids, verifyKey } : { identities: ids };
}

/** A new X25519 key pair; identityFileText is in age-keygen's format (write it with mode 0600). */
export async function generateKeyPair(): Promise<{ identityFileText: string; recipient: string }> {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const created = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  return { identityFileText: `# created: ${created}\n# public key: ${recipient}\n${identity}\n`, recipient };
}
