import { describe, expect, test } from "bun:test";
import { iamPolicy } from "../../../src/store/iam.ts";

const actions = (p: ReturnType<typeof iamPolicy>) => p.Statement.flatMap((s) => s.Action);

describe("iam-policy", () => {
  const base = { bucket: "nas-backups", prefix: "zrb/", objectLock: false };
  test("nas: write and read under the prefix, never delete", () => {
    const p = iamPolicy("nas", base);
    expect(actions(p)).toContain("s3:PutObject");
    expect(actions(p)).toContain("s3:AbortMultipartUpload");
    expect(actions(p).some((a) => a.startsWith("s3:Delete"))).toBe(false);
    const objects = p.Statement.find((s) => s.Sid === "ReadWrite")!;
    expect(objects.Resource).toEqual(["arn:aws:s3:::nas-backups/zrb/*"]);
    expect(p.Statement.find((s) => s.Sid === "List")!.Condition).toEqual({ StringLike: { "s3:prefix": ["zrb/*"] } });
  });
  test("prune deletes; restore only reads (and thaws)", () => {
    expect(actions(iamPolicy("prune", base))).toContain("s3:DeleteObject");
    const r = actions(iamPolicy("restore", base));
    expect(r.sort()).toEqual(["s3:GetObject", "s3:ListBucket", "s3:RestoreObject"]);
  });
  test("object lock adds retention on the NAS and version deletes for prune", () => {
    const lock = { ...base, objectLock: true };
    expect(actions(iamPolicy("nas", lock))).toContain("s3:PutObjectRetention");
    expect(actions(iamPolicy("prune", lock))).toContain("s3:DeleteObjectVersion");
    expect(actions(iamPolicy("prune", lock))).toContain("s3:ListBucketVersions");
  });
  test("all is the union; no prefix means the whole bucket", () => {
    const all = iamPolicy("all", { ...base, prefix: "" });
    expect(new Set(actions(all))).toEqual(new Set([...actions(iamPolicy("nas", base)), ...actions(iamPolicy("prune", base)), ...actions(iamPolicy("restore", base))]));
    expect(all.Statement.find((s) => s.Sid === "List")!.Condition).toBeUndefined();
    expect(all.Statement.find((s) => s.Sid === "Objects")!.Resource).toEqual(["arn:aws:s3:::nas-backups/*"]);
  });
});
