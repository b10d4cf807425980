/** The name rules on their edges: what a pool, a dataset or a snapshot from a manifest may be. */
import { describe, expect, test } from "bun:test";
import { datasetPathProblem, datasetProblem, isSnapshotOf, poolProblem } from "../../../src/zfs/names.ts";

describe("names", () => {
  test("pools: only names that begin with a reserved word are refused; 255 characters fit", () => {
    expect(poolProblem("mirror2")).toContain("reserves");
    expect(poolProblem("tank_mirror")).toBeUndefined();
    expect(poolProblem("p".repeat(255))).toBeUndefined();
    expect(poolProblem("p".repeat(256))).toContain("longer than 255");
  });
  test("datasets: no control characters; a full name is checked after the pool's '/' and for its length", () => {
    for (const bad of ["a\tb", "a\nb", "a\rb"]) expect(datasetPathProblem(bad)).toContain("it contains");
    expect(datasetProblem("tank/home")).toBeUndefined();
    expect(datasetProblem("tank//home")).toBeDefined();
    expect(datasetProblem(`tank/${"d".repeat(250)}`)).toBeUndefined();
    expect(datasetProblem(`tank/${"d".repeat(251)}`)).toContain("longer than 255");
  });
  test("a snapshot of exactly this dataset, of a valid name, at most 255 characters", () => {
    expect(isSnapshotOf("t/a@s", "t/a")).toBe(true);
    expect(isSnapshotOf("t/ab@s", "t/a")).toBe(false);
    expect(isSnapshotOf("t/abc", "t/a")).toBe(false);
    expect(isSnapshotOf("t/a@s\n", "t/a")).toBe(false);
    expect(isSnapshotOf(`t/a@${"s".repeat(251)}`, "t/a")).toBe(true);
    expect(isSnapshotOf(`t/a@${"s".repeat(252)}`, "t/a")).toBe(false);
  });
});
