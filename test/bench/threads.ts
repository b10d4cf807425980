/**
 * Where a stage's time goes, per thread of the stage's process (main thread, crypto workers,
 * file worker, runtime helpers) during the stage: CPU seconds, and seconds spent runnable but
 * waiting for a CPU (the kernel's run delay: other work on the machine, or more runnable
 * threads than cores). What is left of the wall time, a thread spent blocked (waiting for
 * data, a message, the disk). Read from /proc/self/task/<tid>/schedstat (nanoseconds).
 */
import { readdirSync, readFileSync } from "node:fs";

interface Times {
  name: string;
  cpu: number;
  wait: number;
}

function read(): Map<string, Times> {
  const out = new Map<string, Times>();
  let tids: string[] = [];
  try {
    tids = readdirSync("/proc/self/task");
  } catch {}
  for (const tid of tids) {
    try {
      const [cpu, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ").map(Number);
      const name = readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
      out.set(tid, { name, cpu: cpu! / 1e9, wait: wait! / 1e9 });
    } catch {}
  }
  return out;
}

/**
 * Sample every 50 ms (a terminated Worker disappears from /proc, so its last sample counts).
 * Workers are named by creation order (tid): the data path starts its crypto workers first,
 * then the file worker.
 */
export class ThreadCpu {
  private readonly base = read();
  private readonly last = new Map<string, Times>();
  private readonly t0 = performance.now();
  private wall = 0;

  constructor(private readonly cryptoWorkers: number) {}

  sample(): void {
    for (const [tid, t] of read()) this.last.set(tid, t);
    this.wall = (performance.now() - this.t0) / 1000;
  }

  summary(): string {
    let workers = 0;
    const rows = [...this.last.entries()]
      .sort((x, y) => Number(x[0]) - Number(y[0]))
      .map(([tid, t]) => {
        let name = Number(tid) === process.pid ? "main" : t.name;
        if (t.name === "Worker") name = workers++ < this.cryptoWorkers ? `crypto${workers}` : "file";
        const b = this.base.get(tid);
        return { name, cpu: t.cpu - (b?.cpu ?? 0), wait: t.wait - (b?.wait ?? 0) };
      })
      .filter((r) => r.cpu >= 0.05);
    const sum = (k: "cpu" | "wait") => rows.reduce((a, r) => a + r[k], 0).toFixed(2);
    const each = rows.map((r) => `${r.name} ${r.cpu.toFixed(2)}/${r.wait.toFixed(2)}`).join(", ");
    return `thread CPU s / s waiting for a CPU: ${each} (total ${sum("cpu")}/${sum("wait")}, wall ${this.wall.toFixed(2)})`;
  }
}
