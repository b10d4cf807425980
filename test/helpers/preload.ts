/**
 * Preloaded by `bun test` (bunfig.toml). Kept cheap: it starts nothing.
 * - zfs/zpool/ceph tools live in /usr/sbin, which a non-login PATH may lack.
 * - After the last test file, remove pools and buckets tests left behind.
 */
import { afterAll } from "bun:test";
import { cleanupRig } from "./rig.ts";

for (const dir of ["/usr/sbin", "/sbin"]) {
  const parts = (process.env.PATH ?? "").split(":");
  if (!parts.includes(dir)) process.env.PATH = [...parts.filter(Boolean), dir].join(":");
}

afterAll(cleanupRig);
