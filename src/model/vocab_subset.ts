/**
 * A draft whose embedding and head cover a subset of the vocabulary (our SmolLM2 draft,
 * `tools/train/smollm2/draft_model.py`): `Gather(in_map, input_ids)` maps each of the V token ids
 * to one of R embedding rows, the tied head scores the first H ≤ R rows, and `ScatterElements`
 * writes those H logits at their token ids into a row of V filled by `ConstantOfShape` (−∞:
 * the draft gives every other token probability exactly 0). The `kernel` backend reads this
 * structure here and runs the model as an R-token model, scattering its logits itself.
 *
 * @module
 */
import { fields, LEN } from "./_protobuf.ts";
import type { OnnxGraph, OnnxNode } from "./onnx_graph.ts";

/** How a vocabulary subset maps tokens to rows and head rows to tokens. */
export interface VocabSubset {
  /** `[V]` the embedding row of each token id. */
  inMap: Int32Array;
  /** `[H]` the token id of head row i (rows 0 … H − 1 of the embedding). */
  headIds: Int32Array;
  /** The logit of every token outside the head (the graph's ConstantOfShape value). */
  fill: number;
  /** Embedding rows R (≥ H). */
  rows: number;
}

function ints(raw: Uint8Array, dataType: number): Int32Array {
  const copy = raw.slice();
  if (dataType === 6) return new Int32Array(copy.buffer);
  if (dataType === 7) return Int32Array.from(new BigInt64Array(copy.buffer), (x) => Number(x));
  throw new RangeError(`an index tensor must be int32 or int64, got data type ${dataType}`);
}

/**
 * The ConstantOfShape `value` of the node with output `output`, read from the file (the graph
 * reader keeps no tensor attributes): AttributeProto `t` (5) → TensorProto raw_data (9) or
 * float_data (4), float32. 0 when the attribute is absent (the operator's default).
 */
function constantOfShapeValue(bytes: Uint8Array, output: string): number {
  const text = new TextDecoder();
  const model = fields(bytes, 0, bytes.length).find((f) => f.number === 7);
  if (!model) return 0;
  for (const node of fields(bytes, model.payloadStart, model.end)) {
    if (node.number !== 1 || node.wire !== LEN) continue;
    const parts = fields(bytes, node.payloadStart, node.end);
    const op = parts.find((f) => f.number === 4);
    if (!op || text.decode(bytes.subarray(op.payloadStart, op.end)) !== "ConstantOfShape") continue;
    const outs = parts.filter((f) => f.number === 2).map((f) =>
      text.decode(bytes.subarray(f.payloadStart, f.end))
    );
    if (!outs.includes(output)) continue;
    for (const attr of parts.filter((f) => f.number === 5)) {
      const tensor = fields(bytes, attr.payloadStart, attr.end).find((f) => f.number === 5);
      if (!tensor) continue;
      const t = fields(bytes, tensor.payloadStart, tensor.end);
      const raw = t.find((f) => f.number === 9) ?? t.find((f) => f.number === 4);
      if (raw && raw.end - raw.payloadStart >= 4) {
        return new DataView(bytes.buffer, bytes.byteOffset + raw.payloadStart, 4).getFloat32(0, true);
      }
    }
    return 0;
  }
  return 0;
}

/**
 * The graph's vocabulary subset, or undefined when it has none (embedding indexed by the ids).
 *
 * @param graph The graph.
 * @param bytes The ONNX file (for the ConstantOfShape value).
 * @param vocab V, the config's vocabulary size.
 * @throws {RangeError} the structure is there but inconsistent (ids outside the vocabulary, a head
 *   id repeated, a head row not mapped back from its id).
 */
export function vocabSubset(graph: OnnxGraph, bytes: Uint8Array, vocab: number): VocabSubset | undefined {
  const consumers = (name: string) => graph.nodes.filter((n) => n.inputs.includes(name));
  const mapGather = consumers("input_ids").find((n) =>
    n.opType === "Gather" && graph.initializers.get(n.inputs[0])?.dims.join() === String(vocab)
  );
  if (!mapGather) return undefined;
  const map = graph.initializers.get(mapGather.inputs[0])!;
  const inMap = ints(map.raw, map.dataType);
  const scatter = graph.nodes.find((n) => n.opType === "ScatterElements");
  if (!scatter) {
    throw new RangeError("a token map feeds the embedding but no ScatterElements builds the logits");
  }
  const indices = indexSource(graph, scatter);
  if (!indices) throw new RangeError("the ScatterElements' indices are not an initializer");
  const headIds = ints(indices.raw, indices.dataType);
  let rows = 0;
  for (const r of inMap) rows = Math.max(rows, r + 1);
  const seen = new Set<number>();
  for (let i = 0; i < headIds.length; i++) {
    const id = headIds[i];
    if (!(id >= 0 && id < vocab) || seen.has(id)) {
      throw new RangeError(`head id ${id} (row ${i}) is outside [0, ${vocab}) or repeated`);
    }
    seen.add(id);
    if (inMap[id] !== i) {
      throw new RangeError(`head row ${i} is token ${id}, whose embedding row is ${inMap[id]}`);
    }
  }
  if (headIds.length > rows) {
    throw new RangeError(`the head has ${headIds.length} rows, the embedding ${rows}`);
  }
  return { inMap, headIds, fill: constantOfShapeValue(bytes, scatter.inputs[0]), rows };
}

/** The initializer behind the ScatterElements' indices (through Expand / Reshape / Cast). */
function indexSource(graph: OnnxGraph, scatter: OnnxNode) {
  let name = scatter.inputs[1];
  for (let step = 0; step < 4; step++) {
    const init = graph.initializers.get(name);
    if (init) return init;
    const producer = graph.nodes.find((n) => n.outputs.includes(name));
    if (!producer || !["Expand", "Reshape", "Cast", "Unsqueeze"].includes(producer.opType)) return undefined;
    name = producer.inputs[0];
  }
  return undefined;
}

/**
 * The graph with a Gemm's all-zero C input dropped (the subset draft's head adds a zero bias),
 * for readers that reject a head bias. Other nodes are shared, not copied.
 */
export function withoutZeroGemmBias(graph: OnnxGraph): OnnxGraph {
  const nodes = graph.nodes.map((n) => {
    if (n.opType !== "Gemm" || n.inputs.length < 3) return n;
    const c = graph.initializers.get(n.inputs[2]) ?? graph.constants.get(n.inputs[2]);
    if (!c || c.dataType !== 1 || !new Float32Array(c.raw.slice().buffer).every((v) => v === 0)) return n;
    return { ...n, inputs: n.inputs.slice(0, 2) };
  });
  return { ...graph, nodes };
}
