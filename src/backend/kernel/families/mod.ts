/**
 * The kernel backend's model families: one {@linkcode KernelFamily} per `ModelFamily` of the
 * config (src/model/config.ts), each beside its weight reader: its graph reader, how its weights
 * are placed in the kernel's memory, and its forward recipe (embeddings → blocks → final norm →
 * head) over the shared ops of ../ops.ts. The session (../kernel_session.ts) looks the family up
 * here and knows nothing of any one family.
 *
 * A new family: its reader and recipe in one file of this folder, its `model_type` → family line
 * in src/model/config.ts, and one line in {@linkcode families} (which the type requires for every
 * `ModelFamily`).
 *
 * @module
 */
import type { ModelConfig, ModelFamily } from "../../../model/config.ts";
import { InvalidModelError } from "../../../model/errors.ts";
import type { OnnxGraph } from "../../../onnx/graph.ts";
import type { ForwardPass, LinearMemory } from "../ops.ts";
import { gpt2 } from "./gpt2.ts";
import { llama } from "./llama.ts";

/** What the session needs of a family's weights once placed in the kernel's memory. */
export interface KernelModel {
  /** Layers whose residual stream the graph outputs as `hidden_states.{i}`, ascending. */
  readonly hiddenStates: readonly number[];
}

/**
 * A model family on the kernel backend: reader, placement and forward recipe. `W` is what its
 * reader returns (linear weights `Float32Array | Q8Weight`), `M` its weights placed in the
 * kernel's memory (offsets), which only its own recipe reads.
 */
export interface KernelFamily<W = unknown, M extends KernelModel = KernelModel> {
  /** The config's family name (the registry key). */
  readonly name: ModelFamily;
  /**
   * The weights of an ONNX graph of this family, checked against the config.
   *
   * @throws {InvalidModelError} the graph is not one this family's reader (or recipe) supports.
   */
  read(graph: OnnxGraph, config: ModelConfig): W;
  /** Copies the weights into the kernel's memory (kept for the session's life). */
  place(memory: LinearMemory, weights: W, config: ModelConfig): M;
  /** One forward: embeddings → blocks → final norm → head, through the pass's ops and outputs. */
  forward(pass: ForwardPass, model: M): void;
}

/** Any family (the registry's entry type: each family's own `W` and `M` stay between its functions). */
export type AnyKernelFamily = KernelFamily<any, any>;

/** The kernel backend's families, one line per `ModelFamily`. */
export const families: Readonly<Record<ModelFamily, AnyKernelFamily>> = Object.freeze({
  gpt2,
  llama,
});

/**
 * The family registered under `name`.
 *
 * @param name A config's family name.
 * @returns The family.
 * @throws {InvalidModelError} no family has that name (the message names the known ones).
 * @example
 * ```ts
 * import { kernelFamily } from "./mod.ts";
 * console.assert(kernelFamily("llama").name === "llama");
 * ```
 */
export function kernelFamily(name: string): AnyKernelFamily {
  if (!Object.hasOwn(families, name)) {
    throw new InvalidModelError(
      `no kernel recipe for the model family ${JSON.stringify(name)} (families: ${
        Object.keys(families).join(", ")
      })`,
    );
  }
  return families[name as ModelFamily];
}
