/** Which pager `zrb list` uses on a terminal (src/cli/pager.ts): ZRB_PAGER, then PAGER, then less; empty or cat means none. */
import { expect, test } from "bun:test";
import { pagerCommand } from "../../../src/cli/pager.ts";

test("ZRB_PAGER wins over PAGER, less -FRX by default, an empty value or cat turns paging off", () => {
  expect(pagerCommand({})).toBe("less -FRX");
  expect(pagerCommand({ PAGER: "more" })).toBe("more");
  expect(pagerCommand({ PAGER: "more", ZRB_PAGER: "most" })).toBe("most");
  expect(pagerCommand({ ZRB_PAGER: "" })).toBeNull();
  expect(pagerCommand({ PAGER: "cat" })).toBeNull();
  expect(pagerCommand({ PAGER: "less", ZRB_PAGER: " " })).toBeNull();
});
