/**
 * The file catalog of one backup: what its snapshot holds, so that `zrb find` answers "which
 * backups have this file" without downloading a byte of data. A level-0 backup records every
 * path ("full"); a higher level only what changed since its parent ("changes": new or modified
 * entries, and deleted paths); a reader rebuilds the state at a point by applying its chain's
 * catalogs in order (pipeline/files/state.ts).
 *
 * Format (version 1), line-oriented text, then zstd-compressed, then age-encrypted to the
 * backup's own recipients (the NAS writes it and cannot read it back, like the data):
 *   zrb-file-catalog/1 <TAB> full|changes <TAB> <entries>
 *   <type> <TAB> <size> <TAB> <mtime, seconds> <TAB> <path>     one per entry, sorted by path
 * type: f file, d directory, l symlink, o anything else, - deleted (size and mtime 0). Paths are
 * relative to the dataset's root; a backslash, tab or newline in a name is escaped (\\ \t \n).
 * Sorted paths share long prefixes, which zstd folds away: about 10–20 bytes per entry
 * (measured in test/unit/records/file-catalog.test.ts). The manifest records the stored
 * object's key, size, SHA-256 and entry count and signs them (records/manifest.ts), so a
 * reader refuses a catalog that is not the one the backup wrote.
 */
import { decryptBytes, encryptBytes } from "../crypto/age-file.ts";
import { ZrbError, integrityError } from "../util/errors.ts";
import type { ObjectStore } from "../store/store.ts";
import type { FileEntry } from "../zfs/snapfiles.ts";

export type { FileEntry };

export const FILE_CATALOG_FORMAT = "zrb-file-catalog/1";

export type EntryType = FileEntry["type"];

export interface FileCatalog {
  kind: "full" | "changes";
  entries: FileEntry[];
}

/** What the manifest records about its catalog (signed with it). */
export interface CatalogRef {
  key: string;
  size: number;
  sha256: string;
  entries: number;
  kind: "full" | "changes";
}

/** No catalog zrb writes comes near this (tens of millions of entries); larger is not ours. */
export const MAX_CATALOG_BYTES = 512 * 1024 * 1024;

const TYPES = new Set(["f", "d", "l", "o", "-"]);
const escapePath = (p: string) => p.replace(/[\\\t\n]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : "\\n"));
const unescapePath = (p: string) => p.replace(/\\(.)/g, (_m, c: string) => (c === "t" ? "\t" : c === "n" ? "\n" : c));

/** Byte order of paths (the order a catalog's lines are in). */
export const byPath = (a: FileEntry, b: FileEntry) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** The catalog's plaintext, compressed (zstd). */
export function encodeCatalog(c: FileCatalog): Uint8Array {
  const lines = [`${FILE_CATALOG_FORMAT}\t${c.kind}\t${c.entries.length}`];
  for (const e of [...c.entries].sort(byPath)) lines.push(`${e.type}\t${e.size}\t${e.mtime}\t${escapePath(e.path)}`);
  return Bun.zstdCompressSync(new TextEncoder().encode(lines.join("\n") + "\n"), { level: 9 });
}

/** Parse a decompressed catalog; `where` names it in the one-line error. */
export function decodeCatalog(compressed: Uint8Array, where: string): FileCatalog {
  const bad = (why: string) => integrityError(`file catalog ${where} is corrupt: ${why}`);
  let text: string;
  try {
    text = new TextDecoder().decode(Bun.zstdDecompressSync(compressed));
  } catch {
    throw bad("it does not decompress");
  }
  const lines = text.split("\n");
  const head = (lines.shift() ?? "").split("\t");
  if (head[0] !== FILE_CATALOG_FORMAT) throw bad(`unknown format ${JSON.stringify(head[0]?.slice(0, 40))}`);
  if (head[1] !== "full" && head[1] !== "changes") throw bad(`unknown kind ${JSON.stringify(head[1]?.slice(0, 20))}`);
  if (lines.at(-1) === "") lines.pop();
  if (String(lines.length) !== head[2]) throw bad(`it has ${lines.length} entries, its header says ${head[2]}`);
  const entries = lines.map((l, i): FileEntry => {
    const f = l.split("\t");
    const size = Number(f[1]);
    const mtime = Number(f[2]);
    if (f.length !== 4 || !TYPES.has(f[0]!) || !Number.isSafeInteger(size) || size < 0 || !Number.isSafeInteger(mtime) || f[3] === "") throw bad(`line ${i + 2} is malformed`);
    return { type: f[0] as EntryType, size, mtime, path: unescapePath(f[3]!) };
  });
  return { kind: head[1], entries };
}

/** Encoded, compressed and age-encrypted to the backup's recipients. */
export async function sealCatalog(c: FileCatalog, recipients: string[]): Promise<Uint8Array> {
  return encryptBytes(encodeCatalog(c), recipients);
}

export const sha256Hex = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

/**
 * Open a stored catalog: its size and SHA-256 must be the manifest's (signed) before a byte is
 * decrypted; then decrypted (every age chunk authenticated) and parsed.
 */
export async function openCatalog(stored: Uint8Array, ref: CatalogRef, identities: string[]): Promise<FileCatalog> {
  if (stored.length !== ref.size) throw integrityError(`file catalog ${ref.key} is ${stored.length} bytes, its manifest says ${ref.size}; it was replaced or damaged (zrb verify checks it)`);
  const sha = sha256Hex(stored);
  if (sha !== ref.sha256) throw integrityError(`file catalog ${ref.key} has SHA-256 ${sha.slice(0, 16)}…, its manifest says ${ref.sha256.slice(0, 16)}…; it was replaced or damaged`);
  const c = decodeCatalog(await decryptBytes(stored, identities), ref.key);
  if (c.entries.length !== ref.entries || c.kind !== ref.kind) throw integrityError(`file catalog ${ref.key} holds ${c.entries.length} ${c.kind} entries, its manifest says ${ref.entries} ${ref.kind}`);
  return c;
}

/**
 * What is wrong with a backup's stored catalog (zrb verify), or undefined: missing, not the
 * manifest's size or SHA-256, and with `identities` one that does not decrypt and parse.
 */
export async function catalogProblem(store: ObjectStore, ref: CatalogRef, identities?: string[]): Promise<string | undefined> {
  const body = await store.get(ref.key, { maxBytes: MAX_CATALOG_BYTES });
  if (body === null) return `file catalog ${store.urlOf(ref.key)} is missing`;
  try {
    if (identities) await openCatalog(body, ref, identities);
    else if (body.length !== ref.size || sha256Hex(body) !== ref.sha256) return `file catalog ${store.urlOf(ref.key)} is not the one its manifest describes (${body.length} bytes, SHA-256 ${sha256Hex(body).slice(0, 16)}…; manifest: ${ref.size} bytes, ${ref.sha256.slice(0, 16)}…)`;
  } catch (err) {
    if (!(err instanceof ZrbError) || err.exitCode !== 7) throw err;
    return err.message;
  }
  return undefined;
}
