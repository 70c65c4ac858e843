/**
 * Demo: a story from the bundled model pair (models/target, models/draft), streamed with SpecTr,
 * then a speed table measured in this run on the same prompt and seeds: tokens/s and block
 * efficiency for autoregressive sampling, speculative sampling (best L) and SpecTr (a few k, L),
 * with speed-ups against both. Every method samples the same distribution (the target's); they
 * differ only in speed.
 *
 * Run: `deno task demo` (options: --backend wasm|cpu|auto, --tokens 128, --runs 3, --temperature 1,
 * --prompt "Once upon a time", --target DIR --draft DIR for other model folders, --toy for the toy
 * Markov-chain demo instead).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { SpeculativeGenerator } from "../src/generate/generator.ts";
import type { GenerationMethod, GenerationOptions } from "../src/generate/generator.ts";
import type { BackendName } from "../src/model/backend.ts";

if (Deno.args.includes("--toy")) {
  await import("./demo_toy.ts");
  Deno.exit(0);
}

const { values } = parseArgs({
  args: Deno.args,
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
  backend: values.backend as BackendName,
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
}

async function measure(label: string, method: GenerationMethod, k: number, L: number): Promise<Row> {
  let tokens = 0, ms = 0, targetCalls = 0;
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
    targetCalls += stats.targetCalls;
  }
  return { label, method, k, L, tokensPerSecond: (tokens * 1000) / ms, efficiency: tokens / targetCalls };
}

await measure("warm-up", "spectr", 2, 2); // first-call costs (session warm-up) out of the table
const rows: Row[] = [await measure("autoregressive", "autoregressive", 1, 1)];
for (const L of [2, 3, 4, 6]) rows.push(await measure(`sd L=${L}`, "sd", 1, L));
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
await generator.dispose();
