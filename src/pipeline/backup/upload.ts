/**
 * The uploader: each encrypted part file goes to the store (one PutObject, or a resumable
 * multipart upload whose progress is recorded in backup_state.yaml after every part), is marked
 * uploaded in the state, and its spill file is deleted. On resume it also uploads the part
 * files a killed run left complete on disk (their size and SHA-256 checked first) and aborts
 * recorded uploads whose file is gone (the chunk is encrypted again from the re-sent stream).
 * Where the store can (S3), a part's upload begins while it is still sealed (begin(): its id is
 * recorded apart from the chunks, in sealingUploads, and a killed run's are only ever aborted);
 * once sealed and recorded, its progress is the chunk's like any other's.
 */
import { existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { EarlyUpload, MultipartProgress, ObjectStore } from "../../store/store.ts";
import { partFileName, partKey } from "../../store/layout.ts";
import type { BackupState, ChunkState } from "../../state/rundir.ts";
import { log } from "../../util/log.ts";
import type { TransferProgress } from "../../report/progress.ts";

export interface UploaderOptions {
  store: ObjectStore;
  state: BackupState;
  storageClass: string;
  /** Write the state file (atomic); resolves when it is on disk. */
  persist(): Promise<void> | void;
  /** Stops uploads when the run fails or is interrupted. */
  signal: AbortSignal;
  onUploaded?: (index: number) => void;
  /** Bytes stored so far (plaintext of the stored parts + what is in flight) and parts done. */
  progress?: TransferProgress;
  /** After each stored part: the in-flight marker's refresh (records/marker.ts; it limits itself). */
  afterPart?: () => Promise<void>;
  /** Instead of deleting a stored part's spill file: delete it or keep it for the next part to overwrite (FileWriter.recycle). */
  recycle?: (path: string) => void;
}

export class Uploader {
  /** Plaintext bytes of the parts stored, by this run or the one it resumes. */
  private stored: number;
  /** Bytes sent of each part in flight (at most its plaintext size). */
  private readonly inflight = new Map<number, number>();

  constructor(private readonly o: UploaderOptions) {
    this.stored = o.state.chunks.filter((c) => c?.uploaded).reduce((a, c) => a + c.plainSize, 0);
  }

  private report(): void {
    let n = this.stored;
    for (const b of this.inflight.values()) n += b;
    this.o.progress?.bytes(n);
  }

  keyOf(index: number): string {
    const s = this.o.state;
    return partKey(s.pool, s.dataset, s.level, s.backupId, index);
  }

  /**
   * Begin the upload of part `index` while it is sealed into `path`.tmp (then renamed to
   * `path`; at most `maxSize` bytes), where the store can; its id is recorded before its
   * first piece is sent.
   */
  begin(index: number, path: string, maxSize: number): EarlyUpload | undefined {
    const s = this.o.state;
    return this.o.store.beginUpload?.(this.keyOf(index), path + ".tmp", {
      maxSize,
      renamedTo: path,
      storageClass: this.o.storageClass,
      signal: this.o.signal,
      onCreated: (uploadId) => {
        (s.sealingUploads ??= []).push({ index, uploadId });
        return this.o.persist();
      },
      onBytes: (sent) => this.sent(index, Math.min(sent, s.chunkSize)),
    });
  }

  private sent(index: number, bytes: number): void {
    this.inflight.set(index, bytes);
    this.report();
  }

  /** Upload one encrypted part file (resuming its recorded multipart upload, or finishing the one begun early), record it, delete the file. */
  async upload(chunk: ChunkState, path: string, note: string, early?: EarlyUpload): Promise<void> {
    const opts = {
      size: chunk.cipherSize!,
      sha256Hex: chunk.sha256!,
      storageClass: this.o.storageClass,
      signal: this.o.signal,
      onProgress: (p: MultipartProgress) => {
        chunk.multipart = p;
        // From now on the chunk's record carries the upload (its pieces checked: the part is sealed).
        this.o.state.sealingUploads = this.o.state.sealingUploads?.filter((u) => u.uploadId !== p.uploadId);
        return this.o.persist();
      },
      onBytes: (sent: number) => this.sent(chunk.index, Math.min(sent, chunk.plainSize)),
    };
    try {
      const begun = early ? await early.finish(opts) : "unused";
      if (begun !== "done") await this.o.store.putFile(this.keyOf(chunk.index), path, { ...opts, resume: begun === "unused" ? chunk.multipart : begun });
    } finally {
      this.inflight.delete(chunk.index);
    }
    this.stored += chunk.plainSize;
    this.report();
    this.o.progress?.part({ backupId: this.o.state.backupId, index: chunk.index, bytes: chunk.plainSize });
    chunk.uploaded = true;
    delete chunk.multipart;
    await this.o.persist();
    if (this.o.recycle) this.o.recycle(path);
    else rmSync(path, { force: true });
    log.info(`part ${chunk.index} uploaded ${note}`);
    this.o.onUploaded?.(chunk.index);
    await this.o.afterPart?.();
  }

  /**
   * Recorded chunks whose part file survived a killed run intact (size and SHA-256 as recorded):
   * the ones to upload straight from disk. Their bytes in the re-sent stream are only verified.
   */
  async intactOnDisk(spill: string): Promise<ChunkState[]> {
    const out: ChunkState[] = [];
    for (const rec of this.o.state.chunks) {
      if (!rec || rec.uploaded || !rec.sha256) continue;
      const path = join(spill, partFileName(rec.index));
      if (!existsSync(path) || statSync(path).size !== rec.cipherSize) continue;
      const sha = new Bun.CryptoHasher("sha256");
      for await (const b of Bun.file(path).stream()) sha.update(b);
      if (sha.digest("hex") === rec.sha256) out.push(rec);
    }
    return out;
  }

  /**
   * Recorded multipart uploads of chunks that are not uploaded and whose spill file is not
   * `intact` (gone, or short or different after a power loss: the file is not fsynced), and
   * those a killed run began for parts it was still sealing: abort them (best effort). Such a
   * chunk is sealed again with a new file key, so no piece of the old upload may be continued.
   */
  async abortLost(intact: Set<number>): Promise<void> {
    for (const u of this.o.state.sealingUploads ?? []) await this.o.store.abortUpload(this.keyOf(u.index), u.uploadId).catch(() => {});
    delete this.o.state.sealingUploads;
    for (const rec of this.o.state.chunks) {
      if (!rec || rec.uploaded || !rec.multipart || intact.has(rec.index)) continue;
      await this.o.store.abortUpload(this.keyOf(rec.index), rec.multipart.uploadId).catch(() => {});
      delete rec.multipart;
    }
  }
}
