/**
 * Prices for `zrb plan`: what a bucket costs a month, what a prune before the minimum storage
 * duration still costs, what a disaster restore costs to download and to thaw. A built-in table
 * of list prices for the common providers and classes, dated — prices change, so every figure
 * `zrb plan` prints says which table and which date it comes from, and is called an estimate —
 * and a YAML price file (--prices, config plan.prices) of the same shape that adds providers or
 * replaces built-in ones. No network: nothing here is fetched.
 *
 * Units: currency per GB-month of storage, per GB downloaded or retrieved, where a GB is 2^30
 * bytes (how AWS bills; providers that count 10^9 bytes come out about 7 % higher than here).
 * Request (per-1000-operations) charges are left out: for zrb's large parts they are cents.
 */
import { readFileSync } from "node:fs";
import YAML from "yaml";
import { configError } from "../util/errors.ts";
import { MIN_STORAGE_DAYS } from "../store/store.ts";

export type ThawTier = "Expedited" | "Standard" | "Bulk";
export const THAW_TIERS: readonly ThawTier[] = ["Expedited", "Standard", "Bulk"];

export interface ThawPrice {
  /** Hours until the objects are readable, at most (AWS's published upper bound). */
  hours: number;
  perGb: number;
}

export interface ClassPrice {
  perGbMonth: number;
  /** Billed for at least this many days after upload, however early it is deleted. */
  minDays?: number;
  /** Per GB read (infrequent-access classes), on top of egress. */
  retrievalPerGb?: number;
  /** Archive classes: the restore (thaw) tiers it offers. */
  thaw?: Partial<Record<ThawTier, ThawPrice>>;
}

export interface ProviderPrices {
  title: string;
  /** Per GB downloaded to the internet. */
  egressPerGb: number;
  /** Downloads up to this multiple of the stored bytes a month are free (Backblaze B2: 3). */
  freeEgressRatio?: number;
  /** The least a month is billed (Wasabi: 1 TB). */
  minimumMonthly?: number;
  classes: Record<string, ClassPrice>;
}

export interface PriceTable {
  /** When the prices were taken (YYYY-MM-DD). */
  date: string;
  currency: string;
  /** Where the table comes from: "built-in" or the price file's path. */
  source: string;
  providers: Record<string, ProviderPrices>;
}

const GLACIER_THAW = { Expedited: { hours: 0.083, perGb: 0.03 }, Standard: { hours: 5, perGb: 0.01 }, Bulk: { hours: 12, perGb: 0 } };
const DEEP_THAW = { Standard: { hours: 12, perGb: 0.02 }, Bulk: { hours: 48, perGb: 0.0025 } };

/**
 * The built-in table: public list prices as of its date (AWS: us-east-1, first 50 TB, egress
 * after the free tier). Check the providers' price pages before you commit; a price file
 * overrides any of it.
 */
export const BUILT_IN: PriceTable = {
  date: "2025-06-01",
  currency: "USD",
  source: "built-in",
  providers: {
    aws: {
      title: "AWS S3 (us-east-1)",
      egressPerGb: 0.09,
      classes: {
        STANDARD: { perGbMonth: 0.023 },
        INTELLIGENT_TIERING: { perGbMonth: 0.023 },
        STANDARD_IA: { perGbMonth: 0.0125, minDays: 30, retrievalPerGb: 0.01 },
        ONEZONE_IA: { perGbMonth: 0.01, minDays: 30, retrievalPerGb: 0.01 },
        GLACIER_IR: { perGbMonth: 0.004, minDays: 90, retrievalPerGb: 0.03 },
        GLACIER: { perGbMonth: 0.0036, minDays: 90, thaw: GLACIER_THAW },
        DEEP_ARCHIVE: { perGbMonth: 0.00099, minDays: 180, thaw: DEEP_THAW },
        REDUCED_REDUNDANCY: { perGbMonth: 0.024 },
        EXPRESS_ONEZONE: { perGbMonth: 0.11 },
      },
    },
    b2: { title: "Backblaze B2", egressPerGb: 0.01, freeEgressRatio: 3, classes: { STANDARD: { perGbMonth: 0.006 } } },
    wasabi: { title: "Wasabi (pay as you go)", egressPerGb: 0, minimumMonthly: 6.99, classes: { STANDARD: { perGbMonth: 0.00699, minDays: 90 } } },
    r2: {
      title: "Cloudflare R2",
      egressPerGb: 0,
      classes: { STANDARD: { perGbMonth: 0.015 }, STANDARD_IA: { perGbMonth: 0.01, minDays: 30, retrievalPerGb: 0.01 } },
    },
  },
};

/**
 * A storage class's minimum storage duration in days at a provider: its price table's `minDays`
 * (Wasabi: 90 for every object), else AWS's for that class name (store.ts MIN_STORAGE_DAYS: a
 * class the table does not list errs on keeping), else 0.
 */
export function minStorageDays(prices: ProviderPrices | undefined, storageClass: string): number {
  return prices?.classes[storageClass]?.minDays ?? MIN_STORAGE_DAYS[storageClass] ?? 0;
}

/** The provider an endpoint belongs to, by its host; undefined for others (MinIO, Ceph, Garage: give --provider or a price file). */
export function detectProvider(endpoint: string | undefined): string | undefined {
  if (!endpoint) return "aws";
  let host: string;
  try {
    host = new URL(endpoint).hostname.toLowerCase();
  } catch {
    return undefined;
  }
  if (host.endsWith(".amazonaws.com")) return "aws";
  if (host.endsWith(".backblazeb2.com")) return "b2";
  if (host.endsWith(".wasabisys.com")) return "wasabi";
  if (host.endsWith(".r2.cloudflarestorage.com")) return "r2";
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// A price file: the same shape in snake_case.

type Bad = (what: string) => never;

function num(v: unknown, at: string, bad: Bad, optional = false): number | undefined {
  if (v === undefined && optional) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) bad(`${at} must be a number ≥ 0, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return v as number;
}

function mapping(v: unknown, at: string, bad: Bad): Record<string, unknown> {
  if (!v || typeof v !== "object" || Array.isArray(v)) bad(`${at} must be a mapping`);
  return v as Record<string, unknown>;
}

function only(o: Record<string, unknown>, keys: string[], at: string, bad: Bad): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) bad(`${at} has an unknown key ${JSON.stringify(k)} (known: ${keys.join(", ")})`);
}

function classPrice(v: unknown, at: string, bad: Bad): ClassPrice {
  const o = mapping(v, at, bad);
  only(o, ["per_gb_month", "min_days", "retrieval_per_gb", "thaw"], at, bad);
  const c: ClassPrice = { perGbMonth: num(o.per_gb_month, `${at}.per_gb_month`, bad)! };
  const minDays = num(o.min_days, `${at}.min_days`, bad, true);
  if (minDays !== undefined) c.minDays = minDays;
  const retrieval = num(o.retrieval_per_gb, `${at}.retrieval_per_gb`, bad, true);
  if (retrieval !== undefined) c.retrievalPerGb = retrieval;
  if (o.thaw !== undefined) {
    const t = mapping(o.thaw, `${at}.thaw`, bad);
    only(t, [...THAW_TIERS], `${at}.thaw`, bad);
    c.thaw = {};
    for (const [tier, p] of Object.entries(t)) {
      const pm = mapping(p, `${at}.thaw.${tier}`, bad);
      only(pm, ["hours", "per_gb"], `${at}.thaw.${tier}`, bad);
      c.thaw[tier as ThawTier] = { hours: num(pm.hours, `${at}.thaw.${tier}.hours`, bad)!, perGb: num(pm.per_gb, `${at}.thaw.${tier}.per_gb`, bad)! };
    }
  }
  return c;
}

function provider(v: unknown, at: string, bad: Bad): ProviderPrices {
  const o = mapping(v, at, bad);
  only(o, ["title", "egress_per_gb", "free_egress_ratio", "minimum_monthly", "classes"], at, bad);
  const classes = mapping(o.classes, `${at}.classes`, bad);
  if (Object.keys(classes).length === 0) bad(`${at}.classes must name at least one storage class`);
  const p: ProviderPrices = {
    title: typeof o.title === "string" && o.title.trim() ? o.title.trim().slice(0, 80) : at.replace(/^providers\./, ""),
    egressPerGb: num(o.egress_per_gb, `${at}.egress_per_gb`, bad)!,
    classes: Object.fromEntries(Object.entries(classes).map(([k, c]) => [k, classPrice(c, `${at}.classes.${k}`, bad)])),
  };
  const ratio = num(o.free_egress_ratio, `${at}.free_egress_ratio`, bad, true);
  if (ratio !== undefined) p.freeEgressRatio = ratio;
  const min = num(o.minimum_monthly, `${at}.minimum_monthly`, bad, true);
  if (min !== undefined) p.minimumMonthly = min;
  return p;
}

/**
 * The built-in table with a price file's providers added or replacing built-in ones; its date
 * and currency are the file's. A bad file is a config error (exit 3) naming the file and key.
 */
export function parsePriceFile(text: string, path: string, base: PriceTable = BUILT_IN): PriceTable {
  const bad: Bad = (what) => {
    throw configError(`price file ${path}: ${what} (see docs/plan.md for its form)`);
  };
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    bad(`not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const o = mapping(doc, "the file", bad);
  only(o, ["date", "currency", "providers"], "the file", bad);
  const date = o.date instanceof Date ? o.date.toISOString().slice(0, 10) : String(o.date ?? "");
  if (!/^\d{4}-\d\d-\d\d$/.test(date)) bad(`date must be the day the prices were taken, YYYY-MM-DD, got ${JSON.stringify(o.date)}`);
  const currency = typeof o.currency === "string" && /^[A-Z]{3}$/.test(o.currency) ? o.currency : bad(`currency must be a 3-letter code such as USD or EUR, got ${JSON.stringify(o.currency)}`);
  const providers = mapping(o.providers, "providers", bad);
  const mine = Object.fromEntries(Object.entries(providers).map(([k, v]) => [k, provider(v, `providers.${k}`, bad)]));
  return { date, currency, source: path, providers: { ...(currency === base.currency ? base.providers : {}), ...mine } };
}

export function loadPriceFile(path: string): PriceTable {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw configError(`price file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give a readable YAML file to --prices`);
  }
  return parsePriceFile(text, path);
}
