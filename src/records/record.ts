/**
 * A small YAML record kept in the bucket (heads.yaml, tree.yaml, verify-rotation.yaml): fetched
 * with a size cap, parsed, and checked by the record's own rule. Never misread: what does not
 * parse or pass the rule comes back as unusable, with the reason, for the caller to rebuild.
 */
import YAML from "yaml";
import { isStoreError, type ObjectStore } from "../store/store.ts";

export type RecordRead<T> = { kind: "none" } | { kind: "ok"; value: T } | { kind: "unusable"; why: string };

export async function readRecord<T>(store: ObjectStore, key: string, maxBytes: number, problem: (v: unknown) => string | undefined): Promise<RecordRead<T>> {
  try {
    const body = await store.get(key, { maxBytes });
    if (body === null) return { kind: "none" };
    let parsed: unknown;
    try {
      parsed = YAML.parse(new TextDecoder().decode(body));
    } catch (err) {
      return { kind: "unusable", why: `not valid YAML: ${(err as Error).message.split("\n")[0]}` };
    }
    const why = problem(parsed);
    return why ? { kind: "unusable", why } : { kind: "ok", value: parsed as T };
  } catch (err) {
    if (!isStoreError(err, "too-large")) throw err;
    return { kind: "unusable", why: `it is ${err.size} bytes` };
  }
}
