/**
 * The bucket layout (store/layout.ts): the keys zrb writes, and the predicates that say which
 * listed keys belong to a dataset. Prune, cleanup and orphan removal delete what these accept,
 * so a child dataset's objects (which sit below its parent's prefixes) must never pass as the
 * parent's.
 */
import { describe, expect, test } from "bun:test";
import { datasetDataPrefix, isManifestKey, isMarkerKey, isNewBackupId, isPartKey, layoutNameProblem, manifestDir, manifestKey, markerKey, newBackupId, partKey } from "../../../src/store/layout.ts";

const ID = "20261124T023000Z-L0-3fa9c2";

describe("layout", () => {
  test("a part key: zero-padded index, so keys sort in stream order", () => {
    expect(partKey("tank", "ds", 0, ID, 42)).toBe(`data/tank/ds/level0/${ID}/part-000042.age`);
    const keys = [1, 10, 9, 100_000, 99_999].map((i) => partKey("tank", "ds", 1, ID, i));
    expect([...keys].sort()).toEqual([1, 9, 10, 99_999, 100_000].map((i) => partKey("tank", "ds", 1, ID, i)));
  });

  test("isPartKey: the dataset's own parts, never a child's (even a child named like a level)", () => {
    const base = datasetDataPrefix("tank", "ds");
    expect(isPartKey(base, partKey("tank", "ds", 3, ID, 0))).toBe(true);
    expect(isPartKey(base, partKey("tank", "ds/level0", 0, ID, 0))).toBe(false);
    expect(isPartKey(base, partKey("tank", "ds/child", 0, ID, 0))).toBe(false);
    expect(isPartKey(base, partKey("tank", "other", 0, ID, 0))).toBe(false);
  });

  test("isManifestKey / isMarkerKey: only files directly in the dataset's directory, not a child's", () => {
    const dir = manifestDir("tank", "ds");
    expect(isManifestKey(dir, manifestKey("tank", "ds", ID))).toBe(true);
    expect(isManifestKey(dir, manifestKey("tank", "ds/child", ID))).toBe(false);
    expect(isManifestKey(dir, markerKey("tank", "ds", ID))).toBe(false);
    expect(isMarkerKey(dir, markerKey("tank", "ds", ID))).toBe(true);
    expect(isMarkerKey(dir, markerKey("tank", "ds/child", ID))).toBe(false);
    expect(isMarkerKey(dir, manifestKey("tank", "ds", ID))).toBe(false);
  });

  test("a child may not be named like the files beside it (.yaml, .age)", () => {
    for (const n of ["heads.yaml", "tree.yaml", "part-000000.age", `${ID}.catalog.age`]) expect(layoutNameProblem(n)).toBeString();
    for (const n of ["photos", "level0", "yaml", "age.d"]) expect(layoutNameProblem(n)).toBeUndefined();
  });
});

describe("isNewBackupId: the local directories cleanup may remove", () => {
  test("exactly the names newBackupId gives; a look-alike with anything before or after is not zrb's", () => {
    for (const level of [0, 1, 9, 12]) expect(isNewBackupId(newBackupId(level))).toBe(true);
    expect(isNewBackupId(ID)).toBe(true);
    for (const n of [`${ID}.old`, `${ID}-keep`, `x${ID}`, `${ID}/`, "20261124T023000Z-L0-3FA9C2", "20261124T023000Z-L0-3fa9c", "20261124T0230Z-L0-3fa9c2", "notes", ""]) expect({ n, ok: isNewBackupId(n) }).toEqual({ n, ok: false });
  });
});
