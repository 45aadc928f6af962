/**
 * Element values of a TensorProto: decoding (raw_data or the typed `*_data` fields, validated
 * against dims) and encoding (into raw_data, as our writer and test builders store tensors).
 *
 * Representation (`TensorValues`), per data type:
 * - float32 / complex64 → Float32Array, float64 / complex128 → Float64Array (complex: 2 × elements,
 *   real and imaginary interleaved);
 * - integer types → the matching typed array; int64 / uint64 → BigInt64Array / BigUint64Array;
 * - bool → Uint8Array of 0/1;
 * - float16 / bfloat16 → their bits in a Uint16Array; float8 variants and float8e8m0 → bits in a
 *   Uint8Array; float4e2m1 → one 4-bit code per element in a Uint8Array (use tensorToFloat32 for values);
 * - int4 / int2 → Int8Array, uint4 / uint2 → Uint8Array, one element per entry (unpacked);
 * - string → string[].
 * Arrays decoded from aligned raw_data are views of the model buffer, not copies: treat them as
 * read-only, and do not use their `.buffer` as if it held only this tensor.
 */
import { byteSizeOf, DataType, dataTypeName, isKnownDataType } from './dtypes';
import { OnnxFormatError } from './errors';
import {
  bfloat16BitsToFloat32,
  float16ToFloat32Table,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  float32ToFloat4E2M1Bits,
  float32ToFloat8E4M3FNBits,
  float32ToFloat8E4M3FNUZBits,
  float32ToFloat8E5M2Bits,
  float32ToFloat8E5M2FNUZBits,
  float32ToFloat8E8M0Bits,
  float8E8M0Table,
  minifloatTable,
} from './float-formats';
import { emptyTensor, PackedField, TensorDataLocation, TensorProto } from './proto';

// Zero-copy views read file bytes in host order, and raw_data is little-endian by spec.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('onnx-quant supports little-endian hosts only');
}

export type TensorValues =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/**
 * What `setTensorValues` / `makeTensor` accept: `TensorValues`, or plain arrays converted by type.
 * For float16/bfloat16/float8/float4, a Uint16Array/Uint8Array is taken as bits (the form
 * `tensorValues` returns); any other numeric array holds values, rounded to the format (RNE, saturating).
 */
export type TensorValuesInput = TensorValues | readonly number[] | readonly bigint[] | readonly boolean[];

interface TypedArrayClass<T> {
  readonly BYTES_PER_ELEMENT: number;
  new (length: number): T;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
}

/** Which tensor, for error messages. */
interface Where {
  name: string;
  file: string | undefined;
}

function formatError(w: Where, message: string): OnnxFormatError {
  const prefix = w.file ? `${w.file}: ` : '';
  return new OnnxFormatError(`${prefix}tensor ${JSON.stringify(w.name)}: ${message}`, { file: w.file ?? '', tensor: w.name });
}

function shapeText(dims: readonly number[], dt: number): string {
  return `dims [${dims.join(', ')}] of type ${dataTypeName(dt)}`;
}

/**
 * Number of elements for `dims`: 1 for a scalar ([]), 0 if any dim is 0. Throws OnnxFormatError for a
 * negative or non-integer dim, or a product above 2^53 - 1, before anything is sized from it.
 */
export function elementCount(dims: readonly number[], tensor?: string, file?: string): number {
  const fail = (message: string): OnnxFormatError =>
    tensor === undefined
      ? new OnnxFormatError(`${file ? `${file}: ` : ''}${message}`, { file: file ?? '' })
      : formatError({ name: tensor, file }, message);
  let empty = false;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw fail(`dims [${dims.join(', ')}] contain invalid dimension ${d}`);
    if (d === 0) empty = true;
  }
  if (empty) return 0; // even if the other dims multiply past 2^53
  let n = 1;
  for (const d of dims) {
    if (n > Number.MAX_SAFE_INTEGER / d) throw fail(`dims [${dims.join(', ')}] describe more than 2^53 elements`);
    n *= d;
  }
  return n;
}

function isComplex(dt: number): boolean {
  return dt === DataType.COMPLEX64 || dt === DataType.COMPLEX128;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/**
 * Decodes the values of `t`: from `raw` when given (the caller's resolved external data), else
 * from raw_data, else from the typed field onnx.proto assigns to the type. Pass `file` to have
 * errors name it. Throws OnnxFormatError when the data does not match dims and type.
 */
export function tensorValues(t: TensorProto, raw?: Uint8Array, file?: string): TensorValues {
  const w: Where = { name: t.name, file };
  const dt = t.dataType;
  if (!isKnownDataType(dt) || dt === DataType.UNDEFINED) throw formatError(w, `unsupported data type ${dataTypeName(dt)}`);
  const n = elementCount(t.dims, t.name, file);
  const external = t.dataLocation === TensorDataLocation.External;
  if (external && raw === undefined) {
    throw formatError(w, 'data is stored in an external file; resolve it and pass its bytes');
  }
  const data = raw ?? t.rawData;
  if (data === undefined) return fromFields(t, dt, n, w);
  const what = raw === undefined ? 'raw_data' : 'external data';
  if (dt === DataType.STRING) throw formatError(w, `string tensors cannot use ${what}`);
  const expected = byteSizeOf(dt, n);
  if (data.byteLength !== expected) {
    throw formatError(w, `${what} has ${data.byteLength} bytes, expected ${expected} for ${shapeText(t.dims, dt)}`);
  }
  return fromRaw(dt, data, n);
}

/** A typed view of `data` when it is suitably aligned, else an aligned copy. */
function view<T extends ArrayBufferView>(C: TypedArrayClass<T>, data: Uint8Array, count: number): T {
  if (data.byteOffset % C.BYTES_PER_ELEMENT === 0) return new C(data.buffer, data.byteOffset, count);
  const out = new C(count);
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(data);
  return out;
}

function fromRaw(dt: DataType, data: Uint8Array, n: number): TensorValues {
  switch (dt) {
    case DataType.FLOAT:
      return view(Float32Array, data, n);
    case DataType.COMPLEX64:
      return view(Float32Array, data, 2 * n);
    case DataType.DOUBLE:
      return view(Float64Array, data, n);
    case DataType.COMPLEX128:
      return view(Float64Array, data, 2 * n);
    case DataType.INT8:
      return view(Int8Array, data, n);
    case DataType.UINT8:
    case DataType.FLOAT8E4M3FN:
    case DataType.FLOAT8E4M3FNUZ:
    case DataType.FLOAT8E5M2:
    case DataType.FLOAT8E5M2FNUZ:
    case DataType.FLOAT8E8M0:
      return view(Uint8Array, data, n);
    case DataType.BOOL:
      return normalizedBools(view(Uint8Array, data, n));
    case DataType.INT16:
      return view(Int16Array, data, n);
    case DataType.UINT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return view(Uint16Array, data, n);
    case DataType.INT32:
      return view(Int32Array, data, n);
    case DataType.UINT32:
      return view(Uint32Array, data, n);
    case DataType.INT64:
      return view(BigInt64Array, data, n);
    case DataType.UINT64:
      return view(BigUint64Array, data, n);
    case DataType.INT4:
      return unpack(data, n, 4, true);
    case DataType.UINT4:
    case DataType.FLOAT4E2M1:
      return unpack(data, n, 4, false);
    case DataType.INT2:
      return unpack(data, n, 2, true);
    case DataType.UINT2:
      return unpack(data, n, 2, false);
    case DataType.STRING:
    case DataType.UNDEFINED:
      throw new Error(`unreachable: ${dataTypeName(dt)} in raw_data`);
  }
}

/** Bools must be 0/1 bytes; anything else non-zero is read as true (copying only in that case). */
function normalizedBools(bytes: Uint8Array): Uint8Array {
  if (bytes.every((b) => b <= 1)) return bytes;
  return bytes.map((b) => (b === 0 ? 0 : 1));
}

/** Sub-byte elements, first element in the least significant bits of each byte (onnx.proto). */
function unpack(bytes: Uint8Array, n: number, bits: 2 | 4, signed: boolean): Int8Array | Uint8Array {
  const out = signed ? new Int8Array(n) : new Uint8Array(n);
  const log = bits === 4 ? 1 : 2; // log2(elements per byte)
  const slot = (1 << log) - 1;
  const mask = (1 << bits) - 1;
  const ext = 32 - bits;
  for (let i = 0; i < n; i++) {
    const v = (bytes[i >>> log]! >>> ((i & slot) * bits)) & mask;
    out[i] = signed ? (v << ext) >> ext : v;
  }
  return out;
}

function pack(values: ArrayLike<number>, bits: 2 | 4): Uint8Array {
  const n = values.length;
  const log = bits === 4 ? 1 : 2;
  const slot = (1 << log) - 1;
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(Math.ceil(n / (1 << log)));
  for (let i = 0; i < n; i++) out[i >>> log]! |= (values[i]! & mask) << ((i & slot) * bits);
  return out;
}

function countMismatch(w: Where, field: string, found: number, expected: number, dims: readonly number[], dt: number): OnnxFormatError {
  return formatError(w, `${field} has ${found} values, expected ${expected} for ${shapeText(dims, dt)}`);
}

function fromFields(t: TensorProto, dt: DataType, n: number, w: Where): TensorValues {
  const mismatch = (field: string, found: number, expected: number) => countMismatch(w, field, found, expected, t.dims, dt);
  switch (dt) {
    case DataType.FLOAT:
    case DataType.COMPLEX64:
      return fixedWidth(t.floatData, Float32Array, isComplex(dt) ? 2 * n : n, 'float_data', mismatch, w);
    case DataType.DOUBLE:
    case DataType.COMPLEX128:
      return fixedWidth(t.doubleData, Float64Array, isComplex(dt) ? 2 * n : n, 'double_data', mismatch, w);
    case DataType.INT64:
      return new BigInt64Array(varints64(t.int64Data, n, 'int64_data', mismatch, w).buffer);
    case DataType.UINT64:
      return new BigUint64Array(varints64(t.uint64Data, n, 'uint64_data', mismatch, w).buffer);
    case DataType.UINT32: {
      // uint64_data holds uint32 too; keep the low word, as a protobuf uint32 read would.
      const words = varints64(t.uint64Data, n, 'uint64_data', mismatch, w);
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = words[2 * i]!;
      return out;
    }
    case DataType.STRING: {
      if (t.stringData.length !== n) throw mismatch('string_data', t.stringData.length, n);
      const decoder = new TextDecoder('utf-8');
      return t.stringData.map((s) => decoder.decode(s));
    }
    default:
      return fromInt32Data(t.int32Data, dt, n, mismatch, w);
  }
}

type Mismatch = (field: string, found: number, expected: number) => OnnxFormatError;

/** int32_data: one element per entry, except 4-bit types (two per entry) and 2-bit types (four). */
function fromInt32Data(chunks: PackedField, dt: DataType, n: number, mismatch: Mismatch, w: Where): TensorValues {
  const perEntry = dt === DataType.INT4 || dt === DataType.UINT4 || dt === DataType.FLOAT4E2M1 ? 2 : dt === DataType.INT2 || dt === DataType.UINT2 ? 4 : 1;
  const words = varints32(chunks, Math.ceil(n / perEntry), 'int32_data', mismatch, w);
  // Typed-array conversion keeps the low bits, like the C++ static_cast from int32.
  switch (dt) {
    case DataType.INT32:
      return words;
    case DataType.INT16:
      return new Int16Array(words);
    case DataType.INT8:
      return new Int8Array(words);
    case DataType.UINT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return new Uint16Array(words);
    case DataType.UINT8:
    case DataType.FLOAT8E4M3FN:
    case DataType.FLOAT8E4M3FNUZ:
    case DataType.FLOAT8E5M2:
    case DataType.FLOAT8E5M2FNUZ:
    case DataType.FLOAT8E8M0:
      return new Uint8Array(words);
    case DataType.BOOL:
      return Uint8Array.from(words, (v) => (v === 0 ? 0 : 1));
    case DataType.INT4:
      return unpack(new Uint8Array(words), n, 4, true);
    case DataType.UINT4:
    case DataType.FLOAT4E2M1:
      return unpack(new Uint8Array(words), n, 4, false);
    case DataType.INT2:
      return unpack(new Uint8Array(words), n, 2, true);
    case DataType.UINT2:
      return unpack(new Uint8Array(words), n, 2, false);
    default:
      throw new Error(`unreachable: ${dataTypeName(dt)} in int32_data`);
  }
}

/** float_data / double_data: fixed-width little-endian chunks; a single chunk is viewed, not copied. */
function fixedWidth<T extends ArrayBufferView>(
  chunks: PackedField,
  C: TypedArrayClass<T>,
  count: number,
  field: string,
  mismatch: Mismatch,
  w: Where,
): T {
  const size = C.BYTES_PER_ELEMENT;
  let bytes = 0;
  for (const c of chunks) bytes += c.byteLength;
  if (bytes % size !== 0) throw formatError(w, `${field} has ${bytes} bytes, not a multiple of ${size}`);
  if (bytes / size !== count) throw mismatch(field, bytes / size, count);
  if (chunks.length === 1) return view(C, chunks[0]!, count);
  const out = new C(count);
  const target = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  let at = 0;
  for (const c of chunks) {
    target.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Counts the varints in packed chunks (one terminating byte each) without decoding them. */
function countVarints(chunks: PackedField, field: string, w: Where): number {
  let count = 0;
  for (const c of chunks) {
    let run = 0;
    for (let i = 0; i < c.length; i++) {
      if (c[i]! < 0x80) {
        count++;
        run = 0;
      } else if (++run >= 10) {
        throw formatError(w, `${field} has a varint longer than 10 bytes`);
      }
    }
    if (run !== 0) throw formatError(w, `${field} ends inside a varint`);
  }
  return count;
}

/** Decodes int32 varints (negative values are 10-byte sign-extended; the low 32 bits are the value). */
function varints32(chunks: PackedField, count: number, field: string, mismatch: Mismatch, w: Where): Int32Array {
  const found = countVarints(chunks, field, w);
  if (found !== count) throw mismatch(field, found, count);
  const out = new Int32Array(count);
  let i = 0;
  for (const c of chunks) {
    let p = 0;
    while (p < c.length) {
      let v = 0;
      let shift = 0;
      let b: number;
      do {
        b = c[p++]!;
        if (shift < 32) v |= (b & 0x7f) << shift; // bits past 31 fall off, as in a C++ int32 read
        shift += 7;
      } while (b >= 0x80);
      out[i++] = v;
    }
  }
  return out;
}

/** Decodes 64-bit varints as (low, high) 32-bit word pairs, i.e. the little-endian int64 layout. */
function varints64(chunks: PackedField, count: number, field: string, mismatch: Mismatch, w: Where): Uint32Array {
  const found = countVarints(chunks, field, w);
  if (found !== count) throw mismatch(field, found, count);
  const out = new Uint32Array(2 * count);
  let i = 0;
  for (const c of chunks) {
    let p = 0;
    while (p < c.length) {
      let lo = 0;
      let hi = 0;
      let shift = 0;
      let b: number;
      do {
        b = c[p++]!;
        const bits = b & 0x7f;
        if (shift < 32) {
          lo |= bits << shift;
          if (shift > 25) hi |= bits >>> (32 - shift); // the group at bit 28 straddles both words
        } else {
          hi |= bits << (shift - 32);
        }
        shift += 7;
      } while (b >= 0x80);
      out[i++] = lo;
      out[i++] = hi;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Conversion to float, for statistics

interface FloatArrayClass<T extends Float32Array | Float64Array> {
  new (length: number): T;
}

/**
 * All values of a numeric tensor as float32: small float formats decoded (NaN/Inf as the format
 * defines them), integers and bools converted (int64 rounded, via float64). Complex tensors give
 * 2 × elements, interleaved. A float32 tensor's own array is returned as is (possibly a view of the
 * model buffer). Throws TypeError for strings, OnnxFormatError for bad data.
 */
export function tensorToFloat32(t: TensorProto, raw?: Uint8Array, file?: string): Float32Array {
  return toFloats(t, raw, file, Float32Array);
}

/** Like tensorToFloat32 with float64 output; exact for every type except int64/uint64 beyond 2^53. */
export function tensorToFloat64(t: TensorProto, raw?: Uint8Array, file?: string): Float64Array {
  return toFloats(t, raw, file, Float64Array);
}

/** Float values of every code of a small float type, or undefined for other types. */
function codeTable(dt: number): Float32Array | undefined {
  switch (dt) {
    case DataType.FLOAT16:
      return float16ToFloat32Table();
    case DataType.FLOAT8E4M3FN:
      return minifloatTable('e4m3fn');
    case DataType.FLOAT8E4M3FNUZ:
      return minifloatTable('e4m3fnuz');
    case DataType.FLOAT8E5M2:
      return minifloatTable('e5m2');
    case DataType.FLOAT8E5M2FNUZ:
      return minifloatTable('e5m2fnuz');
    case DataType.FLOAT4E2M1:
      return minifloatTable('e2m1');
    case DataType.FLOAT8E8M0:
      return float8E8M0Table();
    default:
      return undefined;
  }
}

function toFloats<T extends Float32Array | Float64Array>(t: TensorProto, raw: Uint8Array | undefined, file: string | undefined, C: FloatArrayClass<T>): T {
  const v = tensorValues(t, raw, file);
  if (v instanceof C) return v;
  if (Array.isArray(v)) throw new TypeError(`tensor "${t.name}": string tensors have no numeric values`);
  const n = v.length;
  const out = new C(n);
  if (v instanceof BigInt64Array || v instanceof BigUint64Array) {
    // Combine the two 32-bit halves instead of going through BigInt: much faster, same rounding.
    const words = new Uint32Array(v.buffer, v.byteOffset, 2 * n);
    const signed = v instanceof BigInt64Array;
    for (let i = 0; i < n; i++) {
      const hi = words[2 * i + 1]!;
      out[i] = (signed ? hi | 0 : hi) * 4294967296 + words[2 * i]!;
    }
    return out;
  }
  const table = codeTable(t.dataType);
  if (table) {
    for (let i = 0; i < n; i++) out[i] = table[v[i]!]!;
  } else if (t.dataType === DataType.BFLOAT16) {
    if (out instanceof Float32Array) {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = v[i]! << 16;
    } else {
      for (let i = 0; i < n; i++) out[i] = bfloat16BitsToFloat32(v[i]!);
    }
  } else {
    out.set(v); // integers, bools, float64 → float32 (rounded), float32 → float64 (exact)
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Replaces the data of `t` with `values` of type `dataType`, stored in raw_data (little-endian,
 * sub-byte types packed) or, for strings, string_data; other data fields and any external-data
 * reference are cleared. `values.length` must match t.dims (twice that for complex). When `values`
 * already is the storage type (e.g. a Float32Array for float32), raw_data is a view of it, not a
 * copy: do not modify it afterwards. Throws RangeError/TypeError for values that do not fit the
 * type; `t` is unchanged then.
 */
export function setTensorValues(t: TensorProto, values: TensorValuesInput, dataType: number): void {
  const w: Where = { name: t.name, file: undefined };
  if (!isKnownDataType(dataType) || dataType === DataType.UNDEFINED) {
    throw new RangeError(`tensor "${t.name}": cannot store values of type ${dataTypeName(dataType)}`);
  }
  const n = elementCount(t.dims, t.name);
  const expected = isComplex(dataType) ? 2 * n : n;
  if (values.length !== expected) {
    throw new RangeError(`tensor "${t.name}": ${values.length} values given, expected ${expected} for ${shapeText(t.dims, dataType)}`);
  }
  let rawData: Uint8Array | undefined;
  let stringData: Uint8Array[] = [];
  if (dataType === DataType.STRING) {
    const encoder = new TextEncoder();
    stringData = stringsOf(values, w).map((s) => encoder.encode(s));
  } else {
    rawData = rawBytes(dataType, values, w);
  }
  t.dataType = dataType;
  t.rawData = rawData;
  t.stringData = stringData;
  t.floatData = [];
  t.int32Data = [];
  t.int64Data = [];
  t.doubleData = [];
  t.uint64Data = [];
  t.externalData = [];
  t.dataLocation = TensorDataLocation.Default;
}

/** A new TensorProto holding `values` (see setTensorValues). */
export function makeTensor(name: string, dataType: number, dims: readonly number[], values: TensorValuesInput): TensorProto {
  const t = emptyTensor(name);
  t.dims = [...dims];
  setTensorValues(t, values, dataType);
  return t;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function valueError(w: Where, dt: number, i: number, v: unknown): RangeError {
  return new RangeError(`tensor "${w.name}": value ${String(v)} at index ${i} is not a valid ${dataTypeName(dt)}`);
}

function stringsOf(values: TensorValuesInput, w: Where): string[] {
  if (!Array.isArray(values)) throw new TypeError(`tensor "${w.name}": string tensors need an array of strings`);
  const out: string[] = [];
  for (let i = 0; i < values.length; i++) {
    const v: unknown = values[i];
    if (typeof v !== 'string') throw valueError(w, DataType.STRING, i, v);
    out.push(v);
  }
  return out;
}

/** Values as plain numbers: numeric typed arrays as they are, arrays checked element by element. */
function numbersOf(values: TensorValuesInput, dt: number, w: Where): ArrayLike<number> {
  if (values instanceof BigInt64Array || values instanceof BigUint64Array) {
    throw new TypeError(`tensor "${w.name}": bigint values cannot be stored as ${dataTypeName(dt)}`);
  }
  if (isTypedArray(values)) return values;
  const list: readonly unknown[] = values;
  for (let i = 0; i < list.length; i++) {
    if (typeof list[i] !== 'number') throw valueError(w, dt, i, list[i]);
  }
  return list as readonly number[];
}

function isTypedArray(v: TensorValuesInput): v is Exclude<TensorValues, string[]> {
  return ArrayBuffer.isView(v);
}

/** Integers checked against [min, max]; `values` itself when it already is a `C` of exactly that range. */
function integers<T extends Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array>(
  values: TensorValuesInput,
  C: TypedArrayClass<T> & { from(a: ArrayLike<number>): T },
  min: number,
  max: number,
  naturalRange: boolean,
  dt: number,
  w: Where,
): T {
  if (naturalRange && values instanceof C) return values;
  const nums = numbersOf(values, dt, w);
  for (let i = 0; i < nums.length; i++) {
    const v = nums[i]!;
    if (!Number.isInteger(v) || v < min || v > max) throw valueError(w, dt, i, v);
  }
  return values instanceof C ? values : C.from(nums);
}

function bools(values: TensorValuesInput, w: Where): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'boolean') out[i] = v ? 1 : 0;
    else if (typeof v === 'number' && !Number.isNaN(v)) out[i] = v === 0 ? 0 : 1;
    else throw valueError(w, DataType.BOOL, i, v);
  }
  return out;
}

function bigints(values: TensorValuesInput, signed: boolean, dt: number, w: Where): BigInt64Array | BigUint64Array {
  if (signed ? values instanceof BigInt64Array : values instanceof BigUint64Array) return values as BigInt64Array | BigUint64Array;
  const out = signed ? new BigInt64Array(values.length) : new BigUint64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    let big: bigint;
    if (typeof v === 'bigint') big = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) big = BigInt(v);
    else throw valueError(w, dt, i, v);
    if ((signed ? BigInt.asIntN(64, big) : BigInt.asUintN(64, big)) !== big) throw valueError(w, dt, i, v);
    out[i] = big;
  }
  return out;
}

/** Small float formats: a Uint16Array/Uint8Array is taken as bits, other numbers are rounded into the format. */
function floatBits<T extends Uint8Array | Uint16Array>(
  values: TensorValuesInput,
  C: TypedArrayClass<T>,
  convert: (x: number) => number,
  dt: number,
  w: Where,
): T {
  if (values instanceof C) return values;
  const nums = numbersOf(values, dt, w);
  const out = new C(nums.length);
  for (let i = 0; i < nums.length; i++) out[i] = convert(nums[i]!); // a plain loop: TypedArray.from(…, map) is ~20× slower
  return out;
}

function rawBytes(dt: DataType, values: TensorValuesInput, w: Where): Uint8Array {
  switch (dt) {
    case DataType.FLOAT:
    case DataType.COMPLEX64:
      return bytesOf(values instanceof Float32Array ? values : Float32Array.from(numbersOf(values, dt, w)));
    case DataType.DOUBLE:
    case DataType.COMPLEX128:
      return bytesOf(values instanceof Float64Array ? values : Float64Array.from(numbersOf(values, dt, w)));
    case DataType.FLOAT16:
      return bytesOf(floatBits(values, Uint16Array, float32ToFloat16Bits, dt, w));
    case DataType.BFLOAT16:
      return bytesOf(floatBits(values, Uint16Array, float32ToBfloat16Bits, dt, w));
    case DataType.FLOAT8E4M3FN:
      return floatBits(values, Uint8Array, (x) => float32ToFloat8E4M3FNBits(x), dt, w);
    case DataType.FLOAT8E4M3FNUZ:
      return floatBits(values, Uint8Array, (x) => float32ToFloat8E4M3FNUZBits(x), dt, w);
    case DataType.FLOAT8E5M2:
      return floatBits(values, Uint8Array, (x) => float32ToFloat8E5M2Bits(x), dt, w);
    case DataType.FLOAT8E5M2FNUZ:
      return floatBits(values, Uint8Array, (x) => float32ToFloat8E5M2FNUZBits(x), dt, w);
    case DataType.FLOAT8E8M0:
      return floatBits(values, Uint8Array, (x) => float32ToFloat8E8M0Bits(x), dt, w);
    case DataType.FLOAT4E2M1: {
      const codes = values instanceof Uint8Array ? integers(values, Uint8Array, 0, 15, false, dt, w) : floatBits(values, Uint8Array, float32ToFloat4E2M1Bits, dt, w);
      return pack(codes, 4);
    }
    case DataType.BOOL:
      return bools(values, w);
    case DataType.INT8:
      return bytesOf(integers(values, Int8Array, -128, 127, true, dt, w));
    case DataType.UINT8:
      return integers(values, Uint8Array, 0, 255, true, dt, w);
    case DataType.INT16:
      return bytesOf(integers(values, Int16Array, -32768, 32767, true, dt, w));
    case DataType.UINT16:
      return bytesOf(integers(values, Uint16Array, 0, 65535, true, dt, w));
    case DataType.INT32:
      return bytesOf(integers(values, Int32Array, -(2 ** 31), 2 ** 31 - 1, true, dt, w));
    case DataType.UINT32:
      return bytesOf(integers(values, Uint32Array, 0, 2 ** 32 - 1, true, dt, w));
    case DataType.INT64:
      return bytesOf(bigints(values, true, dt, w));
    case DataType.UINT64:
      return bytesOf(bigints(values, false, dt, w));
    case DataType.INT4:
      return pack(integers(values, Int8Array, -8, 7, false, dt, w), 4);
    case DataType.UINT4:
      return pack(integers(values, Uint8Array, 0, 15, false, dt, w), 4);
    case DataType.INT2:
      return pack(integers(values, Int8Array, -2, 1, false, dt, w), 2);
    case DataType.UINT2:
      return pack(integers(values, Uint8Array, 0, 3, false, dt, w), 2);
    case DataType.STRING:
    case DataType.UNDEFINED:
      throw new Error(`unreachable: ${dataTypeName(dt)} in raw_data`);
  }
}
