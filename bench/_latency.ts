/**
 * Per-call latency of causal models, t(rows, tokens): the time of one `append` of `tokens` new tokens
 * to each of `rows` rows after a `past`-token prefix, including the KV expand from one row (the
 * decoder's fork), or of one `appendTree` of a token tree — the unit the speculative loop pays per
 * target or draft call. The one place latency is measured: bench/latency.ts, bench/converted.ts,
 * bench/kernel.ts, bench/lookup.ts, bench/loop.ts, bench/micro/real_model_bench.ts and the demo
 * (tools/_demo_table.ts, tools/demo_bundled.ts) all call it.
 *
 * @module
 */

import type { CausalModel } from "../src/decode/model.ts";
import { median } from "./_harness.ts";

/** A timed call: `[rows, tokens]` appended, or a token tree (its parents, −1 for the root; keyed `tree<n>`). */
export type LatencyCell = readonly [rows: number, tokens: number] | { readonly tree: readonly number[] };

/** Options of {@linkcode measureLatencies}. */
export interface LatencyOptions {
  /** The prefix length. @default {64} */
  past?: number;
  /** Rounds: every model and cell once per round, interleaved. @default {5} */
  rounds?: number;
  /** Calls per cell per round (their mean is the round's sample). @default {4} */
  calls?: number;
  /** Ask for the logits of every appended token (`keep = tokens`, as a block's scoring does) instead of the last. @default {false} */
  keepAll?: boolean;
}

/** The key of a cell: "2x5", or "tree9" for a 9-node tree. */
export function cellKey(cell: LatencyCell): string {
  return "tree" in cell ? `tree${cell.tree.length}` : `${cell[0]}x${cell[1]}`;
}

/**
 * Measures every cell on every model, interleaved round by round (per round every model, per model
 * every cell) after one untimed warm-up call per model and cell, so that machine noise spreads evenly;
 * resets the models afterwards. A tree cell needs `supportsTree`.
 *
 * @returns the median over rounds of the mean ms per call, keyed `${model key} ${cellKey}`.
 */
export async function measureLatencies(
  models: Readonly<Record<string, CausalModel>>,
  cells: readonly LatencyCell[],
  options: LatencyOptions = {},
): Promise<Map<string, number>> {
  const past = options.past ?? 64, rounds = options.rounds ?? 5, calls = options.calls ?? 4;
  const entries = Object.entries(models);
  for (const [, model] of entries) {
    const id = (x: number) => (model.vocabSize > 3 ? 3 + (x % (model.vocabSize - 3)) : x % model.vocabSize);
    model.reset();
    await model.append([Array.from({ length: past }, (_, i) => id(i * 7919 + 13))], 1);
  }
  const one = async (model: CausalModel, cell: LatencyCell, salt: number) => {
    const id = (x: number) => (model.vocabSize > 3 ? 3 + (x % (model.vocabSize - 3)) : x % model.vocabSize);
    model.select(0, past);
    if ("tree" in cell) {
      const tokens = cell.tree.map((_, t) => id(salt * 104729 + t * 17));
      const t0 = performance.now();
      await model.appendTree!(tokens, cell.tree);
      const ms = performance.now() - t0;
      model.keepTreePath!([0]);
      return ms;
    }
    const [rows, tokens] = cell;
    if (rows > 1) model.fork(rows);
    const ids = Array.from(
      { length: rows },
      (_, r) => Array.from({ length: tokens }, (_, t) => id(salt * 104729 + r * 131 + t * 17)),
    );
    const t0 = performance.now();
    await model.append(ids, options.keepAll ? tokens : 1);
    return performance.now() - t0;
  };
  for (const [, model] of entries) for (const cell of cells) await one(model, cell, 0); // warm-up
  const samples = new Map<string, number[]>();
  let salt = 1;
  for (let round = 0; round < rounds; round++) {
    for (const [key, model] of entries) {
      for (const cell of cells) {
        let total = 0;
        for (let c = 0; c < calls; c++) total += await one(model, cell, salt++);
        const name = `${key} ${cellKey(cell)}`;
        samples.set(name, [...(samples.get(name) ?? []), total / calls]);
      }
    }
  }
  for (const [, model] of entries) model.reset();
  return new Map([...samples].map(([name, xs]) => [name, median(xs)]));
}

/**
 * {@linkcode measureLatencies} of one model.
 *
 * @param model The model (its KV cache is used and reset).
 * @param cells The cells.
 * @param options past (default 64), rounds (default 5), calls per cell per round (default 4), keepAll.
 * @returns ms per call, keyed by {@linkcode cellKey} (`${rows}x${tokens}`).
 */
export async function measureLatency(
  model: CausalModel,
  cells: readonly LatencyCell[],
  options: LatencyOptions = {},
): Promise<Map<string, number>> {
  const ms = await measureLatencies({ model }, cells, options);
  return new Map([...ms].map(([name, x]) => [name.slice("model ".length), x]));
}
