/**
 * Per-call latency of a causal model, t(batch, tokens): the time of one `append` of `tokens` new
 * tokens to each of `batch` rows after a `past`-token prefix, including the KV expand from one row
 * (the decoder's fork) — the unit the speculative loop pays per target or draft call. Used by the
 * demo to explain, in the same run, the speed it measures.
 *
 * @module
 */

import type { CausalModel } from "../src/decode/model.ts";

/** One measured cell. */
export interface LatencyCell {
  batch: number;
  tokens: number;
  /** Median over rounds of the mean ms per call. */
  ms: number;
}

/**
 * Measures t(batch, tokens) for every requested cell on `model`, interleaving the cells round by
 * round so that machine noise spreads evenly; resets the model afterwards.
 *
 * @param model The model (its KV cache is used and reset).
 * @param cells [batch, tokens] pairs.
 * @param options past: prefix length (default 64); rounds (default 5); calls per cell per round
 *   (default 4).
 * @returns ms per call, keyed `${batch}x${tokens}`.
 */
export async function measureLatency(
  model: CausalModel,
  cells: readonly (readonly [number, number])[],
  options: { past?: number; rounds?: number; calls?: number } = {},
): Promise<Map<string, number>> {
  const past = options.past ?? 64, rounds = options.rounds ?? 5, calls = options.calls ?? 4;
  const prefix = Array.from({ length: past }, (_, i) => (i * 7919 + 13) % model.vocabSize);
  const token = (r: number, t: number) => (r * 131 + t * 17 + 5) % model.vocabSize;
  model.reset();
  await model.append([prefix], 1);
  const one = async (batch: number, tokens: number) => {
    model.select(0, past);
    if (batch > 1) model.fork(batch);
    const rows = Array.from(
      { length: batch },
      (_, r) => Array.from({ length: tokens }, (_, t) => token(r, t)),
    );
    const t0 = performance.now();
    await model.append(rows, 1);
    return performance.now() - t0;
  };
  for (const [b, t] of cells) await one(b, t); // warm-up
  const samples = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    for (const [b, t] of cells) {
      let sum = 0;
      for (let c = 0; c < calls; c++) sum += await one(b, t);
      const key = `${b}x${t}`;
      samples.set(key, [...(samples.get(key) ?? []), sum / calls]);
    }
  }
  model.reset();
  const out = new Map<string, number>();
  for (const [key, xs] of samples) out.set(key, [...xs].sort((a, b) => a - b)[xs.length >> 1]);
  return out;
}
