/**
 * `deno task profile:loop`: where the decode loop's time goes on the real pair — SmolLM2-135M-
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
 * Options: `--prompts N` (≤ 5, default 3), `--tokens N` (default 96), `--temperature T` (1),
 * `--backend cpu|wasm` (cpu), `--dtype q8|fp32` (q8), `--repeats N` (1: interleaved passes, the
 * per-configuration median of the passes is printed). Its last line is one JSON object with the
 * rows.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type BackendName,
  type CausalModel,
  type GenerationOptions,
  type GenerationStats,
  type ModelDtype,
  SpeculativeGenerator,
} from "../mod.ts";
import { loadKernel } from "../src/kernel/wasm.ts";
import { TimedKernel } from "../src/kernel/timed.ts";
import { SMOLLM2_FOLDER } from "./model_smollm2.ts";

const DRAFT = new URL("../models/smollm2-draft/", import.meta.url).pathname;
const EAGLE = new URL("../models/smollm2-eagle/", import.meta.url).pathname;
/** The first five of tools/train/smollm2/prompts.py eval_prompts() (as bench/real_pair.ts). */
const PROMPTS = [
  "What is the difference between a comet and an asteroid?",
  "How do submarines dive and resurface?",
  "Write a short poem about autumn leaves.",
  "Give me four tips for sleeping better.",
  "Explain how a bicycle gear system works.",
];

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

/**
 * The floor of an sd L = 2 block: bare target forwards of 1 and of 3 tokens at the same cache
 * lengths (a prompt-length prefill, then 30 steps each, interleaved, rolled back after each), as
 * the median ms of one forward.
 */
async function bareForwards(target: CausalModel, prompt: number[]): Promise<{ one: number; three: number }> {
  const one: number[] = [], three: number[] = [];
  target.reset();
  await target.append([prompt], 1);
  for (let i = 0; i < 30; i++) {
    for (const t of [1, 3]) {
      const at = target.length;
      const start = performance.now();
      await target.append([Array.from({ length: t }, (_, j) => 200 + i + j)], t);
      (t === 1 ? one : three).push(performance.now() - start);
      target.select(0, at);
    }
  }
  target.reset();
  return { one: median(one), three: median(three) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Prints the rows in ms and in autoregressive steps (the first row's total). */
export function printProfile(rows: ProfileRow[]): void {
  const unit = rows.find((r) => r.name === "autoregressive")?.ms.total ?? rows[0].ms.total;
  const head = ["config".padEnd(16), "tok/blk", ...COLUMNS.map((c) => c.padStart(11)), "total".padStart(9)];
  console.log(`\nper block, in autoregressive steps (1 step = ${unit.toFixed(2)} ms):`);
  console.log(head.join(" "));
  for (const r of rows) {
    console.log(
      [
        r.name.padEnd(16),
        r.tokensPerBlock.toFixed(2).padStart(7),
        ...COLUMNS.map((c) => (r.ms[c] / unit).toFixed(3).padStart(11)),
        (r.ms.total / unit).toFixed(3).padStart(9),
      ].join(" "),
    );
  }
  console.log("\nper block, ms:");
  console.log(head.join(" "));
  for (const r of rows) {
    console.log(
      [
        r.name.padEnd(16),
        r.tokensPerBlock.toFixed(2).padStart(7),
        ...COLUMNS.map((c) => r.ms[c].toFixed(2).padStart(11)),
        r.ms.total.toFixed(2).padStart(9),
      ].join(" "),
    );
  }
}

async function exists(path: string): Promise<boolean> {
  return (await Deno.stat(path).catch(() => undefined)) !== undefined;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      prompts: { type: "string", default: "3" },
      tokens: { type: "string", default: "96" },
      temperature: { type: "string", default: "1" },
      backend: { type: "string", default: "cpu" },
      dtype: { type: "string", default: "q8" },
      repeats: { type: "string", default: "1" },
    },
  });
  for (const f of [`${SMOLLM2_FOLDER}/build.json`, `${DRAFT}onnx/model.onnx`]) {
    if (!(await exists(f))) {
      console.log(`profile:loop skipped: ${f} is missing (run deno task model:smollm2)`);
      return;
    }
  }
  const prompts = PROMPTS.slice(0, Number(values.prompts));
  const maxNewTokens = Number(values.tokens), temperature = Number(values.temperature);
  const repeats = Number(values.repeats);
  const backend = values.backend as BackendName, dtype = values.dtype as ModelDtype;
  const kernel = new TimedKernel(await loadKernel());
  const common = { backend, dtype, numThreads: backend === "wasm" ? 1 : 2, kernel };
  const pair = await SpeculativeGenerator.fromPretrained({
    ...common,
    target: SMOLLM2_FOLDER,
    draft: DRAFT,
    draftOptions: { dtype: "fp32" },
  });
  const generators: { name: string; generator: SpeculativeGenerator; options: GenerationOptions }[] = [
    { name: "autoregressive", generator: pair, options: { method: "autoregressive" } },
    { name: "sd L=2", generator: pair, options: { method: "sd", k: 1, draftLength: 2 } },
  ];
  if (await exists(`${EAGLE}onnx`)) {
    const eagle = await SpeculativeGenerator.fromPretrained({
      ...common,
      target: SMOLLM2_FOLDER,
      draft: EAGLE,
    });
    generators.push({
      name: "eagle sd L=2",
      generator: eagle,
      options: { method: "sd", k: 1, draftLength: 2 },
    });
  } else {
    console.log(`(no ${EAGLE}onnx: eagle skipped)`);
  }
  const load = () => Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  console.log(
    `profile:loop: ${dtype} ${backend}, T = ${temperature}, ${prompts.length} prompts × ${maxNewTokens} tokens, ${repeats} pass(es); load ${load()}`,
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
    const full: GenerationStats[][] = generators.map(() => []);
    const first: GenerationStats[][] = generators.map(() => []);
    // interleaved: prompt by prompt, every configuration
    for (const [p, content] of prompts.entries()) {
      for (const [i, g] of generators.entries()) {
        const request = { messages: [{ role: "user" as const, content }] };
        const options = { ...g.options, temperature, seed: p + 1 };
        first[i].push((await g.generator.generate(request, { ...options, maxNewTokens: 1 })).stats);
        full[i].push((await g.generator.generate(request, { ...options, maxNewTokens })).stats);
      }
    }
    for (const [i, g] of generators.entries()) passes[i].push(profileRow(g.name, full[i], first[i]));
  }
  const rows = passes.map((list) => {
    const ms = Object.fromEntries(
      [...COLUMNS, "total" as const].map((c) => [c, median(list.map((r) => r.ms[c]))]),
    ) as ProfileRow["ms"];
    return { ...list[0], tokensPerBlock: median(list.map((r) => r.tokensPerBlock)), ms };
  });
  printProfile(rows);
  // a cache as long as a generation's middle: ~40 chat-prompt tokens + half the new tokens
  const ids = pair.tokenizer.encode(PROMPTS.join(" "));
  const prompt = Array.from({ length: 40 + Math.floor(maxNewTokens / 2) }, (_, i) => ids[i % ids.length]);
  const bare = await bareForwards(pair.target, prompt);
  console.log(
    `\nbare target forwards at ~${prompt.length} cached tokens: 1 token ${bare.one.toFixed(2)} ms, 3 tokens ${
      bare.three.toFixed(2)
    } ms = ${(bare.three / bare.one).toFixed(3)}× (the floor of an sd L=2 block, in 1-token forwards)`,
  );
  console.log(`load at the end ${load()}`);
  for (const g of new Set(generators.map((g) => g.generator))) await g.dispose();
  console.log(
    JSON.stringify({ dtype, backend, temperature, prompts: prompts.length, maxNewTokens, rows, bare }),
  );
}

if (import.meta.main) await main();
