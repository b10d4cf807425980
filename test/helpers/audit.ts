/**
 * Audits that crash and chaos tests run after every recovery: what a finished run must leave
 * behind in the bucket and on the pool, judged with the plain S3 API and `zfs get`.
 *   - no incomplete multipart uploads anywhere in the bucket;
 *   - no orphan objects: every object under data/<fs>/ belongs to a manifest, and so does every
 *     file catalog beside the manifests (manifests/<fs>/<id>.catalog*.age);
 *   - holds: exactly one `zrb` hold on each snapshot named by heads.yaml, none elsewhere (with
 *     several stores: one per store whose heads name it);
 *   - no lock file and no resume state.
 */
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { existsSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { run } from "./rig.ts";

export async function listKeys(client: S3Client, bucket: string, prefix: string): Promise<{ key: string; lastModified?: Date; size: number }[]> {
  const out: { key: string; lastModified?: Date; size: number }[] = [];
  let token: string | undefined;
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) out.push({ key: o.Key!, lastModified: o.LastModified, size: o.Size ?? 0 });
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out;
}

export async function listUploads(client: S3Client, bucket: string): Promise<{ key: string; uploadId: string }[]> {
  const out: { key: string; uploadId: string }[] = [];
  let keyMarker: string | undefined;
  let idMarker: string | undefined;
  for (;;) {
    const r = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
    for (const u of r.Uploads ?? []) out.push({ key: u.Key!, uploadId: u.UploadId! });
    if (!r.IsTruncated) break;
    keyMarker = r.NextKeyMarker;
    idMarker = r.NextUploadIdMarker;
  }
  return out;
}

export async function getText(client: S3Client, bucket: string, key: string): Promise<string> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return await r.Body!.transformToString();
}

/** Every manifest of a dataset, parsed. `prefix` is the store prefix, e.g. "zrb/". */
export async function manifests(client: S3Client, bucket: string, prefix: string, fs: string): Promise<any[]> {
  const dir = `${prefix}manifests/${fs}/`;
  const keys = (await listKeys(client, bucket, dir)).map((o) => o.key).filter((k) => k.endsWith(".manifest.yaml") && !k.slice(dir.length).includes("/"));
  const out = [];
  for (const k of keys.sort()) out.push(YAML.parse(await getText(client, bucket, k)));
  return out;
}

/** Objects under data/<fs>/ that no manifest refers to (a child dataset's objects, data/<fs>/<child>/…, are the child's). */
export async function orphanObjects(client: S3Client, bucket: string, prefix: string, fs: string): Promise<string[]> {
  const referenced = new Set<string>();
  for (const m of await manifests(client, bucket, prefix, fs)) for (const p of m.parts) referenced.add(prefix + p.key);
  const base = `${prefix}data/${fs}/`;
  const children = new Set((await listKeys(client, bucket, `${prefix}manifests/${fs}/`)).map((o) => o.key.slice(`${prefix}manifests/${fs}/`.length).split("/")[0]!));
  const dir = `${prefix}manifests/${fs}/`;
  for (const m of await manifests(client, bucket, prefix, fs)) if (m.catalog) referenced.add(prefix + m.catalog.key);
  const catalogs = (await listKeys(client, bucket, dir)).map((o) => o.key).filter((k) => /^[^/]+\.catalog(-[0-9a-f]+)?\.age$/.test(k.slice(dir.length)));
  return [
    ...(await listKeys(client, bucket, base)).map((o) => o.key).filter((k) => !referenced.has(k) && !children.has(k.slice(base.length).split("/")[0]!)),
    ...catalogs.filter((k) => !referenced.has(k)),
  ];
}

export async function userrefsOf(fs: string): Promise<Map<string, number>> {
  const out = (await run(["zfs", "get", "-H", "-p", "-r", "-d", "1", "-o", "name,value", "userrefs", fs])).stdout;
  const m = new Map<string, number>();
  for (const line of out.split("\n")) {
    const [name, value] = line.split("\t");
    if (name?.startsWith(fs + "@") && value) m.set(name, Number(value));
  }
  return m;
}

export interface AuditResult {
  uploads: { key: string; uploadId: string }[];
  orphans: string[];
  /** snapshot → [actual userrefs, expected] where they differ. */
  badHolds: Record<string, [number, number]>;
  lock: boolean;
  state: boolean;
}

/** Everything a successful run must have cleaned up. An empty audit is `clean(a)`. */
export async function audit(o: { client: S3Client; bucket: string; prefix: string; fs: string; runDir: string }): Promise<AuditResult> {
  return (await auditStores({ client: o.client, fs: o.fs, stores: [o] }))[0]!;
}

/**
 * The audit of a dataset backed up to several stores (config `stores`), one result per store:
 * each store holds the snapshots its own heads name with its own tag, so a snapshot carries as
 * many holds as there are stores whose heads name it (reported with every store's result).
 */
export async function auditStores(o: { client: S3Client; fs: string; stores: { bucket: string; prefix: string; runDir: string }[] }): Promise<AuditResult[]> {
  const heads = await Promise.all(
    o.stores.map(async (st) => {
      try {
        return YAML.parse(await getText(o.client, st.bucket, `${st.prefix}manifests/${o.fs}/heads.yaml`));
      } catch {
        return { levels: {} };
      }
    }),
  );
  const wants = heads.map((h) => new Set(Object.values<any>(h.levels).map((x) => x.snapshot.name)));
  const badHolds: Record<string, [number, number]> = {};
  for (const [snap, n] of await userrefsOf(o.fs)) {
    const exp = wants.filter((w) => w.has(snap)).length;
    if (n !== exp) badHolds[snap] = [n, exp];
  }
  const out: AuditResult[] = [];
  for (const st of o.stores)
    out.push({
      uploads: await listUploads(o.client, st.bucket),
      orphans: await orphanObjects(o.client, st.bucket, st.prefix, o.fs),
      badHolds,
      lock: existsSync(join(st.runDir, "zrb.lock")),
      state: existsSync(join(st.runDir, "backup_state.yaml")),
    });
  return out;
}

export const cleanAudit: AuditResult = { uploads: [], orphans: [], badHolds: {}, lock: false, state: false };
