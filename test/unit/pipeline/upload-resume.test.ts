/**
 * What the uploader does on resume with what a killed run left (pipeline/backup/upload.ts):
 * intactOnDisk picks the recorded, not yet stored chunks whose spill file is whole (size and
 * SHA-256); abortLost aborts the multipart uploads that cannot be continued (their chunk's file is
 * not intact, or the part was still being sealed) and nothing else — an intact chunk's upload is
 * continued, a stored chunk's record is not touched.
 */
import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Uploader } from "../../../src/pipeline/backup/upload.ts";
import { partFileName, partKey } from "../../../src/store/layout.ts";
import type { ChunkState } from "../../../src/state/rundir.ts";
import type { ObjectStore } from "../../../src/store/store.ts";
import { backupState } from "./helpers.ts";

const mp = (uploadId: string) => ({ uploadId, partSize: 5 << 20, parts: [{ partNumber: 1, etag: "e" }] });

function uploaderWith(chunks: ChunkState[], sealing?: { index: number; uploadId: string }[]) {
  const aborted: string[] = [];
  const store = { abortUpload: async (key: string, uploadId: string) => void aborted.push(`${key} ${uploadId}`) } as unknown as ObjectStore;
  const state = backupState({ chunks, sealingUploads: sealing });
  const uploader = new Uploader({ store, state, storageClass: "STANDARD", persist: () => {}, signal: new AbortController().signal });
  return { uploader, state, aborted };
}

test("abortLost: aborts the uploads of chunks whose file is lost and those begun while sealing; an intact chunk's upload and a stored chunk are left alone", async () => {
  const key = (i: number) => partKey("tank", "ds", 0, "B1", i);
  const chunk = (index: number, o: Partial<ChunkState>): ChunkState => ({ index, plainSize: 10, blake3: "b", cipherSize: 20, sha256: "s", uploaded: false, ...o });
  const { uploader, state, aborted } = uploaderWith(
    [chunk(0, { uploaded: true, multipart: mp("u0") }), chunk(1, { multipart: mp("u1") }), chunk(2, { multipart: mp("u2") }), chunk(3, {})],
    [{ index: 3, uploadId: "s3" }],
  );
  await uploader.abortLost(new Set([1]));
  expect(aborted.sort()).toEqual([`${key(2)} u2`, `${key(3)} s3`]);
  expect(state.sealingUploads).toBeUndefined();
  expect(state.chunks[0]!.multipart?.uploadId).toBe("u0");
  expect(state.chunks[1]!.multipart?.uploadId).toBe("u1"); // continued from disk
  expect(state.chunks[2]!.multipart).toBeUndefined(); // sealed again with a new key: never continued
});

test("intactOnDisk: only chunks not yet stored whose spill file has the recorded size and SHA-256", async () => {
  const spill = mkdtempSync(join(tmpdir(), "zrb-upload-resume-"));
  try {
    const bytes = (i: number) => new TextEncoder().encode(`encrypted part ${i} `.repeat(10));
    const rec = (index: number, o: Partial<ChunkState> = {}): ChunkState => {
      const b = bytes(index);
      writeFileSync(join(spill, partFileName(index)), b);
      return { index, plainSize: 10, blake3: "b", cipherSize: b.length, sha256: createHash("sha256").update(b).digest("hex"), uploaded: false, ...o };
    };
    const stored = rec(0, { uploaded: true }); // its file left behind: already in the store
    const whole = rec(1);
    const other = rec(2, { sha256: "0".repeat(64) });
    const shorter = rec(3);
    writeFileSync(join(spill, partFileName(3)), bytes(3).subarray(0, 50)); // cut short by a power loss
    const { uploader } = uploaderWith([stored, whole, other, shorter]);
    expect((await uploader.intactOnDisk(spill)).map((c) => c.index)).toEqual([1]);
  } finally {
    rmSync(spill, { recursive: true, force: true });
  }
});
