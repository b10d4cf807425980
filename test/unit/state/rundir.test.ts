import { describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import YAML from "yaml";
import { restoreLockPath, RunDir, stateProblem, stateText } from "../../../src/state/rundir.ts";
import { runDirNameProblem } from "../../../src/zfs/names.ts";

const FIXTURE = join(import.meta.dir, "..", "..", "fixtures", "v1-bucket", "backup_state.yaml");

describe("the run directory and its resume state", () => {
  test("paths: run/<pool>/<dataset>/ and what lives in it", () => {
    const rd = new RunDir("/var/lib/zrb", "tank", "home/photos");
    expect(rd.dir).toBe("/var/lib/zrb/run/tank/home/photos");
    expect(rd.lockPath).toBe("/var/lib/zrb/run/tank/home/photos/zrb.lock");
    expect(rd.statePath).toBe("/var/lib/zrb/run/tank/home/photos/backup_state.yaml");
    expect(rd.headsCachePath).toBe("/var/lib/zrb/run/tank/home/photos/last_backup_manifest.yaml");
    expect(rd.spillDir("X")).toBe("/var/lib/zrb/run/tank/home/photos/spill/X");
    expect(new RunDir("/b", "tank", "").dir).toBe("/b/run/tank");
  });

  test("restore lock names: readable when they fit, hashed when the encoded target exceeds 255 bytes (issue 20)", () => {
    expect(restoreLockPath("/b", "tank/restored")).toBe("/b/restore-scratch/tank%2Frestored.lock");
    const long = `tank/${"a/".repeat(60)}r:${":".repeat(60)}`; // 248 bytes, 486 encoded
    const p = restoreLockPath("/b", long);
    const name = basename(p);
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    expect(name).toStartWith("tank%2Fa%2Fa%2F");
    expect(name).toMatch(/~[0-9a-f]{64}\.lock$/);
    expect(dirname(p)).toBe("/b/restore-scratch");
    // one name per target: a neighbour with the same readable head gets another name; the tree's lock its own
    expect(restoreLockPath("/b", long + "x")).not.toBe(p);
    expect(restoreLockPath("/b", `${long}#tree`)).not.toBe(p);
    expect(restoreLockPath("/b", long)).toBe(p);
    // the cut never leaves half a %XX escape
    for (let n = 150; n < 175; n++) expect(basename(restoreLockPath("/b", `tank/${"x".repeat(n)}${":".repeat(90)}`))).toMatch(/^[A-Za-z0-9._%-]+~[0-9a-f]{64}\.lock$/);
    for (let n = 150; n < 175; n++) expect(basename(restoreLockPath("/b", `tank/${"x".repeat(n)}${":".repeat(90)}`)).split("~")[0]).not.toMatch(/%[0-9A-F]?$/);
  });

  test("a child dataset cannot take a name of its parent's run directory files", () => {
    for (const n of ["zrb.lock", "tree.lock", "backup_state.yaml", "last_backup_manifest.yaml", "spill"]) expect(runDirNameProblem(n)).toContain("a name zrb uses in its parent's run directory");
    for (const n of ["photos", "spill2", "lock", "yaml", "a.lock.d"]) expect(runDirNameProblem(n)).toBeUndefined();
  });

  /** A run directory holding the fixture's state file (written by zrb 0.1.0+8490ede, killed mid-backup). */
  const fixtureRunDir = () => {
    const rd = new RunDir(mkdtempSync(join(tmpdir(), "zrb-rundir-")), "zrbfx", "photos");
    mkdirSync(rd.dir, { recursive: true });
    cpSync(FIXTURE, rd.statePath);
    return rd;
  };

  test("a state file written by zrb 0.1.0+8490ede (killed mid-backup) is resumable as it is", async () => {
    const r = await fixtureRunDir().readState();
    expect(r.kind).toBe("ok");
    if (r.kind !== "ok") return;
    expect(r.state.backupId).toBe("20261126T022927Z-L3-7cf2fd");
    expect(r.state.parent?.backupId).toBe("20261126T022923Z-L2-b93ac6");
    expect(r.state.chunks.filter((c) => c?.uploaded).length).toBeGreaterThan(0);
  });

  test("the state as written reads back the same: chunk records one per line, holes as null; quotes, U+2028, DEL, a lone surrogate and non-ASCII kept", async () => {
    const rd = fixtureRunDir();
    const r = await rd.readState();
    if (r.kind !== "ok") throw new Error(`fixture: ${r.kind}`);
    const state = structuredClone(r.state);
    const c0 = state.chunks.find((c) => c)!;
    // Sealed out of order: index 7 recorded before 5 and 6.
    state.chunks[7] = { ...c0, index: 7, uploaded: false, multipart: { uploadId: 'a"b\\c: d\n# é\u2028\u2029\u0085\u007f\ud800\ufeff', partSize: 8 << 20, parts: [{ partNumber: 1, etag: '"0f"' }] } } as any;
    const text = stateText(state);
    const lines = text.slice(text.indexOf("\nchunks:\n") + 9).split("\n");
    expect(lines.length).toBe(state.chunks.length + 1);
    expect(lines.at(-1)).toBe("");
    const back = YAML.parse(text);
    expect(back).toEqual(JSON.parse(JSON.stringify(state)));
    expect(back.chunks[5]).toBeNull();
    rd.writeState(state);
    const again = await rd.readState();
    expect(again.kind).toBe("ok");
    if (again.kind === "ok") expect(again.state).toEqual(back);
    rd.removeState();
    expect((await rd.readState()).kind).toBe("none");
    rd.removeState();
    expect(stateText({ ...state, chunks: [] })).toEndWith("chunks: []\n");
    expect(YAML.parse(stateText({ ...state, chunks: [] })).chunks).toEqual([]);
  });

  test("unusable states are named, not misread", async () => {
    const base = mkdtempSync(join(tmpdir(), "zrb-rundir-"));
    const rd = new RunDir(base, "tank", "ds");
    mkdirSync(rd.dir, { recursive: true });
    expect((await rd.readState()).kind).toBe("none");
    for (const [text, why] of [
      ["format: zrb-state/1\nlevel: 1\n", "no valid backupId"],
      ["format: zrb-state/2\n", 'format "zrb-state/2"'],
      ["{ not yaml", "not valid YAML"],
      ["- a list", "not a mapping"],
    ] as const) {
      writeFileSync(rd.statePath, text);
      const r = await rd.readState();
      expect(r.kind).toBe("unusable");
      if (r.kind === "unusable") expect(r.why).toContain(why);
    }
    expect(stateProblem({ format: "zrb-state/1", backupId: "x", level: 0, pool: "tank", dataset: "other" }, "tank/ds")).toBe("it describes another dataset");
  });
  test("each malformed or foreign field makes the state unusable, named", () => {
    const good = YAML.parse(readFileSync(FIXTURE, "utf8"));
    const fs = "zrbfx/photos";
    expect(stateProblem(good, fs)).toBeUndefined();
    const chunk = good.chunks[0];
    const cases: [string, (s: any) => void, string][] = [
      ["backupId with a slash", (s) => (s.backupId = "../x"), "no valid backupId"],
      ["negative level", (s) => (s.level = -1), "no valid level"],
      ["fractional level", (s) => (s.level = 1.5), "no valid level"],
      ["a snapshot of another dataset", (s) => (s.snapshot.name = "zrbfx/other@zrb_level3_20261126T022926Z"), "no valid snapshot"],
      ["no snapshot", (s) => delete s.snapshot, "no valid snapshot"],
      ["a snapshot guid that is not a number", (s) => (s.snapshot.guid = "12ab"), "no valid snapshot"],
      ["a parent of another dataset", (s) => (s.parent.name = "zrbfx/other@zrb_level2_20261126T022923Z"), "bad parent"],
      ["a parent without a level", (s) => delete s.parent.level, "bad parent"],
      ["level 3 without a parent", (s) => (s.parent = null), "without a parent"],
      ["a send flag that is not a flag", (s) => (s.sendFlags = ["-w", "; rm -rf /"]), "bad send flags"],
      ["chunkSize 0", (s) => (s.chunkSize = 0), "no valid chunkSize"],
      ["no recipients", (s) => (s.recipients = []), "no recipients"],
      ["a bad early upload", (s) => (s.sealingUploads = [{ index: 1, uploadId: "" }]), "bad list of early uploads"],
      ["early uploads not a list", (s) => (s.sealingUploads = "x"), "bad list of early uploads"],
      ["a chunk under another index", (s) => (s.chunks[1] = { ...chunk, index: 0 }), "chunk 1 is malformed"],
      ["a chunk with a negative size", (s) => (s.chunks[0] = { ...chunk, plainSize: -1 }), "chunk 0 is malformed"],
      ["a chunk without its BLAKE3", (s) => (s.chunks[0] = { ...chunk, blake3: "x" }), "chunk 0 is malformed"],
      ["a chunk whose uploaded is a string", (s) => (s.chunks[0] = { ...chunk, uploaded: "yes" }), "chunk 0 is malformed"],
      ["a chunk that is a number", (s) => (s.chunks[0] = 7), "chunk 0 is malformed"],
      ["a bad SHA-256", (s) => (s.chunks[0] = { ...chunk, sha256: "00" }), "chunk 0 has a bad ciphertext record"],
      ["a SHA-256 without its size", (s) => (s.chunks[0] = { ...chunk, cipherSize: undefined }), "chunk 0 has a bad ciphertext record"],
    ];
    for (const [name, change, why] of cases) {
      const s = structuredClone(good);
      change(s);
      expect([name, stateProblem(s, fs)]).toEqual([name, expect.stringContaining(why)]);
    }
  });
});
