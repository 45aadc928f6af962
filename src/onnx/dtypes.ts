/**
 * ONNX tensor element types (TensorProto.DataType in onnx.proto, up to IR version 12 / ONNX 1.19:
 * FLOAT4E2M1, FLOAT8E8M0, UINT2, INT2), their names in our JSON output, and their storage sizes.
 */

export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  COMPLEX64 = 14,
  COMPLEX128 = 15,
  BFLOAT16 = 16,
  FLOAT8E4M3FN = 17,
  FLOAT8E4M3FNUZ = 18,
  FLOAT8E5M2 = 19,
  FLOAT8E5M2FNUZ = 20,
  UINT4 = 21,
  INT4 = 22,
  FLOAT4E2M1 = 23,
  FLOAT8E8M0 = 24,
  UINT2 = 25,
  INT2 = 26,
}

/** Name and bits per element, indexed by DataType. Bits are 0 where raw_data is not allowed. */
const TYPES: ReadonlyArray<readonly [name: string, bits: number]> = [
  ['undefined', 0],
  ['float32', 32],
  ['uint8', 8],
  ['int8', 8],
  ['uint16', 16],
  ['int16', 16],
  ['int32', 32],
  ['int64', 64],
  ['string', 0],
  ['bool', 8], // one byte per element in raw_data, per onnx.proto
  ['float16', 16],
  ['float64', 64],
  ['uint32', 32],
  ['uint64', 64],
  ['complex64', 64],
  ['complex128', 128],
  ['bfloat16', 16],
  ['float8e4m3fn', 8],
  ['float8e4m3fnuz', 8],
  ['float8e5m2', 8],
  ['float8e5m2fnuz', 8],
  ['uint4', 4],
  ['int4', 4],
  ['float4e2m1', 4],
  ['float8e8m0', 8],
  ['uint2', 2],
  ['int2', 2],
];

/** Other spellings users type (numpy / ONNX enum style); matched case-insensitively. */
const ALIASES: Readonly<Record<string, DataType>> = {
  float: DataType.FLOAT,
  double: DataType.DOUBLE,
  half: DataType.FLOAT16,
};

/** True for the DataType values this code knows (UNDEFINED included). */
export function isKnownDataType(t: number): t is DataType {
  return Number.isInteger(t) && t >= 0 && t < TYPES.length;
}

/** Lower-case name used in our JSON ("float32", "int4", …); `unknown(<n>)` for values we do not know. */
export function dataTypeName(t: number): string {
  return isKnownDataType(t) ? TYPES[t]![0] : `unknown(${t})`;
}

/**
 * Inverse of `dataTypeName`; also accepts the ONNX enum names ("FLOAT", "INT8") and "float",
 * "double", "half", in any case. Undefined for names it does not know.
 */
export function dataTypeFromName(name: string): DataType | undefined {
  const key = name.trim().toLowerCase();
  const alias = ALIASES[key];
  if (alias !== undefined) return alias;
  for (let t = 0; t < TYPES.length; t++) {
    if (TYPES[t]![0] === key || DataType[t]!.toLowerCase() === key) return t;
  }
  return undefined;
}

/**
 * Bits one element occupies in raw_data: 4 for int4/uint4/float4e2m1, 2 for int2/uint2, 8 for bool.
 * 0 for string, undefined and unknown types, which have no fixed-size encoding.
 */
export function bitsPerElement(t: number): number {
  return isKnownDataType(t) ? TYPES[t]![1] : 0;
}

/**
 * Size of raw_data for `elementCount` elements; sub-byte types are packed, so the last byte may be
 * partly padding. 0 for types without a fixed-size encoding (string, unknown), so that summaries
 * never throw.
 */
export function byteSizeOf(t: number, elementCount: number): number {
  const bits = bitsPerElement(t);
  if (bits === 0) return 0;
  // Divide sub-byte counts by a power of two rather than multiplying by bits: exact for any safe count.
  return bits >= 8 ? elementCount * (bits / 8) : Math.ceil(elementCount / (8 / bits));
}
