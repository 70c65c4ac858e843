/**
 * Per-configuration totals of a benchmark's generations: tokens, time, blocks and (for `auto`) the
 * plans its blocks ran.
 *
 * @module
 */

import type { DecodeStats } from "../decode.ts";

/** Sums the stats of one configuration's generations. */
export class RunTotals {
  tokens = 0;
  ms = 0;
  blocks = 0;
  readonly #plans = new Map<string, number>();

  /** Adds one generation (its `totalMs` is the time). */
  add(stats: DecodeStats): void {
    this.tokens += stats.tokens;
    this.ms += stats.totalMs;
    this.blocks += stats.blocks;
    for (const plan of stats.plans) {
      const key = plan.draftLength === 0 ? "AR" : `${plan.method} k=${plan.k} L=${plan.draftLength}`;
      this.#plans.set(key, (this.#plans.get(key) ?? 0) + plan.blocks);
    }
  }

  /** Generated tokens per second of wall time. */
  get tokensPerSecond(): number {
    return (this.tokens * 1000) / this.ms;
  }

  /** Tokens per block. */
  get blockEfficiency(): number {
    return this.tokens / this.blocks;
  }

  /** The plans run, most blocks first: "method k=… L=…: blocks, …" ("AR" for target-only blocks). */
  get plans(): string {
    return [...this.#plans].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(", ");
  }
}
