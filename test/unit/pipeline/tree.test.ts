/**
 * The pure parts of recursive tasks: excludes, child names, order, the level of a child, the
 * known-children record, the outcome of a run, and which children a restore or verify of one run
 * takes, skips (and why) or fails — each decided without a pool, so each is checked here.
 */
import { describe, expect, test } from "bun:test";
import { compileExclude, excludePatternProblem } from "../../../src/zfs/exclude.ts";
import { childNameProblem, childTask, treeOrder } from "../../../src/pipeline/tree/children.ts";
import { childLevel, levelNote } from "../../../src/pipeline/tree/level.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { advanceTree, readTree, treeProblem, writeTree, TREE_FORMAT, type TreeChild, type TreeRecord } from "../../../src/records/tree.ts";
import { withStore } from "./helpers.ts";
import { treeError, worstExit } from "../../../src/pipeline/tree/outcome.ts";
import type { Heads } from "../../../src/records/heads.ts";
import type { Task } from "../../../src/config/config.ts";
import { inRun, runPoint } from "../../../src/pipeline/tree/point.ts";
import { bucketChildren, type KnownChild } from "../../../src/pipeline/tree/known.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import type { Catalog } from "../../../src/pipeline/catalog.ts";
import { ExitCode } from "../../../src/util/errors.ts";

describe("exclude", () => {
  test("globs match relative names; an excluded child takes its subtree with it", () => {
    const e = compileExclude(["scratch", "*/cache", "vm/**/tmp", "w?"]);
    const ex = (r: string) => e.excludes(r);
    expect(["scratch", "scratch/deep", "alice/cache", "alice/cache/x", "vm/tmp", "vm/a/b/tmp", "w1"].every(ex)).toBe(true);
    expect(["", "cache", "alice", "alice/cached", "vm", "vm/a", "w12", "scratchy"].some(ex)).toBe(false);
    expect(e.unmatched()).toEqual([]);
    const n = compileExclude(["nothing", "alice"]);
    n.excludes("alice/sub");
    expect(n.unmatched()).toEqual(["nothing", "alice"]); // only the child itself counts as a match
    n.excludes("alice");
    expect(n.unmatched()).toEqual(["nothing"]);
  });
  test("dots and spaces are literal", () => {
    const e = compileExclude(["a.b", "x y"]);
    expect(e.excludes("a.b")).toBe(true);
    expect(e.excludes("axb")).toBe(false);
    expect(e.excludes("x y")).toBe(true);
  });
  test("a pattern matches whole components from the task's dataset: no prefix, no '/' in a glob, never the dataset itself", () => {
    const e = compileExclude(["scratch", "*/cache", "a?c", "*"]);
    expect(["alice/scratch", "b/x/cache", "a/c"].map((r) => compileExclude(["scratch", "*/cache", "a?c"]).excludes(r))).toEqual([false, false, false]);
    expect(e.excludes("")).toBe(false);
    e.excludes("scratch"); // matched by "scratch" and "*": both count
    e.excludes("x/cache");
    e.excludes("abc");
    expect(e.unmatched()).toEqual([]);
  });
  test("bad patterns say why", () => {
    expect(excludePatternProblem("/a")).toContain("relative");
    expect(excludePatternProblem("a/")).toContain("end with");
    expect(excludePatternProblem("a//b")).toContain("empty");
    expect(excludePatternProblem("../a")).toContain('".."');
    expect(excludePatternProblem("a**")).toContain("whole component");
    expect(excludePatternProblem("a#b")).toContain('"#"');
    expect(excludePatternProblem("*/cache")).toBeUndefined();
  });
});

describe("children", () => {
  test("names zrb cannot use are refused with the reason", () => {
    expect(childNameProblem("")).toBeUndefined();
    expect(childNameProblem("alice/docs 2024")).toBeUndefined();
    expect(childNameProblem("..")).toContain('".." component');
    expect(childNameProblem("a/heads.yaml")).toContain(".yaml or .age");
    expect(childNameProblem("part-000000.age")).toContain(".yaml or .age");
    expect(childNameProblem("spill")).toContain("run directory");
    expect(childNameProblem("x/zrb.lock")).toContain("run directory");
  });
  test("tree order: parents before children, then by name component by component", () => {
    const names = ["b", "a/c", "", "a", "a-b", "a/b/c", "a/b"];
    expect(names.sort(treeOrder)).toEqual(["", "a", "a/b", "a/b/c", "a/c", "a-b", "b"]);
  });
  test("a child's task is the task with the child's dataset", () => {
    const t = { name: "t", pool: "tank", dataset: "home", fullName: "tank/home" } as Task;
    expect(childTask(t, "")).toBe(t);
    expect(childTask(t, "a/b")).toMatchObject({ name: "t", dataset: "home/a/b", fullName: "tank/home/a/b" });
    expect(childTask({ ...t, dataset: "", fullName: "tank" }, "x")).toMatchObject({ dataset: "x", fullName: "tank/x" });
  });
});

describe("the level of a child", () => {
  const heads = (levels: Heads["levels"]): Heads => ({ format: "zrb-heads/1", updatedAt: "", levels });
  const head = (guid: string) => ({ backupId: `id${guid}`, snapshot: { name: `p/a@s${guid}`, guid }, finishedAt: `2026-01-0${guid}T00:00:00Z` });
  const snap = (guid: string) => ({ name: `p/a@s${guid}`, short: `s${guid}`, guid, createtxg: BigInt(guid) });
  test("the asked level when there is a base on the pool", () => {
    expect(childLevel(1, heads({ "0": head("1") }), [snap("1"), snap("2")])).toEqual({ level: 1 });
    expect(childLevel(0, heads({}), [])).toEqual({ level: 0 });
  });
  test("level 0 for a new child, and for one whose base snapshot is gone", () => {
    const n = childLevel(2, heads({}), [snap("5")]);
    expect(n).toEqual({ level: 0, why: "new", asked: 2 });
    expect(levelNote(n)).toContain("level 0 instead of level 2");
    const g = childLevel(1, heads({ "0": head("1") }), [snap("9")]);
    expect(g).toMatchObject({ level: 0, why: "base-gone", base: "p/a@s1" });
    expect(levelNote(g)).toContain("no longer on the pool");
  });
  test("a child with backups but none below the asked level is not called new: the asked level, which its backup then refuses", () => {
    expect(childLevel(1, heads({ "1": head("1") }), [snap("1")])).toEqual({ level: 1 });
  });
});

describe("the known children (tree.yaml)", () => {
  const run = (at: string, backedUp: string[], onPool: string[], excluded: string[] = []) => ({
    at,
    backedUp: backedUp.map((rel) => ({ rel, type: "filesystem" as const })),
    onPool: new Set(onPool),
    excluded: new Set(excluded),
  });
  test("children are added when backed up, reported gone once, and come back", () => {
    const t1 = "2026-01-01T00:00:00.000Z";
    const t2 = "2026-01-02T00:00:00.000Z";
    const t3 = "2026-01-03T00:00:00.000Z";
    const t4 = "2026-01-04T00:00:00.000Z";
    const a = advanceTree(null, run(t1, ["", "a", "b"], ["", "a", "b", "c"]));
    expect(a.gone).toEqual([]);
    expect(a.next.children.map((c) => [c.name, c.since])).toEqual([["", t1], ["a", t1], ["b", t1]]);
    expect(treeProblem(a.next)).toBeUndefined();
    const b = advanceTree(a.next, run(t2, ["", "a", "c"], ["", "a", "c"])); // b destroyed, c (failed before) now backed up
    expect(b.gone.map((g) => [g.name, g.reason, g.gone])).toEqual([["b", "destroyed", t2]]);
    expect(b.next.children.find((c) => c.name === "c")!.since).toBe(t2);
    const c = advanceTree(b.next, run(t3, [""], ["", "a", "c"], ["a"])); // a excluded now; b not reported again
    expect(c.gone.map((g) => [g.name, g.reason])).toEqual([["a", "excluded"]]);
    const d = advanceTree(c.next, run(t4, ["", "b"], ["", "b", "a", "c"], ["a"])); // b created again
    expect(d.gone).toEqual([]);
    expect(d.next.children.find((x) => x.name === "b")).toEqual({ name: "b", type: "filesystem", since: t4 });
    expect(d.next.children.find((x) => x.name === "a")!.gone).toBe(t3);
  });
  test("a damaged record is refused with the reason", () => {
    const ok: TreeRecord = { format: TREE_FORMAT, updatedAt: "x", children: [{ name: "a", type: "filesystem", since: "2026-01-01T00:00:00Z" }] };
    expect(treeProblem(ok)).toBeUndefined();
    expect(treeProblem({ ...ok, format: "zrb-tree/9" })).toContain("unknown format");
    expect(treeProblem({ ...ok, children: [{ ...ok.children[0]!, name: "../x" }] })).toContain("bad name");
    expect(treeProblem({ ...ok, children: [ok.children[0]!, ok.children[0]!] })).toContain("twice");
    expect(treeProblem({ ...ok, children: [{ ...ok.children[0]!, since: "yesterday" }] })).toContain("since");
    expect(treeProblem({ ...ok, children: [{ ...ok.children[0]!, type: "snapshot" as "volume" }] })).toContain("bad type");
    expect(treeProblem({ ...ok, children: [{ ...ok.children[0]!, gone: "yesterday" }] })).toContain("bad gone time");
    expect(treeProblem({ ...ok, children: [{ ...ok.children[0]!, reason: "lost" as "excluded" }] })).toContain("bad reason");
  });
});

describe("outcomes", () => {
  test("the worst child's exit code; one line naming every failed child", () => {
    const o = (rel: string, exitCode: number) => ({ rel, dataset: `p/${rel}`, status: exitCode ? ("failed" as const) : ("ok" as const), exitCode, seconds: 0, message: exitCode ? `boom ${rel}` : undefined });
    const all = [o("", 0), o("a", 5), o("b", 7), o("c", 0)];
    expect(worstExit(all)).toBe(7);
    const e = treeError("backup of p", all)!;
    expect(e.exitCode).toBe(7);
    expect(e.message).toContain("2 of 4 children failed; b (p/b): boom b; also failed: a");
    expect(treeError("x", [o("", 0)])).toBeUndefined();
    // A skipped child is not a failure: no error, exit 0.
    expect(treeError("x", [o("", 0), { ...o("a", 0), status: "skipped" as const, message: "not in the tree at that run" }])).toBeUndefined();
  });
});

const treeCfg = { s3: { storageClass: { manifest: "STANDARD" } } } as Parameters<typeof writeTree>[0];

describe("tree.yaml in the store, signed", () => {
  test("written signed and read back with the NAS's key; another key, a move to another dataset or damage: not used", async () => {
    const { generateSigningKey, readSigningKey } = await import("../../../src/crypto/signing.ts");
    await withStore(async (store, dir) => {
      const keyFile = join(dir, "k");
      writeFileSync(keyFile, generateSigningKey("now").fileText, { mode: 0o600 });
      const signer = await readSigningKey(keyFile);
      const other = generateSigningKey("now").verifyKey;
      const rec: TreeRecord = { format: TREE_FORMAT, updatedAt: "2026-01-01T00:00:00.000Z", children: [{ name: "a", type: "filesystem", since: "2026-01-01T00:00:00.000Z" }] };
      await writeTree(treeCfg, store, "tank", "home", rec, signer);
      const mine = { verifyKeys: [signer.verifyKey], allowUnsigned: false, source: "signing_key" };
      expect((await readTree(store, "tank", "home", mine))?.children).toEqual(rec.children);
      expect(await readTree(store, "tank", "home", { ...mine, verifyKeys: [other] })).toBeNull();
      // The same signed bytes under another dataset's prefix do not pass there.
      const text = await store.get("manifests/tank/home/tree.yaml");
      await store.put("manifests/tank/work/tree.yaml", new TextDecoder().decode(text!));
      expect(await readTree(store, "tank", "work", mine)).toBeNull();
      await store.put("manifests/tank/home/tree.yaml", "format: zrb-tree/1\nchildren: {}\n");
      expect(await readTree(store, "tank", "home", { verifyKeys: [], allowUnsigned: true, source: "none" })).toBeNull();
      expect(await readTree(store, "tank", "nothing", mine)).toBeNull();
    });
  });
});

describe("a run's point, and whether a child was in it (restore and verify of a tree)", () => {
  const T = (d: number) => `2026-01-0${d}T00:00:00.000Z`;
  const m = (snap: string, startedAt: string) => ({ snapshot: { name: `tank/home/a@${snap}` }, startedAt }) as Manifest;
  const cat = (...ms: Manifest[]) => ({ manifests: new Map(ms.map((x, i) => [String(i), x])) }) as Catalog;
  const kid = (record?: TreeChild, excluded = false): KnownChild => ({ rel: "a", fs: "tank/home/a", excluded, ...(record ? { record } : {}) });
  const point = { snapshot: "s3", startedAt: T(3) };
  test("the run's time is its first backup's start, whichever child made it", () => {
    expect(runPoint("s3", [m("s3", T(5)), m("s2", T(1)), m("s3", T(4)), m("s3", T(6))])).toEqual({ snapshot: "s3", startedAt: T(4) });
    expect(runPoint("s9", [m("s3", T(4))])).toBeNull();
  });
  test("a child without a backup of the run is skipped only when it was not in that run, with the reason; else it fails", () => {
    expect(inRun(kid(), cat(m("s1", T(1)), m("s3", T(3))), point)).toEqual({ kind: "yes" });
    const why = (k: KnownChild, ...ms: Manifest[]) => {
      const r = inRun(k, cat(...ms), point);
      return r.kind === "skip" ? r.why : r.kind;
    };
    expect(why(kid(), m("s4", T(4)))).toBe("not in the tree at that run: its first backup is newer");
    expect(why(kid({ name: "a", type: "filesystem", since: T(1), gone: T(2), reason: "destroyed" }), m("s1", T(1)))).toBe(`not in the tree at that run: gone from the pool since ${T(2)}`);
    expect(why(kid({ name: "a", type: "filesystem", since: T(1), gone: T(2), reason: "excluded" }), m("s1", T(1)))).toBe(`not in the tree at that run: excluded since ${T(2)}`);
    // Destroyed and created again after the run: its old chain predates the run, its new one starts later.
    expect(why(kid({ name: "a", type: "filesystem", since: T(4) }), m("s1", T(1)), m("s4", T(4)))).toBe(`not in the tree at that run: backed up (again) only since ${T(4)}`);
    expect(why(kid({ name: "a", type: "filesystem", since: T(1) }, true), m("s1", T(1)))).toBe("excluded by the task now, and no backup of that run");
    // In the tree then (backed up before and since, not gone, not excluded): its backup is missing, never skipped.
    const missing = inRun(kid({ name: "a", type: "filesystem", since: T(1) }), cat(m("s1", T(1)), m("s4", T(4))), point);
    expect(missing.kind).toBe("missing");
    if (missing.kind === "missing") {
      expect(missing.error.exitCode).toBe(ExitCode.INTEGRITY);
      expect(missing.error.message).toContain("tank/home/a has no backup of @s3, although it was in the tree at that run");
    }
  });
});

describe("the known children in the bucket", () => {
  test("every dataset with a manifest or a tree.yaml entry, in tree order; names zrb cannot use left out; excluded ones marked", async () => {
    await withStore(async (store) => {
      for (const k of ["", "b/", "a-b/", "a/", "a/cache/", "x.yaml/", "b/c/"]) await store.put(`manifests/tank/home/${k}20260101T000000Z-L0-000000.manifest.yaml`, "m");
      await store.put("manifests/tank/home/junk/notes.txt", "not a manifest");
      const since = "2026-01-01T00:00:00.000Z";
      await writeTree(treeCfg, store, "tank", "home", { format: TREE_FORMAT, updatedAt: since, children: [{ name: "pruned", type: "filesystem", since, gone: since, reason: "destroyed" }] }, undefined);
      const task = { name: "home", pool: "tank", dataset: "home", fullName: "tank/home", exclude: ["*/cache"] } as Task;
      const { children } = await bucketChildren(store, task, { verifyKeys: [], allowUnsigned: true, source: "none" });
      expect(children.map((c) => [c.rel, c.fs, c.excluded, c.record?.reason ?? null])).toEqual([
        ["", "tank/home", false, null],
        ["a", "tank/home/a", false, null],
        ["a/cache", "tank/home/a/cache", true, null],
        ["a-b", "tank/home/a-b", false, null],
        ["b", "tank/home/b", false, null],
        ["b/c", "tank/home/b/c", false, null],
        ["pruned", "tank/home/pruned", false, "destroyed"],
      ]);
    });
  });
});
