import assert from "node:assert/strict";
import { checkSameVocabulary } from "./compat.ts";
import { Tokenizer } from "./tokenizer.ts";
import { dataText, gpt2Tokenizer, tinyStoriesTokenizer } from "./_test_data.ts";

Deno.test("the 8k tokenizer is compatible with a second copy of itself", async () => {
  const target = await tinyStoriesTokenizer();
  const draft = await tinyStoriesTokenizer();
  checkSameVocabulary(target, draft);
  checkSameVocabulary(target, draft, { stride: 1 });
});

Deno.test("the 8k tokenizer against GPT-2's fails with a RangeError naming both sizes", async () => {
  const tiny = await tinyStoriesTokenizer();
  const gpt2 = await gpt2Tokenizer();
  assert.throws(() => checkSameVocabulary(tiny, gpt2), {
    name: "RangeError",
    message: "Cannot pair draft with target: vocabulary sizes differ, got target 8192 and draft 50257",
  });
});

Deno.test("a copy of the 8k vocabulary with one sampled token string changed fails naming that id", async () => {
  const json = JSON.parse(await dataText("tinystories-bpe-8k.tokenizer.json"));
  const target = Tokenizer.fromJSON(json);
  const id = 97 * 5;
  const token = target.idToToken(id)!;
  const vocab: Record<string, number> = {};
  for (const [t, i] of Object.entries(json.model.vocab as Record<string, number>)) {
    vocab[t === token ? "⟨changed⟩" : t] = i;
  }
  const draft = Tokenizer.fromJSON({ ...json, model: { ...json.model, vocab } });
  assert.equal(draft.vocabSize, 8192);
  assert.throws(() => checkSameVocabulary(target, draft), {
    name: "RangeError",
    message: `Cannot pair draft with target: token strings differ at id ${id}, got target ${
      JSON.stringify(token)
    } and draft "⟨changed⟩"`,
  });
});

Deno.test("a changed special token is caught even off the sampling stride", async () => {
  const json = JSON.parse(await dataText("tinystories-bpe-8k.tokenizer.json"));
  const target = Tokenizer.fromJSON(json);
  const added = json.added_tokens.map((t: any) => t.id === 2 ? { ...t, content: "<padding>" } : t);
  const vocab = { ...json.model.vocab };
  delete vocab["<pad>"];
  vocab["<padding>"] = 2;
  const draft = Tokenizer.fromJSON({ ...json, added_tokens: added, model: { ...json.model, vocab } });
  assert.throws(
    () => checkSameVocabulary(target, draft),
    /differ at id 2, got target "<pad>" and draft "<padding>"/,
  );
});

Deno.test("a non-positive stride is a RangeError", async () => {
  const tiny = await tinyStoriesTokenizer();
  assert.throws(() => checkSameVocabulary(tiny, tiny, { stride: 0 }), {
    name: "RangeError",
    message: "Cannot compare vocabularies: stride must be a positive integer, got 0",
  });
});
