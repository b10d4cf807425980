/**
 * Rewrap an age file: the same file key under a new header for other recipients. The payload
 * is sealed with a key derived from the file key and the payload nonce, so it stays valid byte
 * for byte; only the header (≈ 200 bytes per recipient) changes. zrb rekey's crypto, nothing else.
 *
 * Everything cryptographic is age-encryption's or @noble's: the old header is opened (and its
 * MAC checked) by Decrypter.decryptHeader; the file key is wrapped by the library's own
 * recipient objects (the ones Encrypter.addRecipient builds; the package exports no other way to
 * wrap a given key); the header is encoded by the library, and only its MAC — keyed by the file
 * key the library never lets us pass in — is computed here with @noble/hashes exactly as age
 * specifies (HMAC-SHA256 under HKDF-SHA256(file key, "header")). The result is opened again
 * by Decrypter with the file key before it is returned: a header the library would refuse is
 * never written.
 */
import { Decrypter, Encrypter, type Recipient, type Stanza } from "age-encryption";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { base64nopad } from "@scure/base";
import { cryptoError, integrityError } from "../util/errors.ts";
import { parseRecipients, validIdentity } from "./keys.ts";

/** The file key of an age header (through its MAC line), with `identities`; the MAC is checked. */
export async function unwrapFileKey(header: Uint8Array, identities: string[]): Promise<Uint8Array> {
  const d = new Decrypter();
  identities.forEach((id, i) => {
    if (!validIdentity(id.trim())) throw cryptoError(`age identity #${i + 1} is not an X25519 secret key (AGE-SECRET-KEY-1…)`);
    d.addIdentity(id.trim());
  });
  try {
    return await d.decryptHeader(header);
  } catch (err) {
    const msg = (err as Error)?.message ?? String(err);
    if (/no identity matched/.test(msg)) throw cryptoError("the old private key does not match any recipient of this part");
    throw integrityError(`the part's age header does not verify (${msg.split("\n")[0]}); the object is damaged or was replaced`);
  }
}

/** The library's own wrapping objects for `recipients` (age1… X25519). */
function libraryRecipients(recipients: string[]): Recipient[] {
  const enc = new Encrypter();
  for (const r of parseRecipients(recipients)) enc.addRecipient(r);
  const list = (enc as unknown as { recipients?: unknown }).recipients;
  if (!Array.isArray(list) || list.length !== recipients.length || !list.every((r) => typeof (r as Recipient)?.wrapFileKey === "function"))
    throw new Error("age-encryption's Encrypter no longer keeps its recipients where rewrap expects them; update crypto/rewrap.ts");
  return list as Recipient[];
}

/** A new age header (through its MAC line) wrapping `fileKey` to `recipients`. */
export async function rewrapHeader(fileKey: Uint8Array, recipients: string[]): Promise<Uint8Array> {
  const stanzas: Stanza[] = [];
  for (const r of libraryRecipients(recipients)) stanzas.push(...(await r.wrapFileKey(fileKey)));
  // The library encodes the header for these stanzas (its MAC is under a throwaway key).
  const enc = new Encrypter();
  enc.addRecipient({ wrapFileKey: () => stanzas });
  const sample = await enc.encrypt(new Uint8Array(0));
  const text = new TextDecoder().decode(sample);
  const end = text.indexOf("\n---") + "\n---".length;
  if (end < "\n---".length) throw new Error("unexpected age header layout from age-encryption");
  const noMac = sample.slice(0, end);
  const mac = hmac(sha256, hkdf(sha256, fileKey, undefined, new TextEncoder().encode("header"), 32), noMac);
  const header = new Uint8Array([...noMac, ...new TextEncoder().encode(` ${base64nopad.encode(mac)}\n`)]);
  // Opened by the library with the file key: MAC and layout as any age reader checks them.
  const check = new Decrypter();
  check.addIdentity({ unwrapFileKey: () => fileKey.slice() });
  const back = await check.decryptHeader(header);
  if (back.length !== fileKey.length || !back.every((b, i) => b === fileKey[i])) throw new Error("rewrapped age header does not open to its file key");
  back.fill(0);
  return header;
}
