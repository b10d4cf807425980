/**
 * deleteOrLeave (pipeline/backup/finish.ts), which cleanup, prune, rekey and a discarded backup
 * delete through: only what the store refuses for good (object lock, a role without delete
 * right) is left with a warning; any other failure is the run's failure, never a success that
 * left objects behind.
 */
import { expect, test } from "bun:test";
import { deleteOrLeave } from "../../../src/pipeline/backup/finish.ts";
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
