/**
 * The chunker and the uploader (pipeline/backup/chunker.ts, upload.ts) with real encryption
 * Workers and a real local-directory store: chunk boundaries whatever the read sizes, each part
 * an age file the stock `age` CLI decrypts to exactly its slice (BLAKE3 as `b3sum` says),
 * verify-only chunks on resume, a changed stream detected, intact spill files found.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Chunker, StreamDiffers } from "../../../src/pipeline/backup/chunker.ts";
import { Uploader } from "../../../src/pipeline/backup/upload.ts";
import { startThreads } from "../../../src/pipeline/parallel/index.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { partFileName, partKey } from "../../../src/store/layout.ts";
import { RunDir, type BackupState } from "../../../src/state/rundir.ts";
import { Semaphore } from "../../../src/util/semaphore.ts";
import { TaskGroup } from "../../../src/util/task-group.ts";
import { ageKeyPair, run } from "../../helpers/rig.ts";
import { pseudoRandom } from "../store/helpers.ts";
import { backupState } from "./helpers.ts";

const CHUNK = 100_000;

async function setup(state?: Partial<BackupState>) {
  const base = mkdtempSync(join(tmpdir(), "zrb-chunker-"));
  const { keyFile, recipient } = await ageKeyPair(join(base, "key.txt"));
  const rd = new RunDir(base, "tank", "ds");
  const spill = rd.spillDir("B1");
  mkdirSync(spill, { recursive: true, mode: 0o700 });
  const st = backupState({ chunkSize: CHUNK, recipients: [recipient], ...state });
  const store = new LocalStore(join(base, "store"));
  const group = new TaskGroup();
  const threads = await startThreads(2, (e) => group.fail(e));
  const uploaded: number[] = [];
  let persisted = 0;
  const uploader = new Uploader({ store, state: st, storageClass: "STANDARD", persist: () => void persisted++, signal: group.signal, onUploaded: (i) => void uploaded.push(i) });
  const fromDisk = new Set<number>();
  const chunker = new Chunker({
    state: st,
    spill,
    threads,
    streamHasher: threads.crypto.newHasher(),
    slots: new Semaphore(3),
    uploader,
    fromDisk,
    persist: async () => void persisted++,
    group,
  });
  return {
    base,
    keyFile,
    st,
    store,
    spill,
    uploader,
    chunker,
    uploaded,
    fromDisk,
    differs: () => (group.failure instanceof StreamDiffers ? 1 : 0),
    persisted: () => persisted,
    /** Feed `data` in pieces of the given sizes (cycled), end, wait for uploads. */
    async feed(data: Uint8Array, pieces: number[]): Promise<boolean> {
      for (let off = 0, i = 0; off < data.length; i++) {
        const n = Math.min(pieces[i % pieces.length]!, data.length - off);
        await chunker.push(data.subarray(off, off + n));
        off += n;
      }
      const more = await chunker.end();
      await group.settle();
      threads.terminate();
      return more;
    },
  };
}

async function b3sum(bytes: Uint8Array, dir: string): Promise<string> {
  const f = join(dir, `slice-${Math.random()}`);
  writeFileSync(f, bytes);
  return (await run(["b3sum", "--no-names", f])).stdout.trim();
}

describe("chunker + uploader", () => {
  test("chunks of chunk_size whatever the read sizes; each part decrypts with stock age to its slice", async () => {
    const w = await setup();
    const data = pseudoRandom(3 * CHUNK + 3, 41);
    expect(await w.feed(data, [1, 7, 65_536, 99_999, 3, 150_000])).toBe(false);
    expect(w.st.chunks.map((c) => c.plainSize)).toEqual([CHUNK, CHUNK, CHUNK, 3]);
    expect(w.st.chunks.every((c) => c.uploaded)).toBe(true);
    expect(w.uploaded.sort()).toEqual([0, 1, 2, 3]);
    for (const c of w.st.chunks) {
      const slice = data.subarray(c.index * CHUNK, c.index * CHUNK + c.plainSize);
      expect(c.blake3).toBe(await b3sum(slice, w.base));
      const part = join(w.store.root, ...partKey("tank", "ds", 0, "B1", c.index).split("/"));
      const bytes = new Uint8Array(await new Response(Bun.spawn(["age", "-d", "-i", w.keyFile, part]).stdout).arrayBuffer());
      expect(bytes).toEqual(new Uint8Array(slice));
    }
    // Spill files are gone once uploaded.
    expect(await Array.fromAsync(new Bun.Glob("*").scan(w.spill))).toEqual([]);
  }, 60_000);

  test("chunks an interrupted run stored are only verified; the rest is sent", async () => {
    const data = pseudoRandom(3 * CHUNK, 42);
    const first = await setup();
    await first.feed(data, [65_536]);
    const recorded = first.st.chunks.map((c, i) => (i < 2 ? c : undefined)).filter((c) => c) as BackupState["chunks"];
    const w = await setup({ chunks: recorded.map((c) => ({ ...c })) });
    expect(await w.feed(data, [12_345])).toBe(false);
    expect(w.chunker.skipped).toBe(2);
    expect(w.uploaded).toEqual([2]);
    expect(w.differs()).toBe(0);
  }, 60_000);

  test("re-sent bytes that differ from a recorded chunk: the stream differs; more recorded chunks than sent: too", async () => {
    const data = pseudoRandom(2 * CHUNK, 43);
    const first = await setup();
    await first.feed(data, [65_536]);
    const changed = data.slice();
    changed[5] = changed[5]! ^ 1;
    const w = await setup({ chunks: first.st.chunks.map((c) => ({ ...c })) });
    await w.feed(changed, [65_536]);
    expect(w.differs()).toBeGreaterThan(0);
    const shorter = await setup({ chunks: first.st.chunks.map((c) => ({ ...c })) });
    expect(await shorter.feed(data.subarray(0, CHUNK), [65_536])).toBe(true);
  }, 60_000);

  test("intact spill files of recorded chunks are found (size and SHA-256), damaged ones are not", async () => {
    const data = pseudoRandom(2 * CHUNK, 44);
    const first = await setup();
    await first.feed(data, [65_536]);
    const w = await setup({ chunks: first.st.chunks.map((c) => ({ ...c, uploaded: false })) });
    // The part files the first run made, put back as spill files; the second one damaged.
    for (const c of first.st.chunks) {
      const bytes = await Bun.file(join(first.store.root, ...partKey("tank", "ds", 0, "B1", c.index).split("/"))).bytes();
      if (c.index === 1) bytes[100] = bytes[100]! ^ 1;
      writeFileSync(join(w.spill, partFileName(c.index)), bytes);
    }
    expect((await w.uploader.intactOnDisk(w.spill)).map((c) => c.index)).toEqual([0]);
  }, 60_000);
});
