// The block decoder (src/decode) driving the bundled ONNX models.
import assert from "node:assert/strict";
import { createDecoder } from "../decode/mod.ts";
import { loadKernel } from "../kernel/wasm.ts";
import { OnnxCausalLM } from "./causal_lm.ts";
import { argmax, haveModel, modelPath, randomTokens } from "./_testing.ts";

const have = { target: haveModel("target"), draft: haveModel("draft") };
const NEW_TOKENS = 32;

async function greedy(model: OnnxCausalLM, prompt: number[], n: number): Promise<number[]> {
  model.reset();
  const out: number[] = [];
  let logits = await model.append([prompt], 1);
  while (true) {
    const next = argmax(logits, 0, model.vocabSize);
    out.push(next);
    if (out.length === n) return out;
    logits = await model.append([[next]], 1);
  }
}

for (const [targetName, draftName] of [["target", "draft"], ["draft", "draft"]] as const) {
  Deno.test({
    name:
      `K-SEQ (k 4, L 3) at temperature 0 with the ${draftName} model drafting for the ${targetName} model equals the ${targetName}'s greedy decoding`,
    ignore: !have[targetName] || !have[draftName],
    async fn() {
      const target = await OnnxCausalLM.load(modelPath(targetName), { backend: "wasm", numThreads: 1 });
      const draft = await OnnxCausalLM.load(modelPath(draftName), { backend: "wasm", numThreads: 1 });
      try {
        const kernel = await loadKernel();
        const prompt = randomTokens(12, target.vocabSize, 2024);
        const expected = await greedy(target, prompt, NEW_TOKENS);
        const decoder = createDecoder("kseq", {
          target,
          draft,
          kernel,
          k: 4,
          draftLength: 3,
          warp: { temperature: 0 },
        });
        const targetBefore = target.calls, draftBefore = draft.calls;
        const { tokens, stats } = await decoder.generate(prompt, { maxNewTokens: NEW_TOKENS, seed: 7 });
        // The stats count forwards, including the lazy fork's extra prompt forward in block 1.
        assert.equal(stats.targetCalls, target.calls - targetBefore);
        assert.equal(stats.draftCalls, draft.calls - draftBefore);
        assert.equal(stats.targetCalls, stats.blocks + 1);
        assert.equal(stats.blockEfficiency, tokens.length / stats.blocks);
        console.log(
          `${targetName} <- ${draftName}: ${stats.blocks} blocks, ${stats.targetCalls} target calls for ${tokens.length} tokens`,
        );
        assert.deepEqual(tokens, expected);
      } finally {
        await target.dispose();
        await draft.dispose();
      }
    },
  });
}
