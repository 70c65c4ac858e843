/**
 * SpecInfer's multi-candidate recursive rejection sampling (Miao et al., ASPLOS 2024), in two
 * flavours: candidates drawn i.i.d. from q (`specinfer`), and drawn without replacement
 * (`specinfer-wor`), where q is renormalised without each rejected token.
 *
 * @module
 */

import type { LevelVerifier } from "./types.ts";
import { levelVerifier } from "./walk.ts";

/**
 * SpecInfer over i.i.d. candidates: accept x_i iff u_i·q(x_i) < p_i(x_i), else p_{i+1} = norm(max(p_i − q, 0)).
 *
 * @example
 * ```ts
 * import { specInfer } from "./specinfer.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * const p = new Float64Array([0, 1]), q = new Float64Array([0.5, 0.5]);
 * console.assert(specInfer.select(referenceKernel, p, q, [0, 0], [0, 0, 0.5]).token === 1);
 * ```
 */
export const specInfer: LevelVerifier = levelVerifier({
  name: "specinfer",
  draftSampling: "iid",
  maxCandidates: 1024,
  select: (kernel, p, q, candidates, uniforms) => kernel.specInferSelect(p, q, candidates, uniforms, false),
});

/**
 * SpecInfer over candidates drawn without replacement (recommended multi-draft peer): x_i was drawn
 * from q_i (q without x_1..x_{i−1}, renormalised), so the test and the residual use q_i.
 *
 * @example
 * ```ts
 * import { specInferWor } from "./specinfer.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * const p = new Float64Array([0.5, 0.5]), q = new Float64Array([0.5, 0.5]);
 * console.assert(specInferWor.select(referenceKernel, p, q, [1, 0], [0.2, 0.3, 0.4]).token === 1);
 * ```
 */
export const specInferWor: LevelVerifier = levelVerifier({
  name: "specinfer-wor",
  draftSampling: "without-replacement",
  maxCandidates: 1024,
  select: (kernel, p, q, candidates, uniforms) => kernel.specInferSelect(p, q, candidates, uniforms, true),
});
