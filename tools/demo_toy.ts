/**
 * Demo: speculative decoding on toy Markov-chain models (a target chain and a draft chain that is
 * the target plus noise). Prints, per method and (k, L), the block efficiency (tokens per target
 * call) and the acceptance per depth, measured in this run with the same seeds. Every method samples
 * exactly the target chain; they differ only in how many target calls they need.
 *
 * Run: `deno task demo --markov` or `deno run --allow-read --allow-env tools/demo_toy.ts` (options: --vocab 32
 * --tokens 4000 --temperature 1 --seed 1).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadKernel } from "../src/kernel/wasm.ts";
import { createDecoder, MarkovModel, nearMarkovTable, randomMarkovTable } from "../src/decode/mod.ts";
import type { DecodeMethod } from "../src/decode/mod.ts";

const { values } = parseArgs({
  args: Deno.args.filter((a) => a !== "--toy" && a !== "--markov"),
  options: {
    vocab: { type: "string", default: "32" },
    tokens: { type: "string", default: "4000" },
    temperature: { type: "string", default: "1" },
    seed: { type: "string", default: "1" },
  },
});
const vocabSize = Number(values.vocab);
const totalTokens = Number(values.tokens);
const temperature = Number(values.temperature);
const seed = Number(values.seed);

const kernel = await loadKernel();
const table = randomMarkovTable(vocabSize, 1, seed, { scale: 2.5 });
const draftTable = nearMarkovTable(table, vocabSize, seed + 1, { noise: 1.0 });

const runs: { method: DecodeMethod; k: number; L: number }[] = [
  { method: "autoregressive", k: 1, L: 1 },
  { method: "sd", k: 1, L: 2 },
  { method: "sd", k: 1, L: 4 },
  { method: "kseq", k: 2, L: 4 },
  { method: "kseq", k: 4, L: 4 },
  { method: "kseq", k: 8, L: 4 },
  { method: "specinfer", k: 4, L: 4 },
  { method: "specinfer-wor", k: 4, L: 4 },
];

console.log(
  `spectr demo: toy order-1 Markov chains, V = ${vocabSize}, T = ${temperature}, ${totalTokens} tokens per row, ` +
    `kernel: ${kernel.name}\n`,
);
console.log("method          k  L  tokens/target-call  draft-calls/token  acceptance per depth");
let baseline = 0;
for (const { method, k, L } of runs) {
  const target = new MarkovModel({ table, vocabSize });
  const draft = new MarkovModel({ table: draftTable, vocabSize });
  const decoder = createDecoder(method, { target, draft, kernel, k, draftLength: L, warp: { temperature } });
  let tokens = 0, targetCalls = 0, draftCalls = 0;
  const accepted = new Array(L).fill(0), reached = new Array(L).fill(0);
  for (let g = 0; tokens < totalTokens; g++) {
    const { stats } = await decoder.generate([g % vocabSize], { maxNewTokens: 200, seed: seed * 1000 + g });
    tokens += stats.tokens;
    targetCalls += stats.targetCalls;
    draftCalls += stats.draftCalls;
    stats.acceptedPerDepth.forEach((a, t) => (accepted[t] += a));
    stats.reachedPerDepth.forEach((r, t) => (reached[t] += r));
  }
  const efficiency = tokens / targetCalls;
  if (method === "autoregressive") baseline = efficiency;
  const perDepth = method === "autoregressive"
    ? "-"
    : accepted.map((a, t) => (reached[t] ? (a / reached[t]).toFixed(2) : "-")).join(" ");
  console.log(
    `${method.padEnd(15)} ${String(k).padStart(1)}  ${L}  ${efficiency.toFixed(3).padStart(8)} ` +
      `(${(efficiency / baseline).toFixed(2)}x)  ${
        (draftCalls / tokens).toFixed(3).padStart(10)
      }         ${perDepth}`,
  );
}
console.log(
  "\nBlock efficiency = generated tokens per target call (the quantity SpecTr raises); with real models\n" +
    "speed-up ≈ efficiency / (1 + draft cost per block / target call cost). The ONNX demo comes with real models.",
);
