/**
 * `deno task bench:auto`: is `auto` as fast as the best fixed method, cell by cell? For each pair
 * (the bundled TinyStories pair; SmolLM2-135M-Instruct + models/smollm2-draft when built) × backend
 * (cpu, wasm) × target dtype (the real pair: fp32, q8; q8 on wasm is skipped: it dequantizes every
 * weight per call there) × temperature (0.7, 1.0), it measures autoregressive, `auto`, sd, block
 * verification and SpecTr at fixed (k, L), interleaved prompt by prompt, with fixed prompts and
 * seeds chosen before measuring, and prints auto ÷ the best fixed configuration and auto ÷
 * autoregressive (goals 0.95× and 1.0×), with the plans auto ran. Where the target scores trees
 * (our converter's graphs), SpecTr k = 2 and 4 also run with k rows, for the tree-vs-rows figure.
 *
 * Options: `--quick` (1 prompt, 48 tokens), `--pairs toy,real`, `--backends cpu,wasm`. On the
 * harness (bench/_harness.ts): its header line first, a table per cell; the last line is one JSON
 * object `{"header", "rows"}` with every row.
 *
 * @module
 */

import type { BackendName, GenerationMethod, GenerationPrompt, SpeculativeGenerator } from "../mod.ts";
import { BlockDecoder } from "../src/decode/decoder.ts";
import { renderChat } from "../src/generate/chat.ts";
import {
  choiceListFlag,
  defaultThreads,
  expandMatrix,
  finishBench,
  formatHeader,
  formatSkipped,
  formatTable,
  HELD_OUT_CHAT_PROMPTS,
  interleave,
  loadPair,
  machineHeader,
  missingFiles,
  pairedSeed,
  PAIRS,
  parseFlags,
  runMain,
  RunTotals,
} from "./_harness.ts";

const TOY_PROMPTS = [
  "Once upon a time",
  "Tom and his dog went to the park.",
  "The little bird was sad because",
];
/** Held out from the real draft's training (tools/train/smollm2/prompts.py eval_prompts()). */
const CHAT_PROMPTS = HELD_OUT_CHAT_PROMPTS.filter((_, i) => i % 2 === 0); // the 1st, 3rd and 5th
const TEMPERATURES = [0.7, 1.0];

interface Config {
  label: string;
  method: GenerationMethod;
  k: number;
  L: number;
  /** Score k ≥ 2 drafts as k rows even where the target scores trees. */
  rows?: boolean;
}

const FIXED: Config[] = [
  { label: "autoregressive", method: "autoregressive", k: 1, L: 1 },
  { label: "auto (k<=4, L<=4)", method: "auto", k: 4, L: 4 },
  ...[2, 3, 4].map((L): Config => ({ label: `sd L=${L}`, method: "sd", k: 1, L })),
  ...[2, 3].map((L): Config => ({ label: `block L=${L}`, method: "block", k: 1, L })),
  ...[[2, 2], [2, 3], [4, 2], [4, 3]].map(([k, L]): Config => ({
    label: `spectr k=${k} L=${L}`,
    method: "spectr",
    k,
    L,
  })),
];
const ROWS: Config[] = [[2, 3], [4, 3]].map(([k, L]) => ({
  label: `spectr k=${k} L=${L} rows`,
  method: "spectr",
  k,
  L,
  rows: true,
}));

/** One measured cell row. */
interface Row {
  pair: string;
  backend: string;
  dtype: string;
  temperature: number;
  label: string;
  tokensPerSecond: number;
  blockEfficiency: number;
  plans?: string;
}

async function measureCell(
  pair: string,
  generator: SpeculativeGenerator,
  backend: string,
  dtype: string,
  prompts: GenerationPrompt[],
  maxNewTokens: number,
): Promise<Row[]> {
  const chat = typeof prompts[0] === "object" && !Array.isArray(prompts[0]);
  const idsOf = (prompt: GenerationPrompt): number[] =>
    typeof prompt === "string"
      ? [
        ...(generator.addBosToken ? [generator.tokenizer.bosTokenId!] : []),
        ...generator.tokenizer.encode(prompt),
      ]
      : generator.tokenizer.encode(renderChat(generator.tokenizer, (prompt as { messages: [] }).messages));
  const configs = generator.target.supportsTree ? [...FIXED, ...ROWS] : FIXED;
  const rows: Row[] = [];
  // Warm-up: first-call costs and auto's calibration out of the table.
  await generator.generate(prompts[0], { maxNewTokens: 8, method: "auto", seed: 99 });
  await generator.generate(prompts[0], { maxNewTokens: 8, method: "spectr", k: 4, seed: 99 });
  for (const temperature of TEMPERATURES) {
    // Interleaved: round p runs prompt p (seed p + 1) with every configuration, in the listed order.
    const samples = await interleave(configs, prompts.length, async (c, p) => {
      const prompt = prompts[p];
      const seed = pairedSeed(p, 0, prompts.length);
      const { stats } = c.rows
        ? await new BlockDecoder({
          target: generator.target,
          draft: generator.draft!,
          kernel: generator.kernel,
          verifier: "kseq",
          k: c.k,
          draftLength: c.L,
          warp: { temperature },
          tree: false,
        }).generate(idsOf(prompt), {
          maxNewTokens,
          seed,
          eosTokenId: chat ? generator.chatStopTokenIds : generator.eosTokenIds,
        })
        : await generator.generate(prompt, {
          method: c.method,
          k: c.k,
          draftLength: c.L,
          temperature,
          maxNewTokens,
          seed,
        });
      return stats;
    }, { rotate: false });
    const totals = samples.map((list) => {
      const t = new RunTotals();
      for (const stats of list) t.add(stats);
      return t;
    });
    for (const [i, c] of configs.entries()) {
      rows.push({
        pair,
        backend,
        dtype,
        temperature,
        label: c.label,
        tokensPerSecond: totals[i].tokensPerSecond,
        blockEfficiency: totals[i].blockEfficiency,
        ...(c.method === "auto" ? { plans: totals[i].plans } : {}),
      });
    }
  }
  return rows;
}

function report(rows: Row[]): void {
  const ar = rows.find((r) => r.label === "autoregressive")!;
  const auto = rows.find((r) => r.label.startsWith("auto ("))!;
  const fixed = rows.filter((r) => !r.label.startsWith("auto ("));
  const best = fixed.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
  console.log(`\n${ar.pair} pair, ${ar.dtype}, ${ar.backend}, T = ${ar.temperature}`);
  console.log(formatTable<Row>([
    { header: "configuration", value: "label" },
    { header: "tokens/s", value: "tokensPerSecond", digits: 1 },
    { header: "tokens/block", value: "blockEfficiency", digits: 2 },
    { header: "vs AR", value: (r) => r.tokensPerSecond / ar.tokensPerSecond, digits: 2, suffix: "x" },
  ], rows));
  const vsBest = auto.tokensPerSecond / best.tokensPerSecond;
  const vsAr = auto.tokensPerSecond / ar.tokensPerSecond;
  console.log(
    `  => auto ${vsBest.toFixed(2)}x the best fixed (${best.label}; goal 0.95x: ${
      vsBest >= 0.95 ? "met" : "NOT met"
    }), ${vsAr.toFixed(2)}x autoregressive (goal 1.0x: ${
      vsAr >= 1 ? "met" : "NOT met"
    }); auto ran ${auto.plans}`,
  );
  for (const k of [2, 4]) {
    const tree = rows.find((r) => r.label === `spectr k=${k} L=3`);
    const flat = rows.find((r) => r.label === `spectr k=${k} L=3 rows`);
    const sd = fixed.filter((r) => r.label.startsWith("sd")).reduce((
      a,
      b,
    ) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
    if (tree && flat) {
      console.log(
        `  => spectr k=${k} L=3: tree ${tree.tokensPerSecond.toFixed(1)} vs rows ${
          flat.tokensPerSecond.toFixed(1)
        } tokens/s (${(tree.tokensPerSecond / flat.tokensPerSecond).toFixed(2)}x); vs best sd (${sd.label}) ${
          (tree.tokensPerSecond / sd.tokensPerSecond).toFixed(2)
        }x`,
      );
    }
  }
}

async function main(): Promise<void> {
  const flags = parseFlags("bench:auto", {
    options: {
      quick: { type: "boolean", default: false },
      pairs: { type: "string", default: "toy,real" },
      backends: { type: "string", default: "cpu,wasm" },
    },
  });
  if (!flags) return;
  const { values } = flags;
  const pairNames = choiceListFlag("pairs", values.pairs, ["toy", "real"], []);
  const backends = choiceListFlag("backends", values.backends, ["cpu", "wasm", "kernel", "webgpu"], []);
  // The toy pair runs ~10× faster: longer runs per cell there, so that a cell is not noise.
  const size = (pair: string) =>
    values.quick ? { n: 1, tokens: 48 } : pair === "toy" ? { n: 4, tokens: 256 } : { n: 3, tokens: 96 };
  const header = machineHeader("bench:auto");
  console.log(formatHeader(header));
  console.log(
    `per cell: toy ${size("toy").n} prompts × ${size("toy").tokens} tokens, real ${size("real").n} × ${
      size("real").tokens
    } (seeds 1..n), T = ${TEMPERATURES.join(", ")}`,
  );
  // The toy pair is models/target + models/draft (PAIRS.bundled), named "toy" in this bench's rows.
  const specs = pairNames.map((name) => name === "real" ? PAIRS.real : { ...PAIRS.bundled, name: "toy" });
  const { cells, skipped } = expandMatrix(
    specs,
    backends as BackendName[],
    (pair, backend) => pair.name === "real" && backend !== "wasm" ? ["fp32", "q8"] : ["fp32"],
    [(cell) => missingFiles(cell)],
  );
  for (const s of skipped) console.log(formatSkipped(s));
  const all: Row[] = [];
  for (const { pair, backend, dtype } of cells) {
    const generator = await loadPair(pair, { backend, dtype, threads: defaultThreads(backend) });
    const { n, tokens } = size(pair.name);
    const prompts: GenerationPrompt[] = pair.chat
      ? CHAT_PROMPTS.slice(0, n).map((content) => ({ messages: [{ role: "user" as const, content }] }))
      : TOY_PROMPTS.slice(0, n);
    const rows = await measureCell(pair.name, generator, backend, dtype, prompts, tokens);
    await generator.dispose();
    for (const t of TEMPERATURES) report(rows.filter((r) => r.temperature === t));
    all.push(...rows);
  }
  finishBench(header, { rows: all });
}

if (import.meta.main) await runMain(main);
