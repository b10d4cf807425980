/**
 * What counts as an age recipient for zrb: an X25519 public key (`age1…`, as `age-keygen`
 * prints it), checked character by character and by its bech32 checksum, so a typo or a
 * truncated copy is caught when the config is read and not after a night of backups.
 * SSH, post-quantum (`age1pq1…`) and plugin recipients are refused by name: the stock `age`
 * a user recovers with must be able to decrypt every part. The config schema uses this; the
 * encryptor (age.ts) has the library check the same keys again when it adds them.
 */
import { bech32 } from "@scure/base";
import { quote } from "../util/redact.ts";

const BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const X25519_RECIPIENT_LENGTH = 62; // "age1" + 52 data + 6 checksum characters

/**
 * The recipient in its canonical form (trimmed, lower case), or the problem as the rest of a
 * sentence that starts with the key's name ("is not a valid age public key: …").
 */
export type RecipientCheck = { recipient: string } | { problem: string };

export function checkRecipient(raw: string): RecipientCheck {
  const s = raw.trim();
  const bad = (why: string): RecipientCheck => ({ problem: `is not a valid age public key: ${why}` });
  if (/^ssh-(ed25519|rsa)\b/.test(s)) {
    return { problem: "is an SSH key; zrb needs an age X25519 public key (age1…): generate a key pair with age-keygen on another machine" };
  }
  if (s !== s.toLowerCase() && s !== s.toUpperCase()) return bad("it mixes upper and lower case");
  const l = s.toLowerCase();
  if (!l.startsWith("age1")) return { problem: `must be an age public key (age1… as printed by age-keygen), got ${quote(s)}` };
  const hrp = l.slice(0, l.lastIndexOf("1"));
  if (hrp === "age1pq") {
    return { problem: "is a post-quantum age recipient (age1pq1…); zrb supports X25519 recipients (age1…, from age-keygen) only" };
  }
  if (hrp !== "age" && /^age1[a-z0-9]{1,20}$/.test(hrp)) {
    return { problem: `is an age plugin recipient (${hrp}1…); zrb supports X25519 recipients (age1…, from age-keygen) only` };
  }
  for (let i = 4; i < l.length; i++) {
    if (!BECH32_CHARSET.includes(l[i]!)) {
      return bad(`character ${quote(s[i]!)} at position ${i + 1} cannot occur in one (the alphabet has no 1, b, i or o)`);
    }
  }
  if (l.length !== X25519_RECIPIENT_LENGTH) {
    return bad(`it has ${l.length} characters, expected ${X25519_RECIPIENT_LENGTH}; copy it again (age-keygen -y prints it)`);
  }
  try {
    // 52 data characters are 260 bits: exactly 32 bytes plus zero padding (fromWords checks it).
    const { prefix, words } = bech32.decode(l as `${string}1${string}`);
    if (prefix !== "age" || bech32.fromWords(words).length !== 32) throw new Error("not an X25519 key");
  } catch {
    return bad("its checksum does not match (a typo or a damaged copy); copy it again (age-keygen -y prints it)");
  }
  return { recipient: l };
}
