/**
 * The file catalog (records/file-catalog.ts) and what `zrb find` does with it, without zfs or a
 * bucket: the format round-trips (odd names too) and refuses damage, its size per entry for a
 * large listing, glob matching as restic's find, walks compared into change lists, and a chain
 * of full + change catalogs rebuilt into each point's files.
 */
import { describe, expect, test } from "bun:test";
import { catalogProblem, decodeCatalog, encodeCatalog, openCatalog, sealCatalog, sha256Hex, type FileCatalog, type FileEntry } from "../../../src/records/file-catalog.ts";
import { generateKeyPair } from "../../../src/crypto/keys.ts";
import { compileGlob, globProblem } from "../../../src/pipeline/files/glob.ts";
import { applyCatalog } from "../../../src/pipeline/files/state.ts";
import { compare } from "../../../src/pipeline/files/listing.ts";
import { ZrbError } from "../../../src/util/errors.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { LocalStore } from "../../../src/store/local.ts";
import { catalogKey, manifestKey, partKey } from "../../../src/store/layout.ts";
import { MANIFEST_FORMAT, type Manifest } from "../../../src/records/manifest.ts";
import { NO_TRUST } from "../../../src/records/trust.ts";
import { findFiles, restorePointsHolding } from "../../../src/pipeline/files/find.ts";
import { verifyKeyOf, type SigningKey } from "../../../src/crypto/signing.ts";
import { signManifest, type Trust } from "../../../src/records/trust.ts";

const f = (path: string, size = 1, mtime = 1_700_000_000, type: FileEntry["type"] = "f"): FileEntry => ({ path, type, size, mtime });
const del = (path: string) => f(path, 0, 0, "-");

describe("catalog format", () => {
  test("round-trips entries (names with tab, newline, backslash, unicode), sorted by path", () => {
    const entries = [f("b/x.txt", 5), f("a", 0, 1, "d"), f("a/we\tird\nna\\me ü.jpg", 7), f("link", 4, 2, "l"), del("gone")];
    const back = decodeCatalog(encodeCatalog({ kind: "changes", entries }), "t");
    expect(back.kind).toBe("changes");
    expect(back.entries.map((e) => e.path)).toEqual(["a", "a/we\tird\nna\\me ü.jpg", "b/x.txt", "gone", "link"]);
    expect(back.entries.find((e) => e.path === "gone")!.type).toBe("-");
    expect(back.entries.find((e) => e.path === "b/x.txt")).toEqual(f("b/x.txt", 5));
  });

  test("damage is an integrity error naming the catalog; sealed catalogs open only with the key and the manifest's hash", async () => {
    expect(() => decodeCatalog(new Uint8Array([1, 2, 3]), "k1")).toThrow(/k1 is corrupt/);
    const bad = Bun.zstdCompressSync(new TextEncoder().encode("zrb-file-catalog/1\tfull\t2\nf\t1\t1\ta\n"));
    expect(() => decodeCatalog(bad, "k2")).toThrow(/1 entries, its header says 2/);
    const { identityFileText, recipient } = await generateKeyPair();
    const id = identityFileText.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-"))!;
    const cat: FileCatalog = { kind: "full", entries: [f("x"), f("y/z", 3)] };
    const sealed = await sealCatalog(cat, [recipient]);
    const ref = { key: "manifests/p/d/x.catalog.age", size: sealed.length, sha256: sha256Hex(sealed), entries: 2, kind: "full" as const };
    expect((await openCatalog(sealed, ref, [id])).entries).toEqual(cat.entries);
    const tampered = sealed.slice();
    tampered[tampered.length - 1]! ^= 1;
    const err = await openCatalog(tampered, ref, [id]).catch((e) => e);
    expect(err).toBeInstanceOf(ZrbError);
    expect((err as ZrbError).exitCode).toBe(7);
    expect((err as Error).message).toMatch(/SHA-256 .* its manifest says/);
    const other = (await generateKeyPair()).identityFileText.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-"))!;
    expect(await openCatalog(sealed, ref, [other]).catch((e) => e.exitCode)).toBe(8);
  });

  test("a catalog that is not the one its manifest counts (entries or kind) is refused, exit 7, naming both", async () => {
    const { identityFileText, recipient } = await generateKeyPair();
    const id = identityFileText.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-"))!;
    const sealed = await sealCatalog({ kind: "full", entries: [f("x"), f("y/z", 3)] }, [recipient]);
    // Size and SHA-256 are the manifest's: only the count (or the kind) it signed disagrees.
    const ref = { key: "manifests/p/d/x.catalog.age", size: sealed.length, sha256: sha256Hex(sealed), entries: 2, kind: "full" as const };
    const cases: [Partial<typeof ref> | { kind: "changes" }, string][] = [
      [{ entries: 3 }, "holds 2 full entries, its manifest says 3 full"],
      [{ entries: 1 }, "holds 2 full entries, its manifest says 1 full"],
      [{ entries: 0 }, "holds 2 full entries, its manifest says 0 full"],
      [{ kind: "changes" }, "holds 2 full entries, its manifest says 2 changes"],
    ];
    for (const [wrong, why] of cases) {
      const err = await openCatalog(sealed, { ...ref, ...wrong }, [id]).catch((e) => e);
      expect(err).toBeInstanceOf(ZrbError);
      expect((err as ZrbError).exitCode).toBe(7);
      expect((err as Error).message).toBe(`file catalog ${ref.key} ${why}`);
    }
    // zrb verify (with the key) reports it as the catalog's problem rather than throwing.
    const store = new LocalStore(join(mkdtempSync(join(tmpdir(), "zrb-cat-")), "store"));
    await store.put(ref.key, sealed);
    expect(await catalogProblem(store, { ...ref, entries: 3 }, [id])).toBe(`file catalog ${ref.key} holds 2 full entries, its manifest says 3 full`);
    expect(await catalogProblem(store, ref, [id])).toBeUndefined();
    // A truncated object is named by its size before any hashing or decryption.
    const short = await openCatalog(sealed.slice(0, -1), ref, [id]).catch((e) => e);
    expect((short as ZrbError).exitCode).toBe(7);
    expect((short as Error).message).toContain(`is ${sealed.length - 1} bytes, its manifest says ${sealed.length}`);
  });

  test("a malformed line is refused by its line number", () => {
    const plain = (line: string) => Bun.zstdCompressSync(new TextEncoder().encode(`zrb-file-catalog/1\tfull\t2\nf\t1\t1\ta\n${line}\n`));
    for (const line of ["f\t-1\t1\tb", "f\t1\t1\t", "f\t1\t1\tb\textra", "x\t1\t1\tb", "f\t1.5\t1\tb", "f\t1\tyesterday\tb", "f\t1\t1"]) {
      expect(() => decodeCatalog(plain(line), "k3")).toThrow(`file catalog k3 is corrupt: line 3 is malformed`);
    }
    expect(decodeCatalog(plain("l\t0\t0\tb"), "k3").entries.map((e) => e.path)).toEqual(["a", "b"]);
  });

  test("100k synthetic entries: bytes per entry, full and as a small change list", async () => {
    const entries: FileEntry[] = [];
    for (let d = 0; d < 1000; d++) for (let i = 0; i < 100; i++) entries.push(f(`home/user${d % 20}/photos/${2000 + (d % 25)}/album-${d}/IMG_${String(i).padStart(5, "0")}.jpg`, 1_000_000 + ((d * 7919 + i * 104729) % 9_000_000), 1_500_000_000 + d * 86_400 + i * 37));
    const { recipient } = await generateKeyPair();
    const sealed = await sealCatalog({ kind: "full", entries }, [recipient]);
    const perEntry = sealed.length / entries.length;
    console.log(`file catalog: 100000 entries -> ${sealed.length} bytes sealed (${perEntry.toFixed(2)} bytes/entry)`);
    expect(perEntry).toBeLessThan(20);
    const changes = await sealCatalog({ kind: "changes", entries: entries.slice(0, 200) }, [recipient]);
    console.log(`file catalog: 200 changes -> ${changes.length} bytes sealed`);
    expect(changes.length).toBeLessThan(8 * 1024);
  });
});

describe("glob", () => {
  test("a name without '/' matches at any depth; with '/' the whole path", () => {
    const name = compileGlob("*.jpg");
    expect(name("a.jpg")).toBe(true);
    expect(name("x/y/a.jpg")).toBe(true);
    expect(name("x/a.jpg/b")).toBe(false);
    const exact = compileGlob("cat.jpg");
    expect(exact("deep/er/cat.jpg")).toBe(true);
    expect(exact("deep/er/cat.jpgx")).toBe(false);
    const anchored = compileGlob("photos/*/cat?.jpg");
    expect(anchored("photos/2019/cat1.jpg")).toBe(true);
    expect(anchored("x/photos/2019/cat1.jpg")).toBe(false);
    expect(anchored("photos/2019/sub/cat1.jpg")).toBe(false);
    const deep = compileGlob("/photos/**/*.png");
    expect(deep("photos/a.png")).toBe(true);
    expect(deep("photos/a/b/c.png")).toBe(true);
    expect(compileGlob("img_[0-9].jpg")("a/img_3.jpg")).toBe(true);
    expect(compileGlob("a+b (1).txt")("a+b (1).txt")).toBe(true);
    expect(globProblem("")).toMatch(/empty/);
    expect(globProblem("../etc")).toMatch(/'\.\.'/);
  });
});

describe("glob: exact, and never across a '/'", () => {
  test("'?' and a set are one character of a name, never the '/' between names", () => {
    expect(compileGlob("x/a?c")("x/abc")).toBe(true);
    expect(compileGlob("x/a?c")("x/a/c")).toBe(false);
    expect(compileGlob("x/a[!b]c")("x/adc")).toBe(true);
    expect(compileGlob("x/a[!b]c")("x/abc")).toBe(false);
    expect(compileGlob("x/a[!b]c")("x/a/c")).toBe(false);
    expect(compileGlob("x/a[^b]c")("x/a/c")).toBe(false);
    expect(compileGlob("x/a[+-0]c")("x/a/c")).toBe(false); // a range that spans '/' (0x2b…0x30)
    expect(compileGlob("x/a[+-0]c")("x/a-c")).toBe(true);
    expect(compileGlob("img_[!0-9].jpg")("d/img_x.jpg")).toBe(true);
    expect(compileGlob("img_[!0-9].jpg")("d/img_3.jpg")).toBe(false);
  });

  test("case matters; '.' is a dot; a name pattern is the whole name, a path pattern the whole path", () => {
    expect(compileGlob("*.JPG")("d/a.jpg")).toBe(false);
    expect(compileGlob("Photos/*")("photos/a")).toBe(false);
    expect(compileGlob("cat.jpg")("d/bobcat.jpg")).toBe(false);
    expect(compileGlob("cat.jpg")("d/cat_jpg")).toBe(false);
    expect(compileGlob("photos/*")("photos/2019")).toBe(true);
    expect(compileGlob("photos/*")("photos/2019/a.jpg")).toBe(false);
    expect(compileGlob("photos/2019")("photos/2019/a.jpg")).toBe(false);
  });

  test("a lone '[' is itself; a blank pattern and a reversed range are refused", () => {
    expect(compileGlob("a[b")("x/a[b")).toBe(true);
    expect(compileGlob("x/a[b")("x/a[b")).toBe(true);
    expect(globProblem("a[b")).toBeUndefined();
    expect(globProblem("  ")).toMatch(/empty/);
    expect(globProblem("[z-a].txt")).toMatch(/not a valid glob/);
  });
});

describe("changes and chains", () => {
  test("compare: new, modified and deleted entries; a deleted directory once", () => {
    const before = [f("a", 1), f("b", 1), f("d", 0, 1, "d"), f("d/x", 1), f("d/y", 1)];
    const after = [f("a", 1), f("b", 2), f("c", 1)];
    expect(compare(before, after).map((e) => `${e.type}:${e.path}`)).toEqual(["f:b", "f:c", "-:d"]);
  });

  test("level 0 full + level 1 + level 2 changes rebuild each point; keep filters", () => {
    const l0 = applyCatalog(null, { kind: "full", entries: [f("keep.txt"), f("old.jpg"), f("dir", 0, 1, "d"), f("dir/a.jpg"), f("dir/b.txt")] }, () => true);
    const l1 = applyCatalog(l0, { kind: "changes", entries: [del("old.jpg"), del("dir"), f("new.jpg", 9)] }, () => true);
    const l2 = applyCatalog(l1, { kind: "changes", entries: [f("keep.txt", 42), f("dir", 0, 2, "d"), f("dir/c.jpg")] }, () => true);
    expect([...l0.keys()].sort()).toEqual(["dir", "dir/a.jpg", "dir/b.txt", "keep.txt", "old.jpg"]);
    expect([...l1.keys()].sort()).toEqual(["keep.txt", "new.jpg"]);
    expect([...l2.keys()].sort()).toEqual(["dir", "dir/c.jpg", "keep.txt", "new.jpg"]);
    expect(l2.get("keep.txt")!.size).toBe(42);
    expect(l0.has("old.jpg")).toBe(true);
    const jpg = compileGlob("*.jpg");
    const j0 = applyCatalog(null, { kind: "full", entries: [f("old.jpg"), f("dir/a.jpg"), f("x.txt")] }, jpg);
    expect([...applyCatalog(j0, { kind: "changes", entries: [del("dir")] }, jpg).keys()]).toEqual(["old.jpg"]);
    expect(() => applyCatalog(null, { kind: "changes", entries: [] }, jpg)).toThrow();
  });

  test("a deleted directory takes what is below it, not a sibling that shares its prefix; changes are kept only if they match", () => {
    const l0 = applyCatalog(null, { kind: "full", entries: [f("dir", 0, 1, "d"), f("dir/a"), f("dir2", 0, 1, "d"), f("dir2/b"), f("dir.txt")] }, () => true);
    expect([...applyCatalog(l0, { kind: "changes", entries: [del("dir")] }, () => true).keys()].sort()).toEqual(["dir.txt", "dir2", "dir2/b"]);
    const jpg = compileGlob("*.jpg");
    const j0 = applyCatalog(null, { kind: "full", entries: [f("a.jpg"), f("notes.txt")] }, jpg);
    expect([...applyCatalog(j0, { kind: "changes", entries: [f("b.jpg"), f("notes.txt", 2), f("new.txt")] }, jpg).keys()].sort()).toEqual(["a.jpg", "b.jpg"]);
  });
});

describe("points from a store's catalogs", () => {
  test("restorePointsHolding: the points whose rebuilt files hold a path, newest first; findFiles agrees and names a point without a catalog", async () => {
    const store = new LocalStore(join(mkdtempSync(join(tmpdir(), "zrb-cat-")), "store"));
    const { identityFileText, recipient } = await generateKeyPair();
    const id = identityFileText.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-"))!;
    let prev: Manifest | null = null;
    const ids: string[] = [];
    const cats: (FileCatalog | null)[] = [
      { kind: "full", entries: [f("a/keep.txt"), f("a/old.txt")] },
      { kind: "changes", entries: [del("a/old.txt")] },
      { kind: "changes", entries: [f("a/old.txt", 5)] },
      null,
    ];
    for (const [i, cat] of cats.entries()) {
      const bid = `2027030${i + 1}T020000Z-L${i}-aaaaa${i}`;
      const sealed = cat ? await sealCatalog(cat, [recipient]) : null;
      const m: Manifest = {
        format: MANIFEST_FORMAT, backupId: bid, pool: "tank", dataset: "ds", level: i,
        snapshot: { name: `tank/ds@s${i}`, guid: String(100 + i) },
        parent: prev && { name: prev.snapshot.name, guid: prev.snapshot.guid, backupId: prev.backupId, level: prev.level },
        send: { flags: [], zfs: "t" }, stream: { size: 1, blake3: "b".repeat(64) }, recipients: [recipient], storageClass: "STANDARD", chunkSize: 65536,
        parts: [{ index: 0, key: partKey("tank", "ds", i, bid, 0), plainSize: 1, cipherSize: 9, sha256: "a".repeat(64), blake3: "c".repeat(64) }],
        tool: { name: "zrb", version: "t" }, host: "h", startedAt: `2027-03-0${i + 1}T02:00:00Z`, finishedAt: `2027-03-0${i + 1}T02:00:00Z`,
        ...(sealed ? { catalog: { key: catalogKey("tank", "ds", bid), size: sealed.length, sha256: sha256Hex(sealed), entries: cat!.entries.length, kind: cat!.kind } } : {}),
      };
      if (sealed) await store.put(catalogKey("tank", "ds", bid), sealed);
      await store.put(partKey("tank", "ds", i, bid, 0), new Uint8Array(9));
      await store.put(manifestKey("tank", "ds", bid), YAML.stringify(m));
      ids.push(bid);
      prev = m;
    }
    expect((await restorePointsHolding(store, "tank", "ds", "a/old.txt", [id], NO_TRUST)).map((p) => p.backupId)).toEqual([ids[2]!, ids[0]!]);
    expect((await restorePointsHolding(store, "tank", "ds", "/a/keep.txt", [id], NO_TRUST)).map((p) => p.backupId)).toEqual([ids[2]!, ids[1]!, ids[0]!]);
    expect(await restorePointsHolding(store, "tank", "ds", "nope", [id], NO_TRUST)).toEqual([]);
    const r = await findFiles(store, "tank", "ds", { pattern: "old.txt", identities: [id], trust: NO_TRUST });
    expect(r.noCatalog).toEqual([{ backupId: ids[3]!, why: "it has no catalog" }]);
    expect(r.matches[0]!.versions.map((v) => [v.size, v.newest.backupId, v.points])).toEqual([[5, ids[2]!, 1], [1, ids[0]!, 1]]);
  });

  /** A chain of backups (level i is point i) in a fresh store, each with its catalog (null: none), finished on 1, 2, 3 … March 2027. */
  async function chainStore(points: { cat: FileCatalog | null; signer?: SigningKey; claim?: number }[]) {
    const store = new LocalStore(join(mkdtempSync(join(tmpdir(), "zrb-cat-")), "store"));
    const { identityFileText, recipient } = await generateKeyPair();
    const id = identityFileText.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-"))!;
    let prev: Manifest | null = null;
    const ids: string[] = [];
    const finished: string[] = [];
    for (const [i, { cat, signer, claim }] of points.entries()) {
      const bid = `2027030${i + 1}T020000Z-L${i}-bbbbb${i}`;
      const finishedAt = new Date(Date.UTC(2027, 2, i + 1, 2, 30)).toISOString(); // as a backup writes it
      const sealed = cat ? await sealCatalog(cat, [recipient]) : null;
      let m: Manifest = {
        format: MANIFEST_FORMAT, backupId: bid, pool: "tank", dataset: "ds", level: i,
        snapshot: { name: `tank/ds@s${i}`, guid: String(200 + i) },
        parent: prev && { name: prev.snapshot.name, guid: prev.snapshot.guid, backupId: prev.backupId, level: prev.level },
        send: { flags: [], zfs: "t" }, stream: { size: 1, blake3: "b".repeat(64) }, recipients: [recipient], storageClass: "STANDARD", chunkSize: 65536,
        parts: [{ index: 0, key: partKey("tank", "ds", i, bid, 0), plainSize: 1, cipherSize: 9, sha256: "a".repeat(64), blake3: "c".repeat(64) }],
        tool: { name: "zrb", version: "t" }, host: "h", startedAt: `2027-03-0${i + 1}T02:00:00Z`, finishedAt,
        ...(sealed ? { catalog: { key: catalogKey("tank", "ds", bid), size: sealed.length, sha256: sha256Hex(sealed), entries: claim ?? cat!.entries.length, kind: cat!.kind } } : {}),
      };
      if (signer) m = signManifest(m, signer);
      if (sealed) await store.put(catalogKey("tank", "ds", bid), sealed);
      await store.put(partKey("tank", "ds", i, bid, 0), new Uint8Array(9));
      await store.put(manifestKey("tank", "ds", bid), YAML.stringify(m));
      ids.push(bid);
      finished.push(finishedAt);
      prev = m;
    }
    return { store, id, ids, finished };
  }

  test("findFiles: paths sorted, a file deleted since named with where it was last seen, versions by size and mtime, each with its span", async () => {
    const T = 1_700_000_000;
    const { store, id, ids } = await chainStore([
      { cat: { kind: "full", entries: [f("z.jpg", 1, T), f("gone.jpg"), f("m/a.jpg"), f("a.jpg"), f("notes.txt")] } },
      { cat: { kind: "changes", entries: [f("z.jpg", 1, T + 60)] } }, // touched: same size, new mtime
      { cat: { kind: "changes", entries: [del("gone.jpg")] } },
      { cat: { kind: "changes", entries: [] } },
    ]);
    const r = await findFiles(store, "tank", "ds", { pattern: "*.jpg", identities: [id], trust: NO_TRUST });
    expect(r.searched).toBe(4);
    expect(r.newest?.backupId).toBe(ids[3]!);
    expect(r.matches.map((m) => m.path)).toEqual(["a.jpg", "gone.jpg", "m/a.jpg", "z.jpg"]);
    const by = new Map(r.matches.map((m) => [m.path, m]));
    const span = (p: string) => by.get(p)!.versions.map((v) => ({ mtime: v.mtime, newest: v.newest.backupId, oldest: v.oldest.backupId, points: v.points }));
    expect(by.get("a.jpg")!.deleted).toBe(false);
    expect(span("a.jpg")).toEqual([{ mtime: T, newest: ids[3]!, oldest: ids[0]!, points: 4 }]);
    expect(by.get("gone.jpg")!.deleted).toBe(true);
    expect(by.get("gone.jpg")!.lastSeen.backupId).toBe(ids[1]!);
    expect(span("gone.jpg")).toEqual([{ mtime: T, newest: ids[1]!, oldest: ids[0]!, points: 2 }]);
    expect(span("z.jpg")).toEqual([
      { mtime: T + 60, newest: ids[3]!, oldest: ids[1]!, points: 3 },
      { mtime: T, newest: ids[0]!, oldest: ids[0]!, points: 1 },
    ]);
  });

  test("findFiles --since: a point finished exactly then is searched, older ones are not", async () => {
    const { store, id, ids, finished } = await chainStore([
      { cat: { kind: "full", entries: [f("a.jpg"), f("gone.jpg")] } },
      { cat: { kind: "changes", entries: [del("gone.jpg")] } },
      { cat: { kind: "changes", entries: [] } },
    ]);
    const since = async (t: Date) => findFiles(store, "tank", "ds", { pattern: "*.jpg", identities: [id], trust: NO_TRUST, since: t });
    const r = await since(new Date(finished[1]!));
    expect(r.searched).toBe(2);
    expect(r.matches.map((m) => m.path)).toEqual(["a.jpg"]);
    expect(r.matches[0]!.versions.map((v) => [v.oldest.backupId, v.points])).toEqual([[ids[1]!, 2]]);
    expect((await since(new Date(Date.parse(finished[1]!) + 1))).searched).toBe(1);
    const none = await since(new Date(Date.parse(finished[2]!) + 1));
    expect([none.searched, none.newest, none.matches]).toEqual([0, null, []]);
  });

  test("findFiles: a point whose chain lacks a catalog is named, not guessed at", async () => {
    const { store, id, ids } = await chainStore([
      { cat: { kind: "full", entries: [f("a.jpg")] } },
      { cat: null },
      { cat: { kind: "changes", entries: [f("b.jpg")] } },
    ]);
    const r = await findFiles(store, "tank", "ds", { pattern: "*.jpg", identities: [id], trust: NO_TRUST });
    expect(r.searched).toBe(1);
    expect(r.noCatalog).toEqual([
      { backupId: ids[1]!, why: "it has no catalog" },
      { backupId: ids[2]!, why: "a backup of its chain has no catalog" },
    ]);
    expect(r.matches.map((m) => m.path)).toEqual(["a.jpg"]);
  });

  test("with a verification key, an unsigned (planted) backup's catalog is not searched", async () => {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const signer: SigningKey = { seed, verifyKey: verifyKeyOf(seed) };
    const { store, id, ids } = await chainStore([
      { cat: { kind: "full", entries: [f("a.jpg")] }, signer },
      { cat: { kind: "changes", entries: [f("b.jpg")] }, signer },
      { cat: { kind: "changes", entries: [f("planted.jpg")] } },
    ]);
    const trust: Trust = { verifyKeys: [signer.verifyKey], allowUnsigned: false, source: "test" };
    const r = await findFiles(store, "tank", "ds", { pattern: "*.jpg", identities: [id], trust });
    expect(r.searched).toBe(2);
    expect(r.newest?.backupId).toBe(ids[1]!);
    expect(r.matches.map((m) => m.path)).toEqual(["a.jpg", "b.jpg"]);
    expect(await restorePointsHolding(store, "tank", "ds", "planted.jpg", [id], trust)).toEqual([]);
    expect((await restorePointsHolding(store, "tank", "ds", "b.jpg", [id], trust)).map((p) => p.backupId)).toEqual([ids[1]!]);
  });

  test("zrb find refuses a catalog that holds fewer entries than its manifest signed (exit 7), naming it", async () => {
    const { store, id } = await chainStore([{ cat: { kind: "full", entries: [f("a.jpg"), f("b.jpg")] }, claim: 3 }]);
    const err = await findFiles(store, "tank", "ds", { pattern: "*.jpg", identities: [id], trust: NO_TRUST }).catch((e) => e);
    expect(err).toBeInstanceOf(ZrbError);
    expect((err as ZrbError).exitCode).toBe(7);
    expect((err as Error).message).toMatch(/^file catalog \S+\.catalog\.age holds 2 full entries, its manifest says 3 full$/);
  });
});
