/**
 * The real model: SmolLM2-135M-Instruct as `deno task model:smollm2` builds it
 * (models/smollm2-135m-instruct: fp32, q8 = onnx/model_quantized.onnx, q4), and llama.cpp on the
 * GGUF it is converted from. One bench, run once (`n: 1`), measures everything below in the same
 * process, interleaved round by round, and prints the tables at the end (so every ratio compares
 * numbers from the same run, under the same machine load, which it reports at start and end):
 *
 * 1. Per-call latency t(rows, tokens) through spectr's `OnnxCausalLM.append` after a 64-token
 *    prefix (the fork to `rows` included, as in decoding), for 1×1, 1×5, 1×9, 2×5, 4×5, on cpu
 *    (onnxruntime-node, 2 intra-op threads) and wasm (onnxruntime-web, 1 thread), for fp32, q8 and
 *    q4: median over rounds of the mean of `CALLS` calls (bench/_latency.ts), and the ratio to 1×1
 *    of the same backend and dtype. Every round visits every model and cell.
 * 2. Autoregressive tokens/s: T = 1 (top-k, top-p off), exactly 128 new tokens (EOS does not stop
 *    anyone: spectr gets no EOS ids, transformers.js `min_new_tokens = max_new_tokens`, llama.cpp
 *    feeds end-of-generation tokens back), after the same chat-template prompt ids, 2 threads, wall
 *    time of the whole generation (prefill included) per run, median over runs:
 *    - spectr `autoregressive` (`SpeculativeGenerator`, backend cpu), fp32 and q8, seeds 1, 2, …;
 *    - transformers.js 4.3.1 `generate()` on the same folder and dtype (onnxruntime-node; it has no
 *      seed);
 *    - llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU binary) on the GGUF, in a child process
 *      with its own lock file (tests/_llama_cpp_oracle.ts, command "generate"), one child per
 *      round so that it interleaves with the others; seeds 1, 2, …; with 2 threads and, as a
 *      load-robust reference, 1 thread (ggml's threads spin at every op's barrier: when the machine
 *      is busy, 2 threads on 2 cores wait on each other).
 *    The generators run interleaved (bench/_harness.ts's `interleave`: every generator once per
 *    round, the order rotated by one each round). Ratios: spectr ÷ transformers.js (same dtype) and
 *    spectr ÷ llama.cpp.
 *
 * Run: `deno task bench` (or `deno bench --allow-read --allow-env --allow-ffi --allow-sys
 * --allow-run bench/micro/real_model_bench.ts`). Skipped, with the reason printed, when the folder is not
 * built or the permissions are missing; the llama.cpp rows alone are skipped without --allow-run or
 * the GGUF. Knobs: REAL_ROUNDS (latency rounds, 5), REAL_CALLS (calls per cell per round, 3),
 * REAL_RUNS (generations per generator, 3), REAL_TOKENS (128).
 *
 * @module
 */

import { SpeculativeGenerator } from "../../src/generate/generator.ts";
import { renderChat } from "../../src/generate/chat.ts";
import { getBackend } from "../../src/backend/mod.ts";
import { OnnxCausalLM } from "../../src/model/causal_lm.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import type { GenerateReply } from "../../tests/_llama_cpp_oracle.ts";
import { askLlamaCpp } from "../_peers.ts";
import {
  endHeader,
  formatHeader,
  formatTable,
  interleave,
  machineHeader,
  median,
  pairedSeed,
} from "../_harness.ts";
import { measureLatencies } from "../_latency.ts";
import { SMOLLM2_FOLDER, SMOLLM2_GGUF } from "../../tools/model_smollm2.ts";

const FOLDER = SMOLLM2_FOLDER;
const DTYPES = ["fp32", "q8", "q4"] as const;
const FILES: Record<(typeof DTYPES)[number], string> = {
  fp32: "onnx/model.onnx",
  q8: "onnx/model_quantized.onnx",
  q4: "onnx/model_q4.onnx",
};
const CELLS: readonly (readonly [number, number])[] = [[1, 1], [1, 5], [1, 9], [2, 5], [4, 5]];
const PAST = 64;
const THREADS = 2;
const CHAT = [{
  role: "user" as const,
  content: "Write a short story about a lighthouse keeper who finds a message in a bottle.",
}];

const granted = (name: "read" | "env" | "ffi" | "sys" | "run") =>
  Deno.permissions.querySync(name === "run" ? { name, command: Deno.execPath() } : { name }).state ===
    "granted";
const int = (name: string, fallback: number) => {
  const v = granted("env") ? Number(Deno.env.get(name) ?? fallback) : fallback;
  return Number.isInteger(v) && v > 0 ? v : fallback;
};

/** Why the folder cannot be measured (cheap: build.json lists the files, their sizes match). */
function folderProblem(): string | undefined {
  try {
    const manifest = JSON.parse(Deno.readTextFileSync(`${FOLDER}/build.json`)).files as Record<
      string,
      { bytes: number }
    >;
    for (const file of Object.values(FILES)) {
      if (!manifest[file]) {
        return `build.json does not list ${file} (rebuild: deno task model:smollm2 --force)`;
      }
    }
    for (const [name, { bytes }] of Object.entries(manifest)) {
      if (Deno.statSync(`${FOLDER}/${name}`).size !== bytes) return `${name} is not the size build.json says`;
    }
  } catch (error) {
    return `${FOLDER} is not built (${(error as Error).message}; run deno task model:smollm2)`;
  }
  return undefined;
}

const missing = (["read", "env", "ffi", "sys"] as const).filter((name) => !granted(name));
const reason = missing.length > 0
  ? `needs --allow-${missing.join(" --allow-")} (onnxruntime-node, transformers.js)`
  : folderProblem();
if (reason) console.warn(`SKIP: bench/micro/real_model_bench.ts ignored: ${reason}`);
const llamaReason = reason
  ? reason
  : !granted("run")
  ? "needs --allow-run (llama.cpp runs in a child deno process)"
  : (() => {
    try {
      Deno.statSync(SMOLLM2_GGUF);
      return undefined;
    } catch {
      return `the GGUF ${SMOLLM2_GGUF} is missing (deno task model:smollm2 caches it)`;
    }
  })();
if (!reason && llamaReason) {
  console.warn(`SKIP: bench/micro/real_model_bench.ts: the llama.cpp rows: ${llamaReason}`);
}

/** Latency of every (backend, dtype, cell), models and cells interleaved round by round. */
async function measureLatency(rounds: number, calls: number): Promise<Map<string, number>> {
  const models: Record<string, OnnxCausalLM> = {};
  for (const backend of ["cpu", "wasm"] as const) {
    for (const dtype of DTYPES) {
      models[`${backend} ${dtype}`] = await OnnxCausalLM.load(FOLDER, {
        backend,
        dtype,
        numThreads: getBackend(backend).threads === "session" ? THREADS : 1,
      });
    }
  }
  const ms = await measureLatencies(models, CELLS, { past: PAST, rounds, calls });
  for (const model of Object.values(models)) await model.dispose();
  return ms;
}

/** One timed generation: tokens generated and wall ms. */
type Run = () => Promise<{ tokens: number; ms: number }>;

/** Tokens/s of each generator, interleaved round by round. */
async function measureGeneration(runs: number, newTokens: number) {
  const tokenizer = await Tokenizer.fromFile(`${FOLDER}/tokenizer.json`, `${FOLDER}/tokenizer_config.json`);
  const ids = tokenizer.encode(renderChat(tokenizer, CHAT)) as number[];
  const generators: { name: string; run: (seed: number) => ReturnType<Run> }[] = [];
  const dispose: (() => Promise<unknown>)[] = [];
  const { AutoModelForCausalLM, env, Tensor } = await import("@huggingface/transformers");
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = FOLDER.slice(0, FOLDER.lastIndexOf("/") + 1);
  const folderName = FOLDER.slice(FOLDER.lastIndexOf("/") + 1);
  for (const dtype of ["fp32", "q8"] as const) {
    const loaded = await SpeculativeGenerator.fromPretrained({
      target: FOLDER,
      backend: "cpu",
      dtype,
      numThreads: THREADS,
    });
    // No EOS ids: always exactly newTokens tokens, like the others.
    const spectr = new SpeculativeGenerator({
      target: loaded.target,
      tokenizer: loaded.tokenizer,
      kernel: loaded.kernel,
      eosTokenIds: [],
    });
    dispose.push(() => loaded.dispose());
    generators.push({
      name: `spectr autoregressive ${dtype}`,
      run: async (seed) => {
        const t0 = performance.now();
        const { tokens } = await spectr.generate(ids, {
          method: "autoregressive",
          temperature: 1,
          maxNewTokens: newTokens,
          seed,
        });
        return { tokens: tokens.length, ms: performance.now() - t0 };
      },
    });
    const model = await AutoModelForCausalLM.from_pretrained(folderName, {
      dtype,
      device: "cpu",
      session_options: { intraOpNumThreads: THREADS, interOpNumThreads: 1 },
    });
    dispose.push(() => model.dispose());
    generators.push({
      name: `transformers.js 4.3.1 generate() ${dtype}`,
      run: async () => {
        const n = ids.length;
        const t0 = performance.now();
        // deno-lint-ignore no-explicit-any
        const output: any = await model.generate({
          input_ids: new Tensor("int64", BigInt64Array.from(ids, BigInt), [1, n]),
          attention_mask: new Tensor("int64", new BigInt64Array(n).fill(1n), [1, n]),
          do_sample: true,
          temperature: 1,
          top_k: 0,
          max_new_tokens: newTokens,
          min_new_tokens: newTokens,
        });
        return { tokens: output.dims[1] - n, ms: performance.now() - t0 };
      },
    });
  }
  let llamaCpp: GenerateReply["llamaCpp"] | undefined;
  // 2 threads as everyone else; 1 thread too: on a loaded 2-core machine ggml's 2 spinning
  // threads wait on each other at every op (measured 0.6–7 tokens/s at load 4–8, 130 with 1 thread)
  for (const threads of llamaReason ? [] : [THREADS, 1]) {
    generators.push({
      name: `llama.cpp (node-llama-cpp 3.21.1) Q4_1 GGUF, ${threads} thread${threads > 1 ? "s" : ""}`,
      run: async (seed) => {
        const reply = await askLlamaCpp({
          command: "generate",
          gguf: SMOLLM2_GGUF,
          ids,
          maxTokens: newTokens,
          runs: 1,
          seed,
          temperature: 1,
          threads,
        });
        if (threads === THREADS) llamaCpp = reply.llamaCpp;
        return { tokens: reply.runs[0].ids.length, ms: reply.runs[0].ms };
      },
    });
  }
  for (const g of generators.slice(0, 4)) await g.run(999); // warm-up (llama.cpp warms up in its child)
  // every generator once per round, the order rotated each round; round r: seed r + 1
  const perRound = await interleave(generators, runs, async (g, round) => {
    const { tokens, ms } = await g.run(pairedSeed(0, round, 1));
    if (tokens !== newTokens) throw new Error(`${g.name} generated ${tokens} tokens, not ${newTokens}`);
    return (tokens * 1000) / ms;
  });
  const samples = new Map(generators.map((g, i) => [g.name, perRound[i]]));
  for (const d of dispose) await d();
  return { promptLength: ids.length, samples, llamaCpp };
}

const lines: string[] = [];

async function run(): Promise<void> {
  const rounds = int("REAL_ROUNDS", 5), calls = int("REAL_CALLS", 3);
  const runs = int("REAL_RUNS", 3), newTokens = int("REAL_TOKENS", 128);
  const header = machineHeader("deno task bench: real model");
  const t0 = performance.now();
  const latency = await measureLatency(rounds, calls);
  const generation = await measureGeneration(runs, newTokens);
  const minutes = (performance.now() - t0) / 60000;
  const fmt = (x: number) => x.toFixed(1);
  type LatencyRow = { backend: string; dtype: string; ms: number[] };
  const latencyRows: LatencyRow[] = ["cpu", "wasm"].flatMap((backend) =>
    DTYPES.map((dtype) => ({
      backend,
      dtype,
      ms: CELLS.map(([r, t]) => latency.get(`${backend} ${dtype} ${r}x${t}`)!),
    }))
  );
  lines.push(
    "",
    `## Real model (SmolLM2-135M-Instruct): one run, ${header.date}, ${minutes.toFixed(1)} min`,
    "",
    formatHeader(endHeader(header)),
    "",
    `per-call latency t(rows × tokens), ms, past ${PAST}: median of ${rounds} rounds × ${calls} calls ` +
      "(ratio to 1×1 of the same backend and dtype); cpu = onnxruntime-node, 2 threads; wasm = onnxruntime-web, 1 thread",
    "",
    formatTable<LatencyRow>([
      { header: "backend", value: "backend" },
      { header: "dtype", value: "dtype" },
      ...CELLS.map(([r, t], i) => ({
        header: `${r}×${t}`,
        value: (row: LatencyRow) => `${fmt(row.ms[i])} (${(row.ms[i] / row.ms[0]).toFixed(2)})`,
        align: "right" as const,
      })),
    ], latencyRows),
  );
  const tps = (name: string) => median(generation.samples.get(name) ?? [NaN]);
  lines.push(
    "",
    `autoregressive generation: T = 1, ${newTokens} new tokens after a ${generation.promptLength}-token chat prompt, ` +
      `${THREADS} threads, wall time with prefill; median of ${runs} runs`,
    "",
    formatTable<[string, number[]]>([
      { header: "generator", value: ([name]) => name },
      { header: "tokens/s (median)", value: ([name]) => tps(name), digits: 1 },
      { header: "runs", value: ([, xs]) => xs.map(fmt).join(", ") },
    ], [...generation.samples]),
  );
  const llamas = [...generation.samples.keys()].filter((n) => n.startsWith("llama.cpp"));
  lines.push("");
  for (const dtype of ["fp32", "q8"]) {
    const ours = tps(`spectr autoregressive ${dtype}`);
    const vs = llamas.map((n) =>
      `; ÷ llama.cpp ${n.slice(n.lastIndexOf(",") + 2)} = ${(ours / tps(n)).toFixed(2)}`
    );
    lines.push(
      `spectr autoregressive ${dtype} ÷ transformers.js ${dtype} = ${
        (ours / tps(`transformers.js 4.3.1 generate() ${dtype}`)).toFixed(2)
      }${vs.join("")}`,
    );
  }
  if (generation.llamaCpp) {
    const l = generation.llamaCpp;
    lines.push(`llama.cpp: ${l.release} (${l.buildType}), ${l.threads} threads, context ${l.contextSize}`);
  } else lines.push(`llama.cpp: skipped (${llamaReason})`);
}

let measured: Promise<void> | undefined;
Deno.bench({
  name:
    "SmolLM2-135M-Instruct: latency and tokens/s tables, printed at the end (measured once, in deno bench's warm-up call: the time shown here is not the measurement)",
  group: "real model",
  ignore: reason !== undefined,
  warmup: 0,
  n: 1,
  async fn() {
    // deno bench always makes at least one warm-up call, then n measured calls: measure in the first
    if (!measured) await (measured = run());
  },
});

if (!reason) globalThis.addEventListener("unload", () => console.log(lines.join("\n")));
