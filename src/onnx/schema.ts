/**
 * The ONNX field numbers and enums (onnx.proto3) that the reader (./graph.ts), the writer
 * (./writer.ts) and the external-data code (./external_data.ts) use: the only copy of the schema.
 * Data type codes are in ./data_types.ts.
 *
 * @module
 */

/** `ModelProto` fields. */
export const ModelField = {
  IR_VERSION: 1,
  PRODUCER_NAME: 2,
  PRODUCER_VERSION: 3,
  GRAPH: 7,
  OPSET_IMPORT: 8,
} as const;

/** `OperatorSetIdProto` fields. */
export const OpsetField = { DOMAIN: 1, VERSION: 2 } as const;

/** `GraphProto` fields. */
export const GraphField = { NODE: 1, NAME: 2, INITIALIZER: 5, INPUT: 11, OUTPUT: 12 } as const;

/** `NodeProto` fields. */
export const NodeField = { INPUT: 1, OUTPUT: 2, NAME: 3, OP_TYPE: 4, ATTRIBUTE: 5, DOMAIN: 7 } as const;

/** `AttributeProto` fields. */
export const AttributeField = { NAME: 1, F: 2, I: 3, S: 4, T: 5, FLOATS: 7, INTS: 8, TYPE: 20 } as const;

/** `AttributeProto.AttributeType` values. */
export const AttributeType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
} as const;

/** `TensorProto` fields. */
export const TensorField = {
  DIMS: 1,
  DATA_TYPE: 2,
  FLOAT_DATA: 4,
  INT32_DATA: 5,
  INT64_DATA: 7,
  NAME: 8,
  RAW_DATA: 9,
  DOUBLE_DATA: 10,
  UINT64_DATA: 11,
  EXTERNAL_DATA: 13,
  DATA_LOCATION: 14,
} as const;

/** `TensorProto.DataLocation.EXTERNAL`. */
export const DATA_LOCATION_EXTERNAL = 1;

/** `StringStringEntryProto` fields (`external_data` entries). */
export const EntryField = { KEY: 1, VALUE: 2 } as const;

/** `ValueInfoProto` fields. */
export const ValueInfoField = { NAME: 1, TYPE: 2 } as const;

/** `TypeProto` fields. */
export const TypeField = { TENSOR_TYPE: 1 } as const;

/** `TypeProto.Tensor` fields. */
export const TensorTypeField = { ELEM_TYPE: 1, SHAPE: 2 } as const;

/** `TensorShapeProto` fields. */
export const ShapeField = { DIM: 1 } as const;

/** `TensorShapeProto.Dimension` fields. */
export const DimField = { DIM_VALUE: 1, DIM_PARAM: 2 } as const;
