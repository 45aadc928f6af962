/**
 * numpy's .npy format (format versions 1.0, 2.0 and 3.0): reading into typed arrays and writing.
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 *
 * Reading accepts the numeric dtypes onnxruntime can feed, in either byte order and in C or
 * Fortran order; big-endian data is byte-swapped and Fortran-order data transposed to C order, so
 * callers always get a little-endian, row-major array. The header's length and the data's size are
 * checked against the file before anything is allocated from them.
 */
import * as fs from 'node:fs';
import { dataError, TensorData, TensorType } from './model-inputs';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

export type NpyType = Exclude<TensorType, 'string' | 'int4' | 'uint4'>;

export interface NpyArray {
  dtype: NpyType;
  /** Row-major (C order) dims; [] for a scalar. */
  shape: number[];
  /** Little-endian, C-order values; float16 as bits, bool as 0/1 bytes. */
  data: TensorData;
}

interface TypeInfo {
  kind: 'f' | 'i' | 'u' | 'b';
  size: 1 | 2 | 4 | 8;
  make: (buffer: ArrayBuffer, byteOffset: number, length: number) => TensorData;
}

const TYPES: Record<NpyType, TypeInfo> = {
  float16: { kind: 'f', size: 2, make: (b, o, n) => new Uint16Array(b, o, n) },
  float32: { kind: 'f', size: 4, make: (b, o, n) => new Float32Array(b, o, n) },
  float64: { kind: 'f', size: 8, make: (b, o, n) => new Float64Array(b, o, n) },
  int8: { kind: 'i', size: 1, make: (b, o, n) => new Int8Array(b, o, n) },
  uint8: { kind: 'u', size: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
  int16: { kind: 'i', size: 2, make: (b, o, n) => new Int16Array(b, o, n) },
  uint16: { kind: 'u', size: 2, make: (b, o, n) => new Uint16Array(b, o, n) },
  int32: { kind: 'i', size: 4, make: (b, o, n) => new Int32Array(b, o, n) },
  uint32: { kind: 'u', size: 4, make: (b, o, n) => new Uint32Array(b, o, n) },
  int64: { kind: 'i', size: 8, make: (b, o, n) => new BigInt64Array(b, o, n) },
  uint64: { kind: 'u', size: 8, make: (b, o, n) => new BigUint64Array(b, o, n) },
  bool: { kind: 'b', size: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
};

/** numpy's descr ('<f4', '|b1', …) of a type. */
export function npyDescr(dtype: NpyType): string {
  const t = TYPES[dtype];
  return `${t.size === 1 ? '|' : '<'}${t.kind}${t.size}`;
}

function typeOfDescr(descr: string): { dtype: NpyType; bigEndian: boolean } | undefined {
  const m = /^([<>|=]?)([fiub])([1248])$/.exec(descr);
  if (!m) return undefined;
  const [, order, kind, sizeText] = m;
  const size = Number(sizeText);
  for (const [name, t] of Object.entries(TYPES) as [NpyType, TypeInfo][]) {
    // '=' is native order, and onnx-quant runs on little-endian hosts only (see tensor-data.ts).
    if (t.kind === kind && t.size === size) return { dtype: name, bigEndian: order === '>' && size > 1 };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Header: a Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }

type PyValue = string | number | boolean | null | PyValue[] | Map<string, PyValue>;

class HeaderParser {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly fail: (message: string) => Error,
  ) {}

  parseAll(): PyValue {
    const v = this.value();
    this.space();
    if (this.pos !== this.text.length) throw this.fail(`unexpected text at character ${this.pos} of the header`);
    return v;
  }

  private space(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  private value(): PyValue {
    this.space();
    const c = this.text[this.pos];
    if (c === '{') return this.dict();
    if (c === '(' || c === '[') return this.sequence(c === '(' ? ')' : ']');
    if (c === "'" || c === '"') return this.string();
    const word = /^(True|False|None|-?\d+L?)/.exec(this.text.slice(this.pos));
    if (!word) throw this.fail(`unexpected ${c === undefined ? 'end' : `"${c}"`} at character ${this.pos} of the header`);
    this.pos += word[0].length;
    if (word[0] === 'True') return true;
    if (word[0] === 'False') return false;
    if (word[0] === 'None') return null;
    return Number(word[0].replace(/L$/, '')); // Python 2 wrote longs as "3L"
  }

  private string(): string {
    const quote = this.text[this.pos++]!;
    const end = this.text.indexOf(quote, this.pos);
    if (end < 0) throw this.fail('unterminated string in the header');
    const s = this.text.slice(this.pos, end);
    this.pos = end + 1;
    return s;
  }

  private sequence(close: string): PyValue[] {
    this.pos++;
    const items: PyValue[] = [];
    for (;;) {
      this.space();
      if (this.text[this.pos] === close) break;
      items.push(this.value());
      this.space();
      if (this.text[this.pos] === ',') this.pos++;
      else if (this.text[this.pos] !== close) throw this.fail(`expected "," or "${close}" at character ${this.pos} of the header`);
    }
    this.pos++;
    return items;
  }

  private dict(): Map<string, PyValue> {
    this.pos++;
    const map = new Map<string, PyValue>();
    for (;;) {
      this.space();
      if (this.text[this.pos] === '}') break;
      const key = this.value();
      if (typeof key !== 'string') throw this.fail('header keys must be strings');
      this.space();
      if (this.text[this.pos++] !== ':') throw this.fail(`expected ":" at character ${this.pos - 1} of the header`);
      map.set(key, this.value());
      this.space();
      if (this.text[this.pos] === ',') this.pos++;
      else if (this.text[this.pos] !== '}') throw this.fail(`expected "," or "}" at character ${this.pos} of the header`);
    }
    this.pos++;
    return map;
  }
}

interface Header {
  dtype: NpyType;
  bigEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
  dataOffset: number;
}

function readHeader(buf: Uint8Array, file: string): Header {
  const bad = (message: string) => dataError(file, `not a valid .npy file: ${message}`);
  if (buf.length < 10 || MAGIC.some((b, i) => buf[i] !== b)) throw bad('it does not start with the .npy magic string "\\x93NUMPY"');
  const major = buf[6]!;
  if (major < 1 || major > 3) throw bad(`format version ${major}.${buf[7]} is not supported (1.0, 2.0 and 3.0 are)`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const lengthBytes = major === 1 ? 2 : 4;
  if (buf.length < 8 + lengthBytes) throw bad('the file ends inside the header length');
  const headerLength = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = 8 + lengthBytes;
  const dataOffset = start + headerLength;
  if (dataOffset > buf.length) throw bad(`the header length ${headerLength} runs past the end of the file (${buf.length} bytes)`);
  // Versions 1 and 2 store the header in latin1, version 3 in utf8.
  const text = Buffer.from(buf.buffer, buf.byteOffset + start, headerLength).toString(major === 3 ? 'utf8' : 'latin1');
  const dict = new HeaderParser(text.trim(), (m) => bad(m)).parseAll();
  if (!(dict instanceof Map)) throw bad('the header is not a dictionary');
  const descr = dict.get('descr');
  const fortran = dict.get('fortran_order');
  const shape = dict.get('shape');
  if (typeof descr !== 'string') {
    throw dataError(file, `structured .npy arrays (descr ${JSON.stringify(descr ?? null)}) are not supported; save one plain array per input`);
  }
  const type = typeOfDescr(descr);
  if (!type) {
    throw dataError(file, `dtype '${descr}' is not supported (supported: float16/32/64, int8–64, uint8–64, bool)`);
  }
  if (typeof fortran !== 'boolean') throw bad("'fortran_order' is missing or not True/False");
  if (!Array.isArray(shape) || !shape.every((d): d is number => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`'shape' must be a tuple of non-negative integers, got ${JSON.stringify(shape ?? null)}`);
  }
  return { ...type, fortranOrder: fortran, shape, dataOffset };
}

function elementCount(shape: readonly number[], file: string): number {
  let n = 1;
  for (const d of shape) {
    if (d !== 0 && n > Number.MAX_SAFE_INTEGER / d) throw dataError(file, `not a valid .npy file: shape ${JSON.stringify(shape)} is too large`);
    n *= d;
  }
  return n;
}

/** Parses a whole .npy file. `file` names it in errors. */
export function parseNpy(buf: Uint8Array, file = '<buffer>'): NpyArray {
  const h = readHeader(buf, file);
  const info = TYPES[h.dtype];
  const count = elementCount(h.shape, file);
  const available = buf.length - h.dataOffset;
  if (count * info.size !== available) {
    const want = count * info.size;
    throw dataError(
      file,
      `${available < want ? 'truncated' : 'not a valid'} .npy file: shape ${JSON.stringify(h.shape)} of ${npyDescr(h.dtype)} needs ${want} bytes of data, the file has ${available}`,
    );
  }
  const at = buf.byteOffset + h.dataOffset;
  const plain = !h.bigEndian && !(h.fortranOrder && h.shape.length > 1);
  if (plain && at % info.size === 0) {
    // Zero-copy: numpy aligns data to 64 bytes, and our buffers are whole files.
    return { dtype: h.dtype, shape: h.shape, data: info.make(buf.buffer as ArrayBuffer, at, count) };
  }
  let bytes = new Uint8Array(buf.subarray(h.dataOffset)); // an aligned copy
  if (h.bigEndian) byteSwap(bytes, info.size);
  if (h.fortranOrder && h.shape.length > 1) bytes = fortranToC(bytes, h.shape, info.size);
  return { dtype: h.dtype, shape: h.shape, data: info.make(bytes.buffer, 0, count) };
}

function byteSwap(bytes: Uint8Array, size: number): void {
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

/** Column-major → row-major, moving whole elements as 8/16/32-bit words (no float canonicalization). */
function fortranToC(src: Uint8Array, shape: readonly number[], itemSize: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(src.length);
  const word = Math.min(itemSize, 4);
  const per = itemSize / word;
  const view = (b: Uint8Array) => (word === 1 ? b : word === 2 ? new Uint16Array(b.buffer, 0, b.length / 2) : new Uint32Array(b.buffer, 0, b.length / 4));
  const from = view(src);
  const to = view(out);
  const rank = shape.length;
  const fStride: number[] = [];
  for (let k = 0, s = 1; k < rank; k++) {
    fStride.push(s);
    s *= shape[k]!;
  }
  const index = new Array<number>(rank).fill(0);
  const count = src.length / itemSize;
  let f = 0; // Fortran offset of the current C-order element
  for (let c = 0; c < count; c++) {
    for (let j = 0; j < per; j++) to[c * per + j] = from[f * per + j]!;
    // Advance the C-order multi-index (last axis fastest), keeping f in step.
    for (let k = rank - 1; k >= 0; k--) {
      index[k]!++;
      f += fStride[k]!;
      if (index[k]! < shape[k]!) break;
      f -= fStride[k]! * shape[k]!;
      index[k] = 0;
    }
  }
  return out;
}

/** Reads and parses a .npy file; errors name the file. */
export async function readNpyFile(file: string): Promise<NpyArray> {
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch (err) {
    throw dataError(file, `cannot read: ${(err as Error).message}`);
  }
  return parseNpy(buf, file);
}

// ---------------------------------------------------------------------------------------------
// Writing

export type NpyValues = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

export interface WriteNpyOptions {
  /** Needed where the array type is ambiguous: 'float16' for a Uint16Array of bits, 'bool' for a Uint8Array of 0/1. */
  dtype?: NpyType;
  /** Format version; default 1 (2 when the header does not fit version 1's 16-bit length). */
  version?: 1 | 2 | 3;
}

function defaultType(values: NpyValues): NpyType {
  if (values instanceof Float32Array) return 'float32';
  if (values instanceof Float64Array) return 'float64';
  if (values instanceof Int8Array) return 'int8';
  if (values instanceof Uint8Array) return 'uint8';
  if (values instanceof Int16Array) return 'int16';
  if (values instanceof Uint16Array) return 'uint16';
  if (values instanceof Int32Array) return 'int32';
  if (values instanceof Uint32Array) return 'uint32';
  if (values instanceof BigInt64Array) return 'int64';
  return 'uint64';
}

/** A .npy file (C order, little-endian) holding `values` with `shape`. */
export function writeNpy(values: NpyValues, shape: readonly number[], options: WriteNpyOptions = {}): Uint8Array {
  const dtype = options.dtype ?? defaultType(values);
  const info = TYPES[dtype];
  if (values.BYTES_PER_ELEMENT !== info.size) {
    throw new TypeError(`writeNpy: a ${values.constructor.name} cannot hold ${dtype} values`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || count !== values.length) {
    throw new RangeError(`writeNpy: shape ${JSON.stringify(shape)} does not match ${values.length} values`);
  }
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${npyDescr(dtype)}', 'fortran_order': False, 'shape': ${dims}, }`;
  let version = options.version ?? 1;
  const encoded = Buffer.from(dict, version === 3 ? 'utf8' : 'latin1');
  if (version === 1 && encoded.length + 1 + 10 + 64 > 0xffff) version = 2;
  const prefix = version === 1 ? 10 : 12;
  // Pad with spaces so that the data starts on a 64-byte boundary, as numpy does.
  const padded = Math.ceil((prefix + encoded.length + 1) / 64) * 64;
  const headerLength = padded - prefix;
  const out = new Uint8Array(padded + values.byteLength);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, headerLength, true);
  else dv.setUint32(8, headerLength, true);
  out.fill(0x20, prefix, padded - 1);
  out.set(encoded, prefix);
  out[padded - 1] = 0x0a;
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), padded);
  return out;
}
