/**
 * `deno task bench:lookup`: prompt lookup drafting (`LookupProposer`, no draft model) against
 * autoregressive decoding on the real target, SmolLM2-135M-Instruct (`deno task model:smollm2`), on
 * backend "cpu" (onnxruntime-node, 2 threads), q8 by default.
 *
 * Three chat prompts, fixed before measuring: one that quotes its input back ("Repeat the following
 * text exactly: …", a 104-word paragraph), one that draws on it ("Summarise this text: …", the same
 * paragraph) and open text ("Write a short story about a robot."), × T ∈ {0 (greedy), 1}, 128 new
 * tokens (or fewer, at the end-of-turn token). Per prompt and temperature every configuration runs
 * once per round with that round's seed (round r: seed r + 1), interleaved (each round runs every
 * configuration once, in an order rotated by one per round: the harness's `interleave`), from one
 * loaded model: autoregressive,
 * then lookup + sd and lookup + block at each draft length (4 and 8 by default); `--with-draft` adds
 * sd L = 4 with the trained draft (models/smollm2-draft) for comparison.
 *
 * Prints per (prompt, T): tokens/s (all rounds' tokens over their wall time, prefill included),
 * block efficiency (tokens per target scoring call), the speed-up over autoregressive as the median
 * over rounds of the ratio to autoregressive in the same round (paired, so slow drifts of a shared
 * machine cancel), the share of blocks the lookup drafted in, the draft acceptance, and at T = 0
 * whether the tokens equal the autoregressive ones (greedy decoding is deterministic; a difference
 * can only come from the target's own float rounding differing between an (L + 1)-token and a
 * 1-token forward at a near-tie). Then the target's time per call t(n) for n = 1, 5, 9 tokens after
 * as many tokens as the longest prompt has (median of interleaved calls, bench/_latency.ts), the cost
 * side of the speed-up. At T > 0 the
 * configurations sample different texts (their uniforms go to different uses), of different lengths
 * when the end-of-turn token comes at different places, so their tokens/s also differ by the share
 * of the prefill and by sampling noise: compare block efficiencies there first. On the harness
 * (bench/_harness.ts): its header line first; the last line is one JSON object `{"header",
 * "threads", "real", "ngrams", "dtype", "maxNewTokens", "rounds", "rows": [{prompt, temperature,
 * method, L, tokensPerSecond, blockEfficiency, speedup, draftedShare, acceptance, tokens,
 * sameAsAutoregressive}…], "callMs"}`.
 *
 * Options: `--dtype q8|fp32`, `--tokens N`, `--lengths 4,8`, `--rounds 3`, `--threads 2`,
 * `--max-ngram 3`, `--min-ngram 2` (the proposer's n-gram range; its defaults), `--with-draft`,
 * `--quick` (32 tokens, 1 round, L = 4: a smoke run). Falls back to the bundled toy
 * target (models/target) when the real one is not built, and says so.
 *
 * @module
 */

import { AutoregressiveDecoder, BlockDecoder, type Decoder, LookupProposer } from "../decode.ts";
import { renderChat } from "../src/generate/chat.ts";
import {
  choiceFlag,
  dtypeFile,
  exists,
  finishBench,
  formatHeader,
  formatLoad,
  formatTable,
  interleave,
  intFlag,
  intListFlag,
  loadAverage,
  loadPair,
  machineHeader,
  median,
  pairedSeed,
  PAIRS,
  parseFlags,
  runMain,
  sum,
} from "./_harness.ts";
import { measureLatency } from "./_latency.ts";

/** 104 words, written for this bench. */
const PARAGRAPH = "The old lighthouse on the northern cliff was switched off in 1987, when satellite " +
  "navigation made its beam unnecessary. For years it stood empty, its windows cracked and its iron " +
  "stairs rusting in the salt air. Then a group of volunteers from the village bought it for one euro " +
  "and began to repair it. They replaced the glass, painted the tower white and red again, and turned " +
  "the keeper's cottage into a small museum about the ships that sank nearby. Today the lamp shines " +
  "once more every summer evening, not to guide sailors, but to remind visitors how dangerous this " +
  "quiet coast once was.";

const PROMPTS: { name: string; content: string }[] = [
  { name: "repeat", content: `Repeat the following text exactly:\n\n${PARAGRAPH}` },
  { name: "summarise", content: `Summarise this text:\n\n${PARAGRAPH}` },
  { name: "story", content: "Write a short story about a robot." },
];
const TEMPERATURES = [0, 1];

/** One configuration of the table. */
interface Config {
  method: "autoregressive" | "lookup+sd" | "lookup+block" | "draft+sd";
  L: number;
  decoder: Decoder;
  lookup?: LookupProposer;
}

/** One measured row. */
export interface LookupBenchRow {
  prompt: string;
  temperature: number;
  method: Config["method"];
  L: number;
  tokensPerSecond: number;
  blockEfficiency: number;
  /** Median over rounds of (tokens/s ÷ autoregressive tokens/s in the same round). */
  speedup: number;
  /** Blocks with ≥ 1 lookup draft token (lookup rows; null otherwise). */
  draftedShare: number | null;
  /** Draft tokens accepted / draft tokens verified (null for autoregressive). */
  acceptance: number | null;
  tokens: number;
  /** T = 0: every round's tokens equal autoregressive's (null at T > 0). */
  sameAsAutoregressive: boolean | null;
}

/** One generation's numbers. */
interface Run {
  tokens: number[];
  ms: number;
  blocks: number;
  drafted: number;
  accepted: number;
  reached: number;
}

const label = (c: { method: string; L: number }) =>
  c.method === "autoregressive" ? c.method : `${c.method} L=${c.L}`;

if (import.meta.main) await runMain(main);

async function main(): Promise<void> {
  const flags = parseFlags("bench:lookup", {
    options: {
      dtype: { type: "string", default: "q8" },
      tokens: { type: "string" },
      lengths: { type: "string" },
      rounds: { type: "string" },
      threads: { type: "string", default: "2" },
      "max-ngram": { type: "string", default: "3" },
      "min-ngram": { type: "string", default: "2" },
      "with-draft": { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
    },
  });
  if (!flags) return;
  const { values } = flags;
  const quick = values.quick;
  const maxNewTokens = intFlag("tokens", values.tokens, quick ? 32 : 128);
  const lengths = intListFlag("lengths", values.lengths, quick ? [4] : [4, 8]);
  const rounds = intFlag("rounds", values.rounds, quick ? 1 : 3);
  const threads = intFlag("threads", values.threads, 2);
  const maxNgram = intFlag("max-ngram", values["max-ngram"], 3);
  const minNgram = intFlag("min-ngram", values["min-ngram"], 2);
  const dtype = choiceFlag("dtype", values.dtype, ["q8", "fp32"], "q8");

  const real = exists(`${PAIRS.real.target}${dtypeFile(dtype)}`);
  if (!real) {
    console.log(
      `The real target is not built (${PAIRS.real.target}); falling back to the toy target ${PAIRS.bundled.target}.`,
    );
  }
  const generator = await loadPair(real ? PAIRS.real : PAIRS.bundled, {
    backend: "cpu",
    dtype: real ? dtype : undefined,
    threads,
    withDraft: values["with-draft"] && real,
  });
  const { target, kernel, tokenizer } = generator;
  const vocabSize = target.vocabSize;

  const configs = (temperature: number): Config[] => {
    const warp = { temperature };
    const out: Config[] = [
      { method: "autoregressive", L: 1, decoder: new AutoregressiveDecoder({ target, kernel, warp }) },
    ];
    for (const L of lengths) {
      for (const verifier of ["sd", "block"] as const) {
        const lookup = new LookupProposer({ vocabSize, maxNgram, minNgram });
        const decoder = new BlockDecoder({
          target,
          proposer: lookup,
          kernel,
          verifier,
          draftLength: L,
          warp,
        });
        out.push({ method: `lookup+${verifier}`, L, lookup, decoder });
      }
    }
    const draft = generator.draft;
    if (draft) {
      const decoder = new BlockDecoder({ target, draft, kernel, verifier: "sd", draftLength: 4, warp });
      out.push({ method: "draft+sd", L: 4, decoder });
    }
    return out;
  };

  const promptIds = PROMPTS.map((p) =>
    tokenizer.encode(renderChat(tokenizer, [{ role: "user", content: p.content }]))
  );
  const eosTokenId = generator.chatStopTokenIds.length > 0
    ? generator.chatStopTokenIds
    : generator.eosTokenIds;

  // Warm-up: first-call costs (sessions, shapes up to L + 1 tokens) out of the table.
  for (const c of configs(1)) {
    await c.decoder.generate(promptIds[0], { maxNewTokens: 8, seed: 9, eosTokenId });
  }

  const header = machineHeader("bench:lookup");
  console.log(formatHeader(header));
  const model = real ? `SmolLM2-135M-Instruct ${dtype}` : "toy target (models/target)";
  console.log(
    `${model} on cpu, ${threads} thread(s); lookup n-grams ${maxNgram}..${minNgram}; ` +
      `${maxNewTokens} new tokens, ${rounds} round(s) per cell, seeds 1..${rounds}`,
  );
  const rows: LookupBenchRow[] = [];
  for (const [p, prompt] of PROMPTS.entries()) {
    for (const temperature of TEMPERATURES) {
      const cs = configs(temperature);
      // Each (prompt, T) is its own cell of one prompt: round r runs every configuration on seed r + 1.
      const runs: Run[][] = await interleave(cs, rounds, async (c, round) => {
        const { tokens, stats } = await c.decoder.generate(promptIds[p], {
          maxNewTokens,
          seed: pairedSeed(0, round, 1),
          eosTokenId,
        });
        return {
          tokens,
          ms: stats.totalMs,
          blocks: stats.blocks,
          drafted: c.lookup?.matched ?? 0, // the decoder resets the proposer per generation
          accepted: sum(stats.acceptedPerDepth),
          reached: sum(stats.reachedPerDepth),
        };
      });
      const speed = (r: Run) => (r.tokens.length * 1000) / r.ms;
      const cellRows: (LookupBenchRow & { label: string })[] = [];
      for (const [i, c] of cs.entries()) {
        const rs = runs[i];
        const tokens = sum(rs.map((r) => r.tokens.length));
        const blocks = sum(rs.map((r) => r.blocks));
        const same = temperature === 0
          ? rs.every((r, round) => r.tokens.join() === runs[0][round].tokens.join())
          : null;
        const row: LookupBenchRow = {
          prompt: prompt.name,
          temperature,
          method: c.method,
          L: c.L,
          tokensPerSecond: (tokens * 1000) / sum(rs.map((r) => r.ms)),
          blockEfficiency: tokens / blocks,
          speedup: median(rs.map((r, round) => speed(r) / speed(runs[0][round]))),
          draftedShare: c.lookup ? sum(rs.map((r) => r.drafted)) / blocks : null,
          acceptance: c.method === "autoregressive"
            ? null
            : sum(rs.map((r) => r.accepted)) / sum(rs.map((r) => r.reached)),
          tokens,
          sameAsAutoregressive: same,
        };
        rows.push(row);
        cellRows.push({ ...row, label: label(c) });
      }
      console.log(`\n${prompt.name}, T = ${temperature} (load average ${formatLoad(loadAverage())})`);
      type Shown = (typeof cellRows)[number];
      console.log(formatTable<Shown>([
        { header: "method", value: "label" },
        { header: "tokens/s", value: "tokensPerSecond", digits: 1 },
        { header: "block eff.", value: "blockEfficiency", digits: 2 },
        { header: "vs AR", value: "speedup", digits: 2, suffix: "×" },
        { header: "drafted", value: "draftedShare", digits: 0, scale: 100, suffix: "%" },
        { header: "acceptance", value: "acceptance", digits: 0, scale: 100, suffix: "%" },
        { header: "tokens", value: "tokens", digits: 0 },
        ...(temperature === 0 ? [{ header: "same as AR", value: "sameAsAutoregressive" as const }] : []),
      ], cellRows));
    }
  }
  const longest = promptIds.reduce((a, b) => (b.length > a.length ? b : a));
  const ns = [1, 5, 9];
  const latency = await measureLatency(target, ns.map((n) => [1, n] as const), {
    past: longest.length,
    rounds: quick ? 5 : 30,
    calls: 1,
    keepAll: true,
  });
  const times = ns.map((n) => latency.get(`1x${n}`)!);
  const callMs = Object.fromEntries(ns.map((n, i) => [n, times[i]]));
  console.log(
    `\ntarget call after ${longest.length} tokens (median ms): ` +
      ns.map((n, i) => `t(${n}) = ${times[i].toFixed(1)}`).join(", ") +
      ` — a block of L = 4 costs ${(times[1] / times[0]).toFixed(2)}× a 1-token step, L = 8 ${
        (times[2] / times[0]).toFixed(2)
      }×`,
  );
  await generator.dispose();
  finishBench(header, {
    threads,
    real,
    ngrams: { max: maxNgram, min: minNgram },
    dtype: real ? dtype : "toy",
    maxNewTokens,
    rounds,
    rows,
    callMs,
  });
}
