/**
 * `deno task bench:kernel`: the `kernel` backend (spectr's own WebAssembly forward pass, no
 * onnxruntime) against onnxruntime-web (`wasm`, 1 thread) — the two edge backends — on the bundled
 * pair (fp32) and the real pair (SmolLM2-135M-Instruct + models/smollm2-draft; target fp32 and q8,
 * draft fp32), in one run, the backends interleaved per cell.
 *
 * Per (pair, dtype): t(rows × tokens) of the target through `OnnxCausalLM.append` after a 64-token
 * prefix (1×1, 1×5, 2×5, and a 9-node tree where the backend scores trees), ms, median of 5
 * (bench/_latency.ts, one call per round, the logits of every appended token kept); then tokens/s of
 * `generate` at T = 1 for autoregressive, sd L = 2 and 3, spectr k = 2 L = 3, and auto (calibrated
 * by an untimed 8-token generation first), 2 fixed chat prompts (story prompts for the bundled pair)
 * × 64 tokens, seeds 1, 2. On the harness (bench/_harness.ts): its header line first; the last line is
 * one JSON object `{"header", "result": [{pair, dtype, latency, tokensPerSecond}…]}`.
 *
 * Options: `--only bundled|real`, `--tokens N`.
 *
 * @module
 */
import type { GenerationMethod, GenerationPrompt, ModelDtype } from "../mod.ts";
import { OnnxCausalLM } from "../src/model/causal_lm.ts";
import {
  choiceFlag,
  finishBench,
  formatHeader,
  formatTable,
  intFlag,
  loadPair,
  machineHeader,
  missingFiles,
  pairedSeed,
  PAIRS,
  type PairSpec,
  parseFlags,
  runMain,
} from "./_harness.ts";
import { type LatencyCell, measureLatency } from "./_latency.ts";

const CELLS: { pair: PairSpec; dtypes: ModelDtype[] }[] = [
  { pair: PAIRS.bundled, dtypes: ["fp32"] },
  { pair: PAIRS.real, dtypes: ["fp32", "q8"] },
];
const BACKENDS = ["wasm", "kernel"] as const;
const METHODS: { method: GenerationMethod; k: number; L: number }[] = [
  { method: "autoregressive", k: 1, L: 1 },
  { method: "sd", k: 1, L: 2 },
  { method: "sd", k: 1, L: 3 },
  { method: "spectr", k: 2, L: 3 },
  { method: "auto", k: 4, L: 4 },
];
/** Two drafts of 4 tokens sharing nothing, after the pending token: 9 nodes. */
const TREE9: LatencyCell = { tree: [-1, 0, 1, 2, 3, 0, 5, 6, 7] };

async function latencies(
  folder: string,
  backend: string,
  dtype: ModelDtype,
): Promise<Record<string, number>> {
  const model = await OnnxCausalLM.load(folder, { backend: backend as "wasm", numThreads: 1, dtype });
  const cells: LatencyCell[] = [[1, 1], [1, 5], [2, 5], ...(model.supportsTree ? [TREE9] : [])];
  const ms = await measureLatency(model, cells, { past: 64, rounds: 5, calls: 1, keepAll: true });
  await model.dispose();
  return Object.fromEntries(ms);
}

const methodName = (m: (typeof METHODS)[number]) =>
  m.method === "autoregressive" || m.method === "auto" ? m.method : `${m.method} k=${m.k} L=${m.L}`;

async function main() {
  const flags = parseFlags("bench:kernel", {
    options: { only: { type: "string" }, tokens: { type: "string", default: "64" } },
  });
  if (!flags) return;
  const only = flags.values.only === undefined
    ? undefined
    : choiceFlag("only", flags.values.only, ["bundled", "real"], "bundled");
  const tokens = intFlag("tokens", flags.values.tokens, 64);
  const result: Record<string, unknown>[] = [];
  const header = machineHeader("bench:kernel");
  console.log(formatHeader(header));
  console.log(`${tokens} tokens, T = 1; backends ${BACKENDS.join(", ")} (1 thread)`);
  for (const { pair, dtypes } of CELLS) {
    if (only && only !== pair.name) continue;
    for (const dtype of dtypes) {
      const missing = missingFiles({ pair, backend: "wasm", dtype });
      if (missing) {
        console.log(`${pair.name} ${dtype}: skipped (${missing})`);
        continue;
      }
      const cell: Record<string, unknown> = { pair: pair.name, dtype };
      const lat: Record<string, Record<string, number>> = {};
      for (const backend of BACKENDS) lat[backend] = await latencies(pair.target, backend, dtype);
      cell.latency = lat;
      console.log(`\n${pair.name} pair, target ${dtype}: t(rows × tokens) ms (ratio to 1×1)`);
      const keys = [...new Set(BACKENDS.flatMap((b) => Object.keys(lat[b])))];
      console.log(formatTable<(typeof BACKENDS)[number]>([
        { header: "backend", value: (b) => b },
        ...keys.map((k) => ({
          header: k,
          value: (b: (typeof BACKENDS)[number]) =>
            lat[b][k] === undefined
              ? undefined
              : `${lat[b][k].toFixed(1)} (${(lat[b][k] / lat[b]["1x1"]).toFixed(2)})`,
          align: "right" as const,
        })),
      ], BACKENDS));
      const generators = Object.fromEntries(
        await Promise.all(
          BACKENDS.map(async (backend) =>
            [backend, await loadPair(pair, { backend, threads: 1, dtype, draftDtype: "fp32" })] as const
          ),
        ),
      );
      const prompts: GenerationPrompt[] = pair.chat
        ? [
          { messages: [{ role: "user" as const, content: "How do submarines dive and resurface?" }] },
          { messages: [{ role: "user" as const, content: "Write a short poem about autumn leaves." }] },
        ]
        : ["Once upon a time", "The little dog"];
      // auto calibrates its cost model on its first generation (≤ 2 s): done here, untimed
      for (const backend of BACKENDS) {
        await generators[backend].generate(prompts[0], { maxNewTokens: 8, method: "auto", seed: 9 });
      }
      const tps: Record<string, Record<string, number>> = {};
      for (const m of METHODS) {
        for (const backend of BACKENDS) { // interleaved: the same cell on both backends back to back
          let n = 0, ms = 0;
          for (const [p, prompt] of prompts.entries()) {
            const t0 = performance.now();
            const r = await generators[backend].generate(prompt, {
              maxNewTokens: tokens,
              temperature: 1,
              seed: pairedSeed(p, 0, prompts.length),
              method: m.method,
              k: m.k,
              draftLength: m.L,
            });
            ms += performance.now() - t0;
            n += r.tokens.length;
          }
          (tps[backend] ??= {})[methodName(m)] = n / (ms / 1000);
        }
      }
      for (const g of Object.values(generators)) await g.dispose();
      cell.tokensPerSecond = tps;
      console.log(formatTable<(typeof BACKENDS)[number]>([
        { header: "tokens/s", value: (b) => b },
        ...METHODS.map((m) => ({
          header: methodName(m),
          value: (b: (typeof BACKENDS)[number]) => tps[b][methodName(m)],
          digits: 1,
        })),
      ], BACKENDS));
      const best = (b: string) => Math.max(...Object.values(tps[b]));
      console.log(
        `  best kernel ÷ best wasm: ${(best("kernel") / best("wasm")).toFixed(2)}; kernel best ÷ kernel AR: ${
          (best("kernel") / tps.kernel.autoregressive).toFixed(2)
        }`,
      );
      result.push(cell);
    }
  }
  finishBench(header, { result });
}

if (import.meta.main) await runMain(main);
