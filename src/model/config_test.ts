import assert from "node:assert/strict";
import { parseModelConfig } from "./config.ts";
import { InvalidModelError } from "./errors.ts";

Deno.test("GPT-2 configs get kv heads = heads, head size = n_embd / n_head and n_positions as the limit", () => {
  const c = parseModelConfig({
    model_type: "gpt2",
    vocab_size: 8192,
    n_layer: 6,
    n_head: 8,
    n_embd: 256,
    n_positions: 512,
    bos_token_id: 1,
    eos_token_id: 1,
  });
  assert.deepEqual(c, {
    family: "gpt2",
    modelType: "gpt2",
    vocabSize: 8192,
    numLayers: 6,
    numHeads: 8,
    numKvHeads: 8,
    headDim: 32,
    hiddenSize: 256,
    maxLength: 512,
    eosTokenIds: [1],
    bosTokenId: 1,
  });
});

Deno.test("Llama configs default num_key_value_heads to the heads and head_dim to hidden / heads", () => {
  const base = {
    model_type: "llama",
    vocab_size: 100,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    hidden_size: 64,
  };
  const c = parseModelConfig({ ...base, max_position_embeddings: 256 });
  assert.equal(c.numKvHeads, 4);
  assert.equal(c.headDim, 16);
  assert.equal(c.bosTokenId, null);
  assert.deepEqual(c.eosTokenIds, []);
  const gqa = parseModelConfig({
    ...base,
    max_position_embeddings: 256,
    num_key_value_heads: 2,
    head_dim: 32,
  });
  assert.equal(gqa.numKvHeads, 2);
  assert.equal(gqa.headDim, 32);
});

Deno.test("generation_config.json eos ids take precedence and lists are deduplicated", () => {
  const c = parseModelConfig(
    {
      model_type: "mistral",
      vocab_size: 9,
      num_hidden_layers: 1,
      num_attention_heads: 1,
      hidden_size: 4,
      max_position_embeddings: 8,
      eos_token_id: 2,
    },
    { eos_token_id: [3, 4, 3], bos_token_id: 0 },
  );
  assert.equal(c.family, "llama");
  assert.deepEqual(c.eosTokenIds, [3, 4]);
  assert.equal(c.bosTokenId, 0);
});

Deno.test("Unsupported types, missing or bad sizes and bad eos ids throw InvalidModelError naming the field", () => {
  const cases: [unknown, RegExp][] = [
    [{ model_type: "t5" }, /unsupported model_type.*"t5"/],
    [{}, /unsupported model_type.*undefined/],
    [[], /expected a JSON object/],
    [
      { model_type: "gpt2", vocab_size: 9, n_head: 2, n_embd: 8, n_positions: 8 },
      /n_layer \/ num_hidden_layers is missing/,
    ],
    [
      { model_type: "gpt2", vocab_size: 9, n_layer: 1, n_head: 3, n_embd: 8, n_positions: 8 },
      /divisible by n_head \(3\), got 8/,
    ],
    [
      { model_type: "gpt2", vocab_size: 0, n_layer: 1, n_head: 2, n_embd: 8, n_positions: 8 },
      /vocab_size must be an integer >= 1, got 0/,
    ],
    [{
      model_type: "gpt2",
      vocab_size: 9,
      n_layer: 1,
      n_head: 2,
      n_embd: 8,
      n_positions: 8,
      eos_token_id: "x",
    }, /eos_token_id/],
  ];
  for (const [config, message] of cases) {
    assert.throws(
      () => parseModelConfig(config),
      (e: Error) => e instanceof InvalidModelError && message.test(e.message),
    );
  }
});
