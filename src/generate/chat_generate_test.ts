import assert from "node:assert/strict";
import { SpeculativeGenerator } from "./generator.ts";
import { renderChat } from "./chat.ts";
import { MarkovModel, nearMarkovTable, randomMarkovTable } from "../decode/markov.ts";
import { referenceKernel } from "../kernel/reference.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";

// A ChatML-style toy: letters, the end-of-turn token <|im_end|> (id 3) and EOS <|endoftext|> (id 13).
const CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
const special = (id: number, content: string) => ({
  id,
  content,
  special: true,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
});
const tokenizer = Tokenizer.fromJSON(
  {
    model: {
      type: "BPE",
      vocab: {
        a: 0,
        b: 1,
        c: 2,
        "<|im_end|>": 3,
        "<|im_start|>": 4,
        "Ċ": 5,
        s: 6,
        e: 7,
        r: 8,
        u: 9,
        t: 10,
        n: 11,
        i: 12,
      },
      merges: [],
    },
    added_tokens: [special(3, "<|im_end|>"), special(4, "<|im_start|>"), special(13, "<|endoftext|>")],
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: "ByteLevel" },
  },
  { chat_template: CHATML, eos_token: "<|endoftext|>" },
);
const V = 14;
const table = randomMarkovTable(V, 1, 17, { scale: 1 });

function generator(): SpeculativeGenerator {
  return new SpeculativeGenerator({
    target: new MarkovModel({ table, vocabSize: V }),
    draft: new MarkovModel({ table: nearMarkovTable(table, V, 18), vocabSize: V }),
    tokenizer,
    kernel: referenceKernel,
  });
}

Deno.test("a chat prompt renders the template, encodes its markup to the special ids and stops at <|im_end|>", async () => {
  const gen = generator();
  assert.deepEqual(gen.eosTokenIds, [13]);
  assert.deepEqual(gen.chatStopTokenIds, [13, 3], "the template's end-of-turn token is a chat stop too");
  const messages = [{ role: "user" as const, content: "ab" }];
  const rendered = renderChat(tokenizer, messages);
  const ids = tokenizer.encode(rendered);
  assert.equal(ids[0], 4, "<|im_start|> is one special token");
  assert.ok(ids.includes(3), "<|im_end|> is one special token");
  let stopped = 0;
  for (let seed = 1; seed <= 20; seed++) {
    for (const method of ["autoregressive", "sd", "spectr"] as const) {
      const chat = await gen.generate({ messages }, { maxNewTokens: 40, seed, method, k: 2, draftLength: 3 });
      const plain = await gen.generate(ids, { maxNewTokens: 40, seed, method, k: 2, draftLength: 3 });
      assert.equal(chat.stats.promptTokens, ids.length);
      // Same ids and seed: the chat run is the plain run cut after its first <|im_end|>.
      const end = plain.tokens.indexOf(3);
      if (end < 0) {
        assert.deepEqual(chat.tokens, plain.tokens);
        continue;
      }
      assert.deepEqual(chat.tokens, plain.tokens.slice(0, end + 1), `${method} seed ${seed}`);
      assert.equal(chat.finishReason, "eos");
      if (end + 1 < plain.tokens.length) stopped++;
    }
  }
  assert.ok(stopped >= 10, `the end-of-turn token cut ${stopped} runs short`);
});

Deno.test("a chat prompt without a template, or with bad messages, is a typed error", async () => {
  const plain = new SpeculativeGenerator({
    target: new MarkovModel({ table, vocabSize: V }),
    tokenizer: Tokenizer.fromJSON({ model: { type: "BPE", vocab: { a: 0 }, merges: [] } }),
    kernel: referenceKernel,
  });
  await assert.rejects(
    () => plain.generate({ messages: [{ role: "user", content: "a" }] }, { method: "autoregressive" }),
    { name: "TypeError", message: /no chat template/ },
  );
  const gen = generator();
  await assert.rejects(() => gen.generate({ messages: [] }), {
    name: "RangeError",
    message: /at least 1 message/,
  });
  await assert.rejects(
    () => gen.generate({ messages: [{ role: "robot" as never, content: "a" }] }),
    { name: "TypeError", message: /role must be/ },
  );
});
