/**
 * Fetch: download a backup's parts in order to scratch files, at most `ahead` on disk at once.
 * A part's file is handed over only after its size and ciphertext SHA-256 matched the manifest,
 * so no byte of a damaged or replaced object is ever decrypted. Transport failures are the
 * store's business (the retry wrapper resumes a broken body by range); a SHA-256 mismatch is
 * downloaded once more from scratch, then reported with both hashes.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { isStoreError, type ObjectStore } from "../../store/store.ts";
import { partFileName } from "../../store/layout.ts";
import type { Manifest, ManifestPart } from "../../state/manifest.ts";
import { ExitCode, ZrbError, fsError, integrityError, storeError } from "../../util/errors.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { log } from "../../util/log.ts";
import { Semaphore } from "../../util/semaphore.ts";
import { FileFailure, type Threads, type Written } from "../parallel/index.ts";
import { SlotFiller } from "../parallel/slot-filler.ts";
import { rewrappedProblem } from "../rekey/origin.ts";

/** "part 3 of backup <id> (s3://bucket/prefix/data/…)". */
export function partName(m: Manifest, p: ManifestPart, url: string): string {
  return `part ${p.index} of backup ${m.backupId} (${url})`;
}

/** The file worker's failure as the one-line error a user sees. */
function scratchError(err: unknown, path: string): unknown {
  if (!(err instanceof FileFailure)) return err;
  return fsError(err, err.op === "create" ? "creating restore scratch file" : "writing restore scratch file", path);
}

/**
 * Download one part to `path` (created exclusively, never through a planted link); on return
 * it holds exactly the manifest's bytes. The file worker writes and SHA-256s it;
 * `onBytes` hears of every piece downloaded (progress). A part zrb rekey rewrapped is checked
 * against its original SHA-256 through the sealed original header (rekey/origin.ts), which
 * takes `identities`; without them only its new header is checked here.
 */
export async function downloadPart(
  store: ObjectStore,
  m: Manifest,
  p: ManifestPart,
  path: string,
  threads: Threads,
  signal?: AbortSignal,
  onBytes?: (n: number) => void,
  identities?: string[],
): Promise<void> {
  const name = partName(m, p, store.urlOf(p.key));
  for (let round = 0; ; round++) {
    const file = threads.files.create(path);
    const fill = new SlotFiller(threads, (slot, len) => file.write(slot, len), signal);
    let got = 0;
    let written: Written;
    try {
      let stream: ReadableStream<Uint8Array>;
      try {
        stream = await store.getStream(p.key);
      } catch (err) {
        if (isStoreError(err, "not-found")) throw storeError(`${name} is missing from the store; run zrb list to see which backups are still intact`, err);
        throw err;
      }
      for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
        checkInterrupted(signal);
        if (got + chunk.length > p.cipherSize) throw integrityError(`${name} is larger than the ${p.cipherSize} bytes its manifest records`);
        await fill.push(chunk);
        got += chunk.length;
        onBytes?.(chunk.length);
      }
      if (got < p.cipherSize) throw storeError(`${name}: the store returned ${got} of ${p.cipherSize} bytes; check the object (zrb verify) and the network`);
      fill.flush();
      written = await file.close({ sync: false });
    } catch (err) {
      fill.release();
      file.drop();
      throw scratchError(err, path);
    }
    const why = p.rewrap ? await rewrappedProblem(path, p, identities) : written.sha256 === p.sha256 ? undefined : `ciphertext SHA-256 is ${written.sha256}, manifest says ${p.sha256}`;
    if (!why) return;
    if (round === 0) {
      log.warn(`${name}: SHA-256 mismatch, downloading it again`);
      continue;
    }
    rmSync(path, { force: true });
    throw integrityError(`${name}: ${why}; the object in the store is damaged or was replaced`);
  }
}

/**
 * Downloads the parts of one backup in order, at most `ahead` of them on disk at once (a slot
 * is freed when the consumer has used and deleted a file). Each resolved file has already passed
 * its SHA-256 check. Scratch file names derive from the part index only, never from a key.
 */
export class PartFetcher {
  private readonly slots: Semaphore;
  private readonly done: { promise: Promise<string>; resolve: (p: string) => void; reject: (e: unknown) => void }[];
  private readonly ac = new AbortController();
  private stopped = false;

  constructor(
    private store: ObjectStore,
    private m: Manifest,
    private dir: string,
    ahead: number,
    private threads: Threads,
    signal?: AbortSignal,
    private identities?: string[],
  ) {
    this.slots = new Semaphore(Math.max(1, ahead));
    this.done = m.parts.map(() => {
      let resolve!: (p: string) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<string>((a, b) => ((resolve = a), (reject = b)));
      promise.catch(() => {});
      return { promise, resolve, reject };
    });
    const onAbort = () => this.ac.abort(signal!.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    void this.pump();
  }

  pathOf(index: number): string {
    return join(this.dir, partFileName(index));
  }

  private async pump(): Promise<void> {
    for (const p of this.m.parts) {
      await this.slots.acquire();
      if (this.stopped) return;
      const path = this.pathOf(p.index);
      downloadPart(this.store, this.m, p, path, this.threads, this.ac.signal, undefined, this.identities).then(
        () => this.done[p.index]!.resolve(path),
        (e) => {
          rmSync(path, { force: true });
          this.done[p.index]!.reject(e);
        },
      );
    }
  }

  take(index: number): Promise<string> {
    return this.done[index]!.promise;
  }

  /** The consumer is finished with part `index`: delete its file and free its slot. */
  release(index: number): void {
    rmSync(this.pathOf(index), { force: true });
    this.slots.release();
  }

  stop(): void {
    this.stopped = true;
    this.ac.abort(new ZrbError("stopped", ExitCode.FAILURE));
    for (let i = 0; i < 64; i++) this.slots.release();
  }
}
