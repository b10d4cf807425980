/**
 * age v1 files (https://age-encryption.org/v1), hybrid implementation:
 * - `age-encryption` does everything about recipients, identities and the header (stanzas,
 *   header MAC, file key wrapping);
 * - the payload STREAM is sealed here with sodium.ts (native libsodium ChaCha20-Poly1305):
 *   64 KiB plaintext chunks, nonce = 11-byte big-endian chunk counter || last-chunk flag,
 *   key = HKDF-SHA256(ikm = file key, salt = 16-byte payload nonce, info = "payload").
 *
 * The header comes out of the library without touching its internals: we encrypt an empty
 * payload with one extra Recipient whose wrapFileKey() captures the file key and adds no
 * stanza. The library output is header || payload nonce || empty final chunk (16-byte tag);
 * we keep header || nonce as the file prefix and derive the stream key ourselves.
 *
 * Everything streams with bounded memory: the encryptor holds at most one plaintext chunk,
 * the decryptor one sealed chunk (plus the header); output buffers are reused between calls.
 */
import { Decrypter, Encrypter, type Recipient } from "age-encryption";
import { hkdfSync } from "node:crypto";
import { cryptoError, integrityError, noIdentityError } from "../util/errors.ts";
import { parseRecipients, validIdentity } from "./keys.ts";
import { TAG_BYTES } from "./sodium.ts";
import { CHUNK_SIZE, PAYLOAD_NONCE_SIZE, SEALED_CHUNK_SIZE, openBlock, sealBlock, truncatedNoPayload } from "./age-stream.ts";

export { CHUNK_SIZE, PAYLOAD_NONCE_SIZE, SEALED_CHUNK_SIZE } from "./age-stream.ts";
/** Largest header we accept while decrypting (one X25519 stanza is ≈ 110 bytes). */
const MAX_HEADER_SIZE = 1024 * 1024;
const MAGIC = new TextEncoder().encode("age-encryption.org/v1\n");
const MAC_LINE = new TextEncoder().encode("\n--- ");
const NO_MATCH = "this identity does not match any recipient of the file";

/** Ciphertext size of an age file whose header (through the "--- " MAC line) is headerSize bytes. */
export function ciphertextSize(plainSize: number, headerSize: number): number {
  const chunks = plainSize === 0 ? 1 : Math.ceil(plainSize / CHUNK_SIZE);
  return headerSize + PAYLOAD_NONCE_SIZE + plainSize + chunks * TAG_BYTES;
}

function streamKey(fileKey: Uint8Array, nonce: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", fileKey, nonce, "payload", 32));
}

/** A reusable output buffer that grows (never shrinks) to the largest size asked for. */
class OutBuf {
  buf = new Uint8Array(0);
  reserve(n: number): Uint8Array {
    if (this.buf.length < n) this.buf = new Uint8Array(Math.max(n, this.buf.length * 2));
    return this.buf;
  }
}

// ───────────────────────────── encrypt ─────────────────────────────

/** A new age file's start: its header and payload nonce, and the payload's stream key. */
export interface AgeHeader {
  /** header || 16-byte payload nonce: the first bytes of the file. */
  prefix: Uint8Array;
  /** Size of the header, through the "--- " MAC line. */
  headerSize: number;
  /** The STREAM key (HKDF of a fresh file key and the payload nonce); zero it when done. */
  key: Uint8Array;
}

/** The header of a new age file to `recipients`, with a fresh file key (X25519 stanzas by age-encryption). */
export async function createHeader(recipients: string[]): Promise<AgeHeader> {
  const list = parseRecipients(recipients);
  const enc = new Encrypter();
  for (const r of list) enc.addRecipient(r);
  let fileKey: Uint8Array | null = null;
  const capture: Recipient = {
    wrapFileKey(k: Uint8Array) {
      fileKey = k.slice();
      return [];
    },
  };
  enc.addRecipient(capture);
  const empty = await enc.encrypt(new Uint8Array(0));
  const key: Uint8Array | null = fileKey;
  if (!key) throw new Error("age-encryption did not hand the file key to the capturing recipient");
  // empty = header || 16-byte payload nonce || 16-byte tag of the empty final chunk.
  const headerSize = empty.length - PAYLOAD_NONCE_SIZE - TAG_BYTES;
  const header = empty.subarray(0, headerSize);
  const text = new TextDecoder().decode(header);
  const macLine = text.lastIndexOf("\n--- ");
  if (headerSize <= 0 || !text.endsWith("\n") || macLine < 0 || text.indexOf("\n", macLine + 1) !== headerSize - 1)
    throw new Error("unexpected age header layout from age-encryption");
  const stanzas = text.split("\n").filter((l) => l.startsWith("-> ")).length;
  if (stanzas !== list.length) throw new Error(`age header has ${stanzas} stanzas for ${list.length} recipients`);
  const nonce = empty.subarray(headerSize, headerSize + PAYLOAD_NONCE_SIZE);
  const h = { prefix: empty.slice(0, headerSize + PAYLOAD_NONCE_SIZE), headerSize, key: streamKey(key, nonce) };
  (key as Uint8Array).fill(0);
  return h;
}

/**
 * Streaming age encryption. push() and finish() return the ciphertext produced so far; the
 * first non-empty output starts with the header and payload nonce.
 *
 * The returned arrays are views into an internal buffer, valid only until the next call
 * to push() or finish(): hash/write them immediately (or copy them).
 */
export class AgeEncryptStream {
  /** Size of the header, through the "--- " MAC line (see ciphertextSize()). */
  readonly headerSize: number;
  private prefix: Uint8Array | null;
  private readonly key: Uint8Array;
  private readonly pending = new Uint8Array(CHUNK_SIZE);
  private fill = 0;
  private counter = 0;
  private finished = false;
  private readonly out = new OutBuf();

  private constructor(h: AgeHeader) {
    this.prefix = h.prefix;
    this.headerSize = h.headerSize;
    this.key = h.key;
  }

  static async create(recipients: string[]): Promise<AgeEncryptStream> {
    return new AgeEncryptStream(await createHeader(recipients));
  }

  /** A stream over a header made by createHeader() (the stream zeroes the key when finished). */
  static fromHeader(h: AgeHeader): AgeEncryptStream {
    return new AgeEncryptStream(h);
  }

  private seal(out: Uint8Array, pos: number, plain: Uint8Array, last: boolean): number {
    return pos + sealBlock(out.subarray(pos), plain, this.counter++, last, this.key);
  }

  /** Start of an output: the header prefix if it has not been emitted yet. */
  private begin(capacity: number): [Uint8Array, number] {
    const p = this.prefix;
    const out = this.out.reserve(capacity + (p ? p.length : 0));
    if (!p) return [out, 0];
    out.set(p);
    this.prefix = null;
    return [out, p.length];
  }

  push(plain: Uint8Array): Uint8Array {
    if (this.finished) throw new Error("AgeEncryptStream.push() after finish()");
    const len = plain.length;
    if (len === 0) return this.out.buf.subarray(0, 0);
    // At most this many chunks are sealed now: one is always held back.
    const [out, start] = this.begin(Math.floor((this.fill + len) / CHUNK_SIZE) * SEALED_CHUNK_SIZE);
    let pos = start;
    let off = 0;
    while (off < len) {
      if (this.fill === CHUNK_SIZE) {
        // A full chunk and more data after it: it is not the last one.
        pos = this.seal(out, pos, this.pending, false);
        this.fill = 0;
      }
      if (this.fill === 0 && len - off > CHUNK_SIZE) {
        // Seal straight from the input when a whole chunk and more are available.
        pos = this.seal(out, pos, plain.subarray(off, off + CHUNK_SIZE), false);
        off += CHUNK_SIZE;
        continue;
      }
      const n = Math.min(CHUNK_SIZE - this.fill, len - off);
      this.pending.set(plain.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
    }
    return out.subarray(0, pos);
  }

  /** The rest of the file: the final chunk (empty only when the whole payload is). */
  finish(): Uint8Array {
    if (this.finished) throw new Error("AgeEncryptStream.finish() called twice");
    this.finished = true;
    const [out, start] = this.begin(SEALED_CHUNK_SIZE);
    const end = this.seal(out, start, this.pending.subarray(0, this.fill), true);
    this.pending.fill(0);
    this.key.fill(0);
    return out.subarray(0, end);
  }
}

// ───────────────────────────── decrypt ─────────────────────────────

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number, to: number): number {
  outer: for (let i = Math.max(0, from); i + needle.length <= to; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Streaming age decryption. push() is async only because unwrapping the file key from the
 * header is (WebCrypto X25519); once the header is through it does no I/O. Every chunk is
 * authenticated before its plaintext is returned; finish() checks the file ended with the
 * final chunk. Outputs are views into an internal buffer, valid until the next call.
 *
 * Errors: cryptoError when no identity matches; integrityError for a corrupted, modified,
 * truncated or extended file.
 */
export class AgeDecryptStream {
  private readonly decrypter: Decrypter;
  private phase: "header" | "nonce" | "payload" | "done" = "header";
  private head = new Uint8Array(1024);
  private headFill = 0;
  private key: Uint8Array | null = null;
  private readonly payloadNonce = new Uint8Array(PAYLOAD_NONCE_SIZE);
  private nonceFill = 0;
  private readonly pending = new Uint8Array(SEALED_CHUNK_SIZE);
  private fill = 0;
  private counter = 0;
  private readonly out = new OutBuf();

  private constructor(d: Decrypter) {
    this.decrypter = d;
  }

  static async create(identities: string[]): Promise<AgeDecryptStream> {
    if (identities.length === 0) throw cryptoError("no age identity given; pass the private key file (AGE-SECRET-KEY-1…)");
    const d = new Decrypter();
    identities.forEach((id, i) => {
      if (!validIdentity(id.trim())) throw cryptoError(`age identity #${i + 1} is not an X25519 secret key (AGE-SECRET-KEY-1…)`);
      d.addIdentity(id.trim());
    });
    return new AgeDecryptStream(d);
  }

  /** Header bytes still accumulating: returns how many bytes of `data` it consumed. */
  private async takeHeader(data: Uint8Array): Promise<number> {
    const room = MAX_HEADER_SIZE - this.headFill;
    const n = Math.min(room, data.length);
    if (this.head.length < this.headFill + n) {
      const bigger = new Uint8Array(Math.min(MAX_HEADER_SIZE, Math.max(this.headFill + n, this.head.length * 2)));
      bigger.set(this.head.subarray(0, this.headFill));
      this.head = bigger;
    }
    const before = this.headFill;
    this.head.set(data.subarray(0, n), before);
    this.headFill += n;
    const checked = Math.min(this.headFill, MAGIC.length);
    for (let i = 0; i < checked; i++)
      if (this.head[i] !== MAGIC[i]) throw integrityError("not an age v1 file (no \"age-encryption.org/v1\" header); the file is not encrypted by zrb/age or is corrupted");
    const mac = indexOf(this.head, MAC_LINE, before - MAC_LINE.length, this.headFill);
    const eol = mac < 0 ? -1 : this.head.indexOf(0x0a, mac + MAC_LINE.length);
    if (eol < 0 || eol >= this.headFill) {
      if (this.headFill >= MAX_HEADER_SIZE) throw integrityError(`age header longer than ${MAX_HEADER_SIZE} bytes; the file is corrupted`);
      return n;
    }
    const header = this.head.slice(0, eol + 1);
    let fileKey: Uint8Array;
    try {
      fileKey = await this.decrypter.decryptHeader(header);
    } catch (err) {
      const msg = (err as Error)?.message ?? String(err);
      if (/no identity matched/.test(msg)) throw noIdentityError(NO_MATCH);
      if (/HMAC/.test(msg)) throw integrityError("age header MAC does not verify: the file header is corrupted or was modified");
      throw integrityError(`invalid age header (${msg}); the file is corrupted`);
    }
    this.key = fileKey; // becomes the stream key once the payload nonce is read
    this.phase = "nonce";
    this.head = new Uint8Array(0);
    return eol + 1 - before;
  }

  private open(out: Uint8Array, pos: number, sealed: Uint8Array, last: boolean): number {
    const n = openBlock(out.subarray(pos), sealed, this.counter, last, this.key!);
    this.counter++;
    return pos + n;
  }

  /** Header and payload nonce: consumes what it needs of `data`; returns how many bytes it used. */
  private async takePrefix(data: Uint8Array): Promise<number> {
    let used = 0;
    if (this.phase === "header") {
      if (data.length === 0) return 0;
      used = await this.takeHeader(data);
      if (this.phase === "header") return used;
    }
    if (this.phase === "nonce") {
      const n = Math.min(PAYLOAD_NONCE_SIZE - this.nonceFill, data.length - used);
      this.payloadNonce.set(data.subarray(used, used + n), this.nonceFill);
      this.nonceFill += n;
      used += n;
      if (this.nonceFill < PAYLOAD_NONCE_SIZE) return used;
      const fileKey = this.key!;
      this.key = streamKey(fileKey, this.payloadNonce);
      fileKey.fill(0);
      this.phase = "payload";
    }
    return used;
  }

  /**
   * For a payload opened elsewhere (age-stream.ts openRun, in parallel): feed the file's first
   * bytes until this returns how many of them the header and payload nonce took and the
   * stream key; null means more bytes are needed. Same checks and errors as push(). The
   * caller owns the key (zero it when done); this stream is then finished.
   */
  async payloadStart(data: Uint8Array): Promise<{ used: number; key: Uint8Array } | null> {
    if (this.phase === "done" || this.phase === "payload") throw new Error("AgeDecryptStream.payloadStart() after the header");
    const used = await this.takePrefix(data);
    if (!this.inPayload()) return null;
    this.phase = "done";
    const key = this.key!;
    this.key = null;
    return { used, key };
  }

  private inPayload(): boolean {
    return this.phase === "payload";
  }

  /** The file ended before payloadStart() had the header and nonce: the error finish() would give. */
  endedInPrefix(): never {
    this.finish();
    throw new Error("unreachable: finish() before the payload throws");
  }

  async push(cipher: Uint8Array): Promise<Uint8Array> {
    if (this.phase === "done") throw new Error("AgeDecryptStream.push() after finish()");
    const data = cipher.subarray(await this.takePrefix(cipher));
    if (this.phase !== "payload") return this.out.buf.subarray(0, 0);
    const len = data.length;
    const out = this.out.reserve(Math.floor((this.fill + len) / SEALED_CHUNK_SIZE) * CHUNK_SIZE);
    let pos = 0;
    let off = 0;
    while (off < len) {
      if (this.fill === SEALED_CHUNK_SIZE) {
        pos = this.open(out, pos, this.pending, false);
        this.fill = 0;
      }
      if (this.fill === 0 && len - off > SEALED_CHUNK_SIZE) {
        pos = this.open(out, pos, data.subarray(off, off + SEALED_CHUNK_SIZE), false);
        off += SEALED_CHUNK_SIZE;
        continue;
      }
      const n = Math.min(SEALED_CHUNK_SIZE - this.fill, len - off);
      this.pending.set(data.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
    }
    return out.subarray(0, pos);
  }

  /**
   * Random access, for reading a few bytes of a large part by ranged GETs: take the file's first
   * bytes (the header and payload nonce must be among them) and return where the payload starts.
   */
  async readHeader(first: Uint8Array): Promise<number> {
    if (this.phase !== "header") throw new Error("AgeDecryptStream.readHeader() after data");
    const used = await this.takePrefix(first);
    if (!this.inPayload()) throw integrityError("age header is longer than the bytes read; the file is corrupted");
    return used;
  }

  /** After readHeader: decrypt sealed chunk `index` on its own (`last`: it is the file's final chunk). */
  openChunkAt(index: number, sealed: Uint8Array, last: boolean): Uint8Array {
    if (this.phase !== "payload" || this.fill !== 0) throw new Error("AgeDecryptStream.openChunkAt() needs readHeader() first");
    this.counter = index;
    const out = this.out.reserve(CHUNK_SIZE);
    return out.slice(0, this.open(out, 0, sealed, last));
  }

  /** Decrypts the final chunk and checks nothing is missing. */
  finish(): Uint8Array {
    const phase = this.phase;
    if (phase === "done") throw new Error("AgeDecryptStream.finish() called twice");
    this.phase = "done";
    if (phase === "header") {
      if (this.headFill === 0) throw integrityError("age file is empty (0 bytes); the file is truncated");
      throw integrityError("age file is truncated inside its header");
    }
    if (phase === "nonce" || this.fill === 0) throw truncatedNoPayload();
    if (this.fill < TAG_BYTES) throw integrityError(`age file is truncated: its last chunk is ${this.fill} bytes, shorter than a tag`);
    const out = this.out.reserve(CHUNK_SIZE);
    const end = this.open(out, 0, this.pending.subarray(0, this.fill), true);
    this.pending.fill(0);
    this.key?.fill(0);
    return out.subarray(0, end);
  }
}
