import { describe, expect, test } from "bun:test";
import { parseManifest, type Manifest } from "../../../src/records/manifest.ts";
import { partKey } from "../../../src/store/layout.ts";
import { advanceHeads, chooseParent, headsFromManifests, headsProblem } from "../../../src/records/heads.ts";
import YAML from "yaml";

let t = 0;
function m(level: number, id: string, extra: Partial<Manifest> = {}): Manifest {
  t++;
  return {
    format: "zrb-manifest/1",
    backupId: id,
    pool: "tank",
    dataset: "home",
    level,
    snapshot: { name: `tank/home@zrb_level${level}_${id}`, guid: String(1000 + t) },
    parent: null,
    send: { flags: [], zfs: "test" },
    stream: { size: 0, blake3: "0".repeat(64) },
    recipients: [],
    storageClass: "STANDARD",
    chunkSize: 1,
    parts: [],
    tool: { name: "zrb", version: "t" },
    host: "h",
    startedAt: new Date(t * 1000).toISOString(),
    finishedAt: new Date(t * 1000).toISOString(),
    ...extra,
  };
}

describe("dump(8) level semantics", () => {
  test("repeated level 1 is a differential against the last full", () => {
    let h = headsFromManifests([m(0, "a"), m(1, "b")]);
    expect(chooseParent(h, 1)?.backupId).toBe("a");
    h = advanceHeads(h, m(1, "c"));
    expect(chooseParent(h, 1)?.backupId).toBe("a");
  });
  test("1→2→3→4 is an incremental chain", () => {
    const h = headsFromManifests([m(0, "a"), m(1, "b"), m(2, "c"), m(3, "d")]);
    expect(chooseParent(h, 4)?.backupId).toBe("d");
    expect(chooseParent(h, 3)?.backupId).toBe("c");
    expect(chooseParent(h, 2)?.backupId).toBe("b");
  });
  test("a new full makes every recorded level above it stale", () => {
    const h = headsFromManifests([m(0, "a"), m(1, "b"), m(2, "c"), m(0, "e")]);
    expect(Object.keys(h.levels)).toEqual(["0"]);
    expect(chooseParent(h, 2)?.backupId).toBe("e");
  });
  test("a level may skip levels: level 3 after level 1 uses the level 1", () => {
    const h = headsFromManifests([m(0, "a"), m(1, "b")]);
    expect(chooseParent(h, 3)?.backupId).toBe("b");
  });
  test("times compare as instants, not as text: a head finished at :05.5 is newer than one at :05 (no fraction), and :05.1 and :05.100 are the same instant", () => {
    // Text order puts "…:05Z" after "…:05.5Z"; another writer may leave out the fraction.
    const h = headsFromManifests([m(0, "a", { finishedAt: "2026-12-01T00:00:05Z" }), m(1, "b", { finishedAt: "2026-12-01T00:00:05.5Z" })]);
    expect(chooseParent(h, 2)?.backupId).toBe("b");
    const same = headsFromManifests([m(0, "c", { finishedAt: "2026-12-01T00:00:05.1Z" }), m(1, "d", { finishedAt: "2026-12-01T00:00:05.100Z" })]);
    // The same instant: the higher level wins, as for equal texts.
    expect(chooseParent(same, 2)?.backupId).toBe("d");
  });
  test("no lower level: no parent", () => {
    expect(chooseParent(headsFromManifests([]), 1)).toBeNull();
    expect(chooseParent(headsFromManifests([m(2, "x")]), 1)).toBeNull();
  });
});

describe("manifest parsing refuses what could lead outside the backup", () => {
  const good = () => {
    const x = m(0, "20260101T000000Z-L0-abcdef");
    x.parts = [{ index: 0, key: partKey("tank", "home", 0, x.backupId, 0), plainSize: 5, cipherSize: 100, sha256: "a".repeat(64), blake3: "b".repeat(64) }];
    x.stream = { size: 5, blake3: "c".repeat(64) };
    return x;
  };
  test("a valid manifest parses", () => {
    expect(parseManifest(YAML.stringify(good()), "k", { pool: "tank", dataset: "home" }).parts.length).toBe(1);
  });
  for (const [what, key] of [
    ["parent directory", "data/tank/home/level0/20260101T000000Z-L0-abcdef/../../../../etc/passwd"],
    ["another dataset", "data/tank/other/level0/20260101T000000Z-L0-abcdef/part-000000.age"],
    ["absolute", "/etc/passwd"],
  ] as const)
    test(`a part key pointing to ${what} is rejected`, () => {
      const x = good();
      x.parts[0]!.key = key;
      expect(() => parseManifest(YAML.stringify(x), "k", { pool: "tank", dataset: "home" })).toThrow(/is outside/);
    });
  test("sizes that do not add up are rejected", () => {
    const x = good();
    x.stream.size = 6;
    expect(() => parseManifest(YAML.stringify(x), "k", { pool: "tank", dataset: "home" })).toThrow(/add up to 5 bytes/);
  });
  test("a manifest of another dataset is rejected", () => {
    expect(() => parseManifest(YAML.stringify(good()), "k", { pool: "tank", dataset: "x" })).toThrow(/describes tank\/home/);
  });
  const parse = (x: unknown, key = "k") => () => parseManifest(YAML.stringify(x), key, { pool: "tank", dataset: "home" });
  test("text from the bucket must be names of this dataset and printable", () => {
    for (const name of ["tank/home@a\u001b[2J", "tank/home@a\nb", "tank/other@a", "tank/home", "tank/home@", "tank/home@a/b"]) {
      const x = good();
      x.snapshot.name = name;
      expect(parse(x)).toThrow(/snapshot is not a snapshot of tank\/home/);
    }
    const h = good();
    h.host = "nas\u001b]0;pwned\u0007";
    expect(parse(h)).toThrow(/bad host/);
    const g = good();
    g.snapshot.guid = "12a";
    expect(parse(g)).toThrow(/numeric guid/);
  });
  test("a manifest stored under another backup id's key is rejected", () => {
    expect(parse(good(), "manifests/tank/home/20260101T000000Z-L0-000000.manifest.yaml")).toThrow(/stored as 20260101T000000Z-L0-000000/);
    expect(parse(good(), "manifests/tank/home/20260101T000000Z-L0-abcdef.manifest.yaml")).not.toThrow();
  });
  test("a rekeyed part's rewrap record: only in a zrb-manifest/2 manifest, and well-formed", () => {
    const rewrap = { prefixSize: 3, prefixSha256: "a".repeat(64), origin: "YWdl" };
    const x = { ...good(), format: "zrb-manifest/2" };
    x.parts[0] = { ...x.parts[0]!, rewrap };
    expect(parse(x)).not.toThrow();
    expect(parse({ ...x, format: "zrb-manifest/1" })).toThrow(/rewrap record in a zrb-manifest\/1 manifest/);
    for (const bad of [{ ...rewrap, prefixSize: 0 }, { ...rewrap, prefixSize: 10 ** 9 }, { ...rewrap, prefixSha256: "x" }, { ...rewrap, origin: "not base64!" }, "yes"]) {
      const y = { ...x, parts: [{ ...x.parts[0]!, rewrap: bad as any }] };
      expect(parse(y)).toThrow(/malformed rewrap record/);
    }
  });
  test("a part key must be a part directly inside the backup's own prefix, and parts come in index order", () => {
    const dp = partKey("tank", "home", 0, good().backupId, 0).replace(/[^/]*$/, "");
    for (const key of [`${dp}..`, `${dp}sub/part-000000.age`]) {
      const x = good();
      x.parts[0]!.key = key;
      expect(parse(x)).toThrow(/is outside/);
    }
    const x = good();
    x.parts[0]!.index = 1;
    expect(parse(x)).toThrow(/part 0 has index 1/);
  });
  test("a manifest of another pool is rejected", () => {
    expect(() => parseManifest(YAML.stringify(good()), "k", { pool: "tank2", dataset: "home" })).toThrow(/describes tank\/home/);
  });
  test("a level 0 has no parent; a level N's parent is of a lower level", () => {
    const parent = { name: "tank/home@zrb_level0_x", guid: "7", backupId: "20251231T000000Z-L0-abcdef", level: 0 };
    expect(parse({ ...good(), parent })).toThrow(/a level-0 backup has a parent/);
    const level1 = (p: typeof parent) => {
      const x = { ...good(), level: 1, parent: p };
      x.parts[0]!.key = partKey("tank", "home", 1, x.backupId, 0);
      return x;
    };
    expect(parse(level1(parent))).not.toThrow();
    expect(parse(level1({ ...parent, level: 1 }))).toThrow(/level 1 needs a parent/);
  });
  test("a file catalog must be one of this dataset's", () => {
    const catalog = { key: "manifests/tank/home/20260101T000000Z-L0-abcdef.catalog.age", size: 10, sha256: "a".repeat(64), entries: 1, kind: "full" };
    expect(parse({ ...good(), catalog })).not.toThrow();
    for (const key of ["manifests/tank/other/20260101T000000Z-L0-abcdef.catalog.age", "data/tank/home/level0/20260101T000000Z-L0-abcdef/part-000000.age"])
      expect(parse({ ...good(), catalog: { ...catalog, key } })).toThrow(/is not a file catalog of tank\/home/);
  });
  test("a newer format says so; level > 0 needs a parent of this dataset", () => {
    const n = { ...good(), format: "zrb-manifest/3" };
    expect(parse(n)).toThrow(/written by a newer zrb/);
    const l = { ...good(), level: 1 };
    expect(parse(l)).toThrow(/level 1 needs a parent/);
  });
});

describe("heads.yaml shape", () => {
  test("a good heads file passes; forged or malformed ones are named", () => {
    const h = headsFromManifests([m(0, "a1")]);
    expect(headsProblem(h, "tank/home")).toBeUndefined();
    expect(headsProblem({ ...h, levels: { "0": { ...h.levels["0"]!, snapshot: { name: "tank/other@x", guid: "1" } } } }, "tank/home")).toContain("not one of tank/home");
    expect(headsProblem({ format: "zrb-heads/1", levels: { "0": { backupId: 5 } } }, "tank/home")).toContain("bad backup id");
    expect(headsProblem("text", "tank/home")).toBe("it is not a mapping");
    expect(headsProblem({ format: "zrb-heads/1", levels: [] }, "tank/home")).toBe("it has no levels");
    for (const sequence of [-1, 1.5, "7"]) expect(headsProblem({ ...h, sequence }, "tank/home")).toBe("its sequence is not a whole number");
  });
});
