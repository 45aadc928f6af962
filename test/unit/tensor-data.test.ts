/**
 * Tensor element values: every data type decoded from raw_data and from its typed field through a
 * real encode → decode round trip, against bytes and values written out by hand here (not by the
 * code under test); float-format conversions against known bit patterns and a brute-force nearest
 * search; and the validation that keeps bad dims and lengths from reaching an allocation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeTensor } from '../../src/onnx/decode';
import { bitsPerElement, byteSizeOf, DataType, dataTypeFromName, dataTypeName } from '../../src/onnx/dtypes';
import { encodeTensor } from '../../src/onnx/encode';
import { OnnxFormatError } from '../../src/onnx/errors';
import * as ff from '../../src/onnx/float-formats';
import { emptyTensor, TensorDataLocation, TensorProto } from '../../src/onnx/proto';
import {
  elementCount,
  makeTensor,
  setTensorValues,
  tensorToFloat32,
  tensorToFloat64,
  tensorValues,
  TensorValues,
} from '../../src/onnx/tensor-data';

// ---- independent protobuf / little-endian encoders for the expected bytes ----

/** Unsigned LEB128 of the 64-bit two's complement, as protobuf writes int32/int64/uint64. */
function varint(v: bigint | number): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (x > 0x7fn) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

function varints(values: readonly (number | bigint)[]): Uint8Array {
  return Uint8Array.from(values.flatMap((v) => varint(v)));
}

function le(bytesPer: 2 | 4 | 8, values: readonly (number | bigint)[], kind: 'int' | 'uint' | 'float'): Uint8Array {
  const dv = new DataView(new ArrayBuffer(bytesPer * values.length));
  values.forEach((v, i) => {
    const at = i * bytesPer;
    if (kind === 'float') {
      if (bytesPer === 4) dv.setFloat32(at, Number(v), true);
      else dv.setFloat64(at, Number(v), true);
    } else if (bytesPer === 2) {
      if (kind === 'int') dv.setInt16(at, Number(v), true);
      else dv.setUint16(at, Number(v), true);
    } else if (bytesPer === 4) {
      if (kind === 'int') dv.setInt32(at, Number(v), true);
      else dv.setUint32(at, Number(v), true);
    } else if (kind === 'int') dv.setBigInt64(at, BigInt(v), true);
    else dv.setBigUint64(at, BigInt(v), true);
  });
  return new Uint8Array(dv.buffer);
}

function roundTrip(t: TensorProto): TensorProto {
  return decodeTensor(encodeTensor(t));
}

function plain(b: Uint8Array | undefined): number[] {
  return b ? Array.from(b) : [];
}

/** Element-wise Object.is (NaN equals NaN, -0 differs from 0), with a readable failure. */
function assertSameFloats(actual: ArrayLike<number>, expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Object.is(actual[i], expected[i]), `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`);
  }
}

// ---- one case per data type ----

interface Case {
  dt: DataType;
  dims: number[];
  /** The decoded representation tensorValues must return. */
  values: TensorValues;
  /** raw_data bytes, written by hand from the spec. */
  raw: Uint8Array;
  /** Stores the same values in the typed field the spec assigns to the type. */
  typed: (t: TensorProto) => void;
  /** What tensorToFloat32 must return. */
  floats: number[];
}

const int32Field = (vals: readonly number[]) => (t: TensorProto) => {
  t.int32Data = [varints(vals)];
};

const CASES: Case[] = [
  {
    dt: DataType.FLOAT,
    dims: [2, 2],
    values: new Float32Array([1.5, -2, 0, 3.25]),
    raw: le(4, [1.5, -2, 0, 3.25], 'float'),
    typed: (t) => (t.floatData = [le(4, [1.5, -2, 0, 3.25], 'float')]),
    floats: [1.5, -2, 0, 3.25],
  },
  {
    dt: DataType.UINT8,
    dims: [3],
    values: new Uint8Array([0, 200, 255]),
    raw: Uint8Array.from([0, 200, 255]),
    typed: int32Field([0, 200, 255]),
    floats: [0, 200, 255],
  },
  {
    dt: DataType.INT8,
    dims: [3],
    values: new Int8Array([-128, -1, 127]),
    raw: Uint8Array.from([0x80, 0xff, 0x7f]),
    typed: int32Field([-128, -1, 127]),
    floats: [-128, -1, 127],
  },
  {
    dt: DataType.UINT16,
    dims: [2],
    values: new Uint16Array([0, 65535]),
    raw: Uint8Array.from([0, 0, 0xff, 0xff]),
    typed: int32Field([0, 65535]),
    floats: [0, 65535],
  },
  {
    dt: DataType.INT16,
    dims: [2],
    values: new Int16Array([-32768, 32767]),
    raw: Uint8Array.from([0x00, 0x80, 0xff, 0x7f]),
    typed: int32Field([-32768, 32767]),
    floats: [-32768, 32767],
  },
  {
    dt: DataType.INT32,
    dims: [3],
    values: new Int32Array([-2147483648, -1, 2147483647]),
    raw: Uint8Array.from([0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
    typed: int32Field([-2147483648, -1, 2147483647]),
    floats: [-2147483648, -1, 2147483648],
  },
  {
    dt: DataType.INT64,
    dims: [4],
    values: new BigInt64Array([-(2n ** 63n), -1n, 2n ** 53n + 1n, 2n ** 63n - 1n]),
    raw: le(8, [-(2n ** 63n), -1n, 2n ** 53n + 1n, 2n ** 63n - 1n], 'int'),
    typed: (t) => (t.int64Data = [varints([-(2n ** 63n), -1n, 2n ** 53n + 1n, 2n ** 63n - 1n])]),
    floats: [-(2 ** 63), -1, 2 ** 53, 2 ** 63],
  },
  {
    dt: DataType.BOOL,
    dims: [3],
    values: new Uint8Array([1, 0, 1]),
    raw: Uint8Array.from([1, 0, 1]),
    typed: int32Field([1, 0, 1]),
    floats: [1, 0, 1],
  },
  {
    dt: DataType.FLOAT16,
    dims: [5],
    values: new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00]),
    raw: Uint8Array.from([0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x7c]),
    typed: int32Field([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00]),
    floats: [1, -2, 65504, 2 ** -24, Infinity],
  },
  {
    dt: DataType.DOUBLE,
    dims: [2],
    values: new Float64Array([Math.PI, -1e300]),
    raw: le(8, [Math.PI, -1e300], 'float'),
    typed: (t) => (t.doubleData = [le(8, [Math.PI, -1e300], 'float')]),
    floats: [Math.fround(Math.PI), -Infinity],
  },
  {
    dt: DataType.UINT32,
    dims: [2],
    values: new Uint32Array([0, 4294967295]),
    raw: Uint8Array.from([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
    typed: (t) => (t.uint64Data = [varints([0, 4294967295])]),
    floats: [0, 4294967296],
  },
  {
    dt: DataType.UINT64,
    dims: [2],
    values: new BigUint64Array([0n, 2n ** 64n - 1n]),
    raw: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    typed: (t) => (t.uint64Data = [varints([0n, 2n ** 64n - 1n])]),
    floats: [0, 2 ** 64],
  },
  {
    dt: DataType.COMPLEX64,
    dims: [2],
    values: new Float32Array([1, 2, 3, -4]),
    raw: le(4, [1, 2, 3, -4], 'float'),
    typed: (t) => (t.floatData = [le(4, [1, 2, 3, -4], 'float')]),
    floats: [1, 2, 3, -4],
  },
  {
    dt: DataType.COMPLEX128,
    dims: [1],
    values: new Float64Array([1.5, -2.5]),
    raw: le(8, [1.5, -2.5], 'float'),
    typed: (t) => (t.doubleData = [le(8, [1.5, -2.5], 'float')]),
    floats: [1.5, -2.5],
  },
  {
    dt: DataType.BFLOAT16,
    dims: [3],
    values: new Uint16Array([0x3f80, 0xc040, 0xff80]),
    raw: Uint8Array.from([0x80, 0x3f, 0x40, 0xc0, 0x80, 0xff]),
    typed: int32Field([0x3f80, 0xc040, 0xff80]),
    floats: [1, -3, -Infinity],
  },
  {
    dt: DataType.FLOAT8E4M3FN,
    dims: [4],
    values: new Uint8Array([0x7e, 0x38, 0xfe, 0x7f]),
    raw: Uint8Array.from([0x7e, 0x38, 0xfe, 0x7f]),
    typed: int32Field([0x7e, 0x38, 0xfe, 0x7f]),
    floats: [448, 1, -448, NaN],
  },
  {
    dt: DataType.FLOAT8E4M3FNUZ,
    dims: [4],
    values: new Uint8Array([0x40, 0x7f, 0x80, 0x01]),
    raw: Uint8Array.from([0x40, 0x7f, 0x80, 0x01]),
    typed: int32Field([0x40, 0x7f, 0x80, 0x01]),
    floats: [1, 240, NaN, 2 ** -10],
  },
  {
    dt: DataType.FLOAT8E5M2,
    dims: [4],
    values: new Uint8Array([0x3c, 0x7b, 0x7c, 0xfc]),
    raw: Uint8Array.from([0x3c, 0x7b, 0x7c, 0xfc]),
    typed: int32Field([0x3c, 0x7b, 0x7c, 0xfc]),
    floats: [1, 57344, Infinity, -Infinity],
  },
  {
    dt: DataType.FLOAT8E5M2FNUZ,
    dims: [3],
    values: new Uint8Array([0x40, 0x7f, 0x80]),
    raw: Uint8Array.from([0x40, 0x7f, 0x80]),
    typed: int32Field([0x40, 0x7f, 0x80]),
    floats: [1, 57344, NaN],
  },
  {
    dt: DataType.UINT4,
    dims: [3],
    values: new Uint8Array([1, 15, 7]),
    raw: Uint8Array.from([0xf1, 0x07]),
    typed: int32Field([0xf1, 0x07]), // two elements per int32 entry
    floats: [1, 15, 7],
  },
  {
    dt: DataType.INT4,
    dims: [3],
    values: new Int8Array([1, -1, 7]),
    raw: Uint8Array.from([0xf1, 0x07]),
    typed: int32Field([0xf1, 0x07]),
    floats: [1, -1, 7],
  },
  {
    dt: DataType.FLOAT4E2M1,
    dims: [2, 2],
    values: new Uint8Array([0x1, 0x7, 0xa, 0x0]),
    raw: Uint8Array.from([0x71, 0x0a]),
    typed: int32Field([0x71, 0x0a]),
    floats: [0.5, 6, -1, 0],
  },
  {
    dt: DataType.FLOAT8E8M0,
    dims: [4],
    values: new Uint8Array([127, 0, 254, 255]),
    raw: Uint8Array.from([127, 0, 254, 255]),
    typed: int32Field([127, 0, 254, 255]),
    floats: [1, 2 ** -127, 2 ** 127, NaN],
  },
  {
    dt: DataType.UINT2,
    dims: [5],
    values: new Uint8Array([1, 2, 0, 3, 1]),
    raw: Uint8Array.from([0b11_00_10_01, 0b01]),
    typed: int32Field([0b11_00_10_01, 0b01]), // four elements per int32 entry
    floats: [1, 2, 0, 3, 1],
  },
  {
    dt: DataType.INT2,
    dims: [5],
    values: new Int8Array([1, -2, 0, -1, 1]),
    raw: Uint8Array.from([0b11_00_10_01, 0b01]),
    typed: int32Field([0b11_00_10_01, 0b01]),
    floats: [1, -2, 0, -1, 1],
  },
];

function tensorWith(c: Case, store: (t: TensorProto) => void): TensorProto {
  const t = emptyTensor(`t_${dataTypeName(c.dt)}`);
  t.dims = [...c.dims];
  t.dataType = c.dt;
  store(t);
  return t;
}

describe('every data type: raw_data and typed field decode to the same values', () => {
  it('covers every non-string DataType', () => {
    const covered = new Set(CASES.map((c) => c.dt));
    for (let dt = 1; dt <= 26; dt++) {
      if (dt !== DataType.STRING) assert.ok(covered.has(dt), `no case for ${dataTypeName(dt)}`);
    }
  });

  for (const c of CASES) {
    describe(dataTypeName(c.dt), () => {
      it('decodes raw_data after encode → decode', () => {
        const t = roundTrip(tensorWith(c, (t) => (t.rawData = c.raw)));
        assert.deepStrictEqual(tensorValues(t), c.values);
        assertSameFloats(tensorToFloat32(t), c.floats.map(Math.fround), 'float32');
      });

      it('decodes the typed field after encode → decode, to the same values', () => {
        const t = roundTrip(tensorWith(c, c.typed));
        assert.equal(t.rawData, undefined);
        assert.deepStrictEqual(tensorValues(t), c.values);
        assertSameFloats(tensorToFloat32(t), c.floats.map(Math.fround), 'float32');
      });

      it('makeTensor writes the hand-written raw_data bytes', () => {
        const t = makeTensor('m', c.dt, c.dims, c.values);
        assert.deepStrictEqual(plain(t.rawData), plain(c.raw));
        assert.deepStrictEqual(tensorValues(roundTrip(t)), c.values);
      });

      it('tensorToFloat64 agrees with the float values', () => {
        const t = roundTrip(tensorWith(c, (t) => (t.rawData = c.raw)));
        // Float64 keeps what float32 rounds: compare after rounding, except where float32 is the source.
        const f64 = tensorToFloat64(t);
        assertSameFloats(Array.from(f64, Math.fround), c.floats.map(Math.fround), 'float64');
      });
    });
  }

  it('string: string_data round trip, and raw_data is rejected', () => {
    const t = makeTensor('s', DataType.STRING, [2], ['a', 'héllo ☃']);
    assert.equal(t.rawData, undefined);
    const back = roundTrip(t);
    assert.deepStrictEqual(tensorValues(back), ['a', 'héllo ☃']);
    back.rawData = new Uint8Array(2);
    assert.throws(() => tensorValues(back), (e: unknown) => e instanceof OnnxFormatError && /string tensors cannot use raw_data/.test(e.message));
    assert.throws(() => tensorToFloat32(roundTrip(t)), TypeError);
  });
});

describe('typed-field encodings written by other producers', () => {
  it('reads unpacked repeated float_data and int32_data (one tag per element)', () => {
    // Hand-built TensorProto: dims 2 (field 1), data_type FLOAT, float_data as two fixed32 fields.
    const f = le(4, [0.25, -8], 'float');
    const bytes = Uint8Array.from([0x08, 0x02, 0x10, 0x01, 0x25, ...f.subarray(0, 4), 0x25, ...f.subarray(4), 0x42, 0x01, 0x78]);
    const t = decodeTensor(bytes);
    assert.equal(t.name, 'x');
    assert.equal(t.floatData.length, 2);
    assert.deepStrictEqual(tensorValues(t), new Float32Array([0.25, -8]));

    // int8 in unpacked int32_data (field 5, varint): -1 is a 10-byte sign-extended varint.
    const i8 = Uint8Array.from([0x08, 0x02, 0x10, 0x03, 0x28, ...varint(-1), 0x28, ...varint(5)]);
    assert.deepStrictEqual(tensorValues(decodeTensor(i8)), new Int8Array([-1, 5]));
  });

  it('reads float_data split over several chunks', () => {
    const t = emptyTensor('chunks');
    t.dims = [3];
    t.dataType = DataType.FLOAT;
    t.floatData = [le(4, [1], 'float'), le(4, [2, 3], 'float')];
    assert.deepStrictEqual(tensorValues(t), new Float32Array([1, 2, 3]));
  });

  it('keeps the low 16 bits of float16 in int32_data, and any non-zero bool as true', () => {
    const h = emptyTensor('h');
    h.dims = [1];
    h.dataType = DataType.FLOAT16;
    h.int32Data = [varints([0x13c00])];
    assert.deepStrictEqual(tensorValues(h), new Uint16Array([0x3c00]));
    const b = emptyTensor('b');
    b.dims = [2];
    b.dataType = DataType.BOOL;
    b.int32Data = [varints([7, 0])];
    assert.deepStrictEqual(tensorValues(b), new Uint8Array([1, 0]));
    b.int32Data = [];
    b.rawData = Uint8Array.from([2, 0]);
    assert.deepStrictEqual(tensorValues(b), new Uint8Array([1, 0]));
  });
});

describe('shapes', () => {
  it('a scalar (dims []) has one element', () => {
    assert.equal(elementCount([]), 1);
    const t = roundTrip(makeTensor('s', DataType.FLOAT, [], [42]));
    assert.deepStrictEqual(t.dims, []);
    assert.deepStrictEqual(tensorValues(t), new Float32Array([42]));
    const i = roundTrip(makeTensor('i', DataType.INT64, [], [7n]));
    assert.deepStrictEqual(tensorValues(i), new BigInt64Array([7n]));
    const typed = emptyTensor('typed');
    typed.dataType = DataType.INT32;
    typed.int32Data = [varints([-3])];
    assert.deepStrictEqual(tensorValues(roundTrip(typed)), new Int32Array([-3]));
  });

  it('a tensor with a 0 dim is empty, from raw_data, typed fields or nothing', () => {
    assert.equal(elementCount([3, 0, 5]), 0);
    const t = roundTrip(makeTensor('e', DataType.FLOAT, [3, 0], []));
    assert.deepStrictEqual(tensorValues(t), new Float32Array(0));
    const none = emptyTensor('none');
    none.dims = [0];
    none.dataType = DataType.INT4;
    assert.deepStrictEqual(tensorValues(roundTrip(none)), new Int8Array(0));
    assert.deepStrictEqual(tensorToFloat32(none), new Float32Array(0));
    const s = emptyTensor('s');
    s.dims = [0, 2];
    s.dataType = DataType.STRING;
    assert.deepStrictEqual(tensorValues(s), []);
  });

  it('a 0 dim wins over dims whose product would be absurd', () => {
    assert.equal(elementCount([2 ** 40, 0, 2 ** 40]), 0);
  });

  it('absurd dims throw OnnxFormatError before anything is allocated', () => {
    assert.throws(() => elementCount([2 ** 40, 2 ** 40]), OnnxFormatError);
    const t = emptyTensor('huge');
    t.dims = [2 ** 40, 2 ** 40];
    t.dataType = DataType.FLOAT;
    t.rawData = new Uint8Array(8);
    assert.throws(
      () => tensorValues(t),
      (e: unknown) => e instanceof OnnxFormatError && e.tensor === 'huge' && /tensor "huge": dims \[1099511627776, 1099511627776\]/.test(e.message),
    );
    // Representable count but no such data: the length check fails, no 2^52-element array is made.
    t.dims = [2 ** 26, 2 ** 26];
    assert.throws(() => tensorValues(t), OnnxFormatError);
    t.rawData = undefined;
    assert.throws(() => tensorToFloat32(t), /float_data has 0 values, expected 4503599627370496/);
  });

  it('negative and non-integer dims throw OnnxFormatError', () => {
    assert.throws(() => elementCount([2, -1]), OnnxFormatError);
    assert.throws(() => elementCount([1.5]), OnnxFormatError);
    const t = emptyTensor('neg');
    t.dims = [-4];
    t.dataType = DataType.UINT8;
    t.rawData = new Uint8Array(0);
    assert.throws(() => tensorValues(t), (e: unknown) => e instanceof OnnxFormatError && e.tensor === 'neg');
  });
});

describe('validation of data against dims', () => {
  it('raw_data of the wrong length names the tensor, sizes, dims and type', () => {
    const t = emptyTensor('w');
    t.dims = [2];
    t.dataType = DataType.FLOAT;
    t.rawData = new Uint8Array(7);
    assert.throws(
      () => tensorValues(roundTrip(t)),
      (e: unknown) =>
        e instanceof OnnxFormatError &&
        e.tensor === 'w' &&
        e.message === 'tensor "w": raw_data has 7 bytes, expected 8 for dims [2] of type float32',
    );
  });

  it('names the file when given one', () => {
    const t = emptyTensor('w');
    t.dims = [3];
    t.dataType = DataType.INT4;
    t.rawData = new Uint8Array(1);
    assert.throws(
      () => tensorValues(t, undefined, 'model.onnx'),
      (e: unknown) => e instanceof OnnxFormatError && e.file === 'model.onnx' && e.message === 'model.onnx: tensor "w": raw_data has 1 bytes, expected 2 for dims [3] of type int4',
    );
  });

  it('typed fields with the wrong count are rejected', () => {
    const t = emptyTensor('typed');
    t.dims = [2, 2];
    t.dataType = DataType.FLOAT;
    t.floatData = [le(4, [1, 2, 3], 'float')];
    assert.throws(() => tensorValues(roundTrip(t)), /tensor "typed": float_data has 3 values, expected 4 for dims \[2, 2\] of type float32/);
    t.dataType = DataType.INT4;
    t.floatData = [];
    t.int32Data = [varints([1, 2, 3])]; // 4 int4 values take 2 entries
    assert.throws(() => tensorValues(t), /int32_data has 3 values, expected 2/);
    t.dataType = DataType.INT64;
    t.int32Data = [];
    assert.throws(() => tensorValues(t), /int64_data has 0 values, expected 4/);
  });

  it('rejects truncated varints and fixed-width data of a partial element', () => {
    const t = emptyTensor('bad');
    t.dims = [1];
    t.dataType = DataType.INT32;
    t.int32Data = [Uint8Array.from([0x80])];
    assert.throws(() => tensorValues(t), /int32_data ends inside a varint/);
    t.int32Data = [new Uint8Array(11).fill(0x80)];
    assert.throws(() => tensorValues(t), /longer than 10 bytes/);
    t.dataType = DataType.DOUBLE;
    t.int32Data = [];
    t.doubleData = [new Uint8Array(6)];
    assert.throws(() => tensorValues(t), /double_data has 6 bytes, not a multiple of 8/);
  });

  it('external data must be passed in, and is checked like raw_data', () => {
    const t = emptyTensor('ext');
    t.dims = [2];
    t.dataType = DataType.INT16;
    t.dataLocation = TensorDataLocation.External;
    t.externalData = [{ key: 'location', value: 'w.bin' }];
    assert.throws(() => tensorValues(t), /tensor "ext": data is stored in an external file/);
    assert.deepStrictEqual(tensorValues(t, Uint8Array.from([1, 0, 0xff, 0xff])), new Int16Array([1, -1]));
    assert.throws(() => tensorValues(t, new Uint8Array(3)), /tensor "ext": external data has 3 bytes, expected 4/);
  });

  it('unknown and undefined data types are format errors', () => {
    const t = emptyTensor('u');
    t.dims = [1];
    t.dataType = 99;
    t.rawData = new Uint8Array(1);
    assert.throws(() => tensorValues(t), (e: unknown) => e instanceof OnnxFormatError && /unsupported data type unknown\(99\)/.test(e.message));
    t.dataType = DataType.UNDEFINED;
    assert.throws(() => tensorValues(t), /unsupported data type undefined/);
  });
});

describe('alignment of raw_data views', () => {
  it('aligned raw_data is viewed without copying', () => {
    const source = new Uint8Array(16);
    source.set(le(4, [1, 2], 'float'), 8);
    const t = emptyTensor('a');
    t.dims = [2];
    t.dataType = DataType.FLOAT;
    t.rawData = source.subarray(8, 16);
    const v = tensorValues(t);
    assert.ok(v instanceof Float32Array);
    assert.equal(v.buffer, source.buffer);
    assert.deepStrictEqual(v, new Float32Array([1, 2]));
  });

  it('unaligned raw_data (odd offset) is copied into an aligned array', () => {
    const buf = Buffer.alloc(1 + 16);
    buf.set(le(8, [-5n, 2n ** 40n], 'int'), 1);
    const t = emptyTensor('u');
    t.dims = [2];
    t.dataType = DataType.INT64;
    t.rawData = buf.subarray(1);
    const v = tensorValues(t);
    assert.ok(v instanceof BigInt64Array);
    assert.notEqual(v.buffer, buf.buffer);
    assert.deepStrictEqual(v, new BigInt64Array([-5n, 2n ** 40n]));
    assertSameFloats(tensorToFloat32(t), [-5, 2 ** 40], 'int64 → float32');
  });

  it('every multi-byte type decodes from a buffer shifted by each of 1..7 bytes', () => {
    for (const c of CASES) {
      const encoded = encodeTensor(tensorWith(c, (t) => (t.rawData = c.raw)));
      for (let shift = 1; shift < 8; shift++) {
        const buf = Buffer.alloc(encoded.length + shift);
        buf.set(encoded, shift);
        const t = decodeTensor(buf.subarray(shift));
        assert.deepStrictEqual(tensorValues(t), c.values, `${dataTypeName(c.dt)} shifted by ${shift}`);
      }
    }
  });

  it('float_data (a single packed chunk) is viewed when aligned, copied when not', () => {
    for (const shift of [0, 1, 2, 3]) {
      const buf = new Uint8Array(4 + 12);
      buf.set(le(4, [7, 8, 9], 'float'), shift);
      const t = emptyTensor('f');
      t.dims = [3];
      t.dataType = DataType.FLOAT;
      t.floatData = [buf.subarray(shift, shift + 12)];
      const v = tensorValues(t);
      assert.deepStrictEqual(v, new Float32Array([7, 8, 9]));
      assert.equal(v.buffer === buf.buffer, shift === 0);
    }
  });
});

describe('tensorToFloat32 / tensorToFloat64', () => {
  it('returns a float32 tensor as is and converts int64 with rounding', () => {
    const source = new Float32Array([1, 2]);
    const t = makeTensor('f', DataType.FLOAT, [2], source);
    assert.equal(tensorToFloat32(t).buffer, source.buffer); // no copy at either step
    const big = makeTensor('b', DataType.INT64, [3], [-(2n ** 63n), 2n ** 53n + 1n, 123n]);
    assertSameFloats(tensorToFloat64(big), [-(2 ** 63), 2 ** 53, 123], 'int64 → float64');
    const u = makeTensor('u', DataType.UINT64, [1], [2n ** 63n]);
    assertSameFloats(tensorToFloat32(u), [2 ** 63], 'uint64 → float32');
  });

  it('float64 output keeps double values exactly', () => {
    const t = makeTensor('d', DataType.DOUBLE, [2], [0.1, 1e300]);
    assertSameFloats(tensorToFloat64(t), [0.1, 1e300], 'double');
  });

  it('bfloat16 → float64 matches the float32 path', () => {
    const t = makeTensor('bf', DataType.BFLOAT16, [3], new Uint16Array([0x3f80, 0x0001, 0x7fc0]));
    assertSameFloats(tensorToFloat64(t), [1, 2 ** -133, NaN], 'bf16');
  });
});

describe('setTensorValues / makeTensor', () => {
  it('rounds plain numbers into the small float formats', () => {
    assert.deepStrictEqual(tensorValues(makeTensor('h', DataType.FLOAT16, [3], [1, -2, 65504])), new Uint16Array([0x3c00, 0xc000, 0x7bff]));
    assert.deepStrictEqual(tensorValues(makeTensor('b', DataType.BFLOAT16, [1], [1])), new Uint16Array([0x3f80]));
    assert.deepStrictEqual(tensorValues(makeTensor('e', DataType.FLOAT8E4M3FN, [2], [448, 1e9])), new Uint8Array([0x7e, 0x7e]));
    assert.deepStrictEqual(tensorValues(makeTensor('f4', DataType.FLOAT4E2M1, [3], [6, -0.5, 100])), new Uint8Array([0x7, 0x9, 0x7]));
  });

  it('takes booleans, numbers and bigints where they fit', () => {
    assert.deepStrictEqual(plain(makeTensor('b', DataType.BOOL, [3], [true, false, true]).rawData), [1, 0, 1]);
    assert.deepStrictEqual(tensorValues(makeTensor('i', DataType.INT64, [2], [-1, 2 ** 53 - 1])), new BigInt64Array([-1n, 2n ** 53n - 1n]));
    assert.deepStrictEqual(tensorValues(makeTensor('c', DataType.UINT64, [1], new BigInt64Array([5n]))), new BigUint64Array([5n]));
  });

  it('rejects values that do not fit instead of wrapping them', () => {
    assert.throws(() => makeTensor('a', DataType.INT8, [1], [200]), /tensor "a": value 200 at index 0 is not a valid int8/);
    assert.throws(() => makeTensor('a', DataType.INT4, [2], new Int8Array([7, 8])), /value 8 at index 1 is not a valid int4/);
    assert.throws(() => makeTensor('a', DataType.UINT2, [1], [4]), RangeError);
    assert.throws(() => makeTensor('a', DataType.INT32, [1], [1.5]), RangeError);
    assert.throws(() => makeTensor('a', DataType.UINT64, [1], [-1n]), RangeError);
    assert.throws(() => makeTensor('a', DataType.INT64, [1], [2 ** 60]), RangeError);
    assert.throws(() => makeTensor('a', DataType.FLOAT, [1], ['x']), RangeError);
    assert.throws(() => makeTensor('a', DataType.FLOAT, [1], [1n]), RangeError);
    assert.throws(() => makeTensor('a', DataType.STRING, [1], [1]), RangeError);
    assert.throws(() => makeTensor('a', DataType.FLOAT, [2, 2], [1, 2, 3]), /3 values given, expected 4 for dims \[2, 2\] of type float32/);
    assert.throws(() => makeTensor('a', DataType.COMPLEX64, [2], [1, 2]), /expected 4/);
    assert.throws(() => makeTensor('a', 0, [1], [1]), RangeError);
  });

  it('replaces every other data field and the external reference, and leaves t alone on error', () => {
    const t = emptyTensor('r');
    t.dims = [2];
    t.dataType = DataType.FLOAT;
    t.floatData = [le(4, [1, 2], 'float')];
    t.dataLocation = TensorDataLocation.External;
    t.externalData = [{ key: 'location', value: 'x.bin' }];
    assert.throws(() => setTensorValues(t, [1, 300], DataType.UINT8), RangeError);
    assert.equal(t.dataType, DataType.FLOAT);
    assert.equal(t.floatData.length, 1);
    setTensorValues(t, [3, 4], DataType.UINT8);
    assert.equal(t.dataType, DataType.UINT8);
    assert.deepStrictEqual(t.floatData, []);
    assert.deepStrictEqual(t.externalData, []);
    assert.equal(t.dataLocation, TensorDataLocation.Default);
    assert.deepStrictEqual(tensorValues(roundTrip(t)), new Uint8Array([3, 4]));
  });
});

// ---- float formats ----

describe('float16', () => {
  it('decodes known bit patterns', () => {
    assert.equal(ff.float16BitsToFloat32(0x3c00), 1);
    assert.equal(ff.float16BitsToFloat32(0xc000), -2);
    assert.equal(ff.float16BitsToFloat32(0x7bff), 65504);
    assert.equal(ff.float16BitsToFloat32(0x0001), 2 ** -24);
    assert.equal(ff.float16BitsToFloat32(0x03ff), 1023 * 2 ** -24);
    assert.equal(ff.float16BitsToFloat32(0x0400), 2 ** -14);
    assert.equal(ff.float16BitsToFloat32(0x7c00), Infinity);
    assert.equal(ff.float16BitsToFloat32(0xfc00), -Infinity);
    assert.ok(Number.isNaN(ff.float16BitsToFloat32(0x7e00)));
    assert.ok(Object.is(ff.float16BitsToFloat32(0x8000), -0));
  });

  it('every non-NaN pattern survives decode → encode', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue;
      assert.equal(ff.float32ToFloat16Bits(ff.float16BitsToFloat32(h)), h);
    }
  });

  it('rounds to nearest, ties to even, at every boundary kind', () => {
    assert.equal(ff.float32ToFloat16Bits(1 + 2 ** -11), 0x3c00); // tie → even (1)
    assert.equal(ff.float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (1 + 2^-9)
    assert.equal(ff.float32ToFloat16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01);
    assert.equal(ff.float32ToFloat16Bits(2 ** -25), 0x0000); // half the smallest subnormal → 0
    assert.equal(ff.float32ToFloat16Bits(1.5 * 2 ** -25), 0x0001);
    assert.equal(ff.float32ToFloat16Bits(3 * 2 ** -25), 0x0002); // subnormal tie → even
    assert.equal(ff.float32ToFloat16Bits(-(2 ** -30)), 0x8000);
    assert.equal(ff.float32ToFloat16Bits(65519), 0x7bff);
    assert.equal(ff.float32ToFloat16Bits(65520), 0x7c00); // tie between 65504 and 2^16 → Inf
    assert.equal(ff.float32ToFloat16Bits(1e10), 0x7c00);
    assert.equal(ff.float32ToFloat16Bits(-Infinity), 0xfc00);
    assert.equal(ff.float32ToFloat16Bits(NaN) & 0x7e00, 0x7e00);
    assert.equal(ff.float32ToFloat16Bits((1023.5 * 2 ** -24)), 0x0400); // carries into the smallest normal
  });

  it('agrees with a brute-force nearest search on random values', () => {
    const finite: number[] = [];
    for (let h = 0; h < 0x7c00; h++) finite.push(ff.float16BitsToFloat32(h));
    checkNearest(finite, (x) => ff.float32ToFloat16Bits(x), 65504, 3000, 0x7c00);
  });
});

describe('bfloat16', () => {
  it('decodes known patterns and round-trips every non-NaN pattern', () => {
    assert.equal(ff.bfloat16BitsToFloat32(0x3f80), 1);
    assert.equal(ff.bfloat16BitsToFloat32(0xc040), -3);
    assert.equal(ff.bfloat16BitsToFloat32(0x7f80), Infinity);
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7f80) === 0x7f80 && h & 0x7f) continue;
      assert.equal(ff.float32ToBfloat16Bits(ff.bfloat16BitsToFloat32(h)), h);
    }
  });

  it('rounds to nearest even and keeps NaN a NaN', () => {
    assert.equal(ff.float32ToBfloat16Bits(1 + 2 ** -8), 0x3f80); // tie → even
    assert.equal(ff.float32ToBfloat16Bits(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(ff.float32ToBfloat16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
    assert.ok(Number.isNaN(ff.bfloat16BitsToFloat32(ff.float32ToBfloat16Bits(NaN))));
    // A NaN whose payload sits only in the dropped bits must not become Inf.
    const f = new Float32Array(new Uint32Array([0x7f800001]).buffer)[0]!;
    assert.ok(Number.isNaN(ff.bfloat16BitsToFloat32(ff.float32ToBfloat16Bits(f))));
  });
});

/** Positive finite values of a format, in code order. */
function positives(decode: (c: number) => number, codes: number): number[] {
  const out: number[] = [];
  for (let c = 0; c < codes; c++) {
    const v = decode(c);
    if (Number.isFinite(v) && v >= 0 && !(Object.is(v, 0) && c !== 0)) out.push(v);
  }
  return out;
}

/**
 * Independent check of RNE: for values between each pair of neighbours (and random values), the
 * code must decode to the nearest neighbour, and to the one with an even code on a tie.
 */
function checkNearest(values: number[], encode: (x: number) => number, max: number, randomCount: number, overflowCode?: number): void {
  const sorted = [...values].sort((a, b) => a - b);
  const codeOf = new Map(sorted.map((v) => [v, encode(v)]));
  const expectFor = (x: number): number => {
    let lo = 0;
    let hi = sorted.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! <= x) lo = mid;
      else hi = mid;
    }
    const a = sorted[lo]!;
    const b = sorted[hi]!;
    if (x <= a) return codeOf.get(a)!;
    if (x >= b) return codeOf.get(b)!;
    const da = x - a;
    const db = b - x;
    if (da < db) return codeOf.get(a)!;
    if (db < da) return codeOf.get(b)!;
    const ca = codeOf.get(a)!;
    return ca % 2 === 0 ? ca : codeOf.get(b)!;
  };
  for (let i = 0; i + 1 < sorted.length; i++) {
    const a = sorted[i]!;
    const b = sorted[i + 1]!;
    const mid = (a + b) / 2;
    for (const x of [mid, Math.fround(mid * (1 - 2 ** -20)), Math.fround(mid * (1 + 2 ** -20)), Math.fround(a + (b - a) / 3)]) {
      if (x <= 0) continue;
      assert.equal(encode(x), expectFor(x), `x = ${x} between ${a} and ${b}`);
    }
  }
  let seed = 12345;
  for (let i = 0; i < randomCount; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const x = Math.fround((seed / 2 ** 31) * max * 1.0);
    if (x > 0 && x < max) assert.equal(encode(x), expectFor(x), `random x = ${x}`);
  }
  if (overflowCode !== undefined) assert.equal(encode(max * 4), overflowCode);
}

describe('float8', () => {
  it('decodes the spec examples', () => {
    assert.equal(ff.float8E4M3FNBitsToFloat32(0x7e), 448);
    assert.ok(Number.isNaN(ff.float8E4M3FNBitsToFloat32(0x7f)));
    assert.ok(Number.isNaN(ff.float8E4M3FNBitsToFloat32(0xff)));
    assert.equal(ff.float8E4M3FNBitsToFloat32(0x01), 2 ** -9);
    assert.ok(Object.is(ff.float8E4M3FNBitsToFloat32(0x80), -0));
    assert.equal(ff.float8E4M3FNUZBitsToFloat32(0x7f), 240);
    assert.ok(Number.isNaN(ff.float8E4M3FNUZBitsToFloat32(0x80)));
    assert.equal(ff.float8E4M3FNUZBitsToFloat32(0xff), -240);
    assert.equal(ff.float8E5M2BitsToFloat32(0x7b), 57344);
    assert.equal(ff.float8E5M2BitsToFloat32(0x7c), Infinity);
    assert.equal(ff.float8E5M2BitsToFloat32(0xfc), -Infinity);
    assert.ok(Number.isNaN(ff.float8E5M2BitsToFloat32(0x7d)));
    assert.equal(ff.float8E5M2BitsToFloat32(0x01), 2 ** -16);
    assert.equal(ff.float8E5M2FNUZBitsToFloat32(0x7f), 57344);
    assert.ok(Number.isNaN(ff.float8E5M2FNUZBitsToFloat32(0x80)));
    assert.equal(ff.float8E5M2FNUZBitsToFloat32(0x01), 2 ** -17);
  });

  const formats = [
    { name: 'e4m3fn', dec: ff.float8E4M3FNBitsToFloat32, enc: ff.float32ToFloat8E4M3FNBits, max: 448 },
    { name: 'e4m3fnuz', dec: ff.float8E4M3FNUZBitsToFloat32, enc: ff.float32ToFloat8E4M3FNUZBits, max: 240 },
    { name: 'e5m2', dec: ff.float8E5M2BitsToFloat32, enc: ff.float32ToFloat8E5M2Bits, max: 57344 },
    { name: 'e5m2fnuz', dec: ff.float8E5M2FNUZBitsToFloat32, enc: ff.float32ToFloat8E5M2FNUZBits, max: 57344 },
  ] as const;

  for (const f of formats) {
    it(`${f.name}: every non-NaN code survives decode → encode, and the table matches`, () => {
      const table = ff.minifloatTable(f.name);
      for (let c = 0; c < 256; c++) {
        const v = f.dec(c);
        assert.ok(Object.is(table[c], v) || (Number.isNaN(table[c]!) && Number.isNaN(v)));
        if (!Number.isNaN(v)) assert.equal(f.enc(v, false), c, `code 0x${c.toString(16)}`);
      }
    });

    it(`${f.name}: rounds to the nearest value, ties to even`, () => {
      const pos = positives(f.dec, 128);
      assert.equal(pos[pos.length - 1], f.max);
      checkNearest(pos, (x) => f.enc(x), f.max, 2000);
      // Negative values mirror positive ones.
      for (const v of pos.slice(1)) assert.equal(f.dec(f.enc(-v)), -v);
    });
  }

  it('saturation follows Cast: ±max when saturating, else Inf (e5m2) or NaN', () => {
    // e4m3fn: 464 is the tie between 448 (even code 0x7E) and the missing 480 → 448 either way.
    assert.equal(ff.float32ToFloat8E4M3FNBits(464, false), 0x7e);
    assert.equal(ff.float32ToFloat8E4M3FNBits(465, true), 0x7e);
    assert.equal(ff.float32ToFloat8E4M3FNBits(465, false) & 0x7f, 0x7f);
    assert.equal(ff.float32ToFloat8E4M3FNBits(-Infinity, true), 0xfe);
    assert.equal(ff.float32ToFloat8E4M3FNBits(Infinity, false) & 0x7f, 0x7f);
    assert.equal(ff.float32ToFloat8E4M3FNBits(NaN) & 0x7f, 0x7f);
    assert.equal(ff.float32ToFloat8E4M3FNBits(-0), 0x80);
    // e4m3fnuz: one NaN (0x80), no negative zero.
    assert.equal(ff.float32ToFloat8E4M3FNUZBits(Infinity, true), 0x7f);
    assert.equal(ff.float32ToFloat8E4M3FNUZBits(-1000, true), 0xff);
    assert.equal(ff.float32ToFloat8E4M3FNUZBits(Infinity, false), 0x80);
    assert.equal(ff.float32ToFloat8E4M3FNUZBits(1000, false), 0x80);
    assert.equal(ff.float32ToFloat8E4M3FNUZBits(NaN), 0x80);
    assert.equal(ff.float32ToFloat8E4M3FNUZBits(-0), 0x00);
    assert.equal(ff.float32ToFloat8E4M3FNUZBits(-(2 ** -20)), 0x00); // underflow loses the sign too
    // e5m2: Inf exists; 61440 ties 57344 (odd 0x7B) with 2^16's code → rounds up, overflows.
    assert.equal(ff.float32ToFloat8E5M2Bits(61440, true), 0x7b);
    assert.equal(ff.float32ToFloat8E5M2Bits(61440, false), 0x7c);
    assert.equal(ff.float32ToFloat8E5M2Bits(61439, false), 0x7b);
    assert.equal(ff.float32ToFloat8E5M2Bits(-Infinity, false), 0xfc);
    assert.equal(ff.float32ToFloat8E5M2Bits(-Infinity, true), 0xfb);
    assert.equal(ff.float32ToFloat8E5M2Bits(NaN) & 0x7f, 0x7f);
    // e5m2fnuz
    assert.equal(ff.float32ToFloat8E5M2FNUZBits(1e6, true), 0x7f);
    assert.equal(ff.float32ToFloat8E5M2FNUZBits(-1e6, true), 0xff);
    assert.equal(ff.float32ToFloat8E5M2FNUZBits(1e6, false), 0x80);
    assert.equal(ff.float32ToFloat8E5M2FNUZBits(-Infinity, false), 0x80);
  });
});

describe('float4e2m1 and float8e8m0', () => {
  it('float4e2m1: all 16 codes, nearest-even rounding, clamping', () => {
    const expected = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
    for (let c = 0; c < 16; c++) {
      const v = ff.float4E2M1BitsToFloat32(c);
      assert.ok(Object.is(v, c < 8 ? expected[c] : -expected[c - 8]!));
      assert.equal(ff.float32ToFloat4E2M1Bits(v), c);
    }
    checkNearest(expected, ff.float32ToFloat4E2M1Bits, 6, 500);
    assert.equal(ff.float32ToFloat4E2M1Bits(5), 0x6); // tie 4 (even code 6) vs 6 (code 7)
    assert.equal(ff.float32ToFloat4E2M1Bits(2.5), 0x4); // tie 2 (code 4) vs 3 (code 5)
    assert.equal(ff.float32ToFloat4E2M1Bits(0.25), 0x0);
    assert.equal(ff.float32ToFloat4E2M1Bits(7), 0x7);
    assert.equal(ff.float32ToFloat4E2M1Bits(-Infinity), 0xf);
    assert.equal(ff.float32ToFloat4E2M1Bits(NaN), 0x7);
  });

  it('float8e8m0: powers of two, NaN at 0xFF, rounding modes', () => {
    assert.equal(ff.float8E8M0BitsToFloat32(127), 1);
    assert.equal(ff.float8E8M0BitsToFloat32(0), 2 ** -127);
    assert.equal(ff.float8E8M0BitsToFloat32(254), 2 ** 127);
    assert.ok(Number.isNaN(ff.float8E8M0BitsToFloat32(255)));
    assert.equal(ff.float32ToFloat8E8M0Bits(1), 127);
    assert.equal(ff.float32ToFloat8E8M0Bits(3), 129); // 'up' → 4
    assert.equal(ff.float32ToFloat8E8M0Bits(3, true, 'down'), 128);
    assert.equal(ff.float32ToFloat8E8M0Bits(3.1, true, 'nearest'), 129); // nearer 4 than 2
    assert.equal(ff.float32ToFloat8E8M0Bits(2.9, true, 'nearest'), 128);
    assert.equal(ff.float32ToFloat8E8M0Bits(2.5, true, 'nearest'), 128);
    assert.equal(ff.float32ToFloat8E8M0Bits(3, true, 'nearest'), 128); // tie → even code
    assert.equal(ff.float32ToFloat8E8M0Bits(Infinity, true), 254);
    assert.equal(ff.float32ToFloat8E8M0Bits(Infinity, false), 255);
    assert.equal(ff.float32ToFloat8E8M0Bits(2 ** 127 * 1.5, false), 255);
    assert.equal(ff.float32ToFloat8E8M0Bits(0), 0);
    assert.equal(ff.float32ToFloat8E8M0Bits(-1), 255);
  });
});

describe('dtypes', () => {
  it('names every type and parses them back', () => {
    for (let t = 0; t <= 26; t++) {
      const name = dataTypeName(t);
      assert.doesNotMatch(name, /unknown/);
      assert.equal(dataTypeFromName(name), t);
      assert.equal(dataTypeFromName(DataType[t]!), t);
    }
    assert.equal(dataTypeName(DataType.FLOAT), 'float32');
    assert.equal(dataTypeName(DataType.DOUBLE), 'float64');
    assert.equal(dataTypeName(DataType.FLOAT8E4M3FN), 'float8e4m3fn');
    assert.equal(dataTypeName(27), 'unknown(27)');
    assert.equal(dataTypeName(-1), 'unknown(-1)');
    assert.equal(dataTypeFromName('Float'), DataType.FLOAT);
    assert.equal(dataTypeFromName('double'), DataType.DOUBLE);
    assert.equal(dataTypeFromName('nope'), undefined);
  });

  it('bits and byte sizes', () => {
    assert.equal(bitsPerElement(DataType.INT4), 4);
    assert.equal(bitsPerElement(DataType.FLOAT4E2M1), 4);
    assert.equal(bitsPerElement(DataType.UINT2), 2);
    assert.equal(bitsPerElement(DataType.STRING), 0);
    assert.equal(bitsPerElement(DataType.COMPLEX128), 128);
    assert.equal(bitsPerElement(99), 0);
    assert.equal(byteSizeOf(DataType.FLOAT, 6), 24);
    assert.equal(byteSizeOf(DataType.BOOL, 3), 3);
    assert.equal(byteSizeOf(DataType.INT4, 3), 2);
    assert.equal(byteSizeOf(DataType.UINT2, 5), 2);
    assert.equal(byteSizeOf(DataType.UINT2, 0), 0);
    assert.equal(byteSizeOf(DataType.COMPLEX64, 2), 16);
    assert.equal(byteSizeOf(DataType.STRING, 4), 0);
    assert.equal(byteSizeOf(DataType.INT4, Number.MAX_SAFE_INTEGER), 2 ** 52);
  });
});
