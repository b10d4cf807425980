/**
 * Where a stage's CPU time goes: the CPU seconds of each thread of the stage's process
 * (main thread, crypto workers, file worker, runtime helpers) during the stage, and the share
 * of wall time during which 0, 1, 2 … of its threads were on a CPU. Read from /proc.
 */
import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU time per thread of this process during a stage, sampled from /proc every 50 ms (Workers
 * are threads; a terminated one disappears, so its last sample counts). Workers are named by
 * creation order (tid): the data path starts its crypto workers first, then the file worker.
 */
export class ThreadCpu {
  private base = new Map<string, number>();
  private last = new Map<string, { name: string; ticks: number }>();
  private t = performance.now();
  /** Sampled time (ms) with 0, 1, 2, … threads of this process busy (≥ half of the interval on a CPU). */
  private busy: number[] = [];
  constructor(private readonly cryptoWorkers: number) {
    for (const [tid, t] of this.read()) this.base.set(tid, t.ticks);
  }
  private read(): Map<string, { name: string; ticks: number }> {
    const out = new Map<string, { name: string; ticks: number }>();
    let tids: string[] = [];
    try {
      tids = readdirSync("/proc/self/task");
    } catch {}
    for (const tid of tids) {
      try {
        const st = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
        const close = st.lastIndexOf(")");
        const f = st.slice(close + 2).split(" ");
        out.set(tid, { name: st.slice(st.indexOf("(") + 1, close), ticks: Number(f[11]) + Number(f[12]) });
      } catch {}
    }
    return out;
  }
  sample(): void {
    const now = performance.now();
    const dt = now - this.t;
    this.t = now;
    let busy = 0;
    for (const [tid, t] of this.read()) {
      const prev = this.last.get(tid)?.ticks ?? this.base.get(tid) ?? 0;
      if ((t.ticks - prev) * 10 >= dt / 2) busy++;
      this.last.set(tid, t);
    }
    this.busy[busy] = (this.busy[busy] ?? 0) + dt;
  }
  summary(): string {
    const hz = 100;
    let workers = 0;
    const rows = [...this.last.entries()]
      .sort((x, y) => Number(x[0]) - Number(y[0]))
      .map(([tid, t]) => {
        let name = t.name === "bun" || Number(tid) === process.pid ? "main" : t.name;
        if (t.name === "Worker") name = workers++ < this.cryptoWorkers ? `crypto${workers}` : "file";
        return { name, s: (t.ticks - (this.base.get(tid) ?? 0)) / hz };
      })
      .filter((r) => r.s >= 0.05);
    const total = rows.reduce((a, r) => a + r.s, 0);
    const cpu = rows.map((r) => `${r.name} ${r.s.toFixed(2)}`).join(", ");
    const all = this.busy.reduce((a, x) => a + (x ?? 0), 0);
    const pct = Array.from(this.busy, (x) => `${Math.round(((x ?? 0) / all) * 100)}%`).join("/");
    return `thread CPU s: ${cpu} (total ${total.toFixed(2)}); time with 0/1/2… threads busy: ${pct}`;
  }
}
