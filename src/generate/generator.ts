/**
 * The generation API: text in, text out, with speculative decoding underneath. Loads a target and a
 * draft model folder (Hugging Face / Optimum layout), checks that they share a vocabulary, and runs
 * the block decoder that the tests prove exact, so the output is an exact sample of the target's
 * (warped) distribution whatever the method.
 *
 * @module
 */

import type { Kernel, WarpOptions } from "../kernel/types.ts";
import { loadKernel } from "../kernel/wasm.ts";
import type { BlockPlanner } from "../decode/plan.ts";
import { isPlannerName, type PlannerName, plannerNames, planners } from "../decode/planners.ts";
import { type BlockCostModel, calibrateBlockCost, ForwardCost } from "../decode/cost.ts";
import { createDecoder } from "../decode/create.ts";
import type { EagleDrafterModel } from "../decode/eagle_proposer.ts";
import type { ProposerKind, ProposerParts } from "../decode/proposer.ts";
import { getProposerKind, type ProposerName, proposerNames } from "../decode/proposers.ts";
import type { CausalModel } from "../decode/model.ts";
import type { DecodeStats, StopReason } from "../decode/stats.ts";
import type { DecodeMethod, GenerateResult } from "../decode/types.ts";
import {
  getVerifier,
  type VerifierAlias,
  verifierAliases,
  type VerifierName,
  verifierNames,
} from "../verify/mod.ts";
import { getBackend, requireOnnxruntime } from "../backend/mod.ts";
import { type BackendOptions, type ModelDtype, modelFileName } from "../model/session.ts";
import { OnnxCausalLM, type OnnxCausalLMOptions } from "../model/causal_lm.ts";
import { OnnxEagleDrafter, parseEagleDrafterConfig } from "../model/eagle_drafter.ts";
import { InvalidModelError } from "../model/errors.ts";
import { type ModelLoader, type ModelSource, openModelFolder } from "../model/loader.ts";
import { checkSameVocabulary } from "../tokenizer/compat.ts";
import { StreamingDetokenizer } from "../tokenizer/stream.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { type ChatMessage, renderChat } from "./chat.ts";
import { StopMatcher } from "./stop.ts";

/**
 * Methods of the generation API: `autoregressive`, `auto` (method, k and L chosen per block from a
 * measured cost model and the acceptance seen so far; the default), every verifier in the registry
 * (src/verify/mod.ts) and its aliases; `spectr` is SpecTr's K-SEQ (`kseq`).
 */
export type GenerationMethod = "autoregressive" | PlannerName | VerifierName | VerifierAlias;

/** Every method name {@linkcode SpeculativeGenerator.generate} accepts, derived from the planner and verifier registries. */
export const generationMethods: readonly GenerationMethod[] = Object.freeze([
  "autoregressive",
  ...plannerNames,
  ...verifierNames,
  ...(Object.keys(verifierAliases) as VerifierAlias[]),
]);

/**
 * Most drafts per block a generation takes: each draft is one more row of the target's scoring
 * forward and one more copy of its KV cache, so beyond a few dozen rows a block only gets slower.
 */
export const MAX_DRAFTS = 64;
/** Longest draft a generation takes: acceptance decays with depth, so later tokens rarely count. */
export const MAX_DRAFT_LENGTH = 64;

/** Options of one generation. */
export interface GenerationOptions {
  /**
   * Most tokens to generate.
   * @default {128}
   */
  maxNewTokens?: number;
  /**
   * Softmax temperature for target and draft alike; 0 is greedy.
   * @default {1}
   */
  temperature?: number;
  /**
   * Top-k filter (0 disables).
   * @default {0}
   */
  topK?: number;
  /**
   * Nucleus filter (1 disables).
   * @default {1}
   */
  topP?: number;
  /**
   * Seed of the uniforms, an integer in [0, 2^32 − 1]: the same seed, prompt and options
   * reproduce the output.
   * @default {a random seed}
   */
  seed?: number;
  /**
   * Decoding method. `auto` picks autoregressive, block verification (k = 1) or SpecTr's K-SEQ
   * (k ∈ {2, 4}) and L per block, from the models' measured forward times (a ≤ 2 s calibration at
   * the first `auto` generation, cached for the process, refined from every block) and the
   * acceptance measured so far; `k` and `draftLength` bound its choices. Exact like every method;
   * as timings enter the choice, a seed reproduces a fixed method's run, not always an `auto` run.
   * @default {"auto"}
   */
  method?: GenerationMethod;
  /**
   * Drafts per block, an integer in [1, {@linkcode MAX_DRAFTS}] (a verifier that takes fewer, such as `sd` or `block`, uses its maximum, 1; ignored by
   * `autoregressive`, but checked).
   * @default {4}
   */
  k?: number;
  /**
   * Draft length L: tokens per draft, an integer in [1, {@linkcode MAX_DRAFT_LENGTH}] (ignored by
   * `autoregressive`, but checked).
   * @default {4}
   */
  draftLength?: number;
  /**
   * Stop before the first occurrence of any of these strings (not included in the text).
   * @default {[]}
   */
  stop?: string | readonly string[];
  /** Aborts the generation (the call rejects with the signal's reason). */
  signal?: AbortSignal;
  /**
   * Who drafts, a name of the proposer registry (src/decode/proposers.ts): `"draft"` (the draft
   * model), `"lookup"` (prompt lookup: n-grams of the prompt and the text so far, no model; one
   * draft per block, so `k` is 1 and `auto` chooses only L and whether to draft; works on a
   * generator without a draft model) or `"eagle"` (a feature drafter reading the target's hidden
   * states: a draft folder with `model_type: "spectr_eagle"`).
   * @default {"eagle" with a feature drafter, else "draft"}
   */
  proposer?: ProposerName;
}

/** A chat to continue: its messages, rendered with the folder's chat template. */
export interface ChatPrompt {
  /** The conversation so far; the template's generation prompt is appended. */
  messages: readonly ChatMessage[];
}

/** What a generation continues: text (no special tokens added), token ids, or a chat. */
export type GenerationPrompt = string | readonly number[] | ChatPrompt;

/**
 * End-of-turn markers of common chat templates (ChatML, Llama 3, Gemma, Phi-3, Mistral); a chat
 * generation stops at those that occur in the tokenizer's template and are tokens of its vocabulary.
 */
const END_OF_TURN_MARKERS = ["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>"];

/** Why a generation ended. */
export type FinishReason = "length" | "eos" | "stop" | "context";

/** Counters and timings of one generation: the decoder's, plus the tokenizer's and throughput. */
export interface GenerationStats extends DecodeStats {
  /** Method used. */
  method: GenerationMethod;
  /** Prompt length in tokens. */
  promptTokens: number;
  /** Time encoding the prompt and detokenizing the output, ms. */
  tokenizerMs: number;
  /** Generated tokens per second of wall time (`tokens / totalMs`). */
  tokensPerSecond: number;
  /**
   * Drafts per block a fixed speculative method ran with: the asked k capped by the verifier's
   * `maxCandidates` and the proposer's `maxDrafts`; undefined for "autoregressive" and "auto"
   * (whose `plans` give each plan's k).
   */
  k?: number;
  /** Draft length a fixed speculative method ran with; undefined for "autoregressive" and "auto". */
  draftLength?: number;
  /**
   * The graph file of the draft model or feature drafter that drafted, when it says (e.g.
   * "onnx/model.onnx" for a q8 target whose draft folder has only fp32); undefined without one.
   */
  draftFile?: string;
}

/** The output of {@linkcode SpeculativeGenerator.generate}. */
export interface GenerationResult {
  /** Generated text (the prompt excluded; cut before a stop string). */
  text: string;
  /** Generated token ids (cut after the token that completed a stop string). */
  tokens: number[];
  /** Why it ended: maxNewTokens ("length"), EOS, a stop string, or the context limit ("context"). */
  finishReason: FinishReason;
  /** Counters and timings. */
  stats: GenerationStats;
}

/** What a generator is built from: models, tokenizer and kernel, already loaded. */
export interface SpeculativeGeneratorInit {
  /** The target model. */
  target: CausalModel;
  /** The draft model (required by every method but `autoregressive`, unless another proposer drafts). */
  draft?: CausalModel;
  /** A feature drafter (proposer `"eagle"`); the target must return its features. */
  drafter?: EagleDrafterModel;
  /** The tokenizer shared by both models. */
  tokenizer: Tokenizer;
  /** The kernel: {@linkcode loadKernel}'s by default in `fromPretrained`. */
  kernel: Kernel;
  /**
   * Token ids that end a generation.
   * @default {the tokenizer's EOS id, if any}
   */
  eosTokenIds?: readonly number[];
  /**
   * Prepend the tokenizer's BOS id to text prompts (Hugging Face's `add_bos_token`, read from
   * tokenizer_config.json by `fromPretrained`).
   * @default {false}
   */
  addBosToken?: boolean;
  /**
   * Key under which `auto`'s cost calibration is cached for the process (`fromPretrained` uses the
   * model sources, dtype, backend and threads); without it each generator calibrates once.
   * @default {undefined}
   */
  costKey?: string;
}

/** Options of {@linkcode SpeculativeGenerator.fromPretrained}. */
export interface FromPretrainedOptions extends OnnxCausalLMOptions {
  /** The target model folder: a path, a URL or an in-memory map of files. */
  target: ModelSource;
  /**
   * The draft model folder (same vocabulary as the target), or a feature drafter's folder (its
   * config.json has `model_type: "spectr_eagle"`: the target is then loaded with the features the
   * config names, `target_hidden_layers`, and proposer `"eagle"` drafts).
   */
  draft?: ModelSource;
  /**
   * Threads of the draft's session when the backend resolves to `cpu` (onnxruntime-node); the
   * other options (`numThreads` included) apply to the target. On `wasm` the thread count is one
   * setting for the whole process, so this is ignored there. A draft is small: splitting its
   * forward over threads costs more than it saves, and a second thread pool competes with the
   * target's for the same cores (measured on 2 cores: speculative sampling L = 4 went from 0.8× to
   * 1.26× autoregressive with a 1-thread draft).
   * @default {1}
   */
  draftNumThreads?: number;
  /**
   * The draft's own file choice, independent of the target's: `dtype`, `merged`, `file` (e.g. an
   * fp32 target with a q8 draft: `{ dtype: "fp32", draftOptions: { dtype: "q8" } }`). Each field
   * left out follows the target's option, except that a dtype taken from the target that the
   * draft folder lacks falls back to the graph it has: "q8" first for a quantized target dtype
   * (int8, uint8, q4, q4f16, bnb4), "fp32" first otherwise (`stats.draftFile` names the graph loaded). A feature drafter
   * (model_type "spectr_eagle") reads `dtype` ("fp32": onnx/model.onnx, "q8":
   * onnx/model_quantized.onnx, 8-bit MatMulNBits, the fast one on cpu) and `file` (never the
   * target's). The target's dtype defaults to "fp32", so wasm gets the fp32 drafter
   * (onnxruntime-web's MatMulNBits is slow) unless a q8 target pulls it along: then pass
   * `draftOptions: { dtype: "fp32" }`.
   * @default {the target's dtype, merged and file choice (file only if it is not set for the target)}
   */
  draftOptions?: Pick<BackendOptions, "dtype" | "merged" | "file">;
  /**
   * The kernel.
   * @default {await loadKernel()}
   */
  kernel?: Kernel;
}

/**
 * The dtype of a draft or feature-drafter folder: its own when given, else the target's when the
 * folder has that graph (plain or merged), else the one of "q8" and "fp32" the folder has ("q8"
 * first for a quantized target dtype: int8, uint8, q4, q4f16, bnb4); else the target's (whose
 * missing file the loader then names).
 */
async function draftDtype(
  folder: ModelLoader,
  own: ModelDtype | undefined,
  target: ModelDtype | undefined,
): Promise<{ dtype: ModelDtype }> {
  if (own !== undefined) return { dtype: own };
  const dtype = target ?? "fp32";
  const has = async (d: ModelDtype) =>
    await folder.has(modelFileName(d)) || await folder.has(modelFileName(d, true));
  if (await has(dtype)) return { dtype };
  const quantized = dtype !== "fp32" && dtype !== "fp16";
  for (const fallback of quantized ? ["q8", "fp32"] as const : ["fp32", "q8"] as const) {
    if (await has(fallback)) return { dtype: fallback };
  }
  return { dtype };
}

/** A model's graph file, when it names one (the onnxruntime models do). */
function fileOf(model: object | undefined): string | undefined {
  const file = model === undefined ? undefined : (model as { file?: unknown }).file;
  return typeof file === "string" ? file : undefined;
}

const FINISH: Record<StopReason, FinishReason> = {
  maxNewTokens: "length",
  eos: "eos",
  stop: "stop",
  length: "context",
};

/**
 * Text generation with exact speculative decoding: SpecTr's K-SEQ (`spectr`), speculative sampling
 * (`sd`), SpecInfer (`specinfer`, `specinfer-wor`) or plain `autoregressive` sampling from the
 * target. One generation runs at a time per generator (models hold a KV cache); concurrent calls
 * queue.
 *
 * @example Toy models and a toy tokenizer (real use: `SpeculativeGenerator.fromPretrained`)
 * ```ts
 * import { SpeculativeGenerator } from "./generator.ts";
 * import { MarkovModel, randomMarkovTable } from "../decode/markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import { Tokenizer } from "../tokenizer/tokenizer.ts";
 *
 * const tokenizer = Tokenizer.fromJSON({
 *   model: { type: "BPE", vocab: { a: 0, b: 1, c: 2 }, merges: [] },
 *   decoder: { type: "ByteLevel" },
 * });
 * const table = randomMarkovTable(3, 1, 1);
 * const generator = new SpeculativeGenerator({
 *   target: new MarkovModel({ table, vocabSize: 3 }),
 *   draft: new MarkovModel({ table, vocabSize: 3 }),
 *   tokenizer,
 *   kernel: referenceKernel,
 * });
 * const { text, stats } = await generator.generate("a", { maxNewTokens: 8, seed: 1, k: 2, draftLength: 3 });
 * console.assert(text.length === 8 && stats.blockEfficiency > 1);
 * ```
 */
export class SpeculativeGenerator {
  /** The target model. */
  readonly target: CausalModel;
  /** The draft model, if any. */
  readonly draft: CausalModel | undefined;
  /** The feature drafter, if any. */
  readonly drafter: EagleDrafterModel | undefined;
  /** The proposer a generation uses unless it names one: "eagle" with a feature drafter, else "draft". */
  readonly defaultProposer: ProposerName;
  /** The shared tokenizer. */
  readonly tokenizer: Tokenizer;
  /** The kernel used for warping, sampling and verification. */
  readonly kernel: Kernel;
  /** Token ids that end a generation. */
  readonly eosTokenIds: readonly number[];
  /** Whether text prompts start with the BOS id. */
  readonly addBosToken: boolean;
  /**
   * Token ids that end a chat generation: the EOS ids plus the chat template's end-of-turn token
   * (e.g. `<|im_end|>`) when the template uses one that is in the vocabulary.
   */
  readonly chatStopTokenIds: readonly number[];
  #queue: Promise<unknown> = Promise.resolve();
  readonly #costKey: string | undefined;
  readonly #cost = new Map<string, Promise<BlockCostModel>>();
  readonly #planners = new Map<string, Promise<BlockPlanner>>();

  /**
   * Builds a generator from loaded parts.
   *
   * @throws {RangeError} draft and target vocabularies of different sizes, or a tokenizer larger
   *   than the target's vocabulary.
   */
  constructor(init: SpeculativeGeneratorInit) {
    const { target, draft, tokenizer, kernel } = init;
    if (draft && draft.vocabSize !== target.vocabSize) {
      throw new RangeError(
        `Cannot build a generator: the draft's vocabulary has ${draft.vocabSize} tokens, the target's ${target.vocabSize}`,
      );
    }
    if (tokenizer.vocabSize > target.vocabSize) {
      throw new RangeError(
        `Cannot build a generator: the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's ${target.vocabSize}`,
      );
    }
    if (init.drafter && init.drafter.vocabSize !== target.vocabSize) {
      throw new RangeError(
        `Cannot build a generator: the feature drafter's vocabulary has ${init.drafter.vocabSize} tokens, the target's ${target.vocabSize}`,
      );
    }
    if (init.drafter && target.featureSize !== init.drafter.featureSize) {
      throw new RangeError(
        `Cannot build a generator: the feature drafter reads ${init.drafter.featureSize} floats per target position, the target returns ${
          target.featureSize ?? "no features"
        }`,
      );
    }
    this.target = target;
    this.draft = draft;
    this.drafter = init.drafter;
    this.defaultProposer = init.drafter ? "eagle" : "draft";
    this.tokenizer = tokenizer;
    this.kernel = kernel;
    const eos = init.eosTokenIds ?? (tokenizer.eosTokenId === undefined ? [] : [tokenizer.eosTokenId]);
    this.eosTokenIds = Object.freeze([...eos]);
    const template = tokenizer.chatTemplate ?? "";
    const turnEnds = END_OF_TURN_MARKERS.filter((m) => template.includes(m))
      .map((m) => tokenizer.tokenToId(m))
      .filter((id): id is number => id !== undefined && !eos.includes(id));
    this.chatStopTokenIds = Object.freeze([...eos, ...new Set(turnEnds)]);
    this.addBosToken = init.addBosToken ?? false;
    this.#costKey = init.costKey;
  }

  /**
   * The planner of a planning method (src/decode/planners.ts) for a warp and bounds: one per
   * generator, so it keeps the pair's estimates; the pair's block cost model is measured once per
   * proposer and shared by every planner.
   */
  #planner(
    name: PlannerName,
    warp: WarpOptions,
    k: number,
    draftLength: number,
    kind: ProposerKind,
    parts: ProposerParts,
  ): Promise<BlockPlanner> {
    const key = JSON.stringify([name, warp, k, draftLength, kind.name]);
    let planner = this.#planners.get(key);
    if (!planner) {
      const cost = async (): Promise<BlockCostModel> => {
        const timing = kind.timingModel(parts);
        let pending = this.#cost.get(kind.name);
        if (!pending) {
          pending = calibrateBlockCost(this.target, timing, {
            key: this.#costKey === undefined ? undefined : `${this.#costKey} ${kind.name}`,
          });
          this.#cost.set(kind.name, pending);
        }
        const measured = await pending;
        // A proposer without a timing model (lookup) costs no forwards.
        return timing === undefined
          ? { target: measured.target, draft: new ForwardCost({ rows: [1], tokens: [1], ms: [1e-3] }) }
          : measured;
      };
      planner = planners[name].create({
        target: this.target,
        maxDrafts: k,
        maxDraftLength: draftLength,
        cost,
      });
      planner.catch(() => this.#planners.delete(key));
      this.#planners.set(key, planner);
    }
    return planner;
  }

  /**
   * Loads a target (and optionally a draft) model folder with its tokenizer, checks that draft and
   * target share the vocabulary, and loads the kernel.
   *
   * @param options Folders, backend options (backend, numThreads, dtype, …), kernel.
   * @returns A ready generator.
   * @throws {ModelNotFoundError} a missing folder or file.
   * @throws {InvalidModelError} corrupt files, or a config that disagrees with its graph.
   * @throws {RangeError} draft and target vocabularies differ.
   * @example
   * ```ts ignore
   * import { SpeculativeGenerator } from "./generator.ts";
   * const generator = await SpeculativeGenerator.fromPretrained({ target: "models/target", draft: "models/draft" });
   * const { text } = await generator.generate("Once upon a time", { maxNewTokens: 32, seed: 1 });
   * ```
   */
  static async fromPretrained(options: FromPretrainedOptions): Promise<SpeculativeGenerator> {
    const {
      target: targetSource,
      draft: draftSource,
      kernel,
      draftNumThreads,
      draftOptions,
      ...modelOptions
    } = options;
    if (draftOptions !== undefined && (typeof draftOptions !== "object" || draftOptions === null)) {
      throw new TypeError(`Cannot load the models: draftOptions must be an object, got ${draftOptions}`);
    }
    if (draftNumThreads !== undefined && (!Number.isInteger(draftNumThreads) || draftNumThreads < 1)) {
      throw new RangeError(
        `Cannot load the models: draftNumThreads must be an integer >= 1, got ${draftNumThreads}`,
      );
    }
    const targetFolder = await openModelFolder(targetSource);
    const { tokenizer, addBosToken } = await loadTokenizer(targetFolder);
    const draftFolder = draftSource === undefined ? undefined : await openModelFolder(draftSource);
    if (draftFolder) checkSameVocabulary(tokenizer, (await loadTokenizer(draftFolder)).tokenizer);
    // A feature drafter's folder: the target must return the features its config names.
    const draftConfig = draftFolder ? await draftFolder.readJson("config.json") : undefined;
    const eagle = (draftConfig as { model_type?: unknown } | undefined)?.model_type === "spectr_eagle"
      ? parseEagleDrafterConfig(draftConfig)
      : undefined;
    const [target, resolvedKernel] = await Promise.all([
      OnnxCausalLM.load(
        targetFolder,
        eagle ? { ...modelOptions, features: eagle.targetHiddenLayers } : modelOptions,
      ).catch((error) => {
        if (eagle && error instanceof InvalidModelError && /hidden_states/.test(error.message)) {
          throw new InvalidModelError(
            `Cannot load the target for the feature drafter ${String(draftSource)}: ${error.message}`,
            { cause: error },
          );
        }
        throw error;
      }),
      kernel ?? loadKernel(),
    ]);
    let draft: OnnxCausalLM | undefined;
    let drafter: OnnxEagleDrafter | undefined;
    // The draft's own threads where each session has its own pool (cpu); elsewhere the target's setting.
    const draftThreads = getBackend(target.backend).threads === "session"
      ? draftNumThreads ?? 1
      : modelOptions.numThreads;
    try {
      if (eagle && draftFolder) {
        requireOnnxruntime(target.backend, "load the feature drafter");
        drafter = await OnnxEagleDrafter.load(draftFolder, {
          backend: target.backend,
          numThreads: draftThreads,
          ...await draftDtype(draftFolder, draftOptions?.dtype, modelOptions.dtype),
          file: draftOptions?.file,
        });
      }
      // The draft runs on the backend the target resolved to ("auto" decides once).
      draft = draftFolder && !eagle
        ? await OnnxCausalLM.load(draftFolder, {
          ...modelOptions,
          // An explicit target file names a file of the target's folder, not the draft's.
          file: undefined,
          ...draftOptions,
          ...(draftOptions?.file === undefined
            ? await draftDtype(draftFolder, draftOptions?.dtype, modelOptions.dtype)
            : {}),
          backend: target.backend,
          numThreads: draftThreads,
        })
        : undefined;
    } catch (error) {
      await target.dispose();
      throw error;
    }
    const generation = await targetFolder.has("generation_config.json")
      ? await targetFolder.readJson("generation_config.json") as { eos_token_id?: number | number[] }
      : {};
    const eos = generation.eos_token_id ?? target.config.eosTokenIds;
    return new SpeculativeGenerator({
      target,
      draft,
      drafter,
      tokenizer,
      addBosToken,
      kernel: resolvedKernel,
      eosTokenIds: eos === undefined ? undefined : ([] as number[]).concat(eos),
      costKey: typeof targetSource === "string" || targetSource instanceof URL
        ? JSON.stringify([
          String(targetSource),
          String(draftSource),
          modelOptions,
          draftOptions,
          draftNumThreads,
          target.backend,
        ])
        : undefined,
    });
  }

  /**
   * Generates text and returns it with stats.
   *
   * @param prompt Text (encoded without special tokens added), token ids, or `{ messages }`: a
   *   chat rendered with the folder's chat template (generation prompt appended), which stops at
   *   EOS or the template's end-of-turn token ({@linkcode SpeculativeGenerator.chatStopTokenIds}).
   * @param options See {@linkcode GenerationOptions}.
   * @returns Text, tokens, finish reason and stats.
   * @throws {TypeError} options that are not an object, a signal that is not an AbortSignal.
   * @throws {RangeError} invalid options (an unknown method; k, draftLength or seed out of their
   *   documented ranges; bad warp values), an empty prompt (`""` or `[]`).
   * @throws {ContextLimitError} a prompt longer than the context limit (a RangeError).
   * @throws The signal's reason when aborted.
   */
  async generate(
    prompt: GenerationPrompt,
    options: GenerationOptions = {},
  ): Promise<GenerationResult> {
    const stream = this.stream(prompt, options);
    for (;;) {
      const step = await stream.next();
      if (step.done) return step.value;
    }
  }

  /**
   * Generates text piece by piece: yields each piece as soon as it is final (never a broken
   * character, never text that could still turn out to be part of a stop string); the return value
   * is the full result.
   *
   * @example
   * ```ts
   * import { SpeculativeGenerator } from "./generator.ts";
   * import { MarkovModel, randomMarkovTable } from "../decode/markov.ts";
   * import { referenceKernel } from "../kernel/reference.ts";
   * import { Tokenizer } from "../tokenizer/tokenizer.ts";
   * const tokenizer = Tokenizer.fromJSON({ model: { type: "BPE", vocab: { x: 0, y: 1 }, merges: [] }, decoder: { type: "ByteLevel" } });
   * const target = new MarkovModel({ table: randomMarkovTable(2, 1, 3), vocabSize: 2 });
   * const generator = new SpeculativeGenerator({ target, tokenizer, kernel: referenceKernel });
   * let text = "";
   * for await (const piece of generator.stream("x", { method: "autoregressive", maxNewTokens: 5, seed: 2 })) text += piece;
   * console.assert(text.length === 5);
   * ```
   */
  async *stream(
    prompt: GenerationPrompt,
    options: GenerationOptions = {},
  ): AsyncGenerator<string, GenerationResult> {
    const previous = this.#queue;
    let release!: () => void;
    this.#queue = new Promise<void>((resolve) => (release = resolve));
    try {
      await previous;
      return yield* this.#run(prompt, options);
    } finally {
      release();
    }
  }

  async *#run(
    prompt: GenerationPrompt,
    options: GenerationOptions,
  ): AsyncGenerator<string, GenerationResult> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot generate: options must be an object, got ${options === null ? "null" : typeof options}`,
      );
    }
    const {
      maxNewTokens = 128,
      temperature = 1,
      topK = 0,
      topP = 1,
      seed,
      method = "auto",
      k = 4,
      draftLength = 4,
      stop = [],
      signal,
      proposer = this.defaultProposer,
    } = options;
    if (typeof proposer !== "string" || !proposerNames.includes(proposer)) {
      throw new RangeError(
        `Cannot generate: proposer must be one of ${
          proposerNames.map((n) => JSON.stringify(n)).join(", ")
        }, got ${JSON.stringify(proposer)}`,
      );
    }
    const kind = getProposerKind(proposer);
    const warp = { temperature, topK, topP };
    const parts: ProposerParts = {
      target: this.target,
      draft: this.draft,
      drafter: this.drafter,
      kernel: this.kernel,
      warp,
    };
    const missing = kind.missing(parts);
    if (!generationMethods.includes(method)) {
      throw new RangeError(
        `Cannot generate: unknown method "${method}", expected one of ${generationMethods.join(", ")}`,
      );
    }
    checkCount("k", k, MAX_DRAFTS);
    checkCount("draftLength", draftLength, MAX_DRAFT_LENGTH);
    if (method !== "autoregressive" && !isPlannerName(method) && missing) {
      throw new RangeError(
        `Cannot generate: method "${method}" with proposer "${proposer}" needs ${missing}, and this generator has none`,
      );
    }
    const started = performance.now();
    const promptIds = this.#encode(prompt);
    let tokenizerMs = performance.now() - started;
    const stops = new StopMatcher(stop);
    const detokenizer = new StreamingDetokenizer(this.tokenizer, { skipSpecialTokens: true });
    let seen = 0;
    // auto without what the proposer needs (e.g. no draft model) has one choice: autoregressive.
    const run = isPlannerName(method) && missing ? "autoregressive" : method;
    const drafts = Math.min(k, kind.maxDrafts);
    const planner = isPlannerName(run)
      ? await this.#planner(run, warp, drafts, draftLength, kind, parts)
      : undefined;
    const fixed = run !== "autoregressive" && !isPlannerName(run);
    const runK = fixed ? Math.min(drafts, getVerifier(run).maxCandidates) : drafts;
    const decoder = createDecoder(toDecodeMethod(run), {
      target: this.target,
      proposer: run === "autoregressive" ? undefined : kind.create(parts),
      kernel: this.kernel,
      planner,
      k: runK,
      draftLength,
      warp,
    });
    const stream = decoder.stream(promptIds, {
      maxNewTokens,
      seed,
      signal,
      eosTokenId: isChat(prompt) ? this.chatStopTokenIds : this.eosTokenIds,
      // Runs after each block, before it is yielded: feed the new tokens to the detokenizer and
      // the stop matcher, and stop once a stop string is complete.
      stopWhen: stops.empty ? undefined : (tokens) => {
        const t = performance.now();
        stops.push(detokenizer.push(tokens.slice(seen)));
        seen = tokens.length;
        tokenizerMs += performance.now() - t;
        return stops.stopped;
      },
    });
    let result: GenerateResult;
    for (;;) {
      const step = await stream.next();
      if (step.done) {
        result = step.value;
        break;
      }
      // With stop strings, stopWhen has already fed this block to the detokenizer.
      const t = performance.now();
      if (stops.empty) stops.push(detokenizer.push(step.value));
      tokenizerMs += performance.now() - t;
      const piece = stops.take();
      if (piece) yield piece;
    }
    const t = performance.now();
    if (!stops.stopped) stops.push(detokenizer.flush());
    stops.end();
    const piece = stops.take();
    let tokens = result.tokens;
    if (stops.stopped) tokens = this.#trimToStop(tokens, stops);
    tokenizerMs += performance.now() - t;
    if (piece) yield piece;
    const totalMs = performance.now() - started;
    const stats: GenerationStats = {
      ...result.stats,
      tokens: tokens.length,
      totalMs,
      method,
      promptTokens: promptIds.length,
      tokenizerMs,
      tokensPerSecond: totalMs > 0 ? (tokens.length * 1000) / totalMs : 0,
      k: fixed ? runK : undefined,
      draftLength: fixed ? draftLength : undefined,
      draftFile: run === "autoregressive" ? undefined : fileOf(kind.draftingModel(parts)),
    };
    return { text: stops.text, tokens, finishReason: FINISH[result.stats.stopReason], stats };
  }

  /** Releases the models' sessions (when they have a `dispose`). */
  async dispose(): Promise<void> {
    await this.#queue;
    for (const model of [this.target, this.draft, this.drafter]) {
      await (model as { dispose?: () => unknown } | undefined)?.dispose?.();
    }
  }

  #encode(prompt: GenerationPrompt): number[] {
    if (isChat(prompt)) {
      // The template writes every special token the model expects (BOS included), as text that
      // the tokenizer maps back to the special ids.
      return this.tokenizer.encode(renderChat(this.tokenizer, prompt.messages));
    }
    if (typeof prompt === "string") {
      if (prompt.length === 0) {
        throw new RangeError(
          "Cannot generate: the prompt is empty (to start from the BOS token alone, pass its id: [bosTokenId])",
        );
      }
      const ids = this.tokenizer.encode(prompt);
      const bos = this.tokenizer.bosTokenId;
      if (bos !== undefined && this.addBosToken && ids[0] !== bos) ids.unshift(bos);
      return ids;
    }
    if (!Array.isArray(prompt) && !ArrayBuffer.isView(prompt)) {
      throw new TypeError(`Cannot generate: the prompt must be a string or token ids, got ${typeof prompt}`);
    }
    return Array.from(prompt as readonly number[]);
  }

  /** The shortest prefix of `tokens` whose text contains the stop string that fired. */
  #trimToStop(tokens: number[], stops: StopMatcher): number[] {
    for (let n = 1; n <= tokens.length; n++) {
      if (
        stops.matches(
          this.tokenizer.decode(tokens.slice(0, n), { skipSpecialTokens: true, stripPrefixSpace: false }),
        )
      ) {
        return tokens.slice(0, n);
      }
    }
    return tokens;
  }
}

function isChat(prompt: GenerationPrompt): prompt is ChatPrompt {
  return typeof prompt === "object" && prompt !== null && !Array.isArray(prompt) &&
    !ArrayBuffer.isView(prompt) &&
    "messages" in prompt;
}

function checkCount(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`Cannot generate: ${name} must be an integer in [1, ${max}], got ${value}`);
  }
}

function toDecodeMethod(method: GenerationMethod): DecodeMethod {
  return Object.hasOwn(verifierAliases, method)
    ? verifierAliases[method as VerifierAlias]
    : method as DecodeMethod;
}

async function loadTokenizer(folder: ModelLoader): Promise<{ tokenizer: Tokenizer; addBosToken: boolean }> {
  const json = await folder.readJson("tokenizer.json");
  const config = await folder.has("tokenizer_config.json")
    ? await folder.readJson("tokenizer_config.json")
    : {};
  const addBosToken = (config as { add_bos_token?: unknown }).add_bos_token === true;
  return { tokenizer: Tokenizer.fromJSON(json as object, config as object), addBosToken };
}
