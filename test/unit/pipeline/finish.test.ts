/**
 * deleteOrLeave (pipeline/backup/finish.ts), which cleanup, prune, rekey and a discarded backup
 * delete through: only what the store refuses for good (object lock, a role without delete
 * right) is left with a warning; any other failure is the run's failure, never a success that
 * left objects behind. And buildManifest, the manifest a backup commits: it never names a part
 * the run has not recorded as stored, nor parts that do not add up to the stream.
 */
import { expect, test } from "bun:test";
import { DEFAULTS, type Config } from "../../../src/config/config.ts";
import { buildManifest, deleteOrLeave } from "../../../src/pipeline/backup/finish.ts";
import type { ChunkState } from "../../../src/state/rundir.ts";
import { ExitCode, type ZrbError } from "../../../src/util/errors.ts";
import { backupState } from "./helpers.ts";
import { StoreError, type ObjectStore, type StoreErrorKind } from "../../../src/store/store.ts";

/** A store whose delete fails for the keys in `fail` with that error, and removes the others from `objects`. */
function store(objects: Set<string>, fail: Record<string, () => Error>): ObjectStore {
  return {
    location: "stub://bucket/",
    delete: async (k: string) => {
      if (fail[k]) throw fail[k]!();
      objects.delete(k);
    },
  } as unknown as ObjectStore;
}

const refused = (kind: StoreErrorKind) => () => new StoreError(kind, `${kind}: no`);

test("locked and access-denied objects are left and counted; the rest are deleted", async () => {
  const objects = new Set(["a", "b", "c", "d"]);
  const left = await deleteOrLeave(store(objects, { a: refused("locked"), c: refused("access-denied") }), ["a", "b", "c", "d"], "test objects");
  expect(left).toBe(2);
  expect([...objects].sort()).toEqual(["a", "c"]);
});

test.each(["transient", "permanent", "no-bucket"] as const)("any other store failure (%s) fails the call", async (kind) => {
  const objects = new Set(["a", "b"]);
  await expect(deleteOrLeave(store(objects, { a: refused(kind) }), ["a", "b"], "test objects")).rejects.toBeInstanceOf(StoreError);
  expect(objects.has("a")).toBe(true);
});

test("an error that is not a store error (a bug) fails the call", async () => {
  await expect(deleteOrLeave(store(new Set(["a"]), { a: () => new TypeError("boom") }), ["a"], "test objects")).rejects.toBeInstanceOf(TypeError);
});

const cfg = { s3: structuredClone(DEFAULTS.s3) } as Config;
const chunk = (index: number, o: Partial<ChunkState> = {}): ChunkState => ({ index, plainSize: 100, blake3: "b", cipherSize: 150, sha256: "s", uploaded: true, ...o });
const stream = (size: number) => ({ size, blake3: "x" });

function refusal(f: () => unknown): ZrbError {
  let err: ZrbError | undefined;
  try {
    f();
  } catch (e) {
    err = e as ZrbError;
  }
  expect(err?.exitCode).toBe(ExitCode.FAILURE);
  return err!;
}

test("buildManifest: every part from 0, each recorded as stored, adding up to the stream; anything else is no manifest (exit 1)", () => {
  const m = buildManifest(cfg, backupState({ chunks: [chunk(0), chunk(1)] }), stream(200), "2.3");
  expect(m.parts.map((p) => [p.index, p.cipherSize, p.sha256])).toEqual([[0, 150, "s"], [1, 150, "s"]]);
  expect(m.stream.size).toBe(200);
  expect(refusal(() => buildManifest(cfg, backupState({ chunks: [chunk(0), chunk(1, { uploaded: false })] }), stream(200), "2.3")).message).toContain("part(s) 1 not recorded as stored");
  const holed: ChunkState[] = [chunk(0)];
  holed[2] = chunk(2);
  expect(refusal(() => buildManifest(cfg, backupState({ chunks: holed }), stream(200), "2.3")).message).toContain("part(s) 1 not recorded as stored");
  expect(refusal(() => buildManifest(cfg, backupState({ chunks: [chunk(0), chunk(1)] }), stream(250), "2.3")).message).toContain("hold 200 bytes of the 250-byte stream");
  expect(refusal(() => buildManifest(cfg, backupState({ chunks: [chunk(0), chunk(1, { sha256: undefined })] }), stream(200), "2.3")).message).toContain("no manifest written");
  refusal(() => buildManifest(cfg, backupState({ chunks: [] }), stream(0), "2.3"));
});
