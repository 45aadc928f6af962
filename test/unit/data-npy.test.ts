/**
 * .npy reading and writing: round trips for every dtype, headers of format versions 1, 2 and 3
 * written out by hand here (not by the code under test), big-endian and Fortran-order data, and
 * the errors for corrupt headers and truncated data, which must name the file.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SampleDataError } from '../../src/runtime/samples';
import { NpyType, NpyValues, parseNpy, readNpyFile, writeNpy } from '../../src/runtime/data/npy';
import { tempDir } from '../helpers/ort';

/** An .npy file from parts, the way the format spec describes it (independent of writeNpy). */
function npyBytes(header: string, data: Uint8Array, opts: { version?: number; pad?: boolean } = {}): Uint8Array {
  const version = opts.version ?? 1;
  const prefix = version === 1 ? 10 : 12;
  let text = header;
  if (opts.pad !== false) {
    const total = prefix + Buffer.byteLength(text, version === 3 ? 'utf8' : 'latin1') + 1;
    text += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  }
  const h = Buffer.from(text, version === 3 ? 'utf8' : 'latin1');
  const out = Buffer.alloc(prefix + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  if (version === 1) out.writeUInt16LE(h.length, 8);
  else out.writeUInt32LE(h.length, 8);
  out.set(h, prefix);
  out.set(data, prefix + h.length);
  return out;
}

function le(kind: 'f4' | 'f8' | 'i4' | 'i2', values: number[], bigEndian = false): Uint8Array {
  const size = Number(kind[1]);
  const dv = new DataView(new ArrayBuffer(size * values.length));
  values.forEach((v, i) => {
    const at = i * size;
    if (kind === 'f4') dv.setFloat32(at, v, !bigEndian);
    else if (kind === 'f8') dv.setFloat64(at, v, !bigEndian);
    else if (kind === 'i4') dv.setInt32(at, v, !bigEndian);
    else dv.setInt16(at, v, !bigEndian);
  });
  return new Uint8Array(dv.buffer);
}

function rejects(fn: () => unknown, pattern: RegExp, file = 'data/x.npy'): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SampleDataError, `expected SampleDataError, got ${String(err)}`);
    assert.ok(err.message.startsWith(`${file}: `), `message should name the file: ${err.message}`);
    assert.match(err.message, pattern);
    assert.equal(err.file, file);
    return true;
  });
}

const EVERY_TYPE: [NpyType, NpyValues, string][] = [
  ['float16', Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x3555]), '<f2'],
  ['float32', Float32Array.from([1.5, -2, 3.4028234663852886e38, 1e-45, -0, 0.1]), '<f4'],
  ['float64', Float64Array.from([1.5, -2, Number.MAX_VALUE, 5e-324, -0, 0.1]), '<f8'],
  ['int8', Int8Array.from([-128, 127, 0, 1, -1, 5]), '|i1'],
  ['uint8', Uint8Array.from([0, 255, 1, 2, 3, 128]), '|u1'],
  ['int16', Int16Array.from([-32768, 32767, 0, 1, -1, 5]), '<i2'],
  ['uint16', Uint16Array.from([0, 65535, 1, 2, 3, 40000]), '<u2'],
  ['int32', Int32Array.from([-2147483648, 2147483647, 0, 1, -1, 5]), '<i4'],
  ['uint32', Uint32Array.from([0, 4294967295, 1, 2, 3, 3000000000]), '<u4'],
  ['int64', BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, 1n, -1n, 16000n]), '<i8'],
  ['uint64', BigUint64Array.from([0n, 2n ** 64n - 1n, 1n, 2n, 3n, 2n ** 53n + 1n]), '<u8'],
  ['bool', Uint8Array.from([0, 1, 1, 0, 1, 0]), '|b1'],
];

describe('npy: round trips', () => {
  for (const [dtype, values, descr] of EVERY_TYPE) {
    it(`${dtype} (${descr})`, () => {
      const bytes = writeNpy(values, [2, 3], { dtype });
      const headerLength = Buffer.from(bytes).readUInt16LE(8);
      assert.equal((10 + headerLength) % 64, 0);
      const text = Buffer.from(bytes.subarray(10, 10 + headerLength)).toString('latin1');
      assert.equal(text, `{'descr': '${descr}', 'fortran_order': False, 'shape': (2, 3), }`.padEnd(headerLength - 1, ' ') + '\n');
      const a = parseNpy(bytes, 'x.npy');
      assert.equal(a.dtype, dtype);
      assert.deepEqual(a.shape, [2, 3]);
      assert.deepEqual([...a.data], [...values]);
      assert.equal(a.data.constructor, values.constructor);
    });
  }

  it('writes 1-d, scalar and empty shapes as numpy does, with data on a 64-byte boundary', () => {
    const one = writeNpy(Float32Array.from([1, 2, 3]), [3]);
    assert.match(Buffer.from(one).toString('latin1'), /'shape': \(3,\), \}/);
    const scalar = writeNpy(BigInt64Array.from([16000n]), []);
    assert.match(Buffer.from(scalar).toString('latin1'), /'shape': \(\), \}/);
    assert.deepEqual(parseNpy(scalar).shape, []);
    assert.deepEqual([...parseNpy(scalar).data], [16000n]);
    const empty = parseNpy(writeNpy(new Float32Array(0), [0, 4]));
    assert.deepEqual(empty.shape, [0, 4]);
    assert.equal(empty.data.length, 0);
    assert.equal(one.length, 128 + 12);
    assert.equal(scalar.length, 128 + 8);
  });

  it('writes and reads format versions 2 and 3', () => {
    for (const version of [2, 3] as const) {
      const bytes = writeNpy(Int32Array.from([7, 8]), [2], { version });
      assert.equal(bytes[6], version);
      assert.equal(Buffer.from(bytes).readUInt32LE(8), 128 - 12);
      assert.deepEqual([...parseNpy(bytes).data], [7, 8]);
    }
  });

  it('refuses values that do not match the shape or the dtype', () => {
    assert.throws(() => writeNpy(Float32Array.from([1, 2]), [3]), RangeError);
    assert.throws(() => writeNpy(Float32Array.from([1, 2]), [2], { dtype: 'float16' }), TypeError);
  });
});

describe('npy: headers written by hand', () => {
  const data = le('f4', [1, 2, 3, 4, 5, 6]);
  it('version 1 as numpy writes it', () => {
    const a = parseNpy(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data));
    assert.deepEqual(a.shape, [2, 3]);
    assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6]);
  });
  it('version 2 (32-bit header length) and version 3 (utf8 header)', () => {
    for (const version of [2, 3]) {
      const a = parseNpy(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data, { version }));
      assert.deepEqual(a.shape, [6]);
      assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6]);
    }
  });
  it('other spellings: key order, double quotes, no trailing comma, Python 2 longs, "=" and no padding', () => {
    const a = parseNpy(npyBytes('{"shape": (3L, 2L), "fortran_order": False, "descr": "=f4"}', data, { pad: false }));
    assert.deepEqual(a.shape, [3, 2]);
    assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6]);
  });
  it('data at an unaligned offset is copied, not viewed', () => {
    const bytes = npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    assert.deepEqual([...parseNpy(shifted.subarray(1)).data], [1, 2, 3, 4, 5, 6]);
  });
});

describe('npy: byte order and Fortran order', () => {
  it('big-endian data is byte-swapped', () => {
    assert.deepEqual([...parseNpy(npyBytes("{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }", le('i4', [1, -2, 70000], true))).data], [1, -2, 70000]);
    assert.deepEqual([...parseNpy(npyBytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", le('f8', [0.1, -3.5], true))).data], [0.1, -3.5]);
    const half = parseNpy(npyBytes("{'descr': '>f2', 'fortran_order': False, 'shape': (2,), }", Uint8Array.from([0x3c, 0x00, 0xc0, 0x00])));
    assert.equal(half.dtype, 'float16');
    assert.deepEqual([...half.data], [0x3c00, 0xc000]);
  });

  it('Fortran-order 2-d and 3-d arrays come back in C order', () => {
    // a = [[1, 2, 3], [4, 5, 6]] stored column by column.
    const a = parseNpy(npyBytes("{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3), }", le('i2', [1, 4, 2, 5, 3, 6])));
    assert.deepEqual(a.shape, [2, 3]);
    assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6]);
    // b[i][j][k] = 100i + 10j + k with shape (2, 3, 2); Fortran order: i fastest, then j, then k.
    const f: number[] = [];
    for (let k = 0; k < 2; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 2; i++) f.push(100 * i + 10 * j + k);
    const c: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 2; k++) c.push(100 * i + 10 * j + k);
    const b = parseNpy(npyBytes("{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3, 2), }", le('f8', f, true)));
    assert.deepEqual([...b.data], c);
  });
});

describe('npy: errors name the file', () => {
  const ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const data = le('f4', [1, 2, 3, 4, 5, 6]);
  const f = 'data/x.npy';
  it('not an .npy file', () => {
    rejects(() => parseNpy(Buffer.from('PK\x03\x04 this is a zip'), f), /magic string/);
    rejects(() => parseNpy(new Uint8Array(0), f), /magic string/);
  });
  it('unsupported version', () => {
    const b = npyBytes(ok, data);
    b[6] = 4;
    rejects(() => parseNpy(b, f), /format version 4\.0 is not supported/);
  });
  it('header length past the end of the file', () => {
    const b = Buffer.from(npyBytes(ok, data));
    b.writeUInt16LE(60000, 8);
    rejects(() => parseNpy(b, f), /header length 60000 runs past the end of the file/);
    const v2 = Buffer.from(npyBytes(ok, data, { version: 2 }));
    v2.writeUInt32LE(0xffffffff, 8);
    rejects(() => parseNpy(v2, f), /header length 4294967295 runs past/);
    rejects(() => parseNpy(v2.subarray(0, 10), f), /ends inside the header length/);
  });
  it('corrupt header dictionaries', () => {
    rejects(() => parseNpy(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", data), f), /expected|unexpected end/);
    rejects(() => parseNpy(npyBytes("{'descr': '<f4', 'fortran_order': False}", data), f), /'shape'/);
    rejects(() => parseNpy(npyBytes("{'descr': '<f4', 'shape': (6,)}", data), f), /'fortran_order'/);
    rejects(() => parseNpy(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 6), }", data), f), /'shape' must be a tuple of non-negative integers/);
    rejects(() => parseNpy(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } junk", data), f), /unexpected text/);
    rejects(() => parseNpy(npyBytes("['descr']", data), f), /not a dictionary/);
  });
  it('unsupported dtypes', () => {
    rejects(() => parseNpy(npyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", data), f), /dtype '<c8' is not supported/);
    rejects(() => parseNpy(npyBytes("{'descr': '<U2', 'fortran_order': False, 'shape': (3,), }", data), f), /dtype '<U2' is not supported/);
    rejects(() => parseNpy(npyBytes("{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (3,), }", data), f), /structured/);
  });
  it('truncated and oversized data', () => {
    rejects(() => parseNpy(npyBytes(ok, data.subarray(0, 20)), f), /truncated \.npy file: shape \[2,3\] of <f4 needs 24 bytes of data, the file has 20/);
    rejects(() => parseNpy(npyBytes(ok, new Uint8Array(28)), f), /needs 24 bytes of data, the file has 28/);
    rejects(() => parseNpy(npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 100000000000), }", data), f), /too large|needs/);
  });
  it('unreadable files', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const missing = path.join(dir, 'missing.npy');
      await assert.rejects(readNpyFile(missing), (err: unknown) => err instanceof SampleDataError && err.message.startsWith(`${missing}: cannot read`));
      const good = path.join(dir, 'good.npy');
      fs.writeFileSync(good, writeNpy(Float32Array.from([1, 2]), [1, 2]));
      assert.deepEqual((await readNpyFile(good)).shape, [1, 2]);
    } finally {
      cleanup();
    }
  });
});
