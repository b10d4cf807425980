/**
 * The few `zpool` commands zrb runs, for the throwaway pools of `zrb drill` and
 * `zrb restore --path` (pipeline/drill/pool.ts), and the clones and mounts they read through.
 * zfs-fuse and OpenZFS both take `zpool create -o cachefile=none -m DIR NAME FILE` (checked on
 * zfs-fuse 0.7): no cache file, so a drill pool is never imported again at boot. zfs-fuse
 * answers "busy" for a while after files were closed (FUSE releases them asynchronously), so
 * destroying retries that for up to 10 s. The binary can be overridden with ZRB_ZPOOL (tests).
 */
import { zfsError } from "../util/errors.ts";
import { firstLine } from "./errors.ts";
import { missingZfs, zfsRun } from "./zfs.ts";

export function zpoolBin(): string {
  return process.env.ZRB_ZPOOL || "zpool";
}

async function zpoolRun(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let proc;
  try {
    proc = Bun.spawn([zpoolBin(), ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (err) {
    throw missingZfs(err);
  }
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** A pool on one file vdev, its root dataset mounted at `mountpoint`, never in the cache file. */
export async function createFilePool(name: string, file: string, mountpoint: string): Promise<void> {
  const r = await zpoolRun(["create", "-o", "cachefile=none", "-m", mountpoint, name, file]);
  if (r.code !== 0) throw zfsError(`cannot create the throwaway pool ${name} on ${file}: ${firstLine(r.stderr) || `exit ${r.code}`}`);
}

/** Names of the imported pools. */
export async function listPools(): Promise<string[]> {
  const r = await zpoolRun(["list", "-H", "-o", "name"]);
  if (r.code !== 0) throw zfsError(`zpool list failed: ${firstLine(r.stderr) || `exit ${r.code}`}`);
  return r.stdout.split("\n").filter((l) => l !== "");
}

/** The file or device paths of a pool's vdevs, as `zpool status` prints them (absolute paths only). */
export async function poolVdevPaths(name: string): Promise<string[]> {
  const r = await zpoolRun(["status", name]);
  if (r.code !== 0) return [];
  return [...r.stdout.matchAll(/^\s+(\/\S+)\s+\S+/gm)].map((m) => m[1]!);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Retry `fn` while zfs says the thing is busy (zfs-fuse releases closed files late), up to ~10 s. */
export async function whileBusy(fn: () => Promise<{ code: number; stderr: string }>, gone: RegExp): Promise<string | undefined> {
  for (let attempt = 0; ; attempt++) {
    const r = await fn();
    if (r.code === 0 || gone.test(r.stderr)) return undefined;
    if (!/busy/i.test(r.stderr) || attempt >= 40) return firstLine(r.stderr) || `exit ${r.code}`;
    await sleep(250);
  }
}

/** `zpool destroy -f`: undefined when the pool is gone (now or before), else why not. */
export function destroyPool(name: string): Promise<string | undefined> {
  return whileBusy(() => zpoolRun(["destroy", "-f", name]), /no such pool/i);
}

/** `zfs destroy` of a clone zrb made: undefined when it is gone, else why not. */
export function destroyClone(name: string): Promise<string | undefined> {
  return whileBusy(() => zfsRun(["destroy", name]), /does not exist|could not find/i);
}

/** `zfs clone -o k=v… snap name`: a read-only clone mounted at `mountpoint`. */
export async function cloneReadOnly(snap: string, name: string, mountpoint: string, props: Record<string, string>): Promise<void> {
  const o = Object.entries({ ...props, readonly: "on", mountpoint }).flatMap(([k, v]) => ["-o", `${k}=${v}`]);
  const r = await zfsRun(["clone", ...o, snap, name]);
  if (r.code !== 0) throw zfsError(`cannot clone ${snap} as ${name} to read it: ${firstLine(r.stderr) || `exit ${r.code}`}`);
}

/** `zfs set prop=value name`. */
export async function setProp(name: string, prop: string, value: string): Promise<void> {
  const r = await zfsRun(["set", `${prop}=${value}`, name]);
  if (r.code !== 0) throw zfsError(`cannot set ${prop}=${value} on ${name}: ${firstLine(r.stderr) || `exit ${r.code}`}`);
}

/** `zfs mount name`. */
export async function mount(name: string): Promise<void> {
  const r = await zfsRun(["mount", name]);
  if (r.code !== 0) throw zfsError(`cannot mount ${name}: ${firstLine(r.stderr) || `exit ${r.code}`}`);
}

/** name and the given properties ("-" when unset) of fs and its direct children. */
export async function childrenWithProps(fs: string, props: string[]): Promise<{ name: string; values: string[] }[]> {
  const r = await zfsRun(["list", "-H", "-d", "1", "-t", "filesystem,volume", "-o", ["name", ...props].join(","), fs]);
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [name, ...values] = l.split("\t");
      return { name: name!, values: props.map((_, i) => values[i] ?? "-") };
    });
}

/** `zfs clone -o k=v… snap name` of a zvol (no mountpoint; its device is /dev/zvol/<name>). */
export async function cloneVolume(snap: string, name: string, props: Record<string, string>): Promise<void> {
  const o = Object.entries({ ...props, readonly: "on" }).flatMap(([k, v]) => ["-o", `${k}=${v}`]);
  const r = await zfsRun(["clone", ...o, snap, name]);
  if (r.code !== 0) throw zfsError(`cannot clone ${snap} as ${name} to read it: ${firstLine(r.stderr) || `exit ${r.code}`}`);
}
