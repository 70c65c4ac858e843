/**
 * Per-call latency t(batch, tokens) of the bundled target and draft through OnnxCausalLM.append at
 * past 64 (the KV expand included), batch ∈ {1, 4}, tokens ∈ {1, 4}, on wasm and cpu (numThreads 1),
 * with the models measured in alternating rounds so machine noise spreads over both.
 *
 * Run: `deno run -A tools/measure_latency.ts` (ROUNDS=15 CALLS=10 by default).
 *
 * @module
 */

import { OnnxCausalLM } from "../src/model/causal_lm.ts";
import { haveModel, modelPath } from "../src/model/_testing.ts";
import { measureLatency } from "./_latency.ts";

const ROUNDS = Number(Deno.env.get("ROUNDS") ?? 15), CALLS = Number(Deno.env.get("CALLS") ?? 10), PAST = 64;
const CELLS: [number, number][] = [[1, 1], [1, 4], [4, 1], [4, 4]];
const names = (["target", "draft"] as const).filter((n) => haveModel(n));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

for (const backend of ["wasm", "cpu"] as const) {
  const models = new Map<string, OnnxCausalLM>();
  for (const n of names) models.set(n, await OnnxCausalLM.load(modelPath(n), { backend, numThreads: 1 }));
  const times = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [n, m] of models) {
      const ms = await measureLatency(m, CELLS, { past: PAST, rounds: 1, calls: CALLS });
      for (const [cell, t] of ms) times.set(`${n} ${cell}`, [...(times.get(`${n} ${cell}`) ?? []), t]);
    }
  }
  console.log(
    `\n${backend} (numThreads 1), past ${PAST}, median of ${ROUNDS} rounds x ${CALLS} calls, ms per append:`,
  );
  console.log(
    "batch tokens " + names.map((n) => n.padStart(9)).join(" ") +
      (names.length === 2 ? "  target/draft" : ""),
  );
  for (const [b, t] of CELLS) {
    const ms = names.map((n) => median(times.get(`${n} ${b}x${t}`)!));
    console.log(
      `${String(b).padStart(5)} ${String(t).padStart(6)} ` + ms.map((x) =>
        x.toFixed(3).padStart(9)
      ).join(" ") +
        (ms.length === 2 ? `  ${(ms[0] / ms[1]).toFixed(2).padStart(12)}` : ""),
    );
  }
  for (const m of models.values()) await m.dispose();
}
