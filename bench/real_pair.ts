/**
 * `deno task bench:real`: every exact method on the real pair — SmolLM2-135M-Instruct (target,
 * `deno task model:smollm2`) and its trained draft (models/smollm2-draft) — × target dtype {fp32,
 * q8} × backend {cpu: onnxruntime-node, target 2 threads, draft 1; wasm: onnxruntime-web, 1 thread}
 * × temperature {0.7, 1.0}, on 5 chat prompts held out from the draft's training
 * (tools/train/smollm2/prompts.py `eval_prompts()`, the first five, chosen before measuring), 128
 * new tokens, one seed per prompt (1..5), plus the peers from the same run: transformers.js 4.3.1
 * `generate()` on the same folder and dtype and llama.cpp (node-llama-cpp 3.21.1) autoregressive on
 * the same GGUF, both on cpu with 2 threads.
 *
 * Prints a table per (dtype, backend, temperature) with tokens/s, block efficiency and the
 * speed-ups over autoregressive and the best sd, then the goals with the measured reason for each
 * one not met; its last line is one JSON object:
 * `{"machine", "rows": [{method, k, L, dtype, backend, temperature, tokensPerSecond, blockEfficiency}…],
 * "peers": [{name, dtype, backend, temperature, tokensPerSecond}…]}`.
 *
 * Options: `--quick` (2 prompts, 48 tokens: a smoke run), `--backends cpu,wasm[,kernel]`, `--dtypes fp32,q8`,
 * `--wasm-q8` (q8 on wasm is skipped by default: it dequantizes every weight on every call there).
 *
 * @module
 */

import { RunTotals } from "./_totals.ts";
import { parseArgs } from "node:util";
import { type BackendName, type GenerationMethod, type ModelDtype, SpeculativeGenerator } from "../mod.ts";
import { SMOLLM2_FOLDER } from "../tools/model_smollm2.ts";
import { measurePeers, type PeerResult } from "./_peers.ts";

const DRAFT = new URL("../models/smollm2-draft/", import.meta.url).pathname;
/** The first five of tools/train/smollm2/prompts.py eval_prompts(), never used in training. */
const PROMPTS = [
  "What is the difference between a comet and an asteroid?",
  "How do submarines dive and resurface?",
  "Write a short poem about autumn leaves.",
  "Give me four tips for sleeping better.",
  "Explain how a bicycle gear system works.",
];
const CONFIGS: { method: GenerationMethod; k: number; L: number }[] = [
  { method: "autoregressive", k: 1, L: 1 },
  { method: "auto", k: 4, L: 4 },
  ...[2, 3, 4, 6].map((L) => ({ method: "sd" as const, k: 1, L })),
  ...[2, 3].map((L) => ({ method: "block" as const, k: 1, L })),
  { method: "spectr", k: 2, L: 3 },
  { method: "spectr", k: 4, L: 3 },
  { method: "specinfer-wor", k: 4, L: 3 },
];
const TEMPERATURES = [0.7, 1.0];

/** One measured configuration. */
export interface BenchRow {
  /** The plans auto ran, "method k L: blocks" (auto only). */
  plans?: string;
  method: GenerationMethod;
  k: number;
  L: number;
  dtype: ModelDtype;
  backend: string;
  temperature: number;
  tokensPerSecond: number;
  blockEfficiency: number;
}

const label = (r: { method: string; k: number; L: number }) =>
  r.method === "autoregressive"
    ? "autoregressive"
    : r.method === "auto"
    ? `auto (k<=${r.k}, L<=${r.L})`
    : r.method === "sd" || r.method === "block"
    ? `${r.method} L=${r.L}`
    : `${r.method} k=${r.k} L=${r.L}`;

async function measure(
  generator: SpeculativeGenerator,
  dtype: ModelDtype,
  backend: string,
  prompts: string[],
  maxNewTokens: number,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // Warm-up: first-call costs of each shape out of the table.
  await generator.generate({ messages: [{ role: "user", content: "Hi" }] }, {
    maxNewTokens: 8,
    method: "spectr",
    k: 4,
    seed: 9,
  });
  for (const temperature of TEMPERATURES) {
    const totals = CONFIGS.map(() => new RunTotals());
    // Interleave: prompt by prompt, every configuration, so that machine noise spreads evenly.
    for (const [p, content] of prompts.entries()) {
      for (const [i, c] of CONFIGS.entries()) {
        const { stats } = await generator.generate({ messages: [{ role: "user", content }] }, {
          method: c.method,
          k: c.k,
          draftLength: c.L,
          temperature,
          maxNewTokens,
          seed: p + 1,
        });
        totals[i].add(stats);
      }
    }
    for (const [i, c] of CONFIGS.entries()) {
      rows.push({
        ...c,
        dtype,
        backend,
        temperature,
        tokensPerSecond: totals[i].tokensPerSecond,
        blockEfficiency: totals[i].blockEfficiency,
        ...(c.method === "auto" ? { plans: totals[i].plans } : {}),
      });
    }
  }
  return rows;
}

function printTable(rows: BenchRow[]): void {
  const ar = rows.find((r) => r.method === "autoregressive")!;
  const sds = rows.filter((r) => r.method === "sd");
  const bestSd = sds.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
  console.log(`\n${ar.dtype} target, ${ar.backend}, T = ${ar.temperature}`);
  console.log("method                  tokens/s   block eff.   vs autoregressive   vs best sd");
  for (const r of rows) {
    console.log(
      `${label(r).padEnd(22)} ${r.tokensPerSecond.toFixed(1).padStart(9)}   ${
        r.blockEfficiency.toFixed(2).padStart(9)
      }   ${(r.tokensPerSecond / ar.tokensPerSecond).toFixed(2).padStart(15)}x   ${
        (r.tokensPerSecond / bestSd.tokensPerSecond).toFixed(2).padStart(9)
      }x`,
    );
    if (r.plans) console.log(`    auto ran: ${r.plans}`);
  }
}

function load(): string {
  try {
    return Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  } catch {
    return "unknown";
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      backends: { type: "string", default: "cpu,wasm" },
      dtypes: { type: "string", default: "fp32,q8" },
      "wasm-q8": { type: "boolean", default: false },
    },
  });
  const prompts = values.quick ? PROMPTS.slice(0, 2) : PROMPTS;
  const maxNewTokens = values.quick ? 48 : 128;
  for (const f of [`${SMOLLM2_FOLDER}/build.json`, `${DRAFT}onnx/model.onnx`]) {
    if (!(await Deno.stat(f).catch(() => undefined))) {
      console.log(
        `bench:real skipped: ${f} is missing (run deno task model:smollm2; the draft is committed)`,
      );
      return;
    }
  }
  const machine =
    `${navigator.hardwareConcurrency} cores, ${Deno.build.arch}-${Deno.build.os}, Deno ${Deno.version.deno}`;
  const loadStart = load();
  console.log(
    `bench:real on ${machine}; load ${loadStart}; ${prompts.length} held-out prompts × ${maxNewTokens} tokens`,
  );
  const rows: BenchRow[] = [];
  for (const backend of values.backends.split(",") as BackendName[]) {
    for (const dtype of values.dtypes.split(",") as ModelDtype[]) {
      if (backend === "wasm" && dtype === "q8" && !values["wasm-q8"]) {
        // Measured in deno task bench's real-model section: onnxruntime-web has no int8 kernel for
        // 8-bit MatMulNBits, so q8 there dequantizes every weight on every call (4.5× fp32's time).
        console.log("q8 on wasm: skipped (4.5× slower than fp32 per call there; --wasm-q8 to measure it)");
        continue;
      }
      const generator = await SpeculativeGenerator.fromPretrained({
        target: SMOLLM2_FOLDER,
        draft: DRAFT,
        backend,
        dtype,
        draftOptions: { dtype: "fp32" },
        numThreads: backend === "wasm" ? 1 : 2,
      }).catch((error) => {
        console.log(`${dtype} on ${backend}: cannot load (${(error as Error).message}); skipped`);
        return undefined;
      });
      if (!generator) continue;
      const measured = await measure(generator, dtype, backend, prompts, maxNewTokens);
      await generator.dispose();
      for (const t of TEMPERATURES) printTable(measured.filter((r) => r.temperature === t));
      rows.push(...measured);
    }
  }
  const peers: PeerResult[] = await measurePeers({
    prompts,
    maxNewTokens,
    temperatures: TEMPERATURES,
    threads: 2,
  });
  console.log("\npeers (autoregressive, cpu, 2 threads):");
  for (const p of peers) {
    console.log(
      `  ${p.name.padEnd(40)} ${p.dtype.padEnd(5)} T = ${p.temperature}: ${
        p.tokensPerSecond.toFixed(1)
      } tokens/s`,
    );
  }
  goals(rows, peers);
  console.log(`load at the end ${load()}`);
  console.log(JSON.stringify({ machine, rows, peers }));
}

function goals(rows: BenchRow[], peers: PeerResult[]): void {
  console.log("\nGoals (T = 1 and 0.7):");
  for (const temperature of TEMPERATURES) {
    for (const dtype of ["fp32", "q8"] as const) {
      for (const backend of ["cpu", "wasm", "kernel"]) {
        const cell = rows.filter((r) =>
          r.temperature === temperature && r.dtype === dtype && r.backend === backend
        );
        if (cell.length === 0) continue;
        const ar = cell.find((r) => r.method === "autoregressive")!;
        const best = cell.filter((r) => r.method !== "autoregressive" && r.method !== "auto").reduce((a, b) =>
          b.tokensPerSecond > a.tokensPerSecond ? b : a
        );
        const auto = cell.find((r) => r.method === "auto");
        const fixed = cell.filter((r) => r.method !== "auto").reduce((a, b) =>
          b.tokensPerSecond > a.tokensPerSecond ? b : a
        );
        if (auto) {
          const vsBest = auto.tokensPerSecond / fixed.tokensPerSecond;
          const vsAr = auto.tokensPerSecond / ar.tokensPerSecond;
          console.log(
            `  ${dtype} ${backend} T=${temperature}: auto ${auto.tokensPerSecond.toFixed(1)} tokens/s = ${
              vsBest.toFixed(2)
            }x the best fixed (${label(fixed)}; goal 0.95x: ${vsBest >= 0.95 ? "met" : "NOT met"}), ${
              vsAr.toFixed(2)
            }x autoregressive (goal 1.0x: ${vsAr >= 1 ? "met" : "NOT met"}); ran ${auto.plans}`,
          );
        }
        const speedup = best.tokensPerSecond / ar.tokensPerSecond;
        const goal = backend === "cpu" ? 2.0 : 1.5;
        let line =
          `  ${dtype} ${backend} T=${temperature}: best ${label(best)} ${
            best.tokensPerSecond.toFixed(1)
          } tokens/s = ` +
          `${speedup.toFixed(2)}x autoregressive (goal ${goal}x: ${speedup >= goal ? "met" : "NOT met"})`;
        if (backend === "cpu") {
          // The faster of llama.cpp's 1- and 2-thread runs: the comparison is against its best.
          const llama = peers.filter((p) => p.name.startsWith("llama.cpp") && p.temperature === temperature)
            .sort((a, b) => b.tokensPerSecond - a.tokensPerSecond)[0];
          const tjs = peers.find((p) =>
            p.name.startsWith("transformers.js") && p.dtype === dtype && p.temperature === temperature
          );
          if (llama) {
            const r = best.tokensPerSecond / llama.tokensPerSecond;
            line += `; ${r.toFixed(2)}x llama.cpp (goal 2x: ${r >= 2 ? "met" : "NOT met"})`;
          }
          if (tjs) {
            const r = best.tokensPerSecond / tjs.tokensPerSecond;
            line += `; ${r.toFixed(2)}x transformers.js (goal 3x: ${r >= 3 ? "met" : "NOT met"})`;
          }
        }
        if (speedup < goal) {
          line +=
            `\n    reason: ${best.blockEfficiency.toFixed(2)} tokens per block for ${
              label(best)
            }; each block costs ` +
            `${
              (best.blockEfficiency / speedup).toFixed(2)
            } autoregressive steps (scoring forward + the draft's calls)`;
        }
        console.log(line);
      }
    }
  }
}

if (import.meta.main) await main();
