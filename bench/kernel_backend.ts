/**
 * `deno task bench:kernel`: the `kernel` backend (spectr's own WebAssembly forward pass, no
 * onnxruntime) against onnxruntime-web (`wasm`, 1 thread) — the two edge backends — on the bundled
 * pair (fp32) and the real pair (SmolLM2-135M-Instruct + models/smollm2-draft; target fp32 and q8,
 * draft fp32), in one run, the backends interleaved per cell.
 *
 * Per (pair, dtype): t(rows × tokens) of the target through `OnnxCausalLM.append` after a 64-token
 * prefix (1×1, 1×5, 2×5, and a 9-node tree where the backend scores trees), ms, median of 5; then
 * tokens/s of `generate` at T = 1 for autoregressive, sd L = 2 and 3, spectr k = 2 L = 3, and
 * auto (calibrated by an untimed 8-token generation first), 2 fixed chat prompts (story prompts for
 * the bundled pair) × 64 tokens, seeds 1, 2. The last
 * line is one JSON object with every number.
 *
 * Options: `--only bundled|real`, `--tokens N`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type GenerationMethod, type ModelDtype, SpeculativeGenerator } from "../mod.ts";
import { OnnxCausalLM } from "../src/model/causal_lm.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const PAIRS = [
  { label: "bundled", target: `${ROOT}models/target`, draft: `${ROOT}models/draft`, dtypes: ["fp32"] },
  {
    label: "real",
    target: `${ROOT}models/smollm2-135m-instruct`,
    draft: `${ROOT}models/smollm2-draft`,
    dtypes: ["fp32", "q8"],
  },
] as const;
const BACKENDS = ["wasm", "kernel"] as const;
const METHODS: { method: GenerationMethod; k: number; L: number }[] = [
  { method: "autoregressive", k: 1, L: 1 },
  { method: "sd", k: 1, L: 2 },
  { method: "sd", k: 1, L: 3 },
  { method: "spectr", k: 2, L: 3 },
  { method: "auto", k: 4, L: 4 },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function latencies(
  folder: string,
  backend: string,
  dtype: ModelDtype,
): Promise<Record<string, number>> {
  const model = await OnnxCausalLM.load(folder, { backend: backend as "wasm", numThreads: 1, dtype });
  const prefix = Array.from({ length: 64 }, (_, i) => 10 + i);
  const time = async (f: () => Promise<unknown>) => {
    const ts: number[] = [];
    for (let i = 0; i < 5; i++) {
      model.reset();
      await model.append([prefix], 1);
      const t0 = performance.now();
      await f();
      ts.push(performance.now() - t0);
    }
    return median(ts);
  };
  const out: Record<string, number> = {};
  out["1x1"] = await time(() => model.append([[5]], 1));
  out["1x5"] = await time(() => model.append([[5, 6, 7, 8, 9]], 5));
  out["2x5"] = await time(async () => {
    model.fork(2);
    await model.append([[5, 6, 7, 8, 9], [1, 2, 3, 4, 5]], 5);
  });
  if (model.supportsTree) {
    // two drafts of 4 tokens sharing nothing, after the pending token: 9 nodes
    out["tree9"] = await time(() =>
      model.appendTree!([5, 6, 7, 8, 9, 1, 2, 3, 4], [-1, 0, 1, 2, 3, 0, 5, 6, 7])
    );
  }
  await model.dispose();
  return out;
}

async function main() {
  const { values } = parseArgs({
    args: Deno.args,
    options: { only: { type: "string" }, tokens: { type: "string", default: "64" } },
  });
  const tokens = Number(values.tokens);
  const result: Record<string, unknown>[] = [];
  console.log(
    `bench:kernel; load ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}; ${tokens} tokens, T = 1`,
  );
  for (const pair of PAIRS) {
    if (values.only && values.only !== pair.label) continue;
    for (const dtype of pair.dtypes) {
      try {
        Deno.statSync(`${pair.target}/onnx/${dtype === "q8" ? "model_quantized" : "model"}.onnx`);
      } catch {
        console.log(`${pair.label} ${dtype}: missing, skipped`);
        continue;
      }
      const cell: Record<string, unknown> = { pair: pair.label, dtype };
      const lat: Record<string, Record<string, number>> = {};
      for (const backend of BACKENDS) lat[backend] = await latencies(pair.target, backend, dtype);
      cell.latency = lat;
      console.log(`\n${pair.label} pair, target ${dtype}: t(rows × tokens) ms (ratio to 1×1)`);
      for (const backend of BACKENDS) {
        const l = lat[backend];
        console.log(
          `  ${backend.padEnd(6)} ${
            Object.entries(l).map(([k, v]) => `${k} ${v.toFixed(1)} (${(v / l["1x1"]).toFixed(2)})`).join(
              "  ",
            )
          }`,
        );
      }
      const generators = Object.fromEntries(
        await Promise.all(BACKENDS.map(async (backend) =>
          [
            backend,
            await SpeculativeGenerator.fromPretrained({
              target: pair.target,
              draft: pair.draft,
              backend,
              numThreads: 1,
              dtype,
              draftOptions: { dtype: "fp32" },
            }),
          ] as const
        )),
      );
      const prompts = pair.label === "real"
        ? [
          { messages: [{ role: "user" as const, content: "How do submarines dive and resurface?" }] },
          { messages: [{ role: "user" as const, content: "Write a short poem about autumn leaves." }] },
        ]
        : ["Once upon a time", "The little dog"];
      // auto calibrates its cost model on its first generation (≤ 2 s): done here, untimed
      for (const backend of BACKENDS) {
        await generators[backend].generate(prompts[0] as string, {
          maxNewTokens: 8,
          method: "auto",
          seed: 9,
        });
      }
      const tps: Record<string, Record<string, number>> = {};
      for (const m of METHODS) {
        const name = m.method === "autoregressive" || m.method === "auto"
          ? m.method
          : `${m.method} k=${m.k} L=${m.L}`;
        for (const backend of BACKENDS) { // interleaved: the same cell on both backends back to back
          let n = 0, ms = 0;
          for (let seed = 1; seed <= prompts.length; seed++) {
            const t0 = performance.now();
            const r = await generators[backend].generate(prompts[seed - 1] as string, {
              maxNewTokens: tokens,
              temperature: 1,
              seed,
              method: m.method,
              k: m.k,
              draftLength: m.L,
            });
            ms += performance.now() - t0;
            n += r.tokens.length;
          }
          (tps[backend] ??= {})[name] = n / (ms / 1000);
        }
      }
      for (const g of Object.values(generators)) await g.dispose();
      cell.tokensPerSecond = tps;
      console.log(
        `  tokens/s       ${
          METHODS.map((m) =>
            (m.method === "autoregressive" || m.method === "auto"
              ? m.method
              : `${m.method} L=${m.L}${m.k > 1 ? ` k=${m.k}` : ""}`).padStart(14)
          ).join("")
        }`,
      );
      for (const backend of BACKENDS) {
        console.log(
          `  ${backend.padEnd(14)} ${
            Object.values(tps[backend]).map((v) => v.toFixed(1).padStart(14)).join("")
          }`,
        );
      }
      const best = (b: string) => Math.max(...Object.values(tps[b]));
      console.log(
        `  best kernel ÷ best wasm: ${(best("kernel") / best("wasm")).toFixed(2)}; kernel best ÷ kernel AR: ${
          (best("kernel") / tps.kernel.autoregressive).toFixed(2)
        }`,
      );
      result.push(cell);
    }
  }
  console.log(`load at the end ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  console.log(JSON.stringify({ result }));
}

if (import.meta.main) await main();
