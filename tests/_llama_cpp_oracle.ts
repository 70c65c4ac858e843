/**
 * llama.cpp's answers for tests/gguf_tokenizer_test.ts and tests/llama_cpp_parity_test.ts, from node-llama-cpp's
 * prebuilt CPU binary. Run as a child process (see {@linkcode LLAMA_CPP_ORACLE_ARGS}): reads a request as JSON
 * on stdin and writes its reply as JSON on stdout. Three commands: the tokenizer's answers (an
 * {@linkcode OracleRequest}, answered by an {@linkcode OracleReply}) and llama.cpp's teacher-forced next-token
 * distributions (a {@linkcode DistributionsRequest}, answered by a {@linkcode DistributionsReply}, the
 * probabilities themselves in a binary file); and for bench/micro/real_model_bench.ts timed sampled generations (a
 * {@linkcode GenerateRequest}, answered by a {@linkcode GenerateReply}). A separate process with its own lock file
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

/**
 * Runs the oracle in a child process (see {@linkcode LLAMA_CPP_ORACLE_ARGS}) with one request and
 * returns its reply; a failed child is an Error carrying its stderr and stdout.
 */
export async function askLlamaCppOracle<Reply>(request: unknown): Promise<Reply> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...LLAMA_CPP_ORACLE_ARGS],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(request)));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const out = new TextDecoder().decode(stdout);
  const at = out.indexOf(ORACLE_MARKER);
  if (code !== 0 || at < 0) {
    throw new Error(`llama.cpp oracle failed (exit ${code}):\n${new TextDecoder().decode(stderr)}\n${out}`);
  }
  return JSON.parse(out.slice(at + ORACLE_MARKER.length)) as Reply;
}

/** What tests/gguf_tokenizer_test.ts asks (the tokenizer command). */
export interface OracleRequest {
  /** The command (the default). */
  command?: "tokenizer";
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

/**
 * What tests/llama_cpp_parity_test.ts asks: llama.cpp's next-token distribution at every position of each
 * passage, teacher-forced (each passage from an empty context: the ids go in as given, no BOS added).
 */
export interface DistributionsRequest {
  command: "distributions";
  /** Path of the GGUF. */
  gguf: string;
  /** Token ids of each passage. */
  passages: number[][];
  /** Entries per row of the file (the model's vocabulary size). */
  vocabSize: number;
  /**
   * File the probabilities are written to: float32 little-endian, `[positions, vocab]` rows in token-id order,
   * passage after passage; row t of a passage is P(next token | ids[0..t]).
   */
  out: string;
  /** Threads of the llama.cpp context. @default {the machine's math cores (`llama.cpuMathCores`)} */
  threads?: number;
  /** Also generate greedily (temperature 0, up to `maxTokens`, stopping at end of generation) after `ids`. */
  greedy?: { ids: number[]; maxTokens: number };
}

/** llama.cpp's distributions (in the request's file) and how they were computed. */
export interface DistributionsReply {
  /** Milliseconds. */
  timings: {
    import: number;
    getLlama: number;
    loadModel: number;
    createContext: number;
    evaluate: number;
    greedy: number;
  };
  /** Rows written (the passages' lengths summed). */
  positions: number;
  /** Entries per row. */
  vocabSize: number;
  /** The llama.cpp build node-llama-cpp ships, and its context settings. */
  llamaCpp: {
    release: string;
    buildType: string;
    contextSize: number;
    batchSize: number;
    threads: number;
    flashAttention: "auto" | boolean;
    kvCacheKeyType: string;
    kvCacheValueType: string;
  };
  /** Entries of each row's probability map (the whole vocabulary when node-llama-cpp returns it all). */
  rowSizes: { min: number; max: number };
  /**
   * The greedy continuation's ids and text (`detokenize`), when asked, and the five most probable first
   * tokens `[id, probability]`.
   */
  greedy?: { ids: number[]; text: string; firstTop: [number, number][] };
}

/** Positions evaluated per `controlledEvaluate` call: bounds the probability maps held at once. */
const CHUNK = 64;

async function distributions(request: DistributionsRequest): Promise<DistributionsReply> {
  let at = performance.now();
  const lib = await import(NODE_LLAMA_CPP);
  const imported = performance.now() - at;
  at = performance.now();
  const llama = await lib.getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false });
  const gotLlama = performance.now() - at;
  at = performance.now();
  const model = await llama.loadModel({ modelPath: request.gguf, gpuLayers: 0 });
  const loaded = performance.now() - at;
  const longest = Math.max(
    1,
    ...request.passages.map((p) => p.length),
    (request.greedy?.ids.length ?? 0) +
      (request.greedy?.maxTokens ?? 0),
  );
  const size = Math.ceil(longest / 256) * 256;
  at = performance.now();
  const context = await model.createContext({
    contextSize: size,
    batchSize: size,
    sequences: 1,
    // node-llama-cpp's default is `maxThreads` (4 on a 2-core machine here: oversubscribed, 2-8x slower).
    threads: request.threads ?? llama.cpuMathCores,
  });
  const created = performance.now() - at;
  try {
    const vocab = request.vocabSize;
    const sequence = context.getSequence();
    const file = await Deno.open(request.out, { write: true, create: true, truncate: true });
    let positions = 0, min = Infinity, max = 0;
    at = performance.now();
    try {
      for (const ids of request.passages) {
        await sequence.clearHistory();
        for (let from = 0; from < ids.length; from += CHUNK) {
          const chunk = ids.slice(from, from + CHUNK);
          const results = await sequence.controlledEvaluate(
            chunk.map((id) => [id, { generateNext: { probabilities: true } }]),
          );
          const rows = new Float32Array(chunk.length * vocab);
          chunk.forEach((_, i) => {
            const probabilities: Map<number, number> | undefined = results[i]?.next?.probabilities;
            if (!probabilities) throw new Error(`no probabilities at position ${from + i}`);
            min = Math.min(min, probabilities.size);
            max = Math.max(max, probabilities.size);
            const row = rows.subarray(i * vocab, (i + 1) * vocab);
            for (const [token, p] of probabilities) {
              if (!(token >= 0 && token < vocab)) throw new Error(`token ${token} outside [0, ${vocab})`);
              row[token] = p;
            }
          });
          const bytes = new Uint8Array(rows.buffer);
          for (let w = 0; w < bytes.length;) w += await file.write(bytes.subarray(w));
          positions += chunk.length;
        }
      }
    } finally {
      file.close();
    }
    const evaluated = performance.now() - at;
    let greedy: DistributionsReply["greedy"];
    at = performance.now();
    if (request.greedy) {
      await sequence.clearHistory();
      const ids: number[] = [];
      for await (const token of sequence.evaluate(request.greedy.ids, { temperature: 0 })) {
        ids.push(token);
        if (ids.length >= request.greedy.maxTokens) break;
      }
      await sequence.clearHistory();
      const prompt = request.greedy.ids;
      const last = await sequence.controlledEvaluate(
        prompt.map((id, i) => i === prompt.length - 1 ? [id, { generateNext: { probabilities: true } }] : id),
      );
      const top = [...(last[prompt.length - 1]?.next?.probabilities ?? new Map()).entries()].slice(0, 5);
      greedy = { ids, text: model.detokenize(ids, false), firstTop: top };
    }
    const { release, repo } = llama.llamaCppRelease;
    return {
      timings: {
        import: imported,
        getLlama: gotLlama,
        loadModel: loaded,
        createContext: created,
        evaluate: evaluated,
        greedy: performance.now() - at,
      },
      positions,
      vocabSize: vocab,
      llamaCpp: {
        release: `${repo} ${release}`,
        buildType: llama.buildType,
        contextSize: context.contextSize,
        batchSize: context.batchSize,
        threads: context.currentThreads,
        flashAttention: context.flashAttention,
        kvCacheKeyType: lib.GgmlType?.[context.kvCacheKeyType] ?? String(context.kvCacheKeyType),
        kvCacheValueType: lib.GgmlType?.[context.kvCacheValueType] ?? String(context.kvCacheValueType),
      },
      rowSizes: { min, max },
      greedy,
    };
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
}

/**
 * What bench/micro/real_model_bench.ts asks (the generate command): `runs` sampled generations of exactly
 * `maxTokens` tokens after `ids` (end-of-generation tokens are fed back, not stopped at), each timed
 * from the prompt's evaluation to the last token, after one untimed warm-up generation.
 */
export interface GenerateRequest {
  command: "generate";
  /** Path of the GGUF. */
  gguf: string;
  /** The prompt's token ids (as given: no BOS added). */
  ids: number[];
  /** Tokens per generation. */
  maxTokens: number;
  /** Timed generations; run i uses seed `seed + i`. */
  runs: number;
  seed: number;
  /** Sampling temperature (top-k, top-p and min-p are off). */
  temperature: number;
  /** Threads of the llama.cpp context. */
  threads: number;
}

/** llama.cpp's generations: per run the wall milliseconds and the ids. */
export interface GenerateReply {
  /** Milliseconds: importing node-llama-cpp, `getLlama`, `loadModel`, `createContext`. */
  timings: { import: number; getLlama: number; loadModel: number; createContext: number };
  runs: { ms: number; ids: number[] }[];
  llamaCpp: { release: string; buildType: string; threads: number; contextSize: number; batchSize: number };
}

async function generate(request: GenerateRequest): Promise<GenerateReply> {
  let at = performance.now();
  const lib = await import(NODE_LLAMA_CPP);
  const imported = performance.now() - at;
  at = performance.now();
  const llama = await lib.getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false });
  const gotLlama = performance.now() - at;
  at = performance.now();
  const model = await llama.loadModel({ modelPath: request.gguf, gpuLayers: 0 });
  const loaded = performance.now() - at;
  at = performance.now();
  const size = Math.ceil((request.ids.length + request.maxTokens + 1) / 256) * 256;
  const context = await model.createContext({ contextSize: size, sequences: 1, threads: request.threads });
  const created = performance.now() - at;
  try {
    const sequence = context.getSequence();
    const once = async (seed: number, maxTokens: number) => {
      await sequence.clearHistory();
      const ids: number[] = [];
      const t0 = performance.now();
      const options = {
        temperature: request.temperature,
        topK: 0,
        topP: 1,
        minP: 0,
        seed,
        yieldEogToken: true,
      };
      for await (const token of sequence.evaluate(request.ids, options)) {
        ids.push(token);
        if (ids.length >= maxTokens) break;
      }
      return { ms: performance.now() - t0, ids };
    };
    await once(request.seed + 1000, Math.min(16, request.maxTokens)); // warm-up
    const runs: GenerateReply["runs"] = [];
    for (let i = 0; i < request.runs; i++) runs.push(await once(request.seed + i, request.maxTokens));
    const { release, repo } = llama.llamaCppRelease;
    return {
      timings: { import: imported, getLlama: gotLlama, loadModel: loaded, createContext: created },
      runs,
      llamaCpp: {
        release: `${repo} ${release}`,
        buildType: llama.buildType,
        threads: context.currentThreads,
        contextSize: context.contextSize,
        batchSize: context.batchSize,
      },
    };
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
}

if (import.meta.main) {
  const request = JSON.parse(await new Response(Deno.stdin.readable).text()) as
    | OracleRequest
    | DistributionsRequest
    | GenerateRequest;
  const reply = request.command === "distributions"
    ? await distributions(request)
    : request.command === "generate"
    ? await generate(request)
    : await answer(request);
  // After a marker line, in case the library prints to stdout.
  const bytes = new TextEncoder().encode(`\n${ORACLE_MARKER}\n${JSON.stringify(reply)}`);
  for (let at = 0; at < bytes.length;) at += await Deno.stdout.write(bytes.subarray(at));
  // node-llama-cpp leaves native handles open; do not wait for them.
  Deno.exit(0);
}
