/**
 * llama.cpp's answers for tests/gguf_tokenizer_test.ts, from node-llama-cpp's prebuilt CPU binary. Run as a
 * child process (see {@linkcode LLAMA_CPP_ORACLE_ARGS}): reads an {@linkcode OracleRequest} as JSON on stdin,
 * writes an {@linkcode OracleReply} as JSON on stdout. A separate process with its own lock file
 * (tests/node_llama_cpp.lock) keeps node-llama-cpp and its ~700 MB of optional binary packages out of the
 * project's deno.lock, which `deno test` would otherwise install on every run, GGUF or not. It never builds
 * or downloads llama.cpp (`build: "never"`; the binary comes in the npm package).
 *
 * @module
 */

/** The pinned package (a variable, so that no type check or lint of the repository resolves it). */
export const NODE_LLAMA_CPP = "npm:node-llama-cpp@3.21.1";

/** The line after which the reply starts on stdout. */
export const ORACLE_MARKER = "@@llama.cpp oracle reply@@";

/** `deno` arguments that run this oracle (then append nothing: the request comes on stdin). */
export const LLAMA_CPP_ORACLE_ARGS: readonly string[] = [
  "run",
  "--no-config",
  `--lock=${new URL("./node_llama_cpp.lock", import.meta.url).pathname}`,
  "--allow-read",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
  "--allow-write=/tmp",
  "--deny-net", // proof that nothing is downloaded at run time (Deno fetches npm packages regardless)
  new URL(import.meta.url).pathname,
];

/** What the test asks. */
export interface OracleRequest {
  /** Path of the GGUF. */
  gguf: string;
  /** Texts tokenized with special tokens as plain text. */
  plain: string[];
  /** Texts tokenized with special tokens parsed. */
  special: string[];
  /** Number of ids whose text, end-of-generation flag, ... are reported. */
  vocabSize: number;
  /** The user message of a one-message chat, rendered by the chat wrappers. */
  chatUserText: string;
}

/** A rendered chat prompt and its ids. */
export interface OracleChat {
  /** The wrapper's name. */
  wrapper: string;
  /** The prompt text (node-llama-cpp writes a BOS special token as "BOS"). */
  text: string;
  /** Its token ids. */
  ids: number[];
}

/** llama.cpp's answers. */
export interface OracleReply {
  /** Milliseconds: importing node-llama-cpp, `getLlama`, `loadModel` (vocabulary only). */
  timings: { import: number; getLlama: number; loadModel: number };
  /** `tokenize(text, false)` of each plain text. */
  plain: number[][];
  /** `tokenize(text, true)` of each special text. */
  special: number[][];
  /** `detokenize(ids, true)` of each plain tokenization. */
  plainDecoded: string[];
  /** `detokenize(ids, true)` of each special tokenization. */
  specialDecoded: string[];
  /** `detokenize([id], true)` of every id below `vocabSize`. */
  tokenTexts: string[];
  /** Ids below `vocabSize` that end generation (`isEogToken`). */
  eog: number[];
  /** BOS / EOS ids and whether llama.cpp adds them to a prompt. */
  bos: number | null;
  eos: number | null;
  shouldPrependBosToken: boolean;
  shouldAppendEosToken: boolean;
  /** `tokenizer.chat_template` as node-llama-cpp reads it. */
  chatTemplate: string | null;
  /** The chat through `JinjaTemplateChatWrapper` with the GGUF's template. */
  jinja: OracleChat;
  /** The chat through the wrapper node-llama-cpp picks for the model (`resolveChatWrapper`). */
  resolved: OracleChat;
}

async function answer(request: OracleRequest): Promise<OracleReply> {
  let at = performance.now();
  const lib = await import(NODE_LLAMA_CPP);
  const imported = performance.now() - at;
  at = performance.now();
  const llama = await lib.getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false });
  const gotLlama = performance.now() - at;
  at = performance.now();
  const model = await llama.loadModel({ modelPath: request.gguf, vocabOnly: true });
  const loaded = performance.now() - at;
  try {
    const plain = request.plain.map((text) => [...model.tokenize(text, false)] as number[]);
    const special = request.special.map((text) => [...model.tokenize(text, true)] as number[]);
    const tokenTexts: string[] = [];
    const eog: number[] = [];
    for (let id = 0; id < request.vocabSize; id++) {
      tokenTexts.push(model.detokenize([id], true));
      if (model.isEogToken(id)) eog.push(id);
    }
    const template: string | null = model.fileInfo.metadata.tokenizer?.chat_template ?? null;
    const history = [{ type: "user", text: request.chatUserText }, { type: "model", response: [] }];
    const chat = (wrapper: any): OracleChat => {
      const { contextText } = wrapper.generateContextState({ chatHistory: history });
      return {
        wrapper: wrapper.wrapperName ?? wrapper.constructor.name,
        text: contextText.toString(),
        ids: [...contextText.tokenize(model.tokenizer)],
      };
    };
    return {
      timings: { import: imported, getLlama: gotLlama, loadModel: loaded },
      plain,
      special,
      plainDecoded: plain.map((ids) => model.detokenize(ids, true)),
      specialDecoded: special.map((ids) => model.detokenize(ids, true)),
      tokenTexts,
      eog,
      bos: model.tokens.bos,
      eos: model.tokens.eos,
      shouldPrependBosToken: model.tokens.shouldPrependBosToken,
      shouldAppendEosToken: model.tokens.shouldAppendEosToken,
      chatTemplate: template,
      jinja: chat(new lib.JinjaTemplateChatWrapper({ template: template ?? "" })),
      resolved: chat(lib.resolveChatWrapper(model)),
    };
  } finally {
    await model.dispose();
    await llama.dispose();
  }
}

if (import.meta.main) {
  const request = JSON.parse(await new Response(Deno.stdin.readable).text()) as OracleRequest;
  const reply = await answer(request);
  // After a marker line, in case the library prints to stdout.
  const bytes = new TextEncoder().encode(`\n${ORACLE_MARKER}\n${JSON.stringify(reply)}`);
  for (let at = 0; at < bytes.length;) at += await Deno.stdout.write(bytes.subarray(at));
  // node-llama-cpp leaves native handles open; do not wait for them.
  Deno.exit(0);
}
