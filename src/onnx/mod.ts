/**
 * ONNX files without onnxruntime: the one place this package reads and writes them.
 *
 * - ./data_types.ts: the table of tensor element types (code, name, size, typed array);
 * - ./protobuf.ts: the protobuf wire format (a reader in place, a writer for small messages);
 * - ./schema.ts: the ONNX field numbers both use;
 * - ./graph.ts: {@linkcode readOnnxGraph}: nodes, inputs, outputs, initializers, `Constant`s;
 * - ./queries.ts: producer / consumer index and other queries on a read graph;
 * - ./external_data.ts: external data files a graph names, and weights by reference (wasm);
 * - ./writer.ts: {@linkcode GraphBuilder} and the streaming {@linkcode writeModel}.
 *
 * Internal to the package: not exported from mod.ts, decode.ts or model.ts.
 *
 * @module
 */

export {
  DATA_TYPES,
  DataType,
  type DataTypeInfo,
  dataTypeInfo,
  type DataTypeName,
  dataTypeName,
  dataTypeSize,
  type ElementArrayConstructor,
  type TensorDataField,
} from "./data_types.ts";
export {
  type OnnxGraph,
  type OnnxGraphInput,
  type OnnxInitializer,
  type OnnxNode,
  readOnnxGraph,
} from "./graph.ts";
export {
  elementCount,
  formatDims,
  type GraphIndex,
  halfToFloat,
  indexGraph,
  intValues,
  isFloatTensor,
  nodeWithInput,
  onlyUse,
  ownBuffer,
  PASS_THROUGH,
  sourceOf,
  tensorOf,
  upThrough,
  usersOf,
} from "./queries.ts";
export {
  externalDataFiles,
  isExternalTensor,
  type ReferencedWeights,
  referenceWeights,
} from "./external_data.ts";
export type { Field } from "./protobuf.ts";
export {
  type AttrValue,
  GraphBuilder,
  type LazyInitializer,
  type ValueInfo,
  writeModel,
  type WriteModelOptions,
} from "./writer.ts";
