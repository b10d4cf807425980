/**
 * Which prices apply to a config's store: `zrb plan`'s figures and prune's minimum storage
 * durations pick the provider the same way — --prices / plan.prices for the table, then
 * --provider / plan.provider / the endpoint's host / a price file's only provider — so that a
 * Wasabi bucket is pruned knowing Wasabi bills 90 days of every object, as plan says.
 */
import type { Config } from "../config/config.ts";
import { configError, usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { BUILT_IN, detectProvider, loadPriceFile, minStorageDays, type PriceTable, type ProviderPrices } from "./prices.ts";

export interface Pricing {
  table: PriceTable;
  /** The provider's key in the table; undefined: no prices apply (sizes and times only). */
  provider?: string;
  prices?: ProviderPrices;
}

/** The price table and provider. Throws a usage error (a bad --provider) or a config error (plan.provider, plan.prices). */
export function resolvePricing(config: Config, flags: { prices?: string; provider?: string }): Pricing {
  const file = flags.prices ?? config.plan.prices;
  const table = file ? loadPriceFile(file) : BUILT_IN;
  const own = file ? Object.keys(table.providers).filter((k) => !(k in BUILT_IN.providers) || table.providers[k] !== BUILT_IN.providers[k]) : [];
  const name = flags.provider ?? config.plan.provider ?? (config.s3.enabled ? detectProvider(config.s3.endpoint) : undefined) ?? (own.length === 1 ? own[0] : undefined);
  if (name === undefined) return { table };
  const prices = table.providers[name];
  if (!prices) {
    const known = Object.keys(table.providers).join(", ");
    const msg = `no provider ${JSON.stringify(name)} in the price table (${table.source}; known: ${known})`;
    if (flags.provider !== undefined) throw usageError(`--provider: ${msg}`);
    throw configError(`plan.provider in ${config.path}: ${msg}`);
  }
  return { table, provider: name, prices };
}

/**
 * A storage class's minimum storage duration in days at the config's store, for prune: its
 * provider's (resolvePricing), AWS's when the provider is not known (MinIO, Ceph, a local
 * directory). A price file or provider that does not resolve is a warning, not a failed prune:
 * AWS's durations are used then.
 */
export function minStorageDaysFor(config: Config): (storageClass: string) => number {
  let prices: ProviderPrices | undefined;
  try {
    prices = resolvePricing(config, {}).prices;
  } catch (err) {
    log.warn(`${(err as Error).message}; prune counts AWS's minimum storage durations`);
  }
  return (storageClass) => minStorageDays(prices, storageClass);
}
