// Per-call latency of OnnxCausalLM.append at past length 64: t(batch, tokens) for batch ∈ {1, 4},
// tokens ∈ {1, 4}, target and draft, wasm (numThreads 1) and cpu (numThreads 1), interleaved rounds.
//   deno run -A src/model/_measure_latency.ts          (ROUNDS=15 CALLS=10 by default)
import { OnnxCausalLM } from "./causal_lm.ts";
import { haveModel, modelPath, randomTokens } from "./_testing.ts";

const ROUNDS = Number(Deno.env.get("ROUNDS") ?? 15), CALLS = Number(Deno.env.get("CALLS") ?? 10), PAST = 64;
const names = (["target", "draft"] as const).filter((n) => haveModel(n));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

for (const backend of ["wasm", "cpu"] as const) {
  const models = new Map<string, OnnxCausalLM>();
  for (const n of names) models.set(n, await OnnxCausalLM.load(modelPath(n), { backend, numThreads: 1 }));
  const times = new Map<string, number[]>();
  const one = async (m: OnnxCausalLM, batch: number, tokens: number) => {
    const rows = Array.from({ length: batch }, (_, r) => randomTokens(tokens, m.vocabSize, r + 1));
    m.select(0, PAST);
    m.fork(batch);
    const t0 = performance.now();
    await m.append(rows, tokens); // includes the lazy KV expand to `batch` rows
    return performance.now() - t0;
  };
  for (const m of models.values()) {
    m.reset();
    await m.append([randomTokens(PAST, m.vocabSize, 99)], 1);
    for (let i = 0; i < 10; i++) for (const b of [1, 4]) for (const t of [1, 4]) await one(m, b, t);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [n, m] of models) {
      for (const b of [1, 4]) {
        for (const t of [1, 4]) {
          let sum = 0;
          for (let c = 0; c < CALLS; c++) sum += await one(m, b, t);
          const key = `${n} ${b} ${t}`;
          times.set(key, [...(times.get(key) ?? []), sum / CALLS]);
        }
      }
    }
  }
  console.log(
    `\n${backend} (numThreads 1), past ${PAST}, median of ${ROUNDS} rounds x ${CALLS} calls, ms per append:`,
  );
  console.log(
    "batch tokens " + names.map((n) => n.padStart(9)).join(" ") +
      (names.length === 2 ? "  target/draft" : ""),
  );
  for (const b of [1, 4]) {
    for (const t of [1, 4]) {
      const ms = names.map((n) => median(times.get(`${n} ${b} ${t}`)!));
      console.log(
        `${String(b).padStart(5)} ${String(t).padStart(6)} ` + ms.map((x) =>
          x.toFixed(3).padStart(9)
        ).join(" ") +
          (ms.length === 2 ? `  ${(ms[0] / ms[1]).toFixed(2).padStart(12)}` : ""),
      );
    }
  }
  for (const m of models.values()) await m.dispose();
}
