// The feature drafter end to end on onnxruntime: a tiny random drafter (src/convert/eagle_onnx.ts's
// buildEagleFolder) for the converter's tiny Llama target (hidden_states.0 and .1 outputs), loaded
// by fromPretrained from a folder with model_type "spectr_eagle", drafting through EagleProposer on
// wasm and cpu. Greedy (temperature 0) output must equal the target-only greedy output, whatever
// the drafter: an exactness check that holds for any drafter weights.

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertGgufToOnnx } from "../convert/mod.ts";
import { minimalConfig, randomEagleDrafter, TINY, tinyLlamaGguf } from "../convert/_testing.ts";
import { buildEagleFolder, type EagleConfig } from "../convert/eagle_onnx.ts";
import { writeSafetensors } from "../convert/safetensors.ts";
import { EagleProposer } from "../decode/eagle_proposer.ts";
import type { OnnxEagleDrafter } from "../model/eagle_drafter.ts";
import { InvalidModelError } from "../model/errors.ts";
import { SpeculativeGenerator } from "./generator.ts";

const ort = { sanitizeResources: false, sanitizeOps: false };

const DRAFTER: EagleConfig & { architectures: string[] } = {
  model_type: "spectr_eagle",
  architectures: ["SpectrEagleDrafter"],
  target_hidden_layers: [0, 1],
  target_hidden_size: TINY.hidden,
  hidden_size: TINY.hidden,
  intermediate_size: 48,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  vocab_size: TINY.vocab,
  draft_vocab_size: 16,
  max_position_embeddings: TINY.ctx,
  target: "tiny-target",
};

/** A byte-level BPE tokenizer over the tiny vocabulary (one token per id). */
function tokenizerJson(): string {
  const vocab: Record<string, number> = {};
  for (let i = 0; i < TINY.vocab; i++) vocab[String.fromCharCode(0x41 + i)] = i;
  return JSON.stringify({ model: { type: "BPE", vocab, merges: [] }, decoder: { type: "ByteLevel" } });
}

async function folders(): Promise<{ parent: string; target: string; plain: string; drafter: string }> {
  const parent = await Deno.makeTempDir({ prefix: "spectr-eagle-gen-" });
  const gguf = tinyLlamaGguf();
  const extras = async ({ folder, file }: { folder: string; file: Parameters<typeof minimalConfig>[0] }) => {
    await Deno.writeTextFile(join(folder, "config.json"), JSON.stringify(minimalConfig(file)));
    await Deno.writeTextFile(join(folder, "tokenizer.json"), tokenizerJson());
    await Deno.writeTextFile(join(folder, "tokenizer_config.json"), "{}");
    await Deno.writeTextFile(join(folder, "generation_config.json"), JSON.stringify({ eos_token_id: 2 }));
  };
  const target = join(parent, "tiny-target"), plain = join(parent, "tiny-plain");
  await convertGgufToOnnx(gguf, target, {
    dtypes: ["fp32"],
    attentionMask: "any",
    hiddenStates: [0, 1],
    writeExtras: extras,
  });
  await convertGgufToOnnx(gguf, plain, { dtypes: ["fp32"], writeExtras: extras });
  const drafter = join(parent, "tiny-eagle");
  await Deno.mkdir(drafter);
  await Deno.writeTextFile(join(drafter, "config.json"), JSON.stringify(DRAFTER));
  await Deno.writeFile(
    join(drafter, "drafter.safetensors"),
    writeSafetensors(randomEagleDrafter(DRAFTER, 3)),
  );
  await buildEagleFolder(drafter, gguf);
  return { parent, target, plain, drafter };
}

const dirs = await folders();

for (
  const [backend, dtype] of [["wasm", undefined], ["cpu", undefined], ["cpu", "q8"], ["wasm", "q8"]] as const
) {
  const file = dtype === "q8" ? "onnx/model_quantized.onnx" : "onnx/model.onnx";
  Deno.test({
    name:
      `fromPretrained with a spectr_eagle draft folder drafts with EagleProposer on ${backend} (drafter ${file}): greedy output equals target-only greedy`,
    ...ort,
    fn: async () => {
      const generator = await SpeculativeGenerator.fromPretrained({
        target: dirs.target,
        draft: dirs.drafter,
        backend,
        numThreads: 1,
        draftOptions: dtype ? { dtype } : undefined,
      });
      try {
        assert.equal((generator.drafter as OnnxEagleDrafter).file, file);
        assert.equal(generator.defaultProposer, "eagle");
        assert.equal(generator.draft, undefined);
        assert.equal(generator.target.featureSize, 2 * TINY.hidden);
        const prompt = [1, 5, 9, 14, 3, 22];
        const options = { maxNewTokens: 24, temperature: 0, seed: 1 };
        const reference = await generator.generate(prompt, { ...options, method: "autoregressive" });
        for (
          const run of [
            { method: "sd", k: 1, draftLength: 3 },
            { method: "kseq", k: 3, draftLength: 2 },
            { method: "block", k: 1, draftLength: 4 },
            { method: "auto", k: 2, draftLength: 3 },
          ] as const
        ) {
          const out = await generator.generate(prompt, { ...options, ...run });
          assert.deepEqual(out.tokens, reference.tokens, `${run.method} k=${run.k} L=${run.draftLength}`);
          if (run.method !== "auto") assert.ok(out.stats.draftCalls > 0, "the drafter ran");
        }
        // Sampling too: a seeded run is reproducible.
        const a = await generator.generate(prompt, { maxNewTokens: 16, seed: 5, method: "kseq", k: 2 });
        const b = await generator.generate(prompt, { maxNewTokens: 16, seed: 5, method: "kseq", k: 2 });
        assert.deepEqual(a.tokens, b.tokens);
      } finally {
        await generator.dispose();
      }
    },
  });
}

Deno.test({
  name:
    "EagleProposer on the tiny drafter: rollback cuts the drafter back to the positions fed with target features",
  ...ort,
  fn: async () => {
    const { OnnxEagleDrafter } = await import("../model/eagle_drafter.ts");
    const { referenceKernel } = await import("../kernel/reference.ts");
    const { Random } = await import("../random.ts");
    const drafter = await OnnxEagleDrafter.load(dirs.drafter, { backend: "wasm", numThreads: 1 });
    try {
      const proposer = new EagleProposer({ drafter, kernel: referenceKernel });
      proposer.reset();
      const f = drafter.featureSize;
      const proposal = await proposer.propose(
        [4, 5, 6],
        { k: 3, draftLength: 3 },
        new Random(2),
        new Float32Array(3 * f),
      );
      assert.equal(drafter.rows, 3);
      assert.equal(drafter.length, 5);
      for (const row of proposal.probs) {
        for (const q of row) {
          for (let id = 0; id < TINY.vocab; id++) {
            if (id % 2 === 0 || id > 31) assert.equal(q[id], 0, `q = 0 outside d2t (id ${id})`);
          }
        }
      }
      assert.deepEqual([...drafter.draftToTarget], Array.from({ length: 16 }, (_, s) => 1 + 2 * s));
      assert.deepEqual(proposer.rollback(2, 1), [proposal.tokens[2][0]]);
      assert.equal(drafter.rows, 1);
      assert.equal(drafter.length, 3);
    } finally {
      await drafter.dispose();
    }
  },
});

Deno.test({
  name:
    "fromPretrained with a spectr_eagle draft over a target without hidden_states outputs is an InvalidModelError naming the output",
  ...ort,
  fn: async () => {
    await assert.rejects(
      () => SpeculativeGenerator.fromPretrained({ target: dirs.plain, draft: dirs.drafter, backend: "wasm" }),
      (e: Error) =>
        e instanceof InvalidModelError && /hidden_states\.0/.test(e.message) &&
        /deno task model:smollm2/.test(e.message),
    );
  },
});

Deno.test({
  name: "eagle generator: temp folders removed",
  fn: () => Deno.remove(dirs.parent, { recursive: true }),
});
