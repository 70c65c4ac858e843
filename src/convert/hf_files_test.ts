// Tests of hf_files.ts / tokenizer_json.ts / hf_config.ts on a tiny GGUF built in memory (no network, no real
// file): a byte-level vocabulary of all 256 bytes plus a few merges, three control tokens, one user-defined
// token and a ChatML template. Expected ids are derived by hand in the comments.

import assert from "node:assert/strict";
import { writeGguf } from "./_gguf_writer.ts";
import { type GgufFile, type GgufValue, InvalidGgufError, parseGguf, UnsupportedGgufError } from "./gguf.ts";
import {
  buildConfigJson,
  buildGenerationConfig,
  buildHfFiles,
  buildTokenizerConfig,
  buildTokenizerJson,
  preTokenizerFor,
  shortestFloat32,
  SUPPORTED_PRE_TOKENIZERS,
} from "./hf_files.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { unicodeToByte } from "../tokenizer/_bytes.ts";
import { parseModelConfig } from "../model/config.ts";
import { renderChat } from "../generate/chat.ts";

const BYTE_CHAR: string[] = (() => {
  const out: string[] = new Array(256);
  for (const [ch, b] of unicodeToByte()) out[b] = ch;
  return out;
})();
/** Id of the single-byte token for byte `b` (ids 4..259). */
const byte = (b: number) => 4 + b;
const ch = (c: string) => byte(c.charCodeAt(0));

// ids 0..3: special; 4..259: the 256 bytes; 260..: merged tokens, one per merge, in rank order.
const SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"];
const MERGES = [
  "h e", // 260 he
  "l l", // 261 ll
  "ll o", // 262 llo
  "he llo", // 263 hello
  "Ġ w", // 264 Ġw
  "o r", // 265 or
  "l d", // 266 ld
  "Ġw or", // 267 Ġwor
  "Ġwor ld", // 268 Ġworld
  "1 2", // 269 12
  "12 3", // 270 123
  "Ġ 1", // 271 Ġ1
  "Ù ¡", // 272 ١ (U+0661 = D9 A1)
  "Ù ¢", // 273 ٢ (U+0662 = D9 A2)
  "Ù¡ Ù¢", // 274 ١٢
  "Ġ Â", // 275 " " + first byte of U+0085 (C2 85)
];
const TOKENS = [...SPECIAL, ...BYTE_CHAR, ...MERGES.map((m) => m.replace(" ", ""))];
const TYPES = [3, 3, 3, 4, ...TOKENS.slice(4).map(() => 1)];
const TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + " +
  "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
const HIDDEN = 8;

function metadata(): Map<string, GgufValue> {
  return new Map<string, GgufValue>([
    ["general.architecture", "llama"],
    ["llama.block_count", 2],
    ["llama.context_length", 64],
    ["llama.embedding_length", HIDDEN],
    ["llama.feed_forward_length", 16],
    ["llama.attention.head_count", 2],
    ["llama.attention.head_count_kv", 1],
    ["llama.rope.freq_base", 10000],
    ["llama.attention.layer_norm_rms_epsilon", Math.fround(1e-5)],
    ["llama.vocab_size", TOKENS.length],
    ["llama.rope.dimension_count", 4],
    ["tokenizer.ggml.model", "gpt2"],
    ["tokenizer.ggml.pre", "smollm"],
    ["tokenizer.ggml.tokens", TOKENS],
    ["tokenizer.ggml.token_type", TYPES],
    ["tokenizer.ggml.merges", MERGES],
    ["tokenizer.ggml.bos_token_id", 1],
    ["tokenizer.ggml.eos_token_id", 2],
    ["tokenizer.ggml.unknown_token_id", 0],
    ["tokenizer.ggml.padding_token_id", 2],
    ["tokenizer.ggml.add_bos_token", false],
    ["tokenizer.chat_template", TEMPLATE],
  ]);
}

/** A tiny GGUF, written with the test writer and parsed back; `edit` changes the metadata first. */
function tinyGguf(edit: (m: Map<string, GgufValue>) => void = () => {}, withOutput = false): GgufFile {
  const m = metadata();
  edit(m);
  const embedding = { name: "token_embd.weight", dims: [HIDDEN, TOKENS.length], type: 0 };
  const tensors = [embedding, ...(withOutput ? [{ ...embedding, name: "output.weight" }] : [])];
  return parseGguf(writeGguf({
    metadata: [...m],
    tensors: tensors.map((t) => ({ ...t, raw: new Uint8Array(HIDDEN * TOKENS.length * 4) })),
  }));
}

function load(file: GgufFile): Tokenizer {
  return Tokenizer.fromJSON(
    JSON.stringify(buildTokenizerJson(file)),
    JSON.stringify(buildTokenizerConfig(file)),
  );
}

Deno.test("tokenizer.json: the vocabulary, merges and added tokens come from the GGUF", () => {
  const json = buildTokenizerJson(tinyGguf());
  assert.equal(Object.keys(json.model.vocab).length, TOKENS.length);
  assert.equal(json.model.vocab["Ġworld"], 268);
  assert.deepEqual(json.model.merges[0], ["h", "e"]);
  assert.equal(json.model.merges.length, MERGES.length);
  assert.deepEqual(json.added_tokens.map((t) => [t.id, t.content, t.special]), [
    [0, "<|endoftext|>", true],
    [1, "<|im_start|>", true],
    [2, "<|im_end|>", true],
    [3, "<tool>", false], // user-defined: matched in text, but not dropped by skip_special_tokens
  ]);
  assert.equal(json.post_processor, null);
});

Deno.test("tokenizer.json loads in Tokenizer and encodes / decodes to the hand-derived ids", () => {
  const tokenizer = load(tinyGguf());
  assert.equal(tokenizer.vocabSize, TOKENS.length);
  // "hello" → h e l l o → he, ll → he llo → hello; " world" → Ġ w o r l d → Ġw, or, ld → Ġwor → Ġworld.
  assert.deepEqual(tokenizer.encode("hello world"), [263, 268]);
  assert.deepEqual(tokenizer.decode([263, 268]), "hello world");
  // "call <tool>": "call" → c a ll, " " → Ġ, then the user-defined token whole.
  assert.deepEqual(tokenizer.encode("call <tool>"), [ch("c"), ch("a"), 261, ch(" "), 3]);
  assert.deepEqual(tokenizer.decode([263, 3, 2], { skipSpecialTokens: true }), "hello<tool>");
  // A multi-byte character without a merge is its bytes: "é" = C3 A9.
  assert.deepEqual(tokenizer.encode("é"), [byte(0xc3), byte(0xa9)]);
  assert.equal(tokenizer.decode(tokenizer.encode("naïve ☕ 日本")), "naïve ☕ 日本");
  assert.equal(tokenizer.addsPrefixSpace, false);
});

Deno.test("smollm pre-tokenizer: every number character is its own pre-token, ASCII or not", () => {
  const tokenizer = load(tinyGguf());
  // "12" and "123" are tokens, but the digits are split before BPE.
  assert.deepEqual(tokenizer.encode("12345"), [ch("1"), ch("2"), ch("3"), ch("4"), ch("5")]);
  assert.deepEqual(tokenizer.encode(" 123"), [ch(" "), ch("1"), ch("2"), ch("3")]);
  // Arabic-Indic ١٢ (a merge makes "١٢" one token) splits too: \p{N}, not ASCII \d.
  assert.deepEqual(tokenizer.encode("١٢"), [272, 273]);
  // Power check: the same vocabulary with GPT-2's pre-tokenizer keeps the number together.
  const gpt2 = load(tinyGguf((m) => m.set("tokenizer.ggml.pre", "gpt-2")));
  assert.deepEqual(gpt2.encode("12345"), [270, ch("4"), ch("5")]);
  assert.deepEqual(gpt2.encode(" 123"), [ch(" "), 270]); // "1 2" outranks "Ġ 1"
  assert.deepEqual(gpt2.encode("١٢"), [274]);
  // ... and HF's Digits pre-tokenizer, which the JS library reads as ASCII \d, would not split ١٢.
  const json = buildTokenizerJson(tinyGguf()) as any;
  json.pre_tokenizer.pretokenizers[0] = { type: "Digits", individual_digits: true };
  assert.deepEqual(Tokenizer.fromJSON(json).encode("١٢"), [274]);
});

Deno.test("pre-tokenizer whitespace is Unicode White_Space (U+0085 yes, U+FEFF no), as in llama.cpp", () => {
  const tokenizer = load(tinyGguf());
  // "x \u0085y" → "x", " ", "\u0085", "y": U+0085 is whitespace, so " " is not glued to it (no "Ġ Â" merge).
  const nel = [ch("x"), ch(" "), byte(0xc2), byte(0x85), ch("y")];
  assert.deepEqual(tokenizer.encode("x \u0085y"), nel);
  // Power check: ByteLevel's built-in regex (JavaScript's \s) glues " \u0085" into one pre-token.
  const json = buildTokenizerJson(tinyGguf()) as any;
  json.pre_tokenizer = {
    type: "Sequence",
    pretokenizers: [json.pre_tokenizer.pretokenizers[0], {
      type: "ByteLevel",
      add_prefix_space: false,
      use_regex: true,
    }],
  };
  assert.deepEqual(Tokenizer.fromJSON(json).encode("x \u0085y"), [ch("x"), 275, byte(0x85), ch("y")]);
});

Deno.test("special tokens are not split; chat markup encodes to the control ids", () => {
  const tokenizer = load(tinyGguf());
  const u = [ch("u"), ch("s"), ch("e"), ch("r")];
  assert.deepEqual(tokenizer.encode("<|im_start|>user\nhello<|im_end|>\n"), [
    1,
    ...u,
    ch("\n"),
    263,
    2,
    ch("\n"),
  ]);
  assert.deepEqual(tokenizer.specialTokenIds, [0, 1, 2]);
  assert.equal(tokenizer.decode([1, ...u, 2]), "<|im_start|>user<|im_end|>");
  assert.equal(tokenizer.decode([1, ...u, 2], { skipSpecialTokens: true }), "user");
});

Deno.test("no BOS unless add_bos_token; BOS / EOS added by a post-processor when asked", () => {
  const plain = load(tinyGguf());
  assert.deepEqual(plain.encode("hello", { addSpecialTokens: true }), [263]);
  const absent = load(tinyGguf((m) => m.delete("tokenizer.ggml.add_bos_token"))); // llama.cpp's smollm default
  assert.deepEqual(absent.encode("hello", { addSpecialTokens: true }), [263]);
  const bos = load(tinyGguf((m) => m.set("tokenizer.ggml.add_bos_token", true)));
  assert.deepEqual(bos.encode("hello", { addSpecialTokens: true }), [1, 263]);
  assert.deepEqual(bos.encode("hello"), [263]);
  const both = load(tinyGguf((m) => {
    m.set("tokenizer.ggml.add_bos_token", true);
    m.set("tokenizer.ggml.add_eos_token", true);
  }));
  assert.deepEqual(both.encode("hello", { addSpecialTokens: true }), [1, 263, 2]);
  assert.equal(
    buildTokenizerConfig(tinyGguf((m) => m.set("tokenizer.ggml.add_bos_token", true))).add_bos_token,
    true,
  );
});

Deno.test("tokenizer_config.json: special token strings, template, limits; the chat renders ChatML", () => {
  const config = buildTokenizerConfig(tinyGguf());
  assert.equal(config.bos_token, "<|im_start|>");
  assert.equal(config.eos_token, "<|im_end|>");
  assert.equal(config.pad_token, "<|im_end|>");
  assert.equal(config.unk_token, "<|endoftext|>");
  assert.equal(config.add_bos_token, false);
  assert.equal(config.model_max_length, 64);
  assert.equal(config.tokenizer_class, "PreTrainedTokenizerFast");
  assert.equal(config.chat_template, TEMPLATE);
  assert.deepEqual((config.added_tokens_decoder as any)["3"].special, false);
  const tokenizer = load(tinyGguf());
  assert.equal(tokenizer.eosTokenId, 2);
  assert.equal(tokenizer.bosTokenId, 1);
  const prompt = renderChat(tokenizer, [{ role: "user", content: "hello" }]);
  assert.equal(prompt, "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n");
  assert.deepEqual(tokenizer.encode(prompt).slice(-2), [ch("t"), ch("\n")]);
  assert.equal(
    buildTokenizerConfig(tinyGguf((m) => m.delete("tokenizer.chat_template"))).chat_template,
    undefined,
  );
});

Deno.test("config.json passes parseModelConfig; tied embeddings follow output.weight", () => {
  const config = buildConfigJson(tinyGguf());
  assert.equal(config.model_type, "llama");
  assert.deepEqual(config.architectures, ["LlamaForCausalLM"]);
  assert.equal(config.rms_norm_eps, 1e-5);
  assert.equal(config.rope_theta, 10000);
  assert.equal(config.head_dim, 4);
  assert.equal(config.tie_word_embeddings, true);
  assert.equal(config.torch_dtype, "float32");
  assert.equal(config.eos_token_id, 2);
  const generation = buildGenerationConfig(tinyGguf());
  assert.deepEqual(generation, { bos_token_id: 1, eos_token_id: [2, 0], pad_token_id: 2 });
  const parsed = parseModelConfig(config, generation);
  assert.deepEqual(parsed, {
    family: "llama",
    modelType: "llama",
    vocabSize: TOKENS.length,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 4,
    hiddenSize: HIDDEN,
    maxLength: 64,
    eosTokenIds: [2, 0],
    bosTokenId: 1,
  });
  assert.equal(buildConfigJson(tinyGguf(undefined, true)).tie_word_embeddings, false);
  const files = buildHfFiles(tinyGguf());
  assert.deepEqual(Object.keys(files), [
    "tokenizer.json",
    "tokenizer_config.json",
    "config.json",
    "generation_config.json",
  ]);
});

Deno.test("a missing metadata key throws InvalidGgufError naming it", () => {
  const cases: [string, (f: GgufFile) => unknown][] = [
    ["tokenizer.ggml.tokens", buildTokenizerJson],
    ["tokenizer.ggml.merges", buildTokenizerJson],
    ["tokenizer.ggml.eos_token_id", buildTokenizerConfig],
    ["tokenizer.ggml.model", buildHfFiles],
    ["llama.block_count", buildConfigJson],
    ["llama.embedding_length", buildConfigJson],
    ["llama.attention.layer_norm_rms_epsilon", buildConfigJson],
    ["llama.context_length", buildConfigJson],
    ["general.architecture", buildConfigJson],
  ];
  for (const [key, build] of cases) {
    assert.throws(() => build(tinyGguf((m) => m.delete(key))), (e: Error) => {
      assert.ok(e instanceof InvalidGgufError, `${key}: ${e}`);
      assert.match(e.message, new RegExp(`"${key.replaceAll(".", "\\.")}" is missing`));
      return true;
    });
  }
  // add_bos_token without a BOS id
  assert.throws(
    () =>
      buildTokenizerJson(
        tinyGguf((
          m,
        ) => (m.set("tokenizer.ggml.add_bos_token", true), m.delete("tokenizer.ggml.bos_token_id"))),
      ),
    /"tokenizer\.ggml\.bos_token_id" is missing/,
  );
  assert.throws(
    () => buildTokenizerJson(tinyGguf((m) => m.set("tokenizer.ggml.token_type", [3]))),
    InvalidGgufError,
  );
  assert.throws(
    () => buildTokenizerJson(tinyGguf((m) => m.set("tokenizer.ggml.merges", ["ab"]))),
    InvalidGgufError,
  );
  assert.throws(
    () => buildTokenizerJson(tinyGguf((m) => m.set("tokenizer.ggml.eos_token_id", 9999))),
    InvalidGgufError,
  );
});

Deno.test("what this converter does not handle throws UnsupportedGgufError naming it", () => {
  const cases: [(m: Map<string, GgufValue>) => void, RegExp][] = [
    [(m) => m.delete("tokenizer.ggml.pre"), /"default" is not a supported pre-tokenizer/],
    [(m) => m.set("tokenizer.ggml.pre", "deepseek-coder"), /"deepseek-coder"/],
    [(m) => m.set("tokenizer.ggml.model", "llama"), /"tokenizer\.ggml\.model" = "llama"/],
    [(m) => m.set("general.architecture", "qwen2"), /"general\.architecture" = "qwen2"/],
    [(m) => m.set("llama.rope.dimension_count", 2), /partial rotary/],
    [(m) => m.set("llama.rope.scaling.type", "yarn"), /"yarn"/],
  ];
  for (const [edit, message] of cases) {
    assert.throws(() => buildHfFiles(tinyGguf(edit)), (e: Error) => {
      assert.ok(e instanceof UnsupportedGgufError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("every supported pre-tokenizer loads in Tokenizer and keeps text round-tripping", () => {
  const text = "Hello, World! It's 2026-12-01: 12345 ١٢ x²\n\n  \tend ";
  for (const pre of SUPPORTED_PRE_TOKENIZERS) {
    const tokenizer = load(tinyGguf((m) => m.set("tokenizer.ggml.pre", pre)));
    assert.equal(tokenizer.decode(tokenizer.encode(text)), text, pre);
  }
  // llama3 splits numbers in runs of up to three; qwen2 one by one.
  const spec = preTokenizerFor("llama3");
  assert.equal(spec.ignoreMerges, true);
  assert.equal(spec.addBosByDefault, true);
  const llama3 = load(tinyGguf((m) => m.set("tokenizer.ggml.pre", "llama3")));
  assert.deepEqual(llama3.encode("12345"), [270, ch("4"), ch("5")]);
  const qwen2 = load(tinyGguf((m) => m.set("tokenizer.ggml.pre", "qwen2")));
  assert.deepEqual(qwen2.encode("123"), [ch("1"), ch("2"), ch("3")]);
});

Deno.test("shortestFloat32 writes float32 metadata the way a person would", () => {
  assert.equal(shortestFloat32(Math.fround(1e-5)), 1e-5);
  assert.equal(shortestFloat32(Math.fround(1e-6)), 1e-6);
  assert.equal(shortestFloat32(Math.fround(0.1)), 0.1);
  assert.equal(shortestFloat32(500000), 500000);
  assert.equal(shortestFloat32(0.1), 0.1); // not a float32: unchanged
});
