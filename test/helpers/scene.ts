/**
 * The common start of an e2e file, so each file says only what is special about it: the rig
 * up, a fresh pool and bucket, a work dir with a key pair made by the stock age-keygen, the S3
 * credentials env, a dataset with its mountpoint, and (optionally) the fault proxy in front
 * of radosgw. The pool and work dir are removed by `close()`; the bucket by the rig's cleanup.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ageKeyPair, makeBucket, makePool, mountpointOf, run, s3Rig, tmpDir, zfsRig, type S3Rig, type TestPool } from "./rig.ts";
import { s3Env } from "./zrb.ts";
import { startFaultProxy, type FaultProxy } from "./faultproxy.ts";

export interface Scene {
  s3: S3Rig;
  pool: TestPool;
  bucket: string;
  work: string;
  keyFile: string;
  recipient: string;
  env: Record<string, string>;
  /** The dataset `<pool>/<dataset>` and its mountpoint. */
  fs: string;
  mnt: string;
  proxy?: FaultProxy;
  close(): Promise<void>;
}

export async function scene(o: { name: string; poolMiB: number; dataset: string; proxy?: boolean }): Promise<Scene> {
  await zfsRig();
  const s3 = await s3Rig();
  const pool = await makePool({ sizeMiB: o.poolMiB });
  const bucket = await makeBucket(s3);
  const work = tmpDir(`zrb-e2e-${o.name}-`);
  const { keyFile, recipient } = await ageKeyPair(join(work, "key.txt"));
  const proxy = o.proxy ? startFaultProxy({ upstreamPort: Number(new URL(s3.endpoint).port) }) : undefined;
  const fs = `${pool.pool}/${o.dataset}`;
  await run(["zfs", "create", fs]);
  return {
    s3,
    pool,
    bucket,
    work,
    keyFile,
    recipient,
    env: s3Env(s3),
    fs,
    mnt: await mountpointOf(fs),
    proxy,
    async close() {
      try {
        proxy?.stop();
      } finally {
        await pool.destroy();
        rmSync(work, { recursive: true, force: true });
      }
    },
  };
}
