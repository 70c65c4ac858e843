/**
 * spectr vs the peer a user would otherwise pick: transformers.js `model.generate()` on the same
 * target folder, same runtime (onnxruntime-node, the "cpu" backend), sampling at temperature 1, 64 new
 * tokens after the same prompt (`[BOS = 1] + ids("Once upon a time")`).
 *
 * Run: `deno bench --allow-read --allow-env --allow-ffi --allow-sys bench/micro/peer_bench.ts`
 * (`deno task bench` grants these; without --allow-ffi / --allow-sys every bench here is ignored and
 * the reason printed). Threads: 1 intra-op thread for every session, spectr's and transformers.js'
 * alike (`THREADS=n` to change), so the comparison is per core and stable on a shared machine.
 *
 * Group "generate 64 tokens" (baseline transformers.js): one iteration = one generation.
 *  - transformers.js 4.3.1: `do_sample: true, temperature: 1, top_k: 0` (its generation_config.json
 *    says temperature 0.8 and transformers.js defaults top_k to 50, so both are overridden), and
 *    `max_new_tokens = min_new_tokens = 64` (EOS suppressed, always 64 tokens).
 *  - spectr autoregressive and spectr `spectr` (K-SEQ, k = 4, L = 4, with models/draft), backend
 *    "cpu", temperature 1, maxNewTokens 64 (may stop early at EOS).
 * Tokens/s are computed from the tokens actually generated over wall time (prefill included for all),
 * so the comparison is per generated token. The table printed at the end has tokens/s and the ratios
 * spectr / transformers.js and spectr-autoregressive / transformers.js from this same run.
 *
 * Group "target append": per-call latency t(batch, tokens) of the target through spectr's
 * OnnxCausalLM (backend "cpu") at past length 16, batch ∈ {1, 4}, tokens ∈ {1, 5}, plus the draft's
 * one-token step at batch 1 and 4. With them the table prints the rough speed-up bound of SpecTr over
 * autoregressive decoding, blockEfficiency × t(1, 1) / (t(k, L + 1) + L · draft t(k, 1)).
 *
 * @module
 */

import { SpeculativeGenerator } from "../../src/generate/generator.ts";
import { OnnxCausalLM } from "../../src/model/causal_lm.ts";
import { haveModel, modelPath, MODELS_DIR } from "../../src/model/_testing.ts";
import { type Column, endHeader, formatHeader, formatTable, machineHeader, median } from "../_harness.ts";

const PROMPT = "Once upon a time";
const BOS = 1;
const NEW_TOKENS = 64;
const K = 4;
const L = 4;
const PAST = 16;
const ITERATIONS = 8;
const LATENCY_ITERATIONS = 200;

const missing = (["read", "env", "ffi", "sys"] as const).filter((name) =>
  Deno.permissions.querySync({ name }).state !== "granted"
);
const reason = missing.length > 0
  ? `transformers.js and spectr's "cpu" backend (onnxruntime-node) need --allow-${missing.join(" --allow-")}`
  : !(haveModel("target") && haveModel("draft"))
  ? "models/target or models/draft is missing"
  : undefined;
if (reason) console.warn(`SKIP: bench/micro/peer_bench.ts ignored: ${reason}`);
const ignore = reason !== undefined;
const header = ignore ? undefined : machineHeader("deno task bench: peer bench");
const THREADS = ignore ? 1 : Number(Deno.env.get("THREADS") ?? 1);

/** Per bench name: tokens generated and wall ms of each iteration, or ms per call. */
const samples = new Map<string, { tokens: number; ms: number }[]>();
function record(name: string, tokens: number, ms: number): void {
  samples.set(name, [...(samples.get(name) ?? []), { tokens, ms }]);
}

// deno-lint-ignore no-explicit-any
let tjs: { model: any; tokenizer: any; Tensor: any } | undefined;
let spectr: SpeculativeGenerator | undefined;
let target: OnnxCausalLM | undefined;
let draft: OnnxCausalLM | undefined;
let promptIds: number[] = [];
let seed = 0;
const blockEfficiencies: number[] = [];

if (!ignore) {
  // Imported only with the permissions granted: the import itself reads env/sys.
  const { AutoModelForCausalLM, AutoTokenizer, env, Tensor } = await import(
    "@huggingface/transformers"
  );
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = MODELS_DIR;
  const tokenizer = await AutoTokenizer.from_pretrained("target");
  const model = await AutoModelForCausalLM.from_pretrained("target", {
    dtype: "fp32",
    device: "cpu",
    session_options: { intraOpNumThreads: THREADS, interOpNumThreads: 1 },
  });
  tjs = { model, tokenizer, Tensor };
  promptIds = [BOS, ...(tokenizer.encode(PROMPT, { add_special_tokens: false }) as number[])];
  spectr = await SpeculativeGenerator.fromPretrained({
    target: modelPath("target"),
    draft: modelPath("draft"),
    backend: "cpu",
    numThreads: THREADS,
  });
  target = await OnnxCausalLM.load(modelPath("target"), { backend: "cpu", numThreads: THREADS });
  draft = await OnnxCausalLM.load(modelPath("draft"), { backend: "cpu", numThreads: THREADS });
  globalThis.addEventListener("unload", report);
}

const GENERATE = "generate 64 tokens";
const NAMES = {
  tjs: "transformers.js 4.3.1 generate()",
  ar: "spectr autoregressive",
  spectr: `spectr method "spectr" (k=${K}, L=${L})`,
} as const;

Deno.bench({
  name: NAMES.tjs,
  group: GENERATE,
  baseline: true,
  ignore,
  warmup: 2,
  n: ITERATIONS,
  async fn() {
    const { model, Tensor } = tjs!;
    const n = promptIds.length;
    const t0 = performance.now();
    const output = await model.generate({
      input_ids: new Tensor("int64", BigInt64Array.from(promptIds, BigInt), [1, n]),
      attention_mask: new Tensor("int64", new BigInt64Array(n).fill(1n), [1, n]),
      do_sample: true,
      temperature: 1,
      top_k: 0,
      max_new_tokens: NEW_TOKENS,
      min_new_tokens: NEW_TOKENS,
    });
    const ms = performance.now() - t0;
    record(NAMES.tjs, output.dims[1] - n, ms);
  },
});

for (const method of ["autoregressive", "spectr"] as const) {
  const name = method === "spectr" ? NAMES.spectr : NAMES.ar;
  Deno.bench({
    name,
    group: GENERATE,
    ignore,
    warmup: 2,
    n: ITERATIONS,
    async fn() {
      const { tokens, stats } = await spectr!.generate(promptIds, {
        method,
        k: K,
        draftLength: L,
        temperature: 1,
        maxNewTokens: NEW_TOKENS,
        seed: ++seed,
      });
      record(name, tokens.length, stats.totalMs);
      if (method === "spectr") blockEfficiencies.push(stats.blockEfficiency);
    },
  });
}

function randomRow(length: number, vocab: number, salt: number): number[] {
  return Array.from({ length }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (vocab - 3)));
}

/** One append of `tokens` tokens to each of `batch` rows after a PAST-token prefix (prefix set up once). */
async function timedAppend(
  model: OnnxCausalLM,
  batch: number,
  tokens: number,
  salt: number,
): Promise<number> {
  if (model.length !== PAST || model.rows !== 1) {
    model.reset();
    await model.append([randomRow(PAST, model.vocabSize, 99)], 1);
  }
  const rows = Array.from({ length: batch }, (_, r) => randomRow(tokens, model.vocabSize, salt + r));
  model.fork(batch);
  const t0 = performance.now();
  await model.append(rows, tokens); // includes the lazy KV expand to `batch` rows, as in decoding
  const ms = performance.now() - t0;
  model.select(0, PAST);
  return ms;
}

const LATENCY = "target append";
const latencyCases: { which: "target" | "draft"; batch: number; tokens: number }[] = [
  { which: "target", batch: 1, tokens: 1 },
  { which: "target", batch: 1, tokens: 5 },
  { which: "target", batch: 4, tokens: 1 },
  { which: "target", batch: 4, tokens: 5 },
  { which: "draft", batch: 1, tokens: 1 },
  { which: "draft", batch: 4, tokens: 1 },
];
const latencyName = (c: (typeof latencyCases)[number]) =>
  `${c.which} t(${c.batch}, ${c.tokens}) past ${PAST}`;
for (const c of latencyCases) {
  let salt = 0;
  Deno.bench({
    name: latencyName(c),
    group: LATENCY,
    baseline: c.which === "target" && c.batch === 1 && c.tokens === 1,
    ignore,
    warmup: 20,
    n: LATENCY_ITERATIONS,
    async fn() {
      const model = c.which === "target" ? target! : draft!;
      record(latencyName(c), 0, await timedAppend(model, c.batch, c.tokens, ++salt));
    },
  });
}

function report(): void {
  const tps = (name: string) => {
    const runs = (samples.get(name) ?? []).slice(-ITERATIONS);
    const perRun = runs.map((r) => (r.tokens * 1000) / r.ms);
    const tokens = runs.reduce((a, r) => a + r.tokens, 0);
    const ms = runs.reduce((a, r) => a + r.ms, 0);
    return {
      median: median(perRun),
      pooled: (tokens * 1000) / ms,
      tokens: tokens / runs.length,
      n: runs.length,
    };
  };
  const ms = (name: string) => median((samples.get(name) ?? []).slice(-LATENCY_ITERATIONS).map((r) => r.ms));
  const peer = tps(NAMES.tjs);
  type Generator = { name: string } & ReturnType<typeof tps>;
  const generators: Generator[] = [NAMES.tjs, NAMES.ar, NAMES.spectr].map((name) => ({ name, ...tps(name) }));
  const generatorColumns: Column<Generator>[] = [
    { header: "generator", value: "name" },
    { header: "tokens/s (median)", value: "median", digits: 1 },
    { header: "tokens/s (pooled)", value: "pooled", digits: 1 },
    { header: "mean tokens", value: "tokens", digits: 1 },
    { header: "ratio vs transformers.js", value: (r) => r.median / peer.median, digits: 2 },
  ];
  const lines = [
    "",
    formatHeader(endHeader(header!)),
    `peer bench: target models/target, backend cpu (onnxruntime-node), ${THREADS} intra-op thread(s), temperature 1,`,
    `${NEW_TOKENS} new tokens, prompt ${
      JSON.stringify(PROMPT)
    } (${promptIds.length} ids with BOS); medians of the measured iterations`,
    "",
    formatTable(generatorColumns, generators),
  ];
  const be = median(blockEfficiencies.slice(-ITERATIONS));
  type Latency = (typeof latencyCases)[number];
  lines.push(
    "",
    `spectr / transformers.js = ${(tps(NAMES.spectr).median / peer.median).toFixed(2)}, ` +
      `spectr-autoregressive / transformers.js = ${(tps(NAMES.ar).median / peer.median).toFixed(2)}, ` +
      `spectr / spectr-autoregressive = ${(tps(NAMES.spectr).median / tps(NAMES.ar).median).toFixed(2)}`,
    `spectr block efficiency (median) = ${be.toFixed(2)} tokens per block (one scoring call each)`,
    "",
    `per-call latency through OnnxCausalLM.append, past ${PAST}, median of ${LATENCY_ITERATIONS} calls (ms):`,
    formatTable<Latency>([
      { header: "model", value: "which" },
      { header: "batch", value: "batch", digits: 0 },
      { header: "tokens", value: "tokens", digits: 0 },
      { header: "ms", value: (c) => ms(latencyName(c)), digits: 3 },
    ], latencyCases),
  );
  const t11 = ms(latencyName(latencyCases[0]));
  const tkl = ms(latencyName(latencyCases[3]));
  const d = ms(latencyName(latencyCases[5]));
  lines.push(
    "",
    `speed-up bound ≈ blockEfficiency × t(1,1) / (t(${K},${L + 1}) + ${L} × draft t(${K},1)) = ` +
      `${be.toFixed(2)} × ${t11.toFixed(3)} / (${tkl.toFixed(3)} + ${L} × ${d.toFixed(3)}) = ` +
      `${((be * t11) / (tkl + L * d)).toFixed(2)} (ignores the kernel, sampling and JS overhead)`,
  );
  console.log(lines.join("\n"));
}
