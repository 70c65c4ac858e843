/**
 * The one table of ONNX tensor element types (`TensorProto.DataType`): code ↔ name ↔ bytes per
 * element ↔ the typed array that views `raw_data` ↔ the typed `TensorProto` field a writer without
 * `raw_data` stores the values in. Every reader and writer of this package takes its types from
 * here (./graph.ts, ./writer.ts, the kernel backend's weight readers, the GGUF → ONNX converter).
 *
 * The table holds the types onnx.proto numbers 1 … 16 except the complex ones (14, 15), which no
 * reader or writer here handles; 8-bit floats and 4-bit ints (17 …) are absent for the same reason.
 *
 * @module
 */

/** ONNX `TensorProto.DataType` codes by name (onnx.proto). */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;

/** A data type's name, e.g. "FLOAT". */
export type DataTypeName = keyof typeof DataType;

/** A typed array constructor viewing `raw_data` (little-endian, one element per value). */
export type ElementArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Uint16ArrayConstructor
  | Int16ArrayConstructor
  | Uint32ArrayConstructor
  | Int32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** The typed `TensorProto` field that holds a type's values when `raw_data` is not used. */
export type TensorDataField =
  | "float_data"
  | "int32_data"
  | "string_data"
  | "int64_data"
  | "double_data"
  | "uint64_data";

/** One row of the table. */
export interface DataTypeInfo {
  /** Name, as in onnx.proto ("FLOAT"). */
  readonly name: DataTypeName;
  /** `TensorProto.DataType` code. */
  readonly code: number;
  /** Bytes per element in `raw_data`; 0 for STRING (variable length). */
  readonly bytes: number;
  /**
   * The typed array viewing `raw_data`; FLOAT16 / BFLOAT16 as their 16-bit patterns
   * (`Uint16Array`), BOOL as bytes; undefined for STRING.
   */
  readonly array: ElementArrayConstructor | undefined;
  /** The typed field values go in without `raw_data` (onnx.proto's comments on each field). */
  readonly field: TensorDataField;
}

const ROWS: [DataTypeName, number, ElementArrayConstructor | undefined, TensorDataField][] = [
  ["FLOAT", 4, Float32Array, "float_data"],
  ["UINT8", 1, Uint8Array, "int32_data"],
  ["INT8", 1, Int8Array, "int32_data"],
  ["UINT16", 2, Uint16Array, "int32_data"],
  ["INT16", 2, Int16Array, "int32_data"],
  ["INT32", 4, Int32Array, "int32_data"],
  ["INT64", 8, BigInt64Array, "int64_data"],
  ["STRING", 0, undefined, "string_data"],
  ["BOOL", 1, Uint8Array, "int32_data"],
  ["FLOAT16", 2, Uint16Array, "int32_data"],
  ["DOUBLE", 8, Float64Array, "double_data"],
  ["UINT32", 4, Uint32Array, "uint64_data"],
  ["UINT64", 8, BigUint64Array, "uint64_data"],
  ["BFLOAT16", 2, Uint16Array, "int32_data"],
];

/** Every known data type, by code (ascending). */
export const DATA_TYPES: ReadonlyMap<number, DataTypeInfo> = new Map(
  ROWS.map((
    [name, bytes, array, field],
  ) => [DataType[name], { name, code: DataType[name], bytes, array, field }]),
);

/**
 * The table's row for `code`, or undefined for a type this package does not know.
 *
 * @example
 * ```ts
 * import { DataType, dataTypeInfo } from "./data_types.ts";
 * import assert from "node:assert/strict";
 * assert.equal(dataTypeInfo(DataType.FLOAT16)?.bytes, 2);
 * assert.equal(dataTypeInfo(99), undefined);
 * ```
 */
export function dataTypeInfo(code: number): DataTypeInfo | undefined {
  return DATA_TYPES.get(code);
}

/**
 * A data type's name for messages: "FLOAT", or `type N` for a code the table does not know.
 *
 * @example
 * ```ts
 * import { dataTypeName } from "./data_types.ts";
 * import assert from "node:assert/strict";
 * assert.equal(dataTypeName(7), "INT64");
 * assert.equal(dataTypeName(14), "type 14");
 * ```
 */
export function dataTypeName(code: number): string {
  return DATA_TYPES.get(code)?.name ?? `type ${code}`;
}

/**
 * Bytes per element of `code` in `raw_data` (0 for STRING); undefined for an unknown code.
 *
 * @example
 * ```ts
 * import { DataType, dataTypeSize } from "./data_types.ts";
 * import assert from "node:assert/strict";
 * assert.equal(dataTypeSize(DataType.INT64), 8);
 * ```
 */
export function dataTypeSize(code: number): number | undefined {
  return DATA_TYPES.get(code)?.bytes;
}
