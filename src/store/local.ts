/**
 * Local-directory object store (the original's local-only mode, `s3.enabled: false`).
 *
 * - Keys map to files under the root: "a/b/c" → <root>/a/b/c (same validation as S3 keys,
 *   so nothing outside the root can be addressed).
 * - put/putFile write `<dir>/.<name>.zrbtmp-<random>` in the target's directory, fsync it,
 *   rename it over the final name and fsync the directory: a final name never holds a
 *   partial file.
 * - Temp files left behind by a killed run are the local "multipart uploads": listUploads
 *   returns them (key = the final key, uploadId = the temp file's name, initiated = its
 *   mtime) and abortUpload deletes one. They are never listed by list(). A putFile does not
 *   resume a temp file (a local copy is cheap); onProgress is never called.
 * - Storage classes are not recorded (no sidecar files): head/list return no storageClass.
 * - thaw always answers "available".
 */
import { mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import { StoreError, type ObjectInfo, type ObjectStore, type PutFileOptions, type PutOptions, type RewriteOptions } from "./store.ts";
import { validateKey, validateListPrefix } from "./keys.ts";
import { abortReason } from "./retry.ts";
import { ZrbError, fsError, integrityError, storeError } from "../util/errors.ts";

const TMP_MARK = ".zrbtmp-";
const TMP_RE = /^\.(.+)\.zrbtmp-[0-9a-f]{16}$/;
const CHUNK = 1024 * 1024;

const isNotFound = (err: unknown) => {
  const c = (err as { code?: string } | undefined)?.code;
  return c === "ENOENT" || c === "ENOTDIR";
};

export class LocalStore implements ObjectStore {
  readonly location: string;
  readonly root: string;

  constructor(root: string) {
    if (!root) throw storeError("the local store directory is empty; set base_dir (or the local store path) in the config");
    this.root = resolve(root);
    this.location = this.root.endsWith(sep) ? this.root : this.root + sep;
  }

  urlOf(key: string): string {
    return this.location + key;
  }

  private pathOf(key: string): string {
    return join(this.root, ...validateKey(key).split("/"));
  }

  private tmpFor(path: string): string {
    const rnd = Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex");
    return join(dirname(path), `.${basename(path)}${TMP_MARK}${rnd}`);
  }

  private async fsyncDir(dir: string): Promise<void> {
    let fh: FileHandle | undefined;
    try {
      fh = await open(dir, "r");
      await fh.sync();
    } catch {
      // some file systems refuse fsync on a directory; the rename is still atomic
    } finally {
      await fh?.close().catch(() => {});
    }
  }

  /** Write via `write(fh)` into a temp file next to `path`, fsync, rename into place. */
  private async atomicWrite(key: string, path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw fsError(err, `cannot store ${key}`, dir);
    }
    const tmp = this.tmpFor(path);
    let fh: FileHandle | undefined;
    try {
      fh = await open(tmp, "wx", 0o600);
      await write(fh);
      await fh.sync();
      await fh.close();
      fh = undefined;
      await rename(tmp, path);
    } catch (err) {
      await fh?.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      if (err instanceof ZrbError) throw err;
      if ((err as { name?: string })?.name === "AbortError") throw err;
      throw fsError(err, `cannot store ${key}`, path);
    }
    await this.fsyncDir(dir);
  }

  async put(key: string, body: Uint8Array | string, _opts?: PutOptions): Promise<void> {
    const path = this.pathOf(key);
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    await this.atomicWrite(key, path, async (fh) => {
      let off = 0;
      while (off < bytes.byteLength) {
        const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off);
        off += bytesWritten;
      }
    });
  }

  async putFile(key: string, src: string, opts: PutFileOptions): Promise<void> {
    const path = this.pathOf(key);
    const signal = opts.signal;
    if (signal?.aborted) throw abortReason(signal);
    let input: FileHandle;
    try {
      input = await open(src, "r");
    } catch (err) {
      throw fsError(err, `cannot read ${src} for ${key}`, src);
    }
    try {
      const st = await input.stat();
      if (st.size !== opts.size) {
        throw integrityError(`cannot store ${src} as ${key}: the file is ${st.size} bytes but ${opts.size} were expected`);
      }
      await this.atomicWrite(key, path, async (out) => {
        const hasher = new Bun.CryptoHasher("sha256");
        const buf = Buffer.allocUnsafe(CHUNK);
        let total = 0;
        for (;;) {
          if (signal?.aborted) throw abortReason(signal);
          const { bytesRead } = await input.read(buf, 0, CHUNK, total);
          if (bytesRead === 0) break;
          const chunk = buf.subarray(0, bytesRead);
          hasher.update(chunk);
          let off = 0;
          while (off < bytesRead) {
            const { bytesWritten } = await out.write(chunk, off, bytesRead - off);
            off += bytesWritten;
          }
          total += bytesRead;
          opts.onBytes?.(total);
        }
        if (total === 0) opts.onBytes?.(0); // an empty file reports its (zero) progress too
        if (total !== opts.size) {
          throw integrityError(`cannot store ${src} as ${key}: read ${total} bytes but ${opts.size} were expected (file changed?)`);
        }
        const got = hasher.digest("hex");
        if (got !== opts.sha256Hex.toLowerCase()) {
          throw integrityError(`cannot store ${src} as ${key}: its SHA-256 is ${got}, expected ${opts.sha256Hex} (file changed?)`);
        }
      });
    } finally {
      await input.close().catch(() => {});
    }
  }

  /** The same contract as S3's: head, then bytes [from, size) of the file, swapped in atomically. */
  async rewriteHead(key: string, head: Uint8Array, from: number, opts: RewriteOptions): Promise<{ copied: number }> {
    const path = this.pathOf(key);
    if (opts.signal?.aborted) throw abortReason(opts.signal);
    const info = await this.head(key);
    if (!info) throw new StoreError("not-found", `object ${key} does not exist in ${this.location}`);
    if (info.size !== opts.size) throw integrityError(`${key} is ${info.size} bytes, expected ${opts.size}; it changed since it was read`);
    if (!Number.isSafeInteger(from) || from < 0 || from > opts.size) throw storeError(`rewrite of ${key}: byte ${from} is outside the ${opts.size}-byte object`);
    let input: FileHandle;
    try {
      input = await open(path, "r");
    } catch (err) {
      throw fsError(err, `cannot read ${key}`, path);
    }
    try {
      await this.atomicWrite(key, path, async (out) => {
        await out.write(head, 0, head.byteLength);
        const buf = Buffer.allocUnsafe(CHUNK);
        for (let pos = from; pos < opts.size; ) {
          if (opts.signal?.aborted) throw abortReason(opts.signal);
          const { bytesRead } = await input.read(buf, 0, Math.min(CHUNK, opts.size - pos), pos);
          if (bytesRead === 0) throw integrityError(`${key} ended at byte ${pos} while it was rewritten`);
          await out.write(buf, 0, bytesRead);
          pos += bytesRead;
        }
      });
    } finally {
      await input.close();
    }
    return { copied: opts.size - from };
  }

  async get(key: string, opts?: { maxBytes?: number }): Promise<Uint8Array | null> {
    const path = this.pathOf(key);
    try {
      const st = await stat(path);
      if (!st.isFile()) return null;
      if (opts?.maxBytes !== undefined && st.size > opts.maxBytes)
        throw new StoreError("too-large", `object ${this.urlOf(key)} is ${st.size} bytes, more than the ${opts.maxBytes} expected`, { size: st.size });
      return await Bun.file(path).bytes();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      if (isNotFound(err)) return null;
      throw fsError(err, `cannot read ${key}`, path);
    }
  }

  async getStream(key: string, range?: { start: number; end?: number }): Promise<ReadableStream<Uint8Array>> {
    const path = this.pathOf(key);
    let size: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw Object.assign(new Error("not a file"), { code: "ENOENT" });
      size = st.size;
    } catch (err) {
      if (isNotFound(err)) throw new StoreError("not-found", `object ${key} does not exist in ${this.location}`, { cause: err });
      throw fsError(err, `cannot read ${key}`, path);
    }
    const f = Bun.file(path);
    if (!range) return f.stream() as ReadableStream<Uint8Array>;
    const { start, end } = range;
    if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
      throw storeError(`invalid byte range ${start}-${end ?? ""} for ${key}`);
    }
    if (start >= size) throw storeError(`byte range ${start}-${end ?? ""} is outside object ${key} (${size} bytes)`);
    const stop = end === undefined ? size : Math.min(size, end + 1);
    return f.slice(start, stop).stream() as ReadableStream<Uint8Array>;
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const path = this.pathOf(key);
    try {
      const st = await stat(path);
      if (!st.isFile()) return null;
      return { key, size: st.size, lastModified: st.mtime };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw fsError(err, `cannot stat ${key}`, path);
    }
  }

  /** Walk the tree under the directory that can hold keys starting with `prefix`. */
  private async walk(prefix: string, onFile: (relKey: string, name: string, abs: string) => Promise<void>): Promise<void> {
    const slash = prefix.lastIndexOf("/");
    const baseRel = slash >= 0 ? prefix.slice(0, slash) : "";
    const start = baseRel ? join(this.root, ...baseRel.split("/")) : this.root;
    const rec = async (abs: string, rel: string) => {
      let entries;
      try {
        entries = await readdir(abs, { withFileTypes: true });
      } catch (err) {
        if (isNotFound(err)) return;
        throw fsError(err, `cannot list ${rel || "."}`, abs);
      }
      for (const e of entries) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        // prune directories that cannot contain matching keys
        if (!(r.startsWith(prefix) || prefix.startsWith(r + "/") || prefix === r)) continue;
        const a = join(abs, e.name);
        if (e.isDirectory()) await rec(a, r);
        else if (e.isFile()) await onFile(r, e.name, a);
      }
    };
    await rec(start, baseRel);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validateListPrefix(prefix);
    const out: ObjectInfo[] = [];
    await this.walk(prefix, async (key, name, abs) => {
      if (TMP_RE.test(name) || !key.startsWith(prefix)) return;
      try {
        const st = await stat(abs);
        out.push({ key, size: st.size, lastModified: st.mtime });
      } catch (err) {
        if (!isNotFound(err)) throw fsError(err, `cannot stat ${key}`, abs);
      }
    });
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out;
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (isNotFound(err)) return;
      throw fsError(err, `cannot delete ${key}`, path);
    }
    // Remove now-empty parent directories (best effort), never the root itself.
    let dir = dirname(path);
    while (dir.startsWith(this.root + sep)) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
      dir = dirname(dir);
    }
  }

  async listUploads(prefix: string): Promise<{ key: string; uploadId: string; initiated?: Date }[]> {
    validateListPrefix(prefix);
    const out: { key: string; uploadId: string; initiated?: Date }[] = [];
    // Temp names start with '.', so walk the whole directory the prefix points into.
    const slash = prefix.lastIndexOf("/");
    const dirPrefix = slash >= 0 ? prefix.slice(0, slash + 1) : "";
    await this.walk(dirPrefix, async (rel, name, abs) => {
      const m = TMP_RE.exec(name);
      if (!m) return;
      const relDir = rel.slice(0, rel.length - name.length);
      const key = relDir + m[1]!;
      if (!key.startsWith(prefix)) return;
      try {
        const st = await stat(abs);
        out.push({ key, uploadId: name, initiated: st.mtime });
      } catch (err) {
        if (!isNotFound(err)) throw fsError(err, `cannot stat ${rel}`, abs);
      }
    });
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.uploadId < b.uploadId ? -1 : 1));
    return out;
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    const path = this.pathOf(key);
    const m = TMP_RE.exec(uploadId);
    if (!m || uploadId.includes("/") || m[1] !== basename(path)) {
      throw storeError(`invalid local upload id ${JSON.stringify(uploadId)} for ${key}`);
    }
    const tmp = join(dirname(path), uploadId);
    try {
      await unlink(tmp);
    } catch (err) {
      if (!isNotFound(err)) throw fsError(err, `cannot remove ${uploadId}`, tmp);
    }
  }

  /** A local directory has no object lock. */
  async retain(_key: string, _until: Date): Promise<void> {}

  async thaw(_key: string, _opts: { days: number; tier: "Bulk" | "Standard" | "Expedited" }): Promise<"requested" | "ongoing" | "available"> {
    return "available";
  }

  async checkAccess(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
    } catch (err) {
      throw fsError(err, "cannot create the local store directory", this.root);
    }
    const probe = join(this.root, `.zrb-access-check-${crypto.randomUUID()}`);
    try {
      const fh = await open(probe, "wx", 0o600);
      await fh.close();
      await unlink(probe);
    } catch (err) {
      await unlink(probe).catch(() => {});
      throw fsError(err, "the local store directory is not writable", this.root);
    }
  }
}
