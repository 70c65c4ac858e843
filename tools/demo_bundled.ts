/**
 * `deno task demo --toy`: a story from the bundled TinyStories model pair (models/target, models/draft), streamed with SpecTr,
 * then a speed table measured in this run on the same prompt and seeds: tokens/s and block
 * efficiency for autoregressive sampling, speculative sampling (best L) and SpecTr (a few k, L),
 * with speed-ups against both. Every method samples the same distribution (the target's); they
 * differ only in speed.
 *
 * Run: `deno task demo --toy` (options: --backend wasm|cpu|auto, --tokens 128, --runs 3,
 * --temperature 1, --prompt "Once upon a time", --target DIR --draft DIR for other model folders).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { SpeculativeGenerator } from "../src/generate/generator.ts";
import type { GenerationMethod, GenerationOptions } from "../src/generate/generator.ts";
import type { BackendName } from "../src/backend/mod.ts";
import { measureLatency } from "../bench/_latency.ts";

const { values } = parseArgs({
  args: Deno.args.filter((a) => a !== "--toy"),
  options: {
    backend: { type: "string", default: "auto" },
    tokens: { type: "string", default: "128" },
    runs: { type: "string", default: "3" },
    temperature: { type: "string", default: "1" },
    prompt: { type: "string", default: "Once upon a time" },
    seed: { type: "string", default: "1" },
    target: { type: "string" },
    draft: { type: "string" },
  },
});
const maxNewTokens = Number(values.tokens);
const runs = Number(values.runs);
const temperature = Number(values.temperature);
const seed = Number(values.seed);
const prompt = values.prompt;
const models = new URL("../models/", import.meta.url);

const generator = await SpeculativeGenerator.fromPretrained({
  target: values.target ?? new URL("target/", models),
  draft: values.draft ?? new URL("draft/", models),
  backend: (values.backend === "both" ? "auto" : values.backend) as BackendName,
});
const backend = (generator.target as { backend?: string }).backend ?? values.backend;
const encoder = new TextEncoder();

console.log(`spectr demo — bundled TinyStories pair on ${backend}, kernel ${generator.kernel.name}\n`);
Deno.stdout.writeSync(encoder.encode(prompt));
const story = generator.stream(prompt, {
  method: "spectr",
  k: 4,
  draftLength: 4,
  maxNewTokens,
  temperature,
  seed,
});
let step = await story.next();
while (!step.done) {
  Deno.stdout.writeSync(encoder.encode(step.value));
  step = await story.next();
}
const s = step.value.stats;
console.log(
  `\n\n[spectr k=4 L=4: ${s.tokens} tokens, ${s.tokensPerSecond.toFixed(1)} tokens/s, block efficiency ` +
    `${s.blockEfficiency.toFixed(2)}, finish: ${step.value.finishReason}]\n`,
);

interface Row {
  label: string;
  method: GenerationMethod;
  k: number;
  L: number;
  tokensPerSecond: number;
  efficiency: number;
  /** Per block (autoregressive: per token), ms: target forwards, draft forwards + sampling, the rest. */
  targetMs: number;
  draftMs: number;
  otherMs: number;
}

async function measure(label: string, method: GenerationMethod, k: number, L: number): Promise<Row> {
  let tokens = 0, ms = 0, blocks = 0, targetMs = 0, draftMs = 0;
  for (let r = 0; r < runs; r++) {
    const options: GenerationOptions = {
      method,
      k,
      draftLength: L,
      maxNewTokens,
      temperature,
      seed: seed + r,
    };
    const { stats } = await generator.generate(prompt, options);
    tokens += stats.tokens;
    ms += stats.totalMs;
    blocks += stats.blocks;
    targetMs += stats.targetMs;
    draftMs += stats.draftMs;
  }
  return {
    label,
    method,
    k,
    L,
    tokensPerSecond: (tokens * 1000) / ms,
    efficiency: tokens / blocks,
    targetMs: targetMs / blocks,
    draftMs: draftMs / blocks,
    otherMs: (ms - targetMs - draftMs) / blocks,
  };
}

await measure("warm-up", "spectr", 2, 2); // first-call costs (session warm-up) out of the table
const rows: Row[] = [await measure("autoregressive", "autoregressive", 1, 1)];
rows.push(await measure("auto (k<=4, L<=4)", "auto", 4, 4));
for (const L of [2, 3, 4, 6]) rows.push(await measure(`sd L=${L}`, "sd", 1, L));
for (const L of [2, 3]) rows.push(await measure(`block L=${L}`, "block", 1, L));
for (const [k, L] of [[2, 4], [4, 4], [8, 4], [4, 6]]) {
  rows.push(await measure(`spectr k=${k} L=${L}`, "spectr", k, L));
}

const ar = rows[0].tokensPerSecond;
const bestSd = rows.filter((r) => r.method === "sd").reduce((
  a,
  b,
) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
console.log(
  `${runs} runs × ${maxNewTokens} tokens per row, T = ${temperature}, prompt ${
    JSON.stringify(prompt)
  }, seeds ${seed}..${seed + runs - 1}`,
);
console.log("method              tokens/s   block eff.   vs autoregressive   vs best sd");
for (const r of rows) {
  console.log(
    `${r.label.padEnd(18)} ${r.tokensPerSecond.toFixed(1).padStart(9)}   ${
      r.efficiency.toFixed(2).padStart(9)
    }   ${(r.tokensPerSecond / ar).toFixed(2).padStart(15)}x   ${
      (r.tokensPerSecond / bestSd.tokensPerSecond).toFixed(2).padStart(9)
    }x`,
  );
}
console.log(`best sd: ${bestSd.label}`);

// Why the table looks the way it does. (1) Where a block's time goes, from the runs above, in
// units of one autoregressive step; (2) the per-call latency t(batch, tokens) of the scoring forward,
// measured now on its own: it grows with the tokens scored, which caps the speed-up.
const cells = [[1, 1], ...rows.slice(1).map((r) => [r.k, r.L + 1])] as [number, number][];
const tT = await measureLatency(generator.target, cells);
const t = (b: number, n: number) => tT.get(`${b}x${n}`)!;
const arStep = rows[0].targetMs + rows[0].draftMs + rows[0].otherMs;
console.log(
  `\nWhy: time per block in this run, ms (autoregressive: ${arStep.toFixed(2)} ms per token, ${
    rows[0].targetMs.toFixed(2)
  } of it in the target);`,
);
console.log(`t(k, L+1) = one scoring forward over k rows × L+1 tokens measured alone, past 64 tokens.`);
console.log(
  "method              target   draft   rest   block/AR step   tokens/block   t(k,L+1)/t(1,1)   if flat",
);
for (const r of rows.slice(1)) {
  const block = r.targetMs + r.draftMs + r.otherMs;
  // "if flat": the speed-up if the scoring forward cost what an autoregressive step's forward does
  // (the regime of a GPU or a memory-bound model), all else as measured.
  const flat = r.efficiency * arStep / (rows[0].targetMs + r.draftMs + r.otherMs);
  console.log(
    `${r.label.padEnd(18)} ${r.targetMs.toFixed(2).padStart(7)} ${r.draftMs.toFixed(2).padStart(7)} ${
      r.otherMs.toFixed(2).padStart(6)
    } ${(block / arStep).toFixed(2).padStart(14)}x ${r.efficiency.toFixed(2).padStart(14)} ${
      (t(r.k, r.L + 1) / t(1, 1)).toFixed(2).padStart(16)
    }x ${flat.toFixed(2).padStart(8)}x`,
  );
}
const spectrRows = rows.filter((r) => r.method === "spectr");
const best = spectrRows.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
const met = best.tokensPerSecond >= 2.13 * ar && best.tokensPerSecond >= 1.37 * bestSd.tokensPerSecond;
console.log(
  `\nSpeed-up = tokens/block ÷ block/AR step. Goal spectr >= 2.13x autoregressive and >= 1.37x sd: ${
    met ? "met" : "NOT met"
  } on ${backend} (best spectr, ${best.label}: ${(best.tokensPerSecond / ar).toFixed(2)}x, ${
    (best.tokensPerSecond / bestSd.tokensPerSecond).toFixed(2)
  }x sd).`,
);
if (!met) {
  const tD = await measureLatency(generator.draft!, [[1, 1]]);
  const ratio = t(1, 1) / tD.get("1x1")!;
  const flatBest = Math.max(
    ...spectrRows.map((r) => r.efficiency * arStep / (rows[0].targetMs + r.draftMs + r.otherMs)),
  );
  console.log(
    `Two measured reasons. (1) A scoring forward costs about in proportion to the tokens it scores\n` +
      `(t(k,L+1)/t(1,1) column): the target is compute-bound here, so the extra tokens per block are\n` +
      `paid for by a slower block. (2) Drafting is not free: for ${best.label} the draft's L calls cost ${
        (best.draftMs / arStep).toFixed(2)
      }\n` +
      `autoregressive steps per block (one draft call is only ${
        ratio.toFixed(1)
      }× cheaper than a target call: ${tD.get("1x1")!.toFixed(2)} vs\n` +
      `${t(1, 1).toFixed(2)} ms), which caps "if flat" at ${
        flatBest.toFixed(2)
      }×. The paper's 2.13× needs both a forward whose cost is flat in\n` +
      `the tokens scored (a GPU, a memory-bound target) and a draft much cheaper than the target.`,
  );
}
await generator.dispose();
