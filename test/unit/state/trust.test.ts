/**
 * What a manifest's signature covers (records/trust.ts signManifest / manifestTrustProblem): every
 * field a restore acts on. A manifest signed with a fresh key, then changed in one field at a
 * time — a part's key, sizes, SHA-256 or BLAKE3, the parent's backup id or guid, the stream's
 * BLAKE3, the snapshot's guid — must be refused; unchanged, it must pass. The manifest goes
 * through YAML and parseManifest as it would from the bucket.
 */
import { describe, expect, test } from "bun:test";
import YAML from "yaml";
import { verifyKeyOf, type SigningKey } from "../../../src/crypto/signing.ts";
import { parseManifest, type Manifest } from "../../../src/records/manifest.ts";
import { headsTrusted, manifestTrustProblem, nasTrust, NO_TRUST, signHeads, signManifest, signTree, type Trust } from "../../../src/records/trust.ts";
import { partKey } from "../../../src/store/layout.ts";
import type { Heads } from "../../../src/records/heads.ts";

const hex = (c: string) => c.repeat(64);
const ID = "20260101T000000Z-L1-abcdef";

function freshKey(): SigningKey {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  return { seed, verifyKey: verifyKeyOf(seed) };
}

/** A level 1 with two parts, on top of a level 0. */
function manifest(): Manifest {
  return {
    format: "zrb-manifest/1",
    backupId: ID,
    pool: "tank",
    dataset: "home",
    level: 1,
    snapshot: { name: "tank/home@zrb_level1_20260101T000000Z", guid: "1111111111", createtxg: "20" },
    parent: { name: "tank/home@zrb_level0_20251231T000000Z", guid: "2222222222", createtxg: "10", backupId: "20251231T000000Z-L0-012345", level: 0 },
    send: { flags: [], zfs: "test" },
    stream: { size: 150, blake3: hex("c") },
    recipients: [],
    storageClass: "STANDARD",
    chunkSize: 100,
    parts: [
      { index: 0, key: partKey("tank", "home", 1, ID, 0), plainSize: 100, cipherSize: 300, sha256: hex("a"), blake3: hex("b") },
      { index: 1, key: partKey("tank", "home", 1, ID, 1), plainSize: 50, cipherSize: 250, sha256: hex("d"), blake3: hex("e") },
    ],
    tool: { name: "zrb", version: "t" },
    host: "h",
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: "2026-01-01T00:01:00.000Z",
  };
}

/** The edits, each one field: what an attacker with write access to the bucket would change. */
const edits: [string, (m: Manifest) => void][] = [
  ["part 1's key (another part of the same backup)", (m) => (m.parts[1]!.key = partKey("tank", "home", 1, ID, 7))],
  ["part 0's plainSize (and part 1's, so the sizes still add up)", (m) => ((m.parts[0]!.plainSize = 90), (m.parts[1]!.plainSize = 60))],
  ["part 0's cipherSize", (m) => (m.parts[0]!.cipherSize = 301)],
  ["part 1's SHA-256", (m) => (m.parts[1]!.sha256 = hex("f"))],
  ["part 0's BLAKE3", (m) => (m.parts[0]!.blake3 = hex("9"))],
  ["the parts swapped (keys and hashes in another order)", (m) => {
    const [a, b] = m.parts;
    m.parts = [{ ...b!, index: 0, plainSize: 100 }, { ...a!, index: 1, plainSize: 50 }];
  }],
  ["the parent's backup id", (m) => (m.parent!.backupId = "20251230T000000Z-L0-999999")],
  ["the parent's guid", (m) => (m.parent!.guid = "3333333333")],
  ["the stream's BLAKE3", (m) => (m.stream.blake3 = hex("8"))],
  ["the snapshot's guid", (m) => (m.snapshot.guid = "4444444444")],
];

const parse = (m: Manifest) => parseManifest(YAML.stringify(m), `manifests/tank/home/${ID}.manifest.yaml`, { pool: "tank", dataset: "home" });

describe("a manifest's signature covers every field a restore acts on", () => {
  const key = freshKey();
  const trust: Trust = { verifyKeys: [key.verifyKey], allowUnsigned: false, source: "test" };
  const signed = () => structuredClone(signManifest(manifest(), key));

  test("signed and unchanged: trusted (after a YAML round trip)", () => {
    expect(manifestTrustProblem(parse(signed()), trust)).toBeUndefined();
  });

  for (const [what, edit] of edits)
    test(`${what} changed after signing: refused`, () => {
      const m = signed();
      edit(m);
      const back = parse(m); // still a well-formed manifest: only the signature can tell
      expect(manifestTrustProblem(back, trust)).toBe("its signature does not match its content");
    });
});

describe("which keys a record may be signed by", () => {
  const nas = freshKey();
  const old = freshKey();
  const stranger = freshKey();

  test("the NAS demands signatures, and accepts its own key and the config's verify_keys (a rotated signing key)", () => {
    const trust = nasTrust(nas, [old.verifyKey]);
    expect(trust.allowUnsigned).toBe(false);
    expect(manifestTrustProblem(parse(manifest()), trust)).toContain("not signed");
    expect(manifestTrustProblem(parse(signManifest(manifest(), nas)), trust)).toBeUndefined();
    expect(manifestTrustProblem(parse(signManifest(manifest(), old)), trust)).toBeUndefined();
    expect(manifestTrustProblem(parse(signManifest(manifest(), stranger)), trust)).toBe(`it is signed by a key that is not among the 2 verification keys (signing_key, verify_keys)`);
  });

  test("heads.yaml: signed by a listed key for this pool and dataset, nothing else", () => {
    const trust = nasTrust(nas, [old.verifyKey]);
    const heads: Heads = { format: "zrb-heads/1", updatedAt: "2026-01-01T00:00:00.000Z", levels: {}, sequence: 3 };
    const back = (h: object) => YAML.parse(YAML.stringify(h));
    expect(headsTrusted(back(signHeads(heads, "tank", "home", old)), "tank", "home", trust)).toBe(true);
    expect(headsTrusted(back(heads), "tank", "home", { ...trust, allowUnsigned: true })).toBe(false);
    expect(headsTrusted(back(signHeads(heads, "tank", "home", stranger)), "tank", "home", trust)).toBe(false);
    expect(headsTrusted(back(signHeads(heads, "tank", "home", nas)), "tank", "other", trust)).toBe(false);
    expect(headsTrusted(back(signHeads(heads, "tank", "home", nas)), "pool2", "home", trust)).toBe(false);
    expect(headsTrusted(back(signTree(heads, "tank", "home", nas)), "tank", "home", trust)).toBe(false);
    expect(headsTrusted(back(heads), "tank", "home", NO_TRUST)).toBe(true);
  });
});
