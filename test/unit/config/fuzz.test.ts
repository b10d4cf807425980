/**
 * Property test: whatever the YAML, parseConfig returns a config or throws a one-line ZrbError
 * (exit code CONFIG) that never echoes a private key or credential; never any other exception.
 * Documents are random trees of maps, lists and scalars with keys drawn from the real key set
 * (with typos), half of them mutations of a valid config, some then damaged as raw text.
 * Seeded, so a failure is reproducible: the seed and the document are in the failure message.
 */
import { expect, test } from "bun:test";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { stringify } from "yaml";
import { parseConfig } from "../../../src/config/config.ts";
import { ROOT } from "../../../src/config/schema.ts";
import { keysOf } from "../../../src/config/walk.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const RUNS = 2000;
const SECRET = await generateIdentity();
const KEY = await identityToRecipient(SECRET);
const CREDENTIAL = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/** mulberry32: small, fast, seedable. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof rng>;

/** Every key the schema knows, in schema order (derived, so new keys are fuzzed too). */
const KEYS = [...new Set(keysOf(ROOT).map((k) => k.key))];
const RARE_KEYS = ["secret_key", "aws_access_key_id", "<<", "", "1", "true", "~"];
const SCALARS: unknown[] = [
  "", " ", "tank", "home/photos", "/var/lib/zrb", "var/lib", KEY, KEY.toUpperCase(), `${KEY}x`, "age1", "age1pq1qqqq",
  "3GiB", "3GB", "64KiB", "1KiB", "6TiB", "0.5KiB", "yes", "no", "on", "true", "false", "null", "~",
  "STANDARD", "DEEP_ARCHIVE", "deep_archive", "WHEN_REQUIRED", "https://s3.example.com", "ftp://x", "http://[::1]:9000",
  "my-bucket", "My_Bucket", "a..b", "1.2.3.4", "zrb/", "/a/../b", "a//b", "é", "💾", "a\nb", "\u0000", "%", "@", "#",
  "x".repeat(300), 0, 1, -1, 4, 64, 65, 1.5, 1e300, -0, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 3221225472,
  true, false, null,
];

function mutateKey(r: Rng, k: string): string {
  if (k === "" || r.next() < 0.7) return k;
  const i = r.int(k.length);
  switch (r.int(5)) {
    case 0: return k.slice(0, i) + k.slice(i + 1); // drop
    case 1: return k.slice(0, i) + r.pick(["x", "_", "-", "1", "é"]) + k.slice(i); // insert
    case 2: return i + 1 < k.length ? k.slice(0, i) + k[i + 1] + k[i] + k.slice(i + 2) : k; // swap
    case 3: return k.toUpperCase();
    default: return `${k}s`;
  }
}

function randomValue(r: Rng, depth: number): unknown {
  const roll = r.next();
  if (depth <= 0 || roll < 0.45) return r.pick(SCALARS);
  if (roll < 0.7) return Array.from({ length: r.int(5) }, () => randomValue(r, depth - 1));
  const obj: Record<string, unknown> = {};
  for (let i = r.int(6); i > 0; i--) {
    const key = r.next() < 0.05 ? r.pick(RARE_KEYS) : mutateKey(r, r.pick(KEYS));
    obj[key] = randomValue(r, depth - 1);
  }
  return obj;
}

function validConfig(): Record<string, unknown> {
  return {
    base_dir: "/var/lib/zrb",
    age_public_key: KEY,
    chunk_size: "256MiB",
    s3: {
      enabled: true,
      bucket: "my-bucket",
      prefix: "zrb",
      region: "us-east-1",
      endpoint: "http://127.0.0.1:7480",
      storage_class: { manifest: "STANDARD", backup_data: ["STANDARD", "DEEP_ARCHIVE"] },
      retry: { max_attempts: 5 },
    },
    tasks: [
      { name: "home", pool: "tank", dataset: "home", enabled: true },
      { name: "root", pool: "tank", dataset: "" },
    ],
  };
}

/** Replace, add or delete one value somewhere in the tree. */
function mutateTree(r: Rng, root: Record<string, unknown>): void {
  let node: unknown = root;
  for (let depth = 0; depth < 4; depth++) {
    const container = node as Record<string, unknown> | unknown[];
    const keys = Object.keys(container);
    if (keys.length === 0) break;
    const k = r.pick(keys);
    const child = (container as Record<string, unknown>)[k];
    if (child !== null && typeof child === "object" && r.next() < 0.6) {
      node = child;
      continue;
    }
    const op = r.int(3);
    if (op === 0) (container as Record<string, unknown>)[k] = randomValue(r, 2);
    else if (op === 1 && !Array.isArray(container)) delete (container as Record<string, unknown>)[k];
    else if (!Array.isArray(container)) (container as Record<string, unknown>)[mutateKey(r, r.pick(KEYS))] = randomValue(r, 2);
    break;
  }
}

const NOISE = [":", "-", "[", "]", "{", "}", ",", "&a", "*a", "!!str ", "!x ", "|", ">", "#", "'", '"', "\n", "\t", " ", "  ", "? ", "%YAML 1.1\n", "---\n", "\\", "@", "`"];

function damageText(r: Rng, text: string): string {
  let t = text;
  for (let n = 1 + r.int(3); n > 0; n--) {
    const i = r.int(t.length + 1);
    if (r.next() < 0.5) t = t.slice(0, i) + r.pick(NOISE) + t.slice(i);
    else t = t.slice(0, i) + t.slice(i + 1 + r.int(4));
  }
  return t;
}

function randomDocument(r: Rng): string {
  const kind = r.next();
  if (kind < 0.5) {
    const cfg = validConfig();
    for (let n = 1 + r.int(3); n > 0; n--) mutateTree(r, cfg);
    const text = stringify(cfg);
    return r.next() < 0.3 ? damageText(r, text) : text;
  }
  if (kind < 0.9) {
    const text = stringify(randomValue(r, 5));
    return r.next() < 0.3 ? damageText(r, text) : text;
  }
  // Hand-made YAML features: anchors, aliases, tags, merge keys, flow collections, directives.
  const parts = [
    "base_dir: &b /var/lib/zrb\n",
    `age_public_key: ${KEY}\n`,
    "age_recipients: [*b]\n",
    "s3: !!map {enabled: !!bool true, bucket: !!str my-bucket}\n",
    "<<: {workers: 4}\n",
    "tasks:\n  - &t {name: a, pool: tank, dataset: x}\n  - *t\n",
    "tasks: [{name: a, pool: tank, dataset: x, enabled: yes}]\n",
    "chunk_size: !!int 3GiB\n",
    "workers: !!float 4\n",
    "%YAML 1.1\n---\n",
    "? [complex, key]\n: value\n",
    "s3:\n  storage_class:\n    backup_data: &l [STANDARD, *l]\n",
  ];
  let text = "";
  for (let n = 2 + r.int(6); n > 0; n--) text += r.pick(parts);
  return r.next() < 0.3 ? damageText(r, text) : text;
}

test(`${RUNS} random YAML documents either load or throw a one-line ZrbError`, () => {
  const seed = Number(process.env.ZRB_FUZZ_SEED ?? 0x5eed);
  const r = rng(seed);
  let loaded = 0;
  for (let run = 0; run < RUNS; run++) {
    let text = randomDocument(r);
    if (r.next() < 0.05) text = text.replace(/my-bucket/, r.next() < 0.5 ? SECRET : CREDENTIAL);
    const context = `seed ${seed} run ${run}:\n${text}`;
    try {
      const { config, warnings } = parseConfig(text, "/etc/zrb.yaml");
      loaded++;
      expect(config.recipients.length, context).toBeGreaterThan(0);
      expect(config.tasks.length, context).toBeGreaterThan(0);
      expect(config.s3.storageClass.backupData.length, context).toBeGreaterThan(0);
      expect(config.chunkSize, context).toBeGreaterThanOrEqual(64 * 1024);
      expect(config.baseDir.startsWith("/"), context).toBe(true);
      for (const w of warnings) {
        expect(typeof w, context).toBe("string");
        expect(w.includes("\n"), context).toBe(false);
      }
    } catch (e) {
      if (!(e instanceof ZrbError)) throw new Error(`not a ZrbError (${(e as Error)?.name}: ${(e as Error)?.message}) for ${context}`);
      expect(e.exitCode, context).toBe(ExitCode.CONFIG);
      expect(e.message.includes("\n"), context).toBe(false);
      expect(e.message.startsWith("/etc/zrb.yaml"), context).toBe(true);
      expect(e.message.toUpperCase().includes(SECRET.slice(15)), context).toBe(false);
      expect(e.message.includes(CREDENTIAL), context).toBe(false);
    }
  }
  // The generator must exercise both outcomes, or it tests nothing.
  expect(loaded).toBeGreaterThan(RUNS / 50);
  expect(loaded).toBeLessThan(RUNS);
});
