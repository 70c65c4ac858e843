/**
 * `deno task bench:loop`: where the decode loop's time goes on the real pair — SmolLM2-135M-
 * Instruct (target, `deno task model:smollm2`) and models/smollm2-draft — for autoregressive,
 * sd L = 2 (draft proposer) and, when models/smollm2-eagle/onnx exists, sd L = 2 with the eagle
 * proposer.
 *
 * Each configuration runs the same prompts (default: 3 held-out chat prompts × 96 tokens, seeds
 * 1..n) through the public API with a {@linkcode TimedKernel}, and reads the generator's own stats
 * (`DecodeStats`: the models' `forwardMs` / `kvMs` counters, the kernel's warp / sample time).
 * The first block of a generation (the prompt prefill) is left out: each prompt also runs with
 * `maxNewTokens: 1` (the same first block), and its stats are subtracted. What remains is divided
 * by the blocks left and printed per block, in ms and in units of one autoregressive step:
 *
 * - target fwd / kv / other: the target's `session.run`s; its KV bookkeeping (fork copies, crops,
 *   tree gathers, compactions); the rest of the scoring stage (feeds, logits slices);
 * - draft fwd / kv / other: the same for the draft model (other: feeding, proposal records);
 * - warp, sample: the kernel's `warp` and `sample` over both models' rows;
 * - verify: the verifier walk without its warps and draws;
 * - rest: the decoder's wall time (`totalMs`) outside the three stages (event-loop turns between
 *   blocks, stats).
 *
 * Then the floor of an sd L = 2 block: bare target forwards of 1 and of 3 tokens at a generation's
 * middle cache length (bench/_latency.ts, 30 interleaved rounds).
 *
 * Options: `--prompts N` (≤ 5, default 3), `--tokens N` (default 96), `--temperature T` (1),
 * `--backend cpu|wasm` (cpu), `--dtype q8|fp32` (q8), `--repeats N` (1: interleaved passes, the
 * per-configuration median of the passes is printed). On the harness (bench/_harness.ts): its
 * header line first; the last line is one JSON object `{"header", "dtype", "backend",
 * "temperature", "prompts", "maxNewTokens", "rows", "bare"}`.
 *
 * @module
 */

import type { GenerationOptions, GenerationStats, SpeculativeGenerator } from "../mod.ts";
import { loadKernel } from "../src/kernel/wasm.ts";
import { TimedKernel } from "../src/kernel/timed.ts";
import {
  choiceFlag,
  type Column as TableColumn,
  defaultThreads,
  EAGLE_FOLDER,
  exists,
  finishBench,
  formatHeader,
  formatTable,
  HELD_OUT_CHAT_PROMPTS,
  interleave,
  intFlag,
  loadPair,
  machineHeader,
  median,
  numberFlag,
  pairedSeed,
  PAIRS,
  parseFlags,
  runMain,
} from "./_harness.ts";
import { measureLatency } from "./_latency.ts";

const TARGET = PAIRS.real.target;
const DRAFT = PAIRS.real.draft;
const EAGLE = EAGLE_FOLDER;
/** The first five of tools/train/smollm2/prompts.py eval_prompts() (as bench/real.ts). */
const PROMPTS = HELD_OUT_CHAT_PROMPTS;

/** The columns, in order; their sum is the block's wall time. */
export const COLUMNS = [
  "targetFwd",
  "targetKv",
  "targetOther",
  "draftFwd",
  "draftKv",
  "draftOther",
  "warp",
  "sample",
  "verify",
  "rest",
] as const;
/** One column. */
export type Column = typeof COLUMNS[number];

/** Per-block ms of one configuration (prefill block left out). */
export interface ProfileRow {
  name: string;
  blocks: number;
  tokensPerBlock: number;
  ms: Record<Column | "total", number>;
}

/** Sums of the stats fields the profile reads. */
function sums(list: GenerationStats[]) {
  const add = (f: (s: GenerationStats) => number) => list.reduce((a, s) => a + f(s), 0);
  return {
    blocks: add((s) => s.blocks),
    tokens: add((s) => s.tokens),
    wall: add((s) => s.totalMs),
    draftMs: add((s) => s.draftMs),
    targetMs: add((s) => s.targetMs),
    verifyMs: add((s) => s.verifyMs),
    targetForwardMs: add((s) => s.targetForwardMs),
    targetKvMs: add((s) => s.targetKvMs),
    draftForwardMs: add((s) => s.draftForwardMs || 0),
    draftKvMs: add((s) => s.draftKvMs || 0),
    warpMs: add((s) => s.warpMs),
    draftWarpMs: add((s) => s.draftWarpMs),
    sampleMs: add((s) => s.sampleMs),
    draftSampleMs: add((s) => s.draftSampleMs),
  };
}

/**
 * The per-block split of `full` generations minus their first blocks (`first`: the same prompts
 * and seeds with `maxNewTokens: 1`).
 */
export function profileRow(name: string, full: GenerationStats[], first: GenerationStats[]): ProfileRow {
  const a = sums(full), b = sums(first);
  const d = Object.fromEntries(
    Object.keys(a).map((key) => [key, a[key as keyof typeof a] - b[key as keyof typeof b]]),
  ) as typeof a;
  const n = d.blocks;
  const per = (x: number) => x / n;
  const targetWarp = d.warpMs - d.draftWarpMs, verifySample = d.sampleMs - d.draftSampleMs;
  const ms = {
    targetFwd: per(d.targetForwardMs),
    targetKv: per(d.targetKvMs),
    targetOther: per(d.targetMs - d.targetForwardMs - d.targetKvMs),
    draftFwd: per(d.draftForwardMs),
    draftKv: per(d.draftKvMs),
    draftOther: per(d.draftMs - d.draftForwardMs - d.draftKvMs - d.draftWarpMs - d.draftSampleMs),
    warp: per(d.warpMs),
    sample: per(d.sampleMs),
    verify: per(d.verifyMs - targetWarp - verifySample),
    rest: per(d.wall - d.draftMs - d.targetMs - d.verifyMs),
    total: per(d.wall),
  };
  return { name, blocks: n, tokensPerBlock: d.tokens / n, ms };
}

/** Prints the rows in ms and in autoregressive steps (the first row's total). */
export function printProfile(rows: ProfileRow[]): void {
  const unit = rows.find((r) => r.name === "autoregressive")?.ms.total ?? rows[0].ms.total;
  const columns = (scale: number, digits: number): TableColumn<ProfileRow>[] => [
    { header: "config", value: "name" },
    { header: "tok/blk", value: "tokensPerBlock", digits: 2 },
    ...[...COLUMNS, "total" as const].map((c) => ({
      header: c,
      value: (r: ProfileRow) => r.ms[c] * scale,
      digits,
    })),
  ];
  console.log(`\nper block, in autoregressive steps (1 step = ${unit.toFixed(2)} ms):`);
  console.log(formatTable(columns(1 / unit, 3), rows));
  console.log("\nper block, ms:");
  console.log(formatTable(columns(1, 2), rows));
}

async function main(): Promise<void> {
  const flags = parseFlags("bench:loop", {
    options: {
      prompts: { type: "string", default: "3" },
      tokens: { type: "string", default: "96" },
      temperature: { type: "string", default: "1" },
      backend: { type: "string", default: "cpu" },
      dtype: { type: "string", default: "q8" },
      repeats: { type: "string", default: "1" },
    },
  });
  if (!flags) return;
  const { values } = flags;
  const prompts = PROMPTS.slice(0, intFlag("prompts", values.prompts, 3, { max: PROMPTS.length }));
  const maxNewTokens = intFlag("tokens", values.tokens, 96);
  const temperature = numberFlag("temperature", values.temperature, 1, { min: 0 });
  const repeats = intFlag("repeats", values.repeats, 1);
  const backend = choiceFlag("backend", values.backend, ["cpu", "wasm"], "cpu");
  const dtype = choiceFlag("dtype", values.dtype, ["q8", "fp32"], "q8");
  for (const f of [`${TARGET}build.json`, `${DRAFT}onnx/model.onnx`]) {
    if (!exists(f)) {
      console.log(`bench:loop skipped: ${f} is missing (run deno task model:smollm2)`);
      return;
    }
  }
  const kernel = new TimedKernel(await loadKernel());
  const common = { backend, dtype, threads: defaultThreads(backend), kernel };
  const pair = await loadPair(PAIRS.real, common);
  const generators: { name: string; generator: SpeculativeGenerator; options: GenerationOptions }[] = [
    { name: "autoregressive", generator: pair, options: { method: "autoregressive" } },
    { name: "sd L=2", generator: pair, options: { method: "sd", k: 1, draftLength: 2 } },
  ];
  if (exists(`${EAGLE}onnx`)) {
    const eagle = await loadPair(PAIRS.real, { ...common, draft: EAGLE });
    generators.push({
      name: "eagle sd L=2",
      generator: eagle,
      options: { method: "sd", k: 1, draftLength: 2 },
    });
  } else {
    console.log(`(no ${EAGLE}onnx: eagle skipped)`);
  }
  const header = machineHeader("bench:loop");
  console.log(formatHeader(header));
  console.log(
    `${dtype} ${backend}, T = ${temperature}, ${prompts.length} prompts × ${maxNewTokens} tokens, seeds 1..${prompts.length}, ${repeats} pass(es)`,
  );
  for (const g of generators) {
    // warm-up: first-call costs of each shape out of the profile
    await g.generator.generate({ messages: [{ role: "user", content: "Hi" }] }, {
      ...g.options,
      maxNewTokens: 16,
      seed: 9,
    });
  }
  const passes: ProfileRow[][] = generators.map(() => []);
  for (let pass = 0; pass < repeats; pass++) {
    // interleaved: round p runs prompt p (seed p + 1) with every configuration, in the listed order
    const samples = await interleave(generators, prompts.length, async (g, p) => {
      const request = { messages: [{ role: "user" as const, content: prompts[p] }] };
      const options = { ...g.options, temperature, seed: pairedSeed(p, 0, prompts.length) };
      const first = (await g.generator.generate(request, { ...options, maxNewTokens: 1 })).stats;
      const full = (await g.generator.generate(request, { ...options, maxNewTokens })).stats;
      return { first, full };
    }, { rotate: false });
    for (const [i, g] of generators.entries()) {
      passes[i].push(profileRow(g.name, samples[i].map((s) => s.full), samples[i].map((s) => s.first)));
    }
  }
  const rows = passes.map((list) => {
    const ms = Object.fromEntries(
      [...COLUMNS, "total" as const].map((c) => [c, median(list.map((r) => r.ms[c]))]),
    ) as ProfileRow["ms"];
    return { ...list[0], tokensPerBlock: median(list.map((r) => r.tokensPerBlock)), ms };
  });
  printProfile(rows);
  // The floor of an sd L = 2 block: bare target forwards of 1 and of 3 tokens at the same cache length,
  // as long as a generation's middle (~40 chat-prompt tokens + half the new tokens), 30 interleaved rounds.
  const past = 40 + Math.floor(maxNewTokens / 2);
  const forwards = await measureLatency(pair.target, [[1, 1], [1, 3]], {
    past,
    rounds: 30,
    calls: 1,
    keepAll: true,
  });
  const bare = { one: forwards.get("1x1")!, three: forwards.get("1x3")! };
  console.log(
    `\nbare target forwards at ~${past} cached tokens: 1 token ${bare.one.toFixed(2)} ms, 3 tokens ${
      bare.three.toFixed(2)
    } ms = ${(bare.three / bare.one).toFixed(3)}× (the floor of an sd L=2 block, in 1-token forwards)`,
  );
  for (const g of new Set(generators.map((g) => g.generator))) await g.dispose();
  finishBench(header, { dtype, backend, temperature, prompts: prompts.length, maxNewTokens, rows, bare });
}

if (import.meta.main) await runMain(main);
