/**
 * The task group (src/util/task-group.ts), restic's errgroup: the first failure wins and aborts
 * the signal, later ones are ignored, wait() rethrows it after every job ended, settle() waits
 * for jobs started by jobs, and follow() turns an outer abort into the group's failure.
 */
import { expect, test } from "bun:test";
import { TaskGroup } from "../../../src/util/task-group.ts";

test("the first failure aborts the signal and is what wait() throws, after every job has ended", async () => {
  const g = new TaskGroup();
  const ended: string[] = [];
  g.go(async () => {
    await Bun.sleep(20);
    ended.push("slow");
  });
  g.go(async () => {
    throw new Error("first");
  });
  g.go(async () => {
    await Bun.sleep(5);
    throw new Error("second");
  });
  await expect(g.wait()).rejects.toThrow("first");
  expect(ended).toEqual(["slow"]);
  expect(g.signal.aborted).toBe(true);
  expect((g.signal.reason as Error).message).toBe("first");
  g.fail(new Error("later"));
  expect((g.failure as Error).message).toBe("first");
});

test("settle() waits for jobs that jobs started; a group with no failure waits quietly", async () => {
  const g = new TaskGroup();
  const ended: number[] = [];
  g.go(async () => {
    await Bun.sleep(5);
    g.go(async () => {
      await Bun.sleep(10);
      ended.push(2);
    });
    ended.push(1);
  });
  await g.wait();
  expect(ended).toEqual([1, 2]);
  expect(g.failed).toBe(false);
});

test("follow(): an outer abort fails the group with the reason given, also when it had already fired", async () => {
  const outer = new AbortController();
  const g = new TaskGroup();
  const unfollow = g.follow(outer.signal, () => new Error("interrupted"));
  outer.abort();
  expect((g.failure as Error).message).toBe("interrupted");
  unfollow();
  const g2 = new TaskGroup();
  g2.follow(outer.signal, () => new Error("already"));
  expect((g2.failure as Error).message).toBe("already");
});
