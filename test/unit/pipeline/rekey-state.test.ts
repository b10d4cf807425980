/** rekey_state.yaml: what a killed rekey recorded reads back exactly, whatever its strings hold; a file that is not one is refused, not half-read. */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { REKEY_STATE_FORMAT, RekeyStateFile, rekeyStateText, type RekeyState } from "../../../src/pipeline/rekey/state.ts";
import { ExitCode, type ZrbError } from "../../../src/util/errors.ts";

const part = (n: number) => ({ prefix: Buffer.from(`header ${n} "\\ \u2028`).toString("base64"), origin: `orig:${n}\n# "quoted" é`, oldSize: 1_000_000 + n, oldPrefixSize: 200 + n, done: n % 2 === 0 });

test("the text reads back as the state: no backups, a backup without parts, many parts one per line", () => {
  const empty: RekeyState = { format: REKEY_STATE_FORMAT, recipients: ["age1b", "age1a"], backups: {} };
  expect(YAML.parse(rekeyStateText(empty))).toEqual(empty);
  const s: RekeyState = { ...empty, backups: { "20261205T010203Z-L0-abc123": {}, "20261205T020304Z-L1-def456": Object.fromEntries(Array.from({ length: 300 }, (_, i) => [String(i), part(i)])) } };
  const text = rekeyStateText(s);
  expect(YAML.parse(text)).toEqual(s);
  expect(text.split("\n").filter((l) => l.startsWith('    "')).length).toBe(300);
});

test("written by setPart, read back by open; a rekey to other recipients is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "zrb-rekey-state-"));
  try {
    const f = await RekeyStateFile.open(dir, ["age1x"]);
    await f.setPart("b1", 0, part(0));
    await f.setPart("b1", 1, part(1));
    await f.setPart("b1", 0, undefined);
    const again = await RekeyStateFile.open(dir, ["age1x"]);
    expect(again.state).toEqual({ format: REKEY_STATE_FORMAT, recipients: ["age1x"], backups: { b1: { "1": part(1) } } });
    expect(YAML.parse(readFileSync(f.path, "utf8"))).toEqual(again.state);
    await expect(RekeyStateFile.open(dir, ["age1y"])).rejects.toThrow("an interrupted rekey to other recipients");
    await again.doneBackup("b1");
    expect((await RekeyStateFile.open(dir, ["age1x"])).state.backups).toEqual({});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a file that is not a rekey state (another format, no backups) is refused with exit 3 and left as it is", async () => {
  const dir = mkdtempSync(join(tmpdir(), "zrb-rekey-state-"));
  try {
    const path = join(dir, "rekey_state.yaml");
    for (const text of [`format: zrb-rekey-state/9\nrecipients: [age1x]\nbackups: {}\n`, `format: ${REKEY_STATE_FORMAT}\nrecipients: [age1x]\n`]) {
      writeFileSync(path, text);
      const err = await RekeyStateFile.open(dir, ["age1x"]).then(() => undefined, (e: ZrbError) => e);
      expect([err?.exitCode, err?.message]).toEqual([ExitCode.CONFIG, `${path} is not a rekey state file zrb can read; move it away if no rekey is interrupted`]);
      expect(readFileSync(path, "utf8")).toBe(text);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
