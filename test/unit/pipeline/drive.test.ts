/**
 * The tree driver (src/pipeline/tree/drive.ts) alone: one outcome per child in order, a thrown
 * error becomes that child's failure (with its exit code) and the next child still runs, a
 * skip says why, an interrupt stops the run before the next child (and a step that throws
 * because of it is not dressed up as a child's failure), and the progress hook hears every child.
 */
import { describe, expect, test } from "bun:test";
import { driveChildren, type Step } from "../../../src/pipeline/tree/drive.ts";
import type { ChildOutcome } from "../../../src/pipeline/tree/outcome.ts";
import { ExitCode, ZrbError, storeError } from "../../../src/util/errors.ts";

const kids = ["", "a", "a/b", "c"].map((rel) => ({ rel, fs: rel ? `tank/home/${rel}` : "tank/home" }));

describe("driveChildren", () => {
  test("ok, skipped and failed children each get their outcome; a failure does not stop the others", async () => {
    const heard: string[] = [];
    const out = await driveChildren(
      kids,
      async (c, done): Promise<Step<number>> => {
        if (c.rel === "a") throw storeError("the bucket went away");
        if (c.rel === "a/b") return { status: "skipped", message: `parent ${done.find((d) => d.rel === "a")!.status}` };
        if (c.rel === "c") return { status: "failed", error: new ZrbError("bad part", ExitCode.INTEGRITY), result: 7, bytes: 5 };
        return { status: "ok", result: 42, bytes: 10 };
      },
      { progress: { childDone: (o: ChildOutcome) => heard.push(`${o.rel}:${o.status}`) } },
    );
    expect(out.map((o) => [o.rel, o.status, o.exitCode])).toEqual([
      ["", "ok", 0],
      ["a", "failed", ExitCode.STORE],
      ["a/b", "skipped", 0],
      ["c", "failed", ExitCode.INTEGRITY],
    ]);
    expect(out[0]).toMatchObject({ result: 42, bytes: 10, dataset: "tank/home" });
    expect(out[1]!.message).toBe("the bucket went away");
    expect(out[2]!.message).toBe("parent failed");
    expect(out[3]).toMatchObject({ result: 7, bytes: 5, message: "bad part" });
    expect(heard).toEqual([":ok", "a:failed", "a/b:skipped", "c:failed"]);
    for (const o of out) expect(o.seconds).toBeGreaterThanOrEqual(0);
  });

  test("an interrupt stops the run before the next child, and a step failing because of it ends the run with the interrupt", async () => {
    const ac = new AbortController();
    const ran: string[] = [];
    const stop = new ZrbError("interrupted by SIGTERM", ExitCode.SIGTERM);
    const p = driveChildren(
      kids,
      async (c): Promise<Step<void>> => {
        ran.push(c.rel);
        if (c.rel === "a") {
          ac.abort(stop);
          throw new Error("the request was aborted");
        }
        return { status: "ok" };
      },
      { signal: ac.signal },
    );
    await expect(p).rejects.toThrow("the request was aborted");
    expect(ran).toEqual(["", "a"]);

    const ac2 = new AbortController();
    const ran2: string[] = [];
    const p2 = driveChildren(
      kids,
      async (c): Promise<Step<void>> => {
        ran2.push(c.rel);
        if (c.rel === "") ac2.abort(stop);
        return { status: "ok" };
      },
      { signal: ac2.signal },
    );
    await expect(p2).rejects.toMatchObject({ exitCode: ExitCode.SIGTERM });
    expect(ran2).toEqual([""]);
  });
});
