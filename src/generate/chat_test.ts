import assert from "node:assert/strict";
import { type ChatMessage, type ChatTokenizer, compileChatTemplate, renderChat } from "./chat.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";

const TEMPLATE = "{{ bos_token }}{% for m in messages %}[{{ m.role }}|{{ m.content }}|{{ m.extra }}]" +
  "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant|{% endif %}";

function tokenizer(chatTemplate?: string): Tokenizer {
  return Tokenizer.fromJSON(
    {
      model: { type: "BPE", vocab: { a: 0, "<s>": 1, "</s>": 2 }, merges: [] },
      added_tokens: [{ id: 1, content: "<s>", special: true }, { id: 2, content: "</s>", special: true }],
      decoder: { type: "ByteLevel" },
    },
    chatTemplate === undefined ? {} : { chat_template: chatTemplate },
  );
}

Deno.test("renderChat renders the template with the messages, the generation prompt and BOS/EOS", () => {
  const messages = [
    { role: "system", content: "be brief" },
    { role: "user", content: "hi", extra: "not passed on" },
  ] as ChatMessage[];
  assert.equal(
    renderChat(tokenizer(TEMPLATE), messages),
    "<s>[system|be brief|]</s>[user|hi|]</s>[assistant|",
  );
  // A tokenizer without BOS/EOS tokens renders them as empty strings.
  const bare: ChatTokenizer = {
    chatTemplate: TEMPLATE,
    bosTokenId: undefined,
    eosTokenId: undefined,
    idToToken: () => undefined,
  };
  assert.equal(renderChat(bare, [{ role: "assistant", content: "x" }]), "[assistant|x|][assistant|");
});

Deno.test("renderChat rejects a tokenizer without a chat template and bad messages with typed errors", () => {
  assert.throws(
    () => renderChat(tokenizer(), [{ role: "user", content: "a" }]),
    { name: "TypeError", message: "Cannot render the chat: the tokenizer has no chat template" },
  );
  const t = tokenizer(TEMPLATE);
  assert.throws(() => renderChat(t, []), { name: "RangeError", message: /at least 1 message, got 0/ });
  assert.throws(() => renderChat(t, "hi" as never), { name: "TypeError", message: /must be an array/ });
  assert.throws(
    () => renderChat(t, [{ role: "developer", content: "a" }] as never),
    { name: "TypeError", message: /messages\[0\]\.role must be system, user or assistant, got "developer"/ },
  );
  assert.throws(
    () => renderChat(t, [{ role: "user", content: "a" }, { role: "user", content: 3 }] as never),
    { name: "TypeError", message: /messages\[1\]\.content must be a string/ },
  );
  assert.throws(
    () => renderChat(t, [null] as never),
    { name: "TypeError", message: /messages\[0\] must be an object/ },
  );
});

Deno.test("a template that fails to compile or to render is a TypeError with the cause", () => {
  const broken = tokenizer("{% for m in messages %}{{ m.content }}");
  assert.throws(
    () => renderChat(broken, [{ role: "user", content: "a" }]),
    (error: unknown) =>
      error instanceof TypeError && /^Cannot render the chat template: /.test(error.message) &&
      error.cause !== undefined,
  );
  // A failed compilation is not cached: it fails again, the same way.
  assert.throws(() => renderChat(broken, [{ role: "user", content: "a" }]), TypeError);
  const raising = tokenizer("{{ raise_exception('roles must alternate') }}");
  assert.throws(
    () => renderChat(raising, [{ role: "user", content: "a" }]),
    { name: "TypeError", message: /^Cannot render the chat template: .*roles must alternate/ },
  );
});

Deno.test("compiled templates are cached per template string and reused across tokenizers", () => {
  const source = "{% for m in messages %}<{{ m.content }}>{% endfor %}";
  const compiled = compileChatTemplate(source);
  assert.equal(compileChatTemplate(source), compiled, "the same string gives the same compiled template");
  assert.notEqual(compileChatTemplate(source + " "), compiled, "another string gets its own");
  // Rendering through two tokenizers with that template goes through the cached instance.
  const render = compiled.render;
  let calls = 0;
  compiled.render = function (this: typeof compiled, ...args: Parameters<typeof render>) {
    calls++;
    return render.apply(this, args);
  };
  try {
    assert.equal(renderChat(tokenizer(source), [{ role: "user", content: "a" }]), "<a>");
    assert.equal(renderChat(tokenizer(source), [{ role: "user", content: "b" }]), "<b>");
  } finally {
    compiled.render = render;
  }
  assert.equal(calls, 2, "both renders used the cached template");
  assert.equal(compileChatTemplate(source), compiled);
  assert.throws(() => compileChatTemplate(3 as never), TypeError);
});
