/**
 * `zrb plan`: what the bucket costs and how long a disaster restore takes, before a user commits
 * to a schedule and storage classes — an estimate from the bucket's listings and manifests (no
 * data part is downloaded), a dated price table (report/prices.ts) and the transfer rate of the
 * last restore, verify or drill (the metrics file) or --rate. pipeline/estimate.ts does the figures;
 * this file picks the prices and the rate and prints them.
 */
import { defineCommand } from "citty";
import type { Config, Task } from "../config/config.ts";
import { estimateTask, monthlyTotal, type Rate, type TaskEstimate } from "../pipeline/estimate.ts";
import { formatEta } from "../report/progress.ts";
import { resolvePricing, type Pricing } from "../report/pricing.ts";
import { readTransferRate } from "../report/metrics.ts";
import { now } from "../util/clock.ts";
import { ExitCode, usageError, ZrbError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { formatSize, parseRate } from "../util/size.ts";
import { printable } from "../util/text.ts";
import { applyOutput, configArg, loadConfigLogged, outputArgs, printJson, storeFor } from "./common.ts";
import { formatTable } from "./table.ts";
import { resolveTrust, trustArgs } from "./trust.ts";
import type { Trust } from "../records/trust.ts";
import { storesOf, storeView, taskStores } from "../config/stores.ts";
import { didYouMean } from "../config/suggest.ts";
import { quote } from "../util/redact.ts";


/** --rate, else the last restore, verify or drill of the metrics file, else none. */
export function resolveRate(config: Config, task: Task, flag: string | undefined): Rate | undefined {
  if (flag !== undefined) {
    let n: number;
    try {
      n = parseRate(flag, "--rate");
    } catch (err) {
      throw usageError((err as Error).message);
    }
    if (!(n > 0)) throw usageError(`--rate must be more than 0, got ${JSON.stringify(flag)}`);
    return { bytesPerSecond: n, source: "--rate" };
  }
  const m = readTransferRate(config.monitoring.metricsFile, task.name);
  return m ? { bytesPerSecond: m.bytesPerSecond, source: `the last ${m.command} (${m.dataset}, ${m.at.toISOString()})` } : undefined;
}

/** Money for people: "$0.12", "$0.0031", "12.40 EUR"; a cost under a hundredth of a cent is "< $0.0001", never "8.3e-8". */
export function money(v: number | null, currency: string): string {
  if (v === null) return "no price";
  const tiny = v !== 0 && Math.abs(v) < 0.0001;
  const n = v === 0 ? "0" : tiny ? "0.0001" : Math.abs(v) >= 1 ? v.toFixed(2) : Number(v.toPrecision(2)).toString();
  return (tiny ? "< " : "") + (currency === "USD" ? `$${n}` : `${n} ${currency}`);
}

function hours(h: number): string {
  return h < 1 ? `${Math.round(h * 60)} min` : `${Number(h.toFixed(1))} h`;
}

/** The text of one task's estimate. */
export function taskLines(e: TaskEstimate, p: Pricing, rate: Rate | undefined): string[] {
  const cur = p.table.currency;
  const $ = (v: number | null) => money(v, cur);
  const out = [`task ${e.task} (${e.dataset})${e.recursive ? ", recursive" : ""}`];
  const objects = e.stored.reduce((a, u) => a + u.objects, 0);
  out.push(`  stored: ${formatSize(e.storedBytes)} in ${objects} object(s)${p.prices ? `, ≈ ${$(e.monthly)} a month` : ""}`);
  if (e.stored.length)
    out.push(...formatTable(["CLASS", "BYTES", "OBJECTS", "A MONTH"], e.stored.map((u) => [u.storageClass, formatSize(u.bytes), String(u.objects), p.prices ? $(u.monthly) : "-"]), "    "));
  const d = e.earlyDelete;
  if (!d.policy) out.push("  prune now: no retention policy (tasks[].retention), so nothing would be deleted");
  else {
    const charge = d.gibDays > 0 ? `; early-delete charges ≈ ${p.prices ? $(d.cost) : "?"} (${Number(d.gibDays.toPrecision(3))} GiB-days still billed before the minimum storage duration; plain zrb prune keeps those backups until then)` : "; no early-delete charges";
    out.push(`  prune now (${d.policy}): would delete ${d.deletes} backup(s), ${formatSize(d.bytes)}${charge}`);
  }
  out.push(...restoreLines(e, p, rate));
  return out;
}

function restoreLines(e: TaskEstimate, p: Pricing, rate: Rate | undefined): string[] {
  const r = e.restore;
  const $ = (v: number | null) => money(v, p.table.currency);
  const out: string[] = [];
  if (r.points.length === 0) return [`  restore: no restorable backup${r.missing.length > 1 ? "s" : ""} in the bucket`];
  if (r.points.length === 1) {
    const pt = r.points[0]!;
    out.push(`  restore of the newest point: backup ${pt.backupId} (level ${pt.level}, ${pt.snapshot}, finished ${pt.finishedAt}), a chain of ${pt.chain} backup(s)`);
  } else out.push(`  restore of the newest point of ${r.points.length} datasets${r.missing.length ? ` (${r.missing.length} without one: ${r.missing.join(", ")})` : ""}`);
  out.push(`    ${formatSize(r.downloadBytes)} to download, ${formatSize(r.streamBytes)} to receive`);
  out.push(
    rate && r.seconds !== null
      ? `    time ≈ ${formatEta(r.seconds)} at ${formatSize(Math.round(rate.bytesPerSecond))}/s (${rate.source})`
      : "    time: unknown (no restore, verify or drill in monitoring.metrics_file; give --rate, e.g. --rate 20MiB/s)",
  );
  if (p.prices) out.push(`    download ≈ ${$(r.downloadCost)} (egress and retrieval fees)`);
  if (r.archived.length) {
    const what = r.archived.map((a) => `${a.storageClass} ${formatSize(a.bytes)}`).join(", ");
    const tiers = r.thaw.map((t) => `${t.tier} ≤ ${hours(t.hours)} ≈ ${$(t.cost)}`).join(", ");
    out.push(`    archived (${what}): thawed first (zrb restore --thaw)${tiers ? `: ${tiers}` : ""}`);
  }
  return out;
}

function header(p: Pricing, location: string): string {
  const where = `read from ${location}`;
  if (!p.prices) return `ESTIMATE, ${where}; no prices (the endpoint's provider is not known: give --provider ${Object.keys(p.table.providers).join("|")} or --prices FILE)`;
  const src = p.table.source === "built-in" ? "the built-in list prices" : `prices from ${p.table.source}`;
  return `ESTIMATE, ${where}: ${p.prices.title}, ${src} of ${p.table.date} in ${p.table.currency} (GB = 2^30 bytes; requests, taxes and discounts left out; check the provider's price page)`;
}

interface StorePlan {
  json: Record<string, unknown>;
  lines: string[];
}

/** The plan of one store's bucket (a store's view of the config: its s3, its retention). */
async function planStore(config: Config, tasks: Task[], args: { prices?: string; provider?: string; rate?: string; json?: boolean }, trust: Trust, at: Date): Promise<StorePlan> {
  const pricing = resolvePricing(config, { prices: args.prices, provider: args.provider });
  const store = storeFor(config);
  const out: { estimate: TaskEstimate; rate?: Rate }[] = [];
  for (const task of tasks) {
    const rate = resolveRate(config, task, args.rate);
    out.push({ estimate: await estimateTask({ config, task, store, trust, prices: pricing.prices, rate, now: at }), rate });
  }
  const storedBytes = out.reduce((a, o) => a + o.estimate.storedBytes, 0);
  // The provider's monthly minimum (Wasabi: 6.99) is billed once for the bucket, not once per task: the total is every task's classes at once.
  const monthly = monthlyTotal(out.flatMap((o) => o.estimate.stored), pricing.prices);
  const prices = pricing.prices ? { provider: pricing.provider, title: pricing.prices.title, date: pricing.table.date, currency: pricing.table.currency, source: pricing.table.source } : null;
  const json = { estimate: true, note: header(pricing, store.location), at: at.toISOString(), location: store.location, prices, total: { storedBytes, monthly }, tasks: out.map((o) => ({ ...o.estimate, rate: o.rate ?? null })) };
  if (!pricing.prices && !args.json) log.warn(`no prices for ${store.location}: give --provider or --prices FILE for costs (sizes and times follow)`);
  const lines = [header(pricing, store.location), ""];
  for (const o of out) lines.push(...taskLines(o.estimate, pricing, o.rate), "");
  lines.push(`total: ${formatSize(storedBytes)} stored${pricing.prices ? `, ≈ ${money(monthly, pricing.table.currency)} a month` : ""} (an estimate)`);
  return { json, lines };
}

export default defineCommand({
  meta: {
    name: "plan",
    description:
      "Estimate what the bucket costs and how long a disaster restore takes, per task (and per store: each with its own prices), from the bucket's listings and manifests (no data is downloaded): " +
      "bytes stored per storage class and their monthly cost from a dated price table (AWS S3 classes, Backblaze B2, Wasabi, Cloudflare R2; --prices FILE adds or replaces providers), " +
      "the early-delete charges a prune now would incur (the task's retention, with --allow-early-delete), the size of the newest restore point and its time at the rate of the last restore, verify or drill " +
      "(monitoring.metrics_file) or --rate, and for archive classes each thaw tier's time and cost. An estimate, not a bill: it says which prices of which date it used.",
  },
  args: {
    ...configArg,
    task: { type: "string", alias: "t", description: "Only this task (default: every task)", valueHint: "NAME" },
    prices: { type: "string", description: "A YAML price file (docs/plan.md); overrides plan.prices", valueHint: "FILE" },
    provider: { type: "string", description: "Whose prices: aws, b2, wasabi, r2 or one of the price file (default: from s3.endpoint)", valueHint: "NAME" },
    rate: { type: "string", description: "Restore rate to assume, e.g. 20MiB/s (default: the last restore, verify or drill in monitoring.metrics_file)", valueHint: "RATE" },
    store: { type: "string", description: "Only this store (stores[].name in the config); without it, every store, each with its own prices", valueHint: "NAME" },
    ...trustArgs,
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const config = await loadConfigLogged(String(args.config));
    const tasks = args.task ? config.tasks.filter((t) => t.name === args.task) : config.tasks;
    if (args.task && tasks.length === 0)
      throw new ZrbError(`no task ${args.task} in ${config.path} (tasks: ${config.tasks.map((t) => t.name).join(", ")})`, ExitCode.CONFIG);
    const trust = await resolveTrust(args, undefined, config);
    const at = now();
    const all = storesOf(config).map((s) => s.name);
    const names = args.store ? [args.store] : all;
    if (args.store && !all.includes(args.store)) throw usageError(`--store ${quote(args.store)} names no store in ${config.path}${didYouMean(args.store, all)} (stores: ${all.join(", ")})`);
    // One store: the plan of its bucket as it always was. Several: one such plan per store, each with its own prices.
    const plans: StorePlan[] = [];
    for (const name of names) {
      const view = storeView(config, name);
      const mine = tasks.filter((t) => taskStores(config, t).includes(name)).map((t) => view.tasks.find((v) => v.name === t.name)!);
      plans.push(await planStore(view, mine, args, trust, at));
    }
    if (args.json) {
      if (all.length === 1) printJson(plans[0]!.json);
      else printJson({ estimate: true, at: at.toISOString(), stores: plans.map((p, i) => ({ store: names[i], ...p.json })) });
      return;
    }
    const lines = all.length === 1 ? plans[0]!.lines : plans.flatMap((p, i) => [`store ${names[i]}:`, ...p.lines, ""]);
    process.stdout.write(lines.map(printable).join("\n") + "\n");
  },
});
