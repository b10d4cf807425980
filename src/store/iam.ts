/**
 * Least privilege: the AWS IAM policy each role of a zrb setup needs, scoped to the bucket and
 * the configured prefix. The split zrb recommends (docs/install-nas.md): the NAS backs up with
 * credentials that cannot delete (a stolen NAS cannot wipe the bucket), prune runs elsewhere
 * with delete rights, and a restore uses read-only credentials.
 */

export const ROLES = ["nas", "prune", "restore", "all"] as const;
export type Role = (typeof ROLES)[number];

export interface PolicyInput {
  bucket: string;
  /** "" or "a/b/" as the config normalised it. */
  prefix: string;
  objectLock: boolean;
}

interface Statement {
  Sid: string;
  Effect: "Allow";
  Action: string[];
  Resource: string[];
  Condition?: Record<string, Record<string, string[]>>;
}

export function iamPolicy(role: Role, p: PolicyInput): { Version: "2012-10-17"; Statement: Statement[] } {
  const bucketArn = `arn:aws:s3:::${p.bucket}`;
  const objects = [`${bucketArn}/${p.prefix}*`];
  const prefixOnly = p.prefix ? { StringLike: { "s3:prefix": [`${p.prefix}*`] } } : undefined;
  const list = (actions: string[]): Statement => ({ Sid: "List", Effect: "Allow", Action: actions, Resource: [bucketArn], ...(prefixOnly ? { Condition: prefixOnly } : {}) });
  const bucketLevel = (sid: string, actions: string[]): Statement => ({ Sid: sid, Effect: "Allow", Action: actions, Resource: [bucketArn] });
  const obj = (sid: string, actions: string[]): Statement => ({ Sid: sid, Effect: "Allow", Action: actions, Resource: objects });
  const lockBucket = p.objectLock ? ["s3:GetBucketObjectLockConfiguration"] : [];
  const statements: Record<Exclude<Role, "all">, Statement[]> = {
    // backup, snapshot, check, status, list, verify without the key; no delete of any kind
    nas: [
      list(["s3:ListBucket"]),
      bucketLevel("Uploads", ["s3:ListBucketMultipartUploads", ...lockBucket]),
      obj("ReadWrite", [
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        ...(p.objectLock ? ["s3:PutObjectRetention", "s3:GetObjectRetention"] : []),
      ]),
    ],
    // prune and cleanup: read the catalog, delete what no kept point needs
    prune: [
      list(["s3:ListBucket", ...(p.objectLock ? ["s3:ListBucketVersions"] : [])]),
      bucketLevel("Uploads", ["s3:ListBucketMultipartUploads", ...lockBucket]),
      obj("ReadDelete", [
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        ...(p.objectLock ? ["s3:DeleteObjectVersion", "s3:GetObjectRetention"] : []),
      ]),
    ],
    // restore, verify, list, and thawing archived parts: read only
    restore: [list(["s3:ListBucket"]), obj("Read", ["s3:GetObject", "s3:RestoreObject"])],
  };
  if (role !== "all") return { Version: "2012-10-17", Statement: statements[role] };
  // One host that does everything: the union, one statement per resource.
  const merge = (sid: string, parts: Statement[]): Statement => ({ ...parts[0]!, Sid: sid, Action: [...new Set(parts.flatMap((s) => s.Action))].sort() });
  const all = [...statements.nas, ...statements.prune, ...statements.restore];
  return {
    Version: "2012-10-17",
    Statement: [
      merge("List", all.filter((s) => s.Sid === "List")),
      merge("Uploads", all.filter((s) => s.Sid === "Uploads")),
      merge("Objects", all.filter((s) => s.Resource === objects || s.Resource[0] === objects[0])),
    ],
  };
}
