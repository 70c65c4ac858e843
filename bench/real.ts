/**
 * `deno task bench:real`: every exact method on the real target — SmolLM2-135M-Instruct
 * (`deno task model:smollm2`) — with each drafter: the old draft model (models/smollm2-draft, the
 * baseline rows) and the feature drafter (models/smollm2-eagle, proposer "eagle", when its onnx/
 * is built), × target dtype {fp32, q8} × backend {cpu: onnxruntime-node, target 2 threads, drafters
 * 1; wasm: onnxruntime-web, 1 thread} × temperature {0 (greedy), 0.7, 1.0}, on 5 chat prompts held
 * out from the drafters' training (tools/train/smollm2/prompts.py `eval_prompts()`, the first five,
 * chosen before measuring), 128 new tokens, one seed per prompt (1..5), plus the peers from the same
 * run: transformers.js 4.3.1 `generate()` on the same folder and dtype and llama.cpp (node-llama-cpp
 * 3.21.1) autoregressive on the same GGUF, both on cpu (2 threads; llama.cpp also 1).
 *
 * Both drafters share one target session (one generator holding the draft model and the feature
 * drafter; each generation names its proposer), so the autoregressive row is common to both, and
 * every row of a (dtype, backend, temperature) cell is interleaved prompt by prompt. `auto` runs once
 * per drafter: it chooses method, k and L for the proposer it is given, not the proposer. Each
 * proposer's `auto` cost calibration runs in the warm-up, out of the table.
 *
 * Per row: tokens/s, ratio to autoregressive, tokens per block, α₁ = accepted depth-1 draft tokens
 * ÷ blocks that verified depth 1 (with k drafts: any of them accepted), ᾱ = accepted ÷ verified
 * draft tokens over all depths, and the costs in target autoregressive steps, t_AR = the
 * autoregressive row's wall ms per token in the same cell: c_d = draft ms ÷ (blocks · L) ÷ t_AR (per
 * depth, all k rows), c_v = (wall ms − draft ms) ÷ blocks ÷ t_AR (scoring forward, verification and
 * the per-block rest), so that measured speed-up = tokens per block ÷ (c_v + L·c_d) exactly, and
 * "pred." = (1 − α₁^(L+1)) ÷ ((1 − α₁)(c_v + L·c_d)) (i.i.d. acceptance at α₁).
 *
 * On the harness (bench/_harness.ts): its header line first; a table per (dtype, backend,
 * temperature), then the goals, each "met" / "NOT met" with the measured reason; its last line is one
 * JSON object: `{"header", "rows": [{drafter, method, k, L, dtype, backend, temperature,
 * tokensPerSecond, vsAutoregressive, blockEfficiency, alpha1, alphaMean, acceptancePerDepth, cV, cD,
 * predictedSpeedup, plans?}…], "peers": [{name, dtype, backend, temperature, tokensPerSecond}…]}`.
 *
 * Options: `--quick` (2 prompts, 48 tokens: a smoke run), `--backends cpu,wasm[,kernel]`, `--dtypes fp32,q8`,
 * `--drafters old,eagle`, `--eagle DIR` (the feature drafter's folder; default models/smollm2-eagle),
 * `--wasm-q8` (q8 on wasm is skipped by default: it dequantizes every weight on every call there),
 * `--tokens N` (new tokens per generation instead of 128 / 48: a shorter smoke run).
 *
 * @module
 */

import {
  type BackendName,
  type DecodeStats,
  type GenerationMethod,
  type ModelDtype,
  SpeculativeGenerator,
} from "../mod.ts";
import { OnnxCausalLM } from "../model.ts";
import {
  choiceListFlag,
  defaultThreads,
  EAGLE_FOLDER,
  exists,
  expandMatrix,
  finishBench,
  formatHeader,
  formatSkipped,
  formatTable,
  HELD_OUT_CHAT_PROMPTS,
  interleave,
  intFlag,
  listFlag,
  loadPair,
  machineHeader,
  pairedSeed,
  PAIRS,
  parseFlags,
  runMain,
  RunTotals,
  sum,
} from "./_harness.ts";
import { measurePeers, type PeerResult } from "./_peers.ts";

const OLD_DRAFT = PAIRS.real.draft;
const TARGET = PAIRS.real.target;
/** The first five of tools/train/smollm2/prompts.py eval_prompts(), never used in training. */
const PROMPTS = HELD_OUT_CHAT_PROMPTS;
/** The drafters: "old" = the draft model (proposer "draft"), "eagle" = the feature drafter. */
export type DrafterName = "old" | "eagle";
const PROPOSER = { old: "draft", eagle: "eagle" } as const;
const DRAFTER_CONFIGS: { method: GenerationMethod; k: number; L: number }[] = [
  { method: "auto", k: 4, L: 4 },
  ...[2, 3, 4, 6].map((L) => ({ method: "sd" as const, k: 1, L })),
  ...[2, 3].map((L) => ({ method: "block" as const, k: 1, L })),
  { method: "spectr", k: 2, L: 3 },
  { method: "spectr", k: 4, L: 3 },
  { method: "specinfer-wor", k: 4, L: 3 },
];
const TEMPERATURES = [0, 0.7, 1.0];

/** One configuration of a cell: autoregressive (drafter "none") or a method with one drafter. */
interface Config {
  drafter: DrafterName | "none";
  method: GenerationMethod;
  k: number;
  L: number;
}

/** One measured configuration. */
export interface BenchRow extends Config {
  dtype: ModelDtype;
  backend: string;
  temperature: number;
  tokensPerSecond: number;
  /** tokensPerSecond ÷ the same cell's autoregressive row. */
  vsAutoregressive: number;
  /** Tokens per block. */
  blockEfficiency: number;
  /** Accepted depth-1 draft tokens ÷ blocks that verified depth 1 (NaN: autoregressive). */
  alpha1: number;
  /** Accepted ÷ verified draft tokens over all depths. */
  alphaMean: number;
  /** Accepted ÷ verified per depth 1..L. */
  acceptancePerDepth: number[];
  /** (wall − draft) ms per block ÷ the cell's autoregressive ms per token. */
  cV: number;
  /** Draft ms per depth (blocks · L) ÷ the cell's autoregressive ms per token. */
  cD: number;
  /** Mean draft length per block (auto: over its plans; L = 0 blocks count). */
  meanL: number;
  /** (1 − α₁^(L+1)) ÷ ((1 − α₁)(c_v + L·c_d)). */
  predictedSpeedup: number;
  /** The plans auto ran, "method k L: blocks" (auto only). */
  plans?: string;
}

/** RunTotals plus acceptance per depth and the time split. */
class CellTotals extends RunTotals {
  draftMs = 0;
  lengthBlocks = 0;
  accepted: number[] = [];
  reached: number[] = [];

  override add(stats: DecodeStats): void {
    super.add(stats);
    this.draftMs += stats.draftMs;
    for (const p of stats.plans) this.lengthBlocks += p.draftLength * p.blocks;
    stats.reachedPerDepth.forEach((n, t) => {
      this.reached[t] = (this.reached[t] ?? 0) + n;
      this.accepted[t] = (this.accepted[t] ?? 0) + (stats.acceptedPerDepth[t] ?? 0);
    });
  }
}

const label = (r: Omit<Config, "drafter">) =>
  r.method === "autoregressive"
    ? "autoregressive"
    : r.method === "auto"
    ? `auto (k<=${r.k}, L<=${r.L})`
    : r.method === "sd" || r.method === "block"
    ? `${r.method} L=${r.L}`
    : `${r.method} k=${r.k} L=${r.L}`;
const name = (r: Config) => r.drafter === "none" ? label(r) : `${r.drafter} ${label(r)}`;
const f2 = (x: number) => Number.isFinite(x) ? x.toFixed(2) : "—";

/** Measures every configuration of one (dtype, backend) cell, interleaved prompt by prompt per temperature. */
async function measure(
  generator: SpeculativeGenerator,
  drafters: DrafterName[],
  dtype: ModelDtype,
  backend: string,
  prompts: readonly string[],
  maxNewTokens: number,
): Promise<BenchRow[]> {
  const configs: Config[] = [
    { drafter: "none", method: "autoregressive", k: 1, L: 1 },
    ...drafters.flatMap((drafter) => DRAFTER_CONFIGS.map((c) => ({ drafter, ...c }))),
  ];
  // Warm-up: first-call costs of each shape, and each proposer's one-off auto calibration, out of the table.
  for (const d of drafters) {
    for (const method of ["spectr", "auto"] as const) {
      await generator.generate({ messages: [{ role: "user", content: "Hi" }] }, {
        maxNewTokens: 8,
        method,
        k: 4,
        proposer: PROPOSER[d],
        seed: 9,
      });
    }
  }
  const rows: BenchRow[] = [];
  for (const temperature of TEMPERATURES) {
    // Interleaved: round p runs prompt p (seed p + 1) with every configuration, in the listed order,
    // so that machine noise spreads evenly.
    const samples = await interleave(configs, prompts.length, async (c, p) => {
      const { stats } = await generator.generate({ messages: [{ role: "user", content: prompts[p] }] }, {
        method: c.method,
        k: c.k,
        draftLength: c.L,
        temperature,
        maxNewTokens,
        seed: pairedSeed(p, 0, prompts.length),
        ...(c.drafter === "none" ? {} : { proposer: PROPOSER[c.drafter] }),
      });
      return stats;
    }, { rotate: false });
    const totals = samples.map((list) => {
      const t = new CellTotals();
      for (const stats of list) t.add(stats);
      return t;
    });
    const arMsPerStep = totals[0].ms / totals[0].blocks;
    for (const [i, c] of configs.entries()) {
      const t = totals[i];
      const ar = c.method === "autoregressive";
      const alpha1 = ar ? NaN : t.accepted[0] / t.reached[0];
      const meanL = ar ? 0 : t.lengthBlocks / t.blocks;
      const cV = (t.ms - t.draftMs) / t.blocks / arMsPerStep;
      const cD = ar ? 0 : t.draftMs / t.lengthBlocks / arMsPerStep;
      rows.push({
        ...c,
        dtype,
        backend,
        temperature,
        tokensPerSecond: t.tokensPerSecond,
        vsAutoregressive: t.tokensPerSecond / totals[0].tokensPerSecond,
        blockEfficiency: t.blockEfficiency,
        alpha1,
        alphaMean: ar ? NaN : sum(t.accepted) / sum(t.reached),
        acceptancePerDepth: t.reached.map((n, d) => t.accepted[d] / n),
        cV,
        cD,
        meanL,
        predictedSpeedup: ar
          ? 1
          : alpha1 === 1
          ? (meanL + 1) / (cV + meanL * cD)
          : (1 - alpha1 ** (meanL + 1)) / ((1 - alpha1) * (cV + meanL * cD)),
        ...(c.method === "auto" ? { plans: t.plans } : {}),
      });
    }
    printTable(rows.filter((r) => r.temperature === temperature));
  }
  return rows;
}

function printTable(rows: BenchRow[]): void {
  const ar = rows.find((r) => r.method === "autoregressive")!;
  console.log(
    `\n${ar.dtype} target, ${ar.backend}, T = ${ar.temperature} (c_v, c_d in autoregressive steps of ${
      (1000 / ar.tokensPerSecond).toFixed(2)
    } ms)`,
  );
  console.log(formatTable<BenchRow>([
    { header: "drafter", value: "drafter" },
    { header: "method", value: label },
    { header: "tokens/s", value: "tokensPerSecond", digits: 1 },
    { header: "vs AR", value: "vsAutoregressive", digits: 2, suffix: "x" },
    { header: "tokens/block", value: "blockEfficiency", digits: 2 },
    { header: "α₁", value: "alpha1", digits: 2 },
    { header: "ᾱ", value: "alphaMean", digits: 2 },
    { header: "c_v", value: "cV", digits: 2 },
    { header: "c_d", value: "cD", digits: 2 },
    { header: "pred.", value: "predictedSpeedup", digits: 2, suffix: "x" },
  ], rows));
  for (const r of rows) if (r.plans) console.log(`  ${r.drafter} auto ran: ${r.plans}`);
}

/**
 * One generator for a (dtype, backend) cell holding every drafter asked for, on one target session:
 * the feature drafter's folder loads the target with its features, then the old draft joins it.
 */
async function loadCell(
  backend: BackendName,
  dtype: ModelDtype,
  drafters: DrafterName[],
  eagleFolder: string,
): Promise<SpeculativeGenerator> {
  const numThreads = defaultThreads(backend);
  if (!drafters.includes("eagle")) return await loadPair(PAIRS.real, { backend, dtype, threads: numThreads });
  const eagle = await loadPair(PAIRS.real, { backend, dtype, threads: numThreads, draft: eagleFolder });
  if (!drafters.includes("old")) return eagle;
  const resolved = (eagle.target as { backend?: BackendName }).backend ?? backend;
  const draft = await OnnxCausalLM.load(OLD_DRAFT, {
    backend: resolved,
    dtype: "fp32",
    numThreads: resolved === "cpu" ? 1 : numThreads,
  }).catch(async (error) => {
    await eagle.dispose();
    throw error;
  });
  return new SpeculativeGenerator({
    target: eagle.target,
    draft,
    drafter: eagle.drafter,
    tokenizer: eagle.tokenizer,
    kernel: eagle.kernel,
    eosTokenIds: eagle.eosTokenIds,
    addBosToken: eagle.addBosToken,
  });
}

async function main(): Promise<void> {
  const flags = parseFlags("bench:real", {
    options: {
      quick: { type: "boolean", default: false },
      backends: { type: "string", default: "cpu,wasm" },
      dtypes: { type: "string", default: "fp32,q8" },
      drafters: { type: "string", default: "old,eagle" },
      eagle: { type: "string", default: EAGLE_FOLDER },
      "wasm-q8": { type: "boolean", default: false },
      tokens: { type: "string" },
    },
  });
  if (!flags) return;
  const { values } = flags;
  const prompts = values.quick ? PROMPTS.slice(0, 2) : PROMPTS;
  const maxNewTokens = intFlag("tokens", values.tokens, values.quick ? 48 : 128);
  const eagleFolder = values.eagle.endsWith("/") ? values.eagle : `${values.eagle}/`;
  const asked = choiceListFlag("drafters", values.drafters, ["old", "eagle"], []);
  const backends = listFlag("backends", values.backends, []) as BackendName[];
  const dtypes = listFlag("dtypes", values.dtypes, []) as ModelDtype[];
  if (!exists(`${TARGET}build.json`)) {
    console.log(`bench:real skipped: ${TARGET}build.json is missing (run deno task model:smollm2)`);
    return;
  }
  const drafters: DrafterName[] = [];
  const notes: string[] = [];
  if (asked.includes("old")) {
    if (exists(`${OLD_DRAFT}onnx/model.onnx`)) drafters.push("old");
    else {notes.push(
        `old draft: ${OLD_DRAFT}onnx/model.onnx is missing (the draft is committed); no old rows`,
      );}
  }
  if (asked.includes("eagle")) {
    if (exists(`${eagleFolder}onnx/model.onnx`)) drafters.push("eagle");
    else {
      notes.push(
        `feature drafter: ${eagleFolder}onnx/model.onnx is missing (deno task model:smollm2 builds it from drafter.safetensors); no eagle rows`,
      );
    }
  }
  for (const n of notes) console.log(n);
  if (drafters.length === 0) {
    console.log("bench:real skipped: no drafter to measure");
    return;
  }
  const header = machineHeader("bench:real");
  console.log(formatHeader(header));
  console.log(
    `${prompts.length} held-out prompts × ${maxNewTokens} tokens, seeds 1..${prompts.length}; ` +
      `drafters ${
        drafters.map((d) => d === "eagle" ? `eagle (${eagleFolder})` : `old (${OLD_DRAFT})`).join(", ")
      }; ` +
      `T = ${TEMPERATURES.join(", ")}; rows: autoregressive, then per drafter ${
        DRAFTER_CONFIGS.map(label).join(", ")
      }`,
  );
  // Measured in deno task bench's real-model section: onnxruntime-web has no int8 kernel for 8-bit
  // MatMulNBits, so q8 there dequantizes every weight on every call (4.5× fp32's time).
  const { cells, skipped } = expandMatrix([PAIRS.real], backends, dtypes, [
    (c) =>
      c.backend === "wasm" && c.dtype === "q8" && !values["wasm-q8"]
        ? "4.5× slower than fp32 per call there; --wasm-q8 to measure it"
        : undefined,
  ]);
  for (const s of skipped) console.log(formatSkipped(s));
  const rows: BenchRow[] = [];
  for (const { backend, dtype } of cells) {
    let cellDrafters = drafters;
    let generator = await loadCell(backend, dtype, cellDrafters, eagleFolder).catch((error) => {
      console.log(`${dtype} on ${backend}: cannot load (${(error as Error).message})`);
      return undefined;
    });
    if (!generator && drafters.includes("eagle") && drafters.includes("old")) {
      // e.g. the feature drafter does not run on this backend: keep the baseline rows.
      cellDrafters = ["old"];
      console.log(`${dtype} on ${backend}: measuring the old draft alone`);
      generator = await loadCell(backend, dtype, cellDrafters, eagleFolder).catch(() => undefined);
    }
    if (!generator) {
      console.log(`${dtype} on ${backend}: skipped`);
      continue;
    }
    const measured = await measure(generator, cellDrafters, dtype, backend, prompts, maxNewTokens);
    await generator.dispose();
    rows.push(...measured);
  }
  const peers: PeerResult[] = await measurePeers({
    prompts,
    maxNewTokens,
    temperatures: TEMPERATURES,
    threads: 2,
  });
  console.log("\npeers (autoregressive, cpu):");
  console.log(formatTable<PeerResult>([
    { header: "peer", value: "name" },
    { header: "dtype", value: "dtype" },
    { header: "T", value: "temperature" },
    { header: "tokens/s", value: "tokensPerSecond", digits: 1 },
  ], peers));
  goals(rows, peers, drafters);
  finishBench(header, { rows, peers });
}

const fastest = <T extends { tokensPerSecond: number }>(xs: T[]): T | undefined =>
  xs.reduce<T | undefined>(
    (a, b) => (a === undefined || b.tokensPerSecond > a.tokensPerSecond ? b : a),
    undefined,
  );
const verdictOf = (ok: boolean) => ok ? "met" : "NOT met";

/** Why a row is as fast as it is, from its own α₁, tokens per block, c_v and c_d. */
function why(r: BenchRow): string {
  return `${name(r)}: α₁ = ${f2(r.alpha1)}, ${r.blockEfficiency.toFixed(2)} tokens/block, c_v = ${
    f2(r.cV)
  }, c_d = ${f2(r.cD)} → block = ${f2(r.cV + r.meanL * r.cD)} AR steps`;
}

/** The issue's goals table, each goal from this run's rows with met / NOT met and the measured reason. */
function goals(rows: BenchRow[], peers: PeerResult[], drafters: DrafterName[]): void {
  console.log("\nGoals (feature drafter = eagle; old = the baseline draft):");
  const cellOf = (backend: string, dtype: string, temperature: number) =>
    rows.filter((r) => r.backend === backend && r.dtype === dtype && r.temperature === temperature);
  const eagleCell = (t: number) => {
    const own = cellOf("cpu", "q8", t).filter((r) => r.drafter === "eagle");
    return own.length ? own : rows.filter((r) => r.temperature === t && r.drafter === "eagle");
  };
  const pooledAlpha = (rs: BenchRow[]) => {
    // The mean of the sd rows' α₁ (L = 2, 3, 4, 6: the same prompts and seeds, depth 1 alike).
    const sds = rs.filter((r) => r.method === "sd");
    return sds.length ? sum(sds.map((r) => r.alpha1)) / sds.length : NaN;
  };
  const eagleMissing = !drafters.includes("eagle") || !rows.some((r) => r.drafter === "eagle");
  const skip = (what: string) => console.log(`  ${what}: not measured (no feature drafter rows in this run)`);

  // 1. held-out α at T = 0.7 / 1.
  for (const [t, goal] of [[0.7, 0.70], [1, 0.65]]) {
    if (eagleMissing) {
      skip(`held-out α at T = ${t} ≥ ${goal}`);
      continue;
    }
    const rs = eagleCell(t);
    const a = pooledAlpha(rs);
    const old = pooledAlpha(rows.filter((r) =>
      r.temperature === t && r.drafter === "old" &&
      r.backend === rs[0].backend && r.dtype === rs[0].dtype
    ));
    console.log(
      `  held-out α at T = ${t} (α₁ of the eagle sd rows, ${rs[0].dtype} ${rs[0].backend}) ≥ ${goal}: ${
        verdictOf(a >= goal)
      } (α = ${f2(a)} ${a >= goal ? "≥" : "<"} ${goal.toFixed(2)}; old draft α = ${f2(old)})`,
    );
  }
  // 2. greedy agreement and tokens per block at T = 0, L = 4.
  if (eagleMissing) skip("greedy argmax agreement ≥ 0.80 (≥ 3.0 tokens per block at L = 4)");
  else {
    const rs = eagleCell(0);
    const a = pooledAlpha(rs);
    const sd4 = rs.find((r) => r.method === "sd" && r.L === 4);
    const eff = sd4?.blockEfficiency ?? NaN;
    const oldRows = rows.filter((r) =>
      r.temperature === 0 && r.drafter === "old" && r.backend === rs[0].backend && r.dtype === rs[0].dtype
    );
    const oldSd4 = oldRows.find((r) => r.method === "sd" && r.L === 4);
    console.log(
      `  greedy: draft argmax = target argmax (α₁ at T = 0) ≥ 0.80, tokens per block at L = 4 ≥ 3.0: ${
        verdictOf(a >= 0.8 && eff >= 3)
      } (α₁ = ${f2(a)}, eagle sd L=4 ${f2(eff)} tokens/block, ${rs[0].dtype} ${
        rs[0].backend
      }; old draft α₁ = ${f2(pooledAlpha(oldRows))}, ${f2(oldSd4?.blockEfficiency ?? NaN)} tokens/block)`,
    );
  }
  // 3, 4, 6. best exact fixed method ÷ autoregressive.
  const speedGoal = (backend: string, dtype: string, temperature: number, goal: number) => {
    const cell = cellOf(backend, dtype, temperature);
    if (cell.length === 0) {
      console.log(`  best ÷ autoregressive, ${dtype} ${backend}, T = ${temperature} ≥ ${goal}: not measured`);
      return;
    }
    const best = fastest(cell.filter((r) => r.method !== "autoregressive" && r.method !== "auto"))!;
    console.log(
      `  best exact method ÷ autoregressive, ${dtype} ${backend}, T = ${temperature} ≥ ${goal}: ${
        verdictOf(best.vsAutoregressive >= goal)
      } (${f2(best.vsAutoregressive)}x, ${why(best)})`,
    );
  };
  for (const t of [0.7, 1]) speedGoal("cpu", "q8", t, 2.0);
  speedGoal("cpu", "q8", 0, 2.5);
  // 5. tokens/s ÷ llama.cpp's best.
  for (const t of TEMPERATURES) {
    const cell = cellOf("cpu", "q8", t);
    const llama = fastest(peers.filter((p) => p.name.startsWith("llama.cpp") && p.temperature === t));
    if (cell.length === 0 || !llama) {
      console.log(`  tokens/s ÷ llama.cpp's best, T = ${t} ≥ 2.0: not measured`);
      continue;
    }
    const best = fastest(cell.filter((r) => r.method !== "autoregressive"))!;
    const r = best.tokensPerSecond / llama.tokensPerSecond;
    const tjs = peers.find((p) =>
      p.name.startsWith("transformers.js") && p.dtype === "q8" && p.temperature === t
    );
    console.log(
      `  tokens/s ÷ llama.cpp's best, cpu q8, T = ${t} ≥ 2.0: ${verdictOf(r >= 2)} (${name(best)} ${
        best.tokensPerSecond.toFixed(1)
      } ÷ ${llama.name} ${llama.tokensPerSecond.toFixed(1)} = ${f2(r)}x${
        tjs ? `; ${f2(best.tokensPerSecond / tjs.tokensPerSecond)}x transformers.js q8` : ""
      })`,
    );
  }
  for (const t of TEMPERATURES) speedGoal("wasm", "fp32", t, 1.5);
  // 7. sd L = 2 block cost.
  for (const t of TEMPERATURES) {
    for (const d of drafters) {
      const r = cellOf("cpu", "q8", t).find((r) => r.drafter === d && r.method === "sd" && r.L === 2);
      if (!r) continue;
      const cost = r.cV + 2 * r.cD;
      console.log(
        `  sd L = 2 block ÷ autoregressive step, cpu q8, ${d}, T = ${t} ≤ 1.15: ${verdictOf(cost <= 1.15)} (${
          f2(cost)
        } = target part c_v ${f2(r.cV)} + draft part 2·c_d ${f2(2 * r.cD)})`,
      );
    }
  }
  // 8. auto ÷ best fixed, every cell, and whether it picks the new drafter where it wins.
  const cells = [...new Set(rows.map((r) => `${r.dtype} ${r.backend} ${r.temperature}`))];
  const winners: string[] = [];
  for (const key of cells) {
    const [dtype, backend, t] = key.split(" ");
    const cell = cellOf(backend, dtype, Number(t));
    const fixedAll = fastest(cell.filter((r) => r.method !== "auto"))!;
    if (fixedAll.drafter !== "none") winners.push(`${key}: ${fixedAll.drafter}`);
    for (const d of drafters) {
      const auto = cell.find((r) => r.drafter === d && r.method === "auto");
      if (!auto) continue;
      const fixed = fastest(
        cell.filter((r) => r.method !== "auto" && (r.drafter === d || r.drafter === "none")),
      )!;
      const own = auto.tokensPerSecond / fixed.tokensPerSecond;
      const all = auto.tokensPerSecond / fixedAll.tokensPerSecond;
      console.log(
        `  auto ÷ best fixed, ${dtype} ${backend} T = ${t}, ${d}: ${verdictOf(own >= 0.95 && all >= 0.95)} (${
          f2(own)
        }x its drafter's best fixed ${name(fixed)}, ${f2(all)}x the cell's best fixed ${
          name(fixedAll)
        }; ran ${auto.plans})`,
      );
    }
  }
  if (drafters.length > 1) {
    const oldWins = winners.filter((w) => w.endsWith(": old"));
    console.log(
      `  auto picks the new drafter where it wins: NOT met as specified — auto chooses method, k and L for the proposer ` +
        `a generation names (GenerationOptions.proposer; default "eagle" when a feature drafter is loaded), not the proposer; ` +
        `the default uses eagle in every cell, which is right where eagle wins (${
          winners.length - oldWins.length
        } of ${winners.length} cells with a drafter ahead) and wrong in ${
          oldWins.length ? oldWins.join(", ") : "none"
        }`,
    );
  }
}

if (import.meta.main) await runMain(main);
