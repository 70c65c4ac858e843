/**
 * `deno task bench:efficiency`: block efficiency (mean tokens per block = accepted + 1) of sd,
 * block, kseq, specinfer, specinfer-wor and kseq-block at equal (k, L), evaluated *paired*: one
 * driver proposes each block once — k i.i.d. drafts, plus k drafts drawn without replacement at
 * depth 0 for specinfer-wor (both sets from the same draft call, scored by the target in one call)
 * — and every verifier decides that same block with its own seeded Random (sd and block take the
 * first draft; the rest the first k i.i.d. drafts, specinfer-wor the without-replacement ones). The
 * text continues along the driver's choice (kseq-block's, `--drive` to change), which is fine for
 * efficiency: each verifier's tokens per block is an unbiased estimate on the same contexts. sd,
 * block, kseq and kseq-block are scored by their exact E[tokens | block] over their own uniforms
 * (each verifier's `expectedTokens`: closed forms, or its rule summed over the tree of the fixed drafts),
 * specinfer and specinfer-wor by the mean of `--repeats` decisions (fresh uniforms); the repeated
 * decisions of the other four are kept as a check of the exact values (printed, ~0). The driver
 * continues along its first decision.
 *
 * Sets: `markov` (the toy chains of tests/sequence_test.ts: order 1 V = 4, order 2 V = 3, order 1
 * V = 5), `bundled` (models/target + models/draft, TinyStories, onnxruntime-node), `real`
 * (SmolLM2-135M-Instruct q8 `model_quantized.onnx` + models/smollm2-draft, chat prompts held out
 * from the draft's training; skipped when `deno task model:smollm2` has not built it). Shapes
 * (k, L) = (1,2), (1,4), (2,2), (2,4), (4,3); temperatures 1 and 0.7.
 *
 * On the harness (bench/_harness.ts): its header line first; per set and temperature a table of
 * tokens per block (± one standard error over blocks), the paired differences kseq-block − kseq and
 * block − sd, then the goals (block ≥ sd everywhere and ≥ +5 % on the real pair at T = 1; kseq-block
 * ≥ kseq at equal (k, L) everywhere); the last line is one JSON object `{"header", "drive", "seed",
 * "repeats", "cells", "differences"}` with every cell.
 *
 * Options: `--sets markov,bundled,real`, `--temperatures 1,0.7`, `--real-prompts 4`,
 * `--real-tokens 64`, `--bundled-prompts 6`, `--bundled-tokens 128` (new tokens per prompt),
 * `--markov-blocks 1500` (blocks per chain and shape, about), `--drive kseq-block`, `--seed 1`,
 * `--dtype q8|fp32` (the real target), `--repeats 4` (decisions per verifier and block),
 * `--shapes "1,2;1,4;2,2;2,4;4,3"`. The defaults take about 7 minutes on 2 cores (the real pair
 * most of it).
 *
 * @module
 */

import { renderChat } from "../src/generate/chat.ts";
import type { Kernel, Probs, WarpOptions } from "../src/kernel/types.ts";
import { referenceKernel } from "../src/kernel/reference.ts";
import { MarkovModel, nearMarkovTable, randomMarkovTable } from "../src/decode/markov.ts";
import type { CausalModel } from "../src/decode/model.ts";
import { TargetScorer } from "../src/decode/scorer.ts";
import { Random } from "../src/random.ts";
import { getVerifier } from "../src/verify/mod.ts";
import type { BlockProposal, BlockScores, Verifier } from "../src/verify/types.ts";
import {
  choiceFlag,
  choiceListFlag,
  finishBench,
  FlagError,
  formatHeader,
  formatTable,
  HELD_OUT_CHAT_PROMPTS,
  intFlag,
  loadPair,
  machineHeader,
  missingFiles,
  numberListFlag,
  PAIRS,
  parseFlags,
  runMain,
} from "./_harness.ts";

/** Milliseconds spent in the models (draft and target calls) and in verification, per set. */
const timing = { modelMs: 0, verifyMs: 0 };

const VERIFIERS = ["sd", "block", "kseq", "specinfer", "specinfer-wor", "kseq-block"] as const;
type Name = typeof VERIFIERS[number];
let SHAPES: [number, number][] = [[1, 2], [1, 4], [2, 2], [2, 4], [4, 3]];

/** Running mean and variance (Welford) of tokens per block. */
class Tally {
  n = 0;
  mean = 0;
  #m2 = 0;
  add(x: number): void {
    this.n++;
    const d = x - this.mean;
    this.mean += d / this.n;
    this.#m2 += d * (x - this.mean);
  }
  /** Standard error of the mean. */
  get se(): number {
    return this.n > 1 ? Math.sqrt(this.#m2 / (this.n - 1) / this.n) : NaN;
  }
}

/** A source of blocks: a target and a draft model and the prompts to continue. */
interface PairSet {
  name: string;
  pairs: { label: string; target: CausalModel; draft: CausalModel; prompts: number[][]; stop: number[] }[];
  kernel: Kernel;
  tokens: number;
}

/** One verifier in one shape: its k' (≤ its maxCandidates) and which drafts it reads. */
interface Entry {
  name: Name;
  verifier: Verifier;
  k: number;
  withoutReplacement: boolean;
}

function entriesFor(k: number): Entry[] {
  return VERIFIERS.map((name) => {
    const verifier = getVerifier(name);
    return {
      name,
      verifier,
      k: Math.min(k, verifier.maxCandidates),
      withoutReplacement: verifier.draftSampling === "without-replacement",
    };
  });
}

/** The drafts `offset .. offset + k − 1` of a block as a verifier's proposal and scores. */
function slice(
  tokens: Int32Array[],
  probs: Probs[][],
  scores: BlockScores,
  offset: number,
  k: number,
  L: number,
): { proposal: BlockProposal; scores: BlockScores } {
  return {
    proposal: {
      k,
      draftLength: L,
      tokens: tokens.slice(offset, offset + k),
      probs: probs.slice(offset, offset + k),
    },
    scores: { probs: (row, depth) => scores.probs(offset + row, depth) },
  };
}

/**
 * Generates `maxNewTokens` after `prompt` block by block (k i.i.d. drafts and, when `wor`, k drafts
 * without replacement at depth 0, all of length L from one draft pass), lets every entry verify each
 * block and continues along the driver's decision. Returns the number of blocks run.
 */
async function runPrompt(
  target: CausalModel,
  draft: CausalModel,
  kernel: Kernel,
  warp: WarpOptions,
  prompt: number[],
  maxNewTokens: number,
  stop: number[],
  k: number,
  L: number,
  entries: Entry[],
  drive: Name,
  seed: number,
  tallies: Map<Name, Tally>,
  differences: Map<string, Tally>,
  repeats: number,
  checks: Map<Name, Tally>,
): Promise<number> {
  const rng = new Random(seed);
  const randoms = entries.map((_, i) => new Random(seed * 131 + i + 1));
  const driver = entries.findIndex((e) => e.name === drive);
  const wor = entries.some((e) => e.withoutReplacement && e.k > 1);
  const scorer = new TargetScorer({ model: target, kernel, warp });
  target.reset();
  draft.reset();
  let draftPending = prompt, targetPending = prompt, known = prompt.length, generated = 0, blocks = 0;
  const limit = Math.min(target.maxLength, draft.maxLength);
  while (generated < maxNewTokens && known + L + 2 <= limit) {
    const modelStart = performance.now();
    const q0 = kernel.warp(await draft.append([draftPending], 1), warp);
    const base = draft.length;
    let support = 0;
    for (let x = 0; x < q0.length; x++) if (q0[x] > 0) support++;
    const first = [...kernel.sample(q0, rng.fill(new Float64Array(k)), false)];
    const worK = wor ? Math.min(k, support) : 0;
    if (worK) first.push(...kernel.sample(q0, rng.fill(new Float64Array(worK)), true));
    const rows = first.length;
    const tokens = first.map((x) => {
      const row = new Int32Array(L);
      row[0] = x;
      return row;
    });
    const probs: Probs[][] = first.map(() => [q0]);
    if (L > 1) draft.fork(rows);
    for (let t = 1; t < L; t++) {
      const step = await draft.append(tokens.map((row) => [row[t - 1]]), 1);
      for (let r = 0; r < rows; r++) {
        const q = kernel.warp(step.subarray(r * q0.length, (r + 1) * q0.length), warp);
        probs[r].push(q);
        tokens[r][t] = kernel.sample(q, [rng.next()])[0];
      }
    }
    const scores = await scorer.score(targetPending, tokens, L);
    const verifyStart = performance.now();
    timing.modelMs += verifyStart - modelStart;
    let chosen = { offset: 0, tokens: [] as number[], accepted: 0, row: 0 };
    const accepted: number[] = [];
    for (const [i, e] of entries.entries()) {
      const offset = e.withoutReplacement && e.k > 1 ? k : 0;
      const k2 = e.withoutReplacement && e.k > 1 ? worK : e.k;
      const view = slice(tokens, probs, scores, offset, k2, L);
      // The mean over `repeats` decisions (fresh uniforms) estimates E[tokens | this block]; where
      // that expectation is computed exactly, the estimate only checks it.
      let sum = 0;
      for (let j = 0; j < repeats; j++) {
        const result = e.verifier.verifyBlock(kernel, view.proposal, view.scores, randoms[i]);
        sum += result.tokens.length;
        if (i === driver && j === 0) chosen = { offset, ...result };
      }
      const exact = e.verifier.expectedTokens?.(kernel, view.proposal, view.scores);
      tallies.get(e.name)!.add(exact ?? sum / repeats);
      accepted[i] = exact ?? sum / repeats;
      if (exact !== undefined) checks.get(e.name)!.add(sum / repeats - exact);
    }
    timing.verifyMs += performance.now() - verifyStart;
    const at = (name: Name) => accepted[entries.findIndex((e) => e.name === name)];
    differences.get("kseq-block − kseq")!.add(at("kseq-block") - at("kseq"));
    differences.get("block − sd")!.add(at("block") - at("sd"));
    blocks++;
    const row = chosen.offset + chosen.row;
    scorer.rollback(row, chosen.accepted);
    draft.select(draft.rows === 1 ? 0 : row, base + Math.min(chosen.accepted, L - 1));
    const next = chosen.tokens[chosen.tokens.length - 1];
    draftPending = chosen.accepted === L ? [tokens[row][L - 1], next] : [next];
    targetPending = [next];
    known += chosen.tokens.length;
    generated += chosen.tokens.length;
    if (chosen.tokens.some((x) => stop.includes(x))) break;
  }
  return blocks;
}

/** One table cell. */
interface Cell {
  set: string;
  temperature: number;
  k: number;
  L: number;
  verifier: Name;
  kUsed: number;
  tokensPerBlock: number;
  se: number;
  blocks: number;
}

/** A paired difference of tokens per block on the same blocks. */
interface Difference {
  set: string;
  temperature: number;
  k: number;
  L: number;
  name: "kseq-block − kseq" | "block − sd";
  mean: number;
  se: number;
}

const fmt = (x: { mean: number; se: number }) =>
  `${x.mean >= 0 ? "+" : ""}${x.mean.toFixed(3)}±${x.se.toFixed(3)}`;

async function measureSet(
  set: PairSet,
  setKey: string,
  temperatures: number[],
  drive: Name,
  seed: number,
  repeats: number,
): Promise<{ cells: Cell[]; differences: Difference[] }> {
  const cells: Cell[] = [];
  const differences: Difference[] = [];
  for (const temperature of temperatures) {
    const warp: WarpOptions = temperature === 1 ? {} : { temperature };
    const checks = new Map(VERIFIERS.map((v) => [v, new Tally()] as const));
    /** One printed line per shape: its tallies and paired differences. */
    const shown: {
      k: number;
      L: number;
      entries: Entry[];
      tallies: Map<Name, Tally>;
      diffs: Map<string, Tally>;
      blocks: number;
    }[] = [];
    for (const [k, L] of SHAPES) {
      const entries = entriesFor(k);
      const tallies = new Map(VERIFIERS.map((v) => [v, new Tally()] as const));
      const diffs = new Map(["kseq-block − kseq", "block − sd"].map((d) => [d, new Tally()] as const));
      let blocks = 0;
      for (const [pairIndex, pair] of set.pairs.entries()) {
        for (const [i, prompt] of pair.prompts.entries()) {
          blocks += await runPrompt(
            pair.target,
            pair.draft,
            set.kernel,
            warp,
            prompt,
            set.tokens,
            pair.stop,
            k,
            L,
            entries,
            drive,
            seed + 1000 * pairIndex + i,
            tallies,
            diffs,
            repeats,
            checks,
          );
        }
      }
      for (const e of entries) {
        const t = tallies.get(e.name)!;
        cells.push({
          set: setKey,
          temperature,
          k,
          L,
          verifier: e.name,
          kUsed: e.k,
          tokensPerBlock: t.mean,
          se: t.se,
          blocks: t.n,
        });
      }
      for (const [name, t] of diffs) {
        differences.push({
          set: setKey,
          temperature,
          k,
          L,
          name: name as Difference["name"],
          mean: t.mean,
          se: t.se,
        });
      }
      shown.push({ k, L, entries, tallies, diffs, blocks });
    }
    console.log(
      `\n${set.name}, T = ${temperature}: tokens per block (± 1 s.e.), paired on the driver's (${drive}) blocks`,
    );
    type Shown = (typeof shown)[number];
    const cell = (row: Shown, e: Entry) => {
      const t = row.tallies.get(e.name)!;
      return `${t.mean.toFixed(3)}±${t.se.toFixed(3)}${e.k < row.k ? "¹" : ""}`;
    };
    const d = (row: Shown, name: string) =>
      fmt({ mean: row.diffs.get(name)!.mean, se: row.diffs.get(name)!.se });
    console.log(formatTable<Shown>([
      { header: "k", value: "k", digits: 0 },
      { header: "L", value: "L", digits: 0 },
      ...VERIFIERS.map((v, i) => ({
        header: v,
        value: (row: Shown) => cell(row, row.entries[i]),
        align: "right" as const,
      })),
      { header: "blocks", value: "blocks", digits: 0 },
      {
        header: "kseq-block − kseq",
        value: (row: Shown) => d(row, "kseq-block − kseq"),
        align: "right" as const,
      },
      { header: "block − sd", value: (row: Shown) => d(row, "block − sd"), align: "right" as const },
    ], shown));
    console.log(
      "  ¹ takes one draft (the first). sd, block, kseq, kseq-block: exact E[tokens | block]; specinfer, specinfer-wor:",
    );
    console.log(
      `  mean of ${repeats} decisions per block. Check, mean of ${repeats} decisions − exact (should be ~0): ${
        (["sd", "block", "kseq", "kseq-block"] as Name[]).map((v) => `${v} ${fmt(checks.get(v)!)}`).join(", ")
      }`,
    );
  }
  return { cells, differences };
}

function markovSet(blocksWanted: number): PairSet {
  // The chains of tests/sequence_test.ts (same tables, seeds and prompts).
  const chains = [
    {
      label: "order-1 V=4",
      order: 1 as const,
      vocab: 4,
      target: randomMarkovTable(4, 1, 11, { scale: 1.5, maskProbability: 0.2 }),
      draft: randomMarkovTable(4, 1, 12, { scale: 1.5, maskProbability: 0.2 }),
      prompt: [0],
    },
    (() => {
      const target = randomMarkovTable(3, 2, 27, { scale: 1.5, maskProbability: 0.2 });
      return {
        label: "order-2 V=3",
        order: 2 as const,
        vocab: 3,
        target,
        draft: nearMarkovTable(target, 3, 28, { noise: 1.5, maskProbability: 0.2, unmask: true }),
        prompt: [2, 1],
      };
    })(),
    {
      label: "order-1 V=5",
      order: 1 as const,
      vocab: 5,
      target: randomMarkovTable(5, 1, 31, { scale: 1.2 }),
      draft: randomMarkovTable(5, 1, 32, { scale: 1.2 }),
      prompt: [2],
    },
  ];
  // Runs of 200 new tokens (about 100 blocks at ~2 tokens per block), repeated to reach the blocks wanted.
  const runs = Math.max(1, Math.ceil(blocksWanted / 100));
  return {
    name: "markov (3 toy chains of tests/sequence_test.ts)",
    kernel: referenceKernel,
    tokens: 200,
    pairs: chains.map((c) => ({
      label: c.label,
      target: new MarkovModel({ table: c.target, vocabSize: c.vocab, order: c.order }),
      draft: new MarkovModel({ table: c.draft, vocabSize: c.vocab, order: c.order }),
      prompts: Array.from({ length: runs }, () => c.prompt),
      stop: [],
    })),
  };
}

const STORY_PROMPTS = [
  "Once upon a time",
  "One day, a little girl named Lily",
  "Tom and his dog went to the park",
  "The sun was shining and",
  "There was a big red ball",
  "Mom said it was time to",
];
/** tools/train/smollm2/prompts.py eval_prompts(), the first five (held out from the draft's training). */
const CHAT_PROMPTS = HELD_OUT_CHAT_PROMPTS;

async function main(): Promise<void> {
  const flags = parseFlags("bench:efficiency", {
    options: {
      sets: { type: "string", default: "markov,bundled,real" },
      temperatures: { type: "string", default: "1,0.7" },
      "real-prompts": { type: "string", default: "4" },
      "real-tokens": { type: "string", default: "64" },
      "bundled-prompts": { type: "string", default: "6" },
      "bundled-tokens": { type: "string", default: "128" },
      "markov-blocks": { type: "string", default: "1500" },
      drive: { type: "string", default: "kseq-block" },
      seed: { type: "string", default: "1" },
      dtype: { type: "string", default: "q8" },
      repeats: { type: "string", default: "4" },
      shapes: { type: "string", default: "1,2;1,4;2,2;2,4;4,3" },
    },
  });
  if (!flags) return;
  const { values } = flags;
  const temperatures = numberListFlag("temperatures", values.temperatures, [1, 0.7], { min: 0 });
  const seed = intFlag("seed", values.seed, 1, { min: 0 });
  const drive = choiceFlag("drive", values.drive, VERIFIERS, "kseq-block");
  const dtype = choiceFlag("dtype", values.dtype, ["q8", "fp32"], "q8");
  SHAPES = values.shapes.split(";").map((shape) => {
    const [k, L] = shape.split(",").map(Number);
    if (!Number.isInteger(k) || !Number.isInteger(L) || k < 1 || L < 1) {
      throw new FlagError("shapes", values.shapes, `"k,L;k,L;…" with integers >= 1 (bad shape "${shape}")`);
    }
    return [k, L] as [number, number];
  });
  const repeats = intFlag("repeats", values.repeats, 4);
  const sets = choiceListFlag("sets", values.sets, ["markov", "bundled", "real"], []);
  const counts = {
    "real-prompts": intFlag("real-prompts", values["real-prompts"], 4),
    "real-tokens": intFlag("real-tokens", values["real-tokens"], 64),
    "bundled-prompts": intFlag("bundled-prompts", values["bundled-prompts"], 6),
    "bundled-tokens": intFlag("bundled-tokens", values["bundled-tokens"], 128),
  };
  const markovBlocks = intFlag("markov-blocks", values["markov-blocks"], 1500);
  const started = performance.now();
  const header = machineHeader("bench:efficiency");
  console.log(formatHeader(header));
  console.log(
    `sets ${sets.join(",")}; T ${temperatures.join(", ")}; shapes ${
      SHAPES.map(([k, L]) => `(${k},${L})`).join(" ")
    }; driver ${drive}; seed ${seed}; ${repeats} decisions per verifier and block`,
  );
  const cells: Cell[] = [];
  const differences: Difference[] = [];
  for (const setName of sets) {
    let set: PairSet | undefined;
    let dispose: (() => Promise<void>) | undefined;
    if (setName === "markov") {
      set = markovSet(markovBlocks);
      console.log(
        `\nmarkov: 3 chains, runs of ${set.tokens} tokens × ${
          set.pairs[0].prompts.length
        } per chain and shape`,
      );
    } else if (setName === "bundled" || setName === "real") {
      const real = setName === "real";
      const promptCount = counts[real ? "real-prompts" : "bundled-prompts"];
      const tokens = counts[real ? "real-tokens" : "bundled-tokens"];
      const pair = real ? PAIRS.real : PAIRS.bundled;
      const missing = missingFiles({ pair, backend: "cpu", dtype: real ? dtype : "fp32" });
      if (missing) {
        console.log(`\n${setName}: skipped (${missing})`);
        continue;
      }
      const generator = await loadPair(pair, { backend: "cpu", dtype: real ? dtype : undefined, threads: 2 });
      dispose = () => generator.dispose();
      const tok = generator.tokenizer;
      const prompts = real
        ? CHAT_PROMPTS.slice(0, promptCount).map((content) =>
          tok.encode(renderChat(tok, [{ role: "user", content }]))
        )
        : STORY_PROMPTS.slice(0, promptCount).map((text) => {
          const ids = tok.encode(text);
          if (tok.bosTokenId !== undefined && generator.addBosToken && ids[0] !== tok.bosTokenId) {
            ids.unshift(tok.bosTokenId);
          }
          return ids;
        });
      set = {
        name: real
          ? `real (SmolLM2-135M-Instruct ${dtype} + smollm2-draft, cpu, ${prompts.length} chat prompts × ${tokens} tokens)`
          : `bundled (TinyStories target + draft, cpu, ${prompts.length} prompts × ${tokens} tokens)`,
        kernel: generator.kernel,
        tokens,
        pairs: [{
          label: setName,
          target: generator.target,
          draft: generator.draft!,
          prompts,
          stop: [...(real ? generator.chatStopTokenIds : generator.eosTokenIds)],
        }],
      };
    } else continue;
    const t0 = performance.now();
    timing.modelMs = timing.verifyMs = 0;
    const measured = await measureSet(set, setName, temperatures, drive, seed, repeats);
    cells.push(...measured.cells);
    differences.push(...measured.differences);
    console.log(
      `  (${((performance.now() - t0) / 1000).toFixed(1)} s: models ${
        (timing.modelMs / 1000).toFixed(1)
      } s, ` +
        `verifiers and expectations ${(timing.verifyMs / 1000).toFixed(1)} s)`,
    );
    await dispose?.();
  }
  // Goals, from the paired differences (same blocks): "met" when the mean difference is ≥ 0.
  console.log("\ngoals (paired differences on the same blocks, ± 1 s.e.):");
  const groups = [...new Set(differences.map((d) => `${d.set}|${d.temperature}`))];
  const verdict = (name: Difference["name"], shapes: [number, number][]) => {
    let all = true;
    for (const g of groups) {
      const parts = differences.filter((d) =>
        `${d.set}|${d.temperature}` === g && d.name === name &&
        shapes.some(([k, L]) => d.k === k && d.L === L)
      );
      if (parts.length === 0) continue;
      const line = parts.map((d) => `(${d.k},${d.L}) ${fmt(d)}${d.mean < 0 ? " ✗" : ""}`).join("  ");
      if (parts.some((d) => d.mean < 0)) all = false;
      console.log(`  ${name} on ${g.replace("|", ", T = ")}: ${line}`);
    }
    return all;
  };
  const blockMet = verdict("block − sd", SHAPES.filter(([k]) => k === 1));
  const oursMet = verdict("kseq-block − kseq", SHAPES.filter(([k]) => k > 1));
  console.log(`  block ≥ sd at every (1, L): ${blockMet ? "met" : "not met (✗ above)"}`);
  for (const [k, L] of SHAPES.filter(([k]) => k === 1)) {
    const b = cells.find((c) =>
      c.set === "real" && c.temperature === 1 && c.k === k && c.L === L && c.verifier === "block"
    );
    const s = cells.find((c) =>
      c.set === "real" && c.temperature === 1 && c.k === k && c.L === L && c.verifier === "sd"
    );
    if (!b || !s) continue;
    const gain = b.tokensPerBlock / s.tokensPerBlock - 1;
    console.log(
      `  block vs sd on the real pair, T = 1, L = ${L}: ${
        (100 * gain >= 0 ? "+" : "") + (100 * gain).toFixed(1)
      } % (goal ≥ +5 %: ${gain >= 0.05 ? "met" : "not met"})`,
    );
  }
  console.log(`  kseq-block ≥ kseq at every (k ≥ 2, L): ${oursMet ? "met" : "not met (✗ above)"}`);
  console.log(`  total ${((performance.now() - started) / 1000).toFixed(1)} s`);
  finishBench(header, { drive, seed, repeats, cells, differences });
}

if (import.meta.main) await runMain(main);
