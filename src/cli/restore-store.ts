/**
 * Which store `zrb restore` reads when the task has several and no --store names one: the
 * first in config order whose newest backup is restorable (a complete chain, trusted), so a
 * hot store that is down or behind does not stop a restore the cold one can do. Said in one
 * line ("restoring from store NAME"). When none qualifies, the first store: its restore then
 * fails with the reason, naming that store.
 */
import type { Config, Task } from "../config/config.ts";
import { loadCatalog } from "../pipeline/catalog.ts";
import type { Trust } from "../records/trust.ts";
import { log } from "../util/log.ts";
import { oneLine } from "../util/redact.ts";
import { storeFor } from "./common.ts";
import { viewOf } from "./stores.ts";

export function pickRestoreStore(trustFor: (config: Config) => Promise<Trust>) {
  return async (whole: Config, wholeTask: Task, names: string[], signal: AbortSignal): Promise<string> => {
    for (const name of names) {
      const { config, task } = viewOf(whole, wholeTask, name);
      try {
        const cat = await loadCatalog(storeFor(config, signal), task.pool, task.dataset, await trustFor(config));
        const newest = cat.entries.at(-1);
        if (newest?.restorable) {
          log.info(`restoring from store ${name} (its newest backup ${newest.backupId} is restorable)`);
          return name;
        }
        log.info(`store ${name}: ${newest ? `its newest backup ${newest.backupId} is not restorable` : "no backup of this task"}; trying the next store`);
      } catch (err) {
        if (signal.aborted) throw err;
        log.warn(`store ${name} cannot be read (${oneLine((err as Error).message)}); trying the next store`);
      }
    }
    log.info(`no store has a restorable newest backup; restoring from store ${names[0]} (pass --store NAME to choose)`);
    return names[0]!;
  };
}
