/**
 * `zrb prune --task T --child X` where another task backs X up itself (a child the tree excludes,
 * given a task of its own): T's retention would prune that task's backups and snapshots, so it
 * is refused, naming the task whose retention decides (src/cli/tree.ts refuseChildOfOtherTask).
 */
import { expect, test } from "bun:test";
import type { Config, Task } from "../../../src/config/config.ts";
import { refuseChildOfOtherTask } from "../../../src/cli/tree.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const task = (name: string, fullName: string, recursive: boolean) => ({ name, fullName, recursive }) as unknown as Task;
const home = task("home", "tank/home", true);
const alice = task("alice", "tank/home/alice", false);
const config = { path: "/etc/zrb.yaml", tasks: [home, alice] } as unknown as Config;

test("a child another task backs up is refused (exit 2), naming that task; any other child, and the tree's own dataset, pass", () => {
  let err: unknown;
  try {
    refuseChildOfOtherTask(config, home, "alice", "zrb prune");
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ZrbError);
  expect((err as ZrbError).exitCode).toBe(ExitCode.USAGE);
  expect((err as ZrbError).message).toBe("--child alice: tank/home/alice is backed up by task alice of /etc/zrb.yaml, whose retention decides for it; run zrb prune --task alice");
  expect(() => refuseChildOfOtherTask(config, home, "bob", "zrb prune")).not.toThrow();
  expect(() => refuseChildOfOtherTask(config, home, "alice/cache", "zrb prune")).not.toThrow();
  expect(() => refuseChildOfOtherTask(config, home, "", "zrb prune")).not.toThrow();
});

test("the other task counts whether it is recursive or not (a tree of its own rooted at the child)", () => {
  const aliceTree = task("alice-tree", "tank/home/alice", true);
  const cfg2 = { path: "/etc/zrb.yaml", tasks: [home, aliceTree] } as unknown as Config;
  expect(() => refuseChildOfOtherTask(cfg2, home, "alice", "zrb prune")).toThrow("is backed up by task alice-tree");
  // A task's own --child of itself is never "another task".
  expect(() => refuseChildOfOtherTask(cfg2, aliceTree, "", "zrb prune")).not.toThrow();
});

