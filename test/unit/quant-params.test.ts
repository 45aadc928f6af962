/**
 * Quantization math: scale / zero point, QuantizeLinear / DequantizeLinear (per tensor, per axis,
 * blocked), rounding, int4 packing, fp16, bias. Expected values are hand-computed (arithmetic in the
 * comments), taken from the ONNX backend test cases / onnxruntime's unit tests, or checked against
 * naive reference implementations written independently in this file.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  channelMinMax,
  computeBiasScale,
  computeBlockwiseQParams,
  computePerChannelQParams,
  computeQParams,
  dequantize,
  dequantizeBlockwise,
  dequantizePerChannel,
  float32ToFp16Bits,
  fp16BitsToNumber,
  fp16ToFloat32,
  packInt4,
  QuantizationError,
  quantizeBias,
  quantizeBlockwise,
  quantizeFp16,
  quantizePerChannel,
  quantizeTensor,
  quantRange,
  roundHalfToEven,
  tensorMinMax,
  unpackInt4,
  type BlockwiseQuantParams,
  type PerChannelQuantParams,
} from '../../src/quant';

const f32 = (xs: number[]) => new Float32Array(xs);
const arr = (a: ArrayLike<number>) => Array.from(a);

describe('quantRange', () => {
  it('gives the ONNX saturation bounds', () => {
    assert.deepEqual(quantRange('int8'), { qmin: -128, qmax: 127, bits: 8, signed: true });
    assert.deepEqual(quantRange('uint8'), { qmin: 0, qmax: 255, bits: 8, signed: false });
    assert.deepEqual(quantRange('int16'), { qmin: -32768, qmax: 32767, bits: 16, signed: true });
    assert.deepEqual(quantRange('uint16'), { qmin: 0, qmax: 65535, bits: 16, signed: false });
    assert.deepEqual(quantRange('int4'), { qmin: -8, qmax: 7, bits: 4, signed: true });
    assert.deepEqual(quantRange('uint4'), { qmin: 0, qmax: 15, bits: 4, signed: false });
  });
});

describe('roundHalfToEven', () => {
  it('rounds ties to the even neighbour, including negatives', () => {
    const xs = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3.5];
    assert.deepEqual(xs.map(roundHalfToEven).map((v) => v + 0), [-2, -2, 0, 0, 2, 2, 4, -4]);
    // Math.round is not half-to-even: it would give 3 and -1 here.
    assert.equal(Math.round(2.5), 3);
    assert.equal(roundHalfToEven(2.5), 2);
    assert.equal(roundHalfToEven(-1.5), -2);
  });
  it('leaves non-ties to nearest', () => {
    assert.equal(roundHalfToEven(2.4999999), 2);
    assert.equal(roundHalfToEven(2.5000001), 3);
    assert.equal(roundHalfToEven(-2.5000001), -3);
    assert.equal(roundHalfToEven(-2.4999999), -2);
    assert.equal(roundHalfToEven(0.49999999999999994), 0);
  });
  it('handles large magnitudes', () => {
    // 2^52 − 1.5 = 4503599627370494.5 is exactly representable; its even neighbour is ...494.
    assert.equal(roundHalfToEven(4503599627370494.5), 4503599627370494);
    assert.equal(roundHalfToEven(-4503599627370494.5), -4503599627370494);
    assert.equal(roundHalfToEven(4503599627370495.5), 4503599627370496);
    assert.equal(roundHalfToEven(2 ** 60), 2 ** 60);
    assert.equal(roundHalfToEven(-(2 ** 60)), -(2 ** 60));
    assert.equal(roundHalfToEven(Infinity), Infinity);
  });
});

describe('computeQParams', () => {
  it('uint8 asymmetric [-1, 2] (onnxruntime test value)', () => {
    // s = (2 − (−1)) / 255 = 3/255; z = round(0 − (−1)/s) = round(85) = 85
    const p = computeQParams(-1, 2, 'uint8');
    assert.equal(p.scale, Math.fround(3 / 255));
    assert.equal(p.zeroPoint, 85);
    assert.equal(p.type, 'uint8');
  });
  it('int8 asymmetric [-1, 2]', () => {
    // s = 3/255; z = round(−128 + 85) = −43
    const p = computeQParams(-1, 2, 'int8');
    assert.equal(p.scale, Math.fround(3 / 255));
    assert.equal(p.zeroPoint, -43);
  });
  it('int8 symmetric uses ±127: s = absmax/127, z = 0 (onnxruntime test value)', () => {
    // absmax = 2 → s = 2·2/(127 − (−127)) = 2/127
    const p = computeQParams(-1, 2, 'int8', { symmetric: true });
    assert.equal(p.scale, Math.fround(2 / 127));
    assert.equal(p.zeroPoint, 0);
  });
  it('uint8 symmetric: z = 128, s = absmax/127.5 (onnxruntime test value)', () => {
    // z = round_half_even(255/2 = 127.5) = 128; s = 2·2/255 = 4/255
    const p = computeQParams(-1, 2, 'uint8', { symmetric: true });
    assert.equal(p.scale, Math.fround(4 / 255));
    assert.equal(p.zeroPoint, 128);
  });
  it('4- and 16-bit symmetric', () => {
    // int4: absmax 7 → s = 14/14 = 1
    assert.deepEqual(computeQParams(-7, 3, 'int4', { symmetric: true }), { scale: 1, zeroPoint: 0, type: 'int4' });
    // uint4: absmax 3.75 → s = 7.5/15 = 0.5, z = round(7.5) = 8
    assert.deepEqual(computeQParams(-3.75, 1, 'uint4', { symmetric: true }), { scale: 0.5, zeroPoint: 8, type: 'uint4' });
    // int16: absmax 32767 → s = 1
    assert.deepEqual(computeQParams(0, 32767, 'int16', { symmetric: true }), { scale: 1, zeroPoint: 0, type: 'int16' });
    // uint16: absmax 65535/2 → s = 65535/65535 = 1, z = round(32767.5) = 32768
    assert.deepEqual(computeQParams(-32767.5, 0, 'uint16', { symmetric: true }), { scale: 1, zeroPoint: 32768, type: 'uint16' });
  });
  it('widens ranges that do not contain 0', () => {
    // [0.5, 6] → [0, 6]: s = 6/255, z = 0
    const pos = computeQParams(0.5, 6, 'uint8');
    assert.equal(pos.scale, Math.fround(6 / 255));
    assert.equal(pos.zeroPoint, 0);
    // [-6, -1] → [-6, 0]: s = 6/255, z = round(0 + 6/s) = 255
    const neg = computeQParams(-6, -1, 'uint8');
    assert.equal(neg.scale, Math.fround(6 / 255));
    assert.equal(neg.zeroPoint, 255);
    // int8 [2, 4] → [0, 4]: z = round(−128 − 0) = −128
    assert.equal(computeQParams(2, 4, 'int8').zeroPoint, -128);
    // 0 must dequantize exactly to 0.
    for (const p of [pos, neg]) assert.equal(arr(quantizeTensor(f32([0]), p))[0], p.zeroPoint);
  });
  it('constant and all-zero tensors never produce a zero / NaN scale', () => {
    // constant 5 → range [0, 5] → s = 5/255
    assert.equal(computeQParams(5, 5, 'uint8').scale, Math.fround(5 / 255));
    // all zeros: degenerate → scale 1, zero point 0 (midpoint for symmetric unsigned)
    assert.deepEqual(computeQParams(0, 0, 'uint8'), { scale: 1, zeroPoint: 0, type: 'uint8' });
    assert.deepEqual(computeQParams(0, 0, 'int8'), { scale: 1, zeroPoint: 0, type: 'int8' });
    assert.deepEqual(computeQParams(0, 0, 'int8', { symmetric: true }), { scale: 1, zeroPoint: 0, type: 'int8' });
    assert.deepEqual(computeQParams(0, 0, 'uint8', { symmetric: true }), { scale: 1, zeroPoint: 128, type: 'uint8' });
    // width below the smallest normal float32 (1.17549435e-38) also counts as degenerate
    assert.deepEqual(computeQParams(-1e-39, 0, 'uint8'), { scale: 1, zeroPoint: 0, type: 'uint8' });
  });
  it('rejects NaN / Inf / inverted ranges with a clear QuantizationError', () => {
    assert.throws(() => computeQParams(NaN, 1, 'int8'), (e: unknown) => e instanceof QuantizationError && /min is NaN/.test(e.message));
    assert.throws(() => computeQParams(0, Infinity, 'int8'), /max is Infinity/);
    assert.throws(() => computeQParams(-Infinity, 0, 'uint8'), /min is -Infinity/);
    assert.throws(() => computeQParams(3, 1, 'uint8'), /min \(3\) is greater than max \(1\)/);
  });
  it('per channel', () => {
    const p = computePerChannelQParams([-1, 0, 0], [2, 0, 6], 'uint8', 0);
    assert.deepEqual(arr(p.zeroPoints), [85, 0, 0]);
    assert.deepEqual(arr(p.scales), [Math.fround(3 / 255), 1, Math.fround(6 / 255)]);
    assert.throws(() => computePerChannelQParams([0, NaN], [1, 1], 'int8', 0), /channel 1: min is NaN/);
  });
  it('tensorMinMax names the offending index', () => {
    assert.deepEqual(tensorMinMax(f32([3, -2, 7])), { min: -2, max: 7 });
    assert.throws(() => tensorMinMax(f32([1, 2, NaN]), 'weight W'), /weight W\[2\] is NaN/);
  });
});

describe('QuantizeLinear / DequantizeLinear per tensor', () => {
  it('ONNX example: uint8, scale 2, zero point 128', () => {
    // 0/2+128=128, 1+128, 1.5→2 (even)+128=130, 500+128→255, −127+128=1, −500+128→0
    const q = quantizeTensor(f32([0, 2, 3, 1000, -254, -1000]), { scale: 2, zeroPoint: 128, type: 'uint8' });
    assert.ok(q instanceof Uint8Array);
    assert.deepEqual(arr(q), [128, 129, 130, 255, 1, 0]);
  });
  it('int8, scale 2, zero point 1', () => {
    // 0+1, 1+1, 1.5→2 +1 = 3, 500+1→127, −127+1, −500+1→−128
    const q = quantizeTensor(f32([0, 2, 3, 1000, -254, -1000]), { scale: 2, zeroPoint: 1, type: 'int8' });
    assert.ok(q instanceof Int8Array);
    assert.deepEqual(arr(q), [1, 2, 3, 127, -126, -128]);
  });
  it('rounds half to even', () => {
    const q = quantizeTensor(f32([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]), { scale: 1, zeroPoint: 0, type: 'int8' });
    assert.deepEqual(arr(q), [-2, -2, 0, 0, 2, 2]);
  });
  it('ONNX example: uint16, scale 2, zero point 32767', () => {
    const x = f32([0, -128, 3, -3, 2.9, -2.9, 3.1, -3.1, 65536, -65534, 70000, -70000]);
    const q = quantizeTensor(x, { scale: 2, zeroPoint: 32767, type: 'uint16' });
    assert.ok(q instanceof Uint16Array);
    assert.deepEqual(arr(q), [32767, 32703, 32769, 32765, 32768, 32766, 32769, 32765, 65535, 0, 65535, 0]);
  });
  it('ONNX example: int16, scale 2, zero point 256', () => {
    const x = f32([0, -514, 3, -3, 2.9, -2.9, 3.1, -3.1, 65022, -66046, 65023, -66047, 65024, -66048, 70000, -70000]);
    const q = quantizeTensor(x, { scale: 2, zeroPoint: 256, type: 'int16' });
    assert.ok(q instanceof Int16Array);
    assert.deepEqual(
      arr(q),
      [256, -1, 258, 254, 257, 255, 258, 254, 32767, -32767, 32767, -32768, 32767, -32768, 32767, -32768],
    );
  });
  it('int4 / uint4 saturate to the 4-bit ranges (unpacked)', () => {
    // 100/1 → 7 / 15; −100 → −8 / 0; 3.5 → 4 (even); 2.5 → 2
    const x = f32([100, -100, 3.5, 2.5]);
    const s = quantizeTensor(x, { scale: 1, zeroPoint: 0, type: 'int4' });
    assert.ok(s instanceof Int8Array);
    assert.deepEqual(arr(s), [7, -8, 4, 2]);
    const u = quantizeTensor(x, { scale: 1, zeroPoint: 0, type: 'uint4' });
    assert.ok(u instanceof Uint8Array);
    assert.deepEqual(arr(u), [15, 0, 4, 2]);
  });
  it('NaN maps to the zero point, ±Inf saturate', () => {
    const q = quantizeTensor(f32([NaN, Infinity, -Infinity]), { scale: 0.5, zeroPoint: 10, type: 'uint8' });
    assert.deepEqual(arr(q), [10, 255, 0]);
  });
  it('divides in float32 like the runtime (tie after float32 rounding)', () => {
    // x, s below are float32 values. The double quotient is 1.4999999666… (would round to 1), but the
    // float32 quotient — what the runtime computes — is exactly 1.5, a tie that rounds to even 2.
    const x = 2.682630777359009;
    const s = 1.788420557975769;
    assert.equal(Math.fround(x), x);
    assert.equal(Math.fround(s), s);
    assert.ok(x / s < 1.5);
    assert.equal(Math.fround(x / s), 1.5);
    assert.deepEqual(arr(quantizeTensor(f32([x, -x]), { scale: s, zeroPoint: 0, type: 'int8' })), [2, -2]);
  });
  it('matches a scalar reference (roundHalfToEven, then clamp) for every type on random data with ties', () => {
    const rnd = mulberry32(99);
    const types = ['int8', 'uint8', 'int16', 'uint16', 'int4', 'uint4'] as const;
    const x = new Float32Array(20000);
    for (let i = 0; i < x.length; i++) {
      const r = rnd();
      // mix of exact ties (k + 0.5)·s, exact bounds, huge values and plain random values
      x[i] = r < 0.3 ? (Math.floor(rnd() * 600) - 300 + 0.5) * 0.25 : r < 0.35 ? (rnd() < 0.5 ? -1e30 : 1e30) : (rnd() - 0.5) * 2e5 * rnd() ** 6;
    }
    for (const type of types) {
      const { qmin, qmax } = quantRange(type);
      for (const [scale, zeroPoint] of [
        [0.25, 0],
        [0.25, qmin],
        [0.25, qmax],
        [Math.fround(0.1), Math.round((qmin + qmax) / 2)],
      ] as const) {
        const q = quantizeTensor(x, { scale, zeroPoint, type });
        for (let i = 0; i < x.length; i++) {
          const ref = Math.min(qmax, Math.max(qmin, roundHalfToEven(Math.fround(x[i]! / scale)) + zeroPoint));
          if (q[i] !== ref) assert.fail(`${type} s=${scale} z=${zeroPoint} x=${x[i]}: got ${q[i]}, expected ${ref}`);
        }
      }
    }
  });
  it('ONNX example: DequantizeLinear uint8 / uint16 / int16', () => {
    assert.deepEqual(arr(dequantize(new Uint8Array([0, 3, 128, 255]), { scale: 2, zeroPoint: 128 })), [-256, -250, 0, 254]);
    assert.deepEqual(
      arr(dequantize(new Uint16Array([30000, 31000, 32768, 33000]), { scale: 2, zeroPoint: 32767 })),
      [-5534, -3534, 2, 466],
    );
    assert.deepEqual(
      arr(dequantize(new Int16Array([-300, -30, -1025, 1270]), { scale: 2, zeroPoint: -1024 })),
      [1448, 1988, -2, 4588],
    );
  });
  it('round trip error is at most scale/2 inside the range', () => {
    const p = computeQParams(-3, 5, 'uint8');
    const x = new Float32Array(1001);
    for (let i = 0; i < x.length; i++) x[i] = -3 + (8 * i) / 1000;
    const y = dequantize(quantizeTensor(x, p), p);
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(y[i]! - x[i]!) <= p.scale / 2 + 1e-6, `i=${i}`);
  });
  it('rejects a zero scale or out-of-range zero point', () => {
    assert.throws(() => quantizeTensor(f32([1]), { scale: 0, zeroPoint: 0, type: 'int8' }), QuantizationError);
    assert.throws(() => quantizeTensor(f32([1]), { scale: 1, zeroPoint: 200, type: 'int8' }), /zero point 200/);
  });
});

describe('per-axis quantization', () => {
  it('ONNX example: axis 1, uint8', () => {
    const x = f32([-162, 10, -100, 232, -20, -50, -76, 0, 0, 252, 32, -44, 245, -485, -960, -270, -375, -470]);
    const p: PerChannelQuantParams<'uint8'> = {
      scales: f32([2, 4, 5]),
      zeroPoints: new Int32Array([84, 24, 196]),
      axis: 1,
      type: 'uint8',
    };
    // channel 0 (s=2, z=84): −81+84=3, 5+84=89, −50+84=34, 116+84=200, −10+84=74, −25+84=59
    // channel 1 (s=4, z=24): −19+24=5, 0+24, 0+24, 63+24=87, 8+24=32, −11+24=13
    // channel 2 (s=5, z=196): 49+196=245, −97+196=99, −192+196=4, −54+196=142, −75+196=121, −94+196=102
    const expected = [3, 89, 34, 200, 74, 59, 5, 24, 24, 87, 32, 13, 245, 99, 4, 142, 121, 102];
    assert.deepEqual(arr(quantizePerChannel(x, [1, 3, 3, 2], p)), expected);
    // Dequantizing gives back exactly x here (every value is a multiple of its scale).
    assert.deepEqual(arr(dequantizePerChannel(new Uint8Array(expected), [1, 3, 3, 2], p)), arr(x));
    // Negative axis is accepted.
    assert.deepEqual(arr(quantizePerChannel(x, [1, 3, 3, 2], { ...p, axis: -3 })), expected);
  });
  it('ONNX example: int4, axis 0, zero point 1', () => {
    const x = f32([0, 2.5, 4.8, 8.6, -30, -20, 6, 9, 12, 15, 16, 40]);
    const p: PerChannelQuantParams<'int4'> = {
      scales: f32([2, 3, 4]),
      zeroPoints: new Int32Array([1, 1, 1]),
      axis: 0,
      type: 'int4',
    };
    // row 0 /2: 0, 1.25→1, 2.4→2, 4.3→4 (+1); row 1 /3: −10→−9→−8(sat), −6.67→−7+1=−6, 2+1, 3+1;
    // row 2 /4: 3+1, 3.75→4+1, 4+1, 10+1=11→7(sat)
    assert.deepEqual(arr(quantizePerChannel(x, [3, 4], p)), [1, 2, 3, 5, -8, -6, 3, 4, 4, 5, 5, 7]);
  });
  it('matches a naive index-arithmetic reference on a random 4-D tensor', () => {
    const shape = [3, 4, 5, 6];
    const rnd = mulberry32(7);
    const x = new Float32Array(3 * 4 * 5 * 6);
    for (let i = 0; i < x.length; i++) x[i] = (rnd() - 0.3) * 10;
    for (const axis of [0, 1, 2, 3]) {
      const { mins, maxs } = channelMinMax(x, shape, axis);
      const p = computePerChannelQParams(mins, maxs, 'int8', axis, { symmetric: true });
      const q = quantizePerChannel(x, shape, p);
      const strides = [120, 30, 6, 1];
      for (let i = 0; i < x.length; i++) {
        const c = Math.floor(i / strides[axis]!) % shape[axis]!;
        const ref = Math.min(127, Math.max(-128, roundHalfToEven(Math.fround(x[i]! / p.scales[c]!)) + p.zeroPoints[c]!));
        assert.equal(q[i], ref, `axis ${axis} i ${i}`);
      }
      const y = dequantizePerChannel(q, shape, p);
      for (let i = 0; i < x.length; i++) {
        const c = Math.floor(i / strides[axis]!) % shape[axis]!;
        assert.ok(Math.abs(y[i]! - x[i]!) <= p.scales[c]! / 2 + 1e-6);
      }
    }
  });
  it('channelMinMax is exact', () => {
    const { mins, maxs } = channelMinMax(f32([1, -2, 3, 4, 5, -6]), [3, 2], 1);
    // column 0: 1, 3, 5 ; column 1: −2, 4, −6
    assert.deepEqual(arr(mins), [1, -6]);
    assert.deepEqual(arr(maxs), [5, 4]);
  });
});

describe('blocked quantization (opset 21)', () => {
  it('ONNX example: blocked asymmetric, axis 1, block 2', () => {
    const x = f32([6, 12, 50, 5, 1, 8, 4, 5, 0, 20, 10, 4]);
    const p: BlockwiseQuantParams<'uint8'> = {
      scales: f32([1.5, 2.5, 3, 4.9, 5.1, 6.9]),
      zeroPoints: new Int32Array([0, 1, 1, 0, 2, 3]),
      scaleShape: [3, 2],
      axis: 1,
      blockSize: 2,
      type: 'uint8',
    };
    // row 0: 6/1.5=4, 12/1.5=8, 50/2.5=20+1=21, 5/2.5=2+1=3
    // row 1: 1/3=0.33→0+1=1, 8/3=2.67→3+1=4, 4/4.9=0.82→1, 5/4.9=1.02→1
    // row 2: 0+2=2, 20/5.1=3.92→4+2=6, 10/6.9=1.45→1+3=4, 4/6.9=0.58→1+3=4
    assert.deepEqual(arr(quantizeBlockwise(x, [3, 4], p)), [4, 8, 21, 3, 1, 4, 1, 1, 2, 6, 4, 4]);
  });
  it('ONNX example: blocked symmetric int16', () => {
    const x = f32([6, -8, -10, 5, 1, 8, 4, 5, 0, 20, 10, 4]);
    const s = f32([1.5, 2.5, 3, 4.9, 5.1, 6.9]);
    const p: BlockwiseQuantParams<'int16'> = {
      scales: s,
      zeroPoints: new Int32Array(6),
      scaleShape: [3, 2],
      axis: 1,
      blockSize: 2,
      type: 'int16',
    };
    // row 0: 4, −5.33→−5, −4, 2 ; row 1: 0.33→0, 2.67→3, 0.82→1, 1.02→1 ; row 2: 0, 3.92→4, 1.45→1, 0.58→1
    assert.deepEqual(arr(quantizeBlockwise(x, [3, 4], p)), [4, -5, -4, 2, 0, 3, 1, 1, 0, 4, 1, 1]);
  });
  it('computes ceil(dim/block) scales with a partial last block, int4 symmetric along axis 0', () => {
    // x shape [5, 2], axis 0, block 2 → scale shape [3, 2]; blocks rows {0,1}, {2,3}, {4}
    const x = f32([1, -1.75, 7, 3.5, -14, 0, 3, 0.5, 0.7, -3.5]);
    const p = computeBlockwiseQParams(x, [5, 2], 0, 2, 'int4', { symmetric: true });
    assert.deepEqual(p.scaleShape, [3, 2]);
    // absmax per (block, column) / 7: (0,0)=7 → 1; (0,1)=3.5 → 0.5; (1,0)=14 → 2; (1,1)=0.5 → 0.5/7;
    // (2,0)=0.7 → 0.1; (2,1)=3.5 → 0.5
    assert.deepEqual(arr(p.scales), [1, 0.5, 2, 0.5 / 7, 0.7 / 7, 0.5].map(Math.fround));
    assert.deepEqual(arr(p.zeroPoints), [0, 0, 0, 0, 0, 0]);
    const q = quantizeBlockwise(x, [5, 2], p);
    // 1/1=1, −1.75/0.5=−3.5→−4 (even), 7, 3.5/0.5=7, −14/2=−7, 0, 3/2=1.5→2 (even), 0.5/(0.5/7)≈7,
    // 0.7/0.1≈7, −3.5/0.5=−7
    assert.deepEqual(arr(q), [1, -4, 7, 7, -7, 0, 2, 7, 7, -7]);
    const y = dequantizeBlockwise(q, [5, 2], p);
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(y[i]! - x[i]!) <= 1.0000001); // max scale 2 → error ≤ 1
    // Packed for storage: 10 values → 5 bytes, first value in the low nibble.
    const packed = packInt4(q);
    assert.equal(packed.length, 5);
    assert.equal(packed[0], (1 & 0xf) | ((-4 & 0xf) << 4)); // 0xC1
    assert.deepEqual(arr(unpackInt4(packed, 10, 'int4')), arr(q));
  });
  it('rejects mismatched scale shapes', () => {
    const p = computeBlockwiseQParams(f32([1, 2, 3, 4]), [4], 0, 2, 'int8');
    assert.throws(() => quantizeBlockwise(f32([1, 2, 3, 4, 5]), [5], p), /scales must have shape \[3\]/);
  });
});

describe('int4 packing', () => {
  it('int4: first element in the low nibble, odd count pads the high nibble with 0', () => {
    const packed = packInt4(new Int8Array([1, -1, 7, -8, 0]));
    // pairs: (1, −1) → 0x1 | 0xF<<4 = 0xF1; (7, −8) → 0x7 | 0x8<<4 = 0x87; (0) → 0x00
    assert.deepEqual(arr(packed), [0xf1, 0x87, 0x00]);
    const again = packInt4(new Int8Array([1, -1, 7]));
    assert.deepEqual(arr(again), [0xf1, 0x07]);
    assert.deepEqual(arr(unpackInt4(again, 3, 'int4')), [1, -1, 7]);
  });
  it('uint4', () => {
    // [15, 0] → 0x0F; [3, 12] → 0xC3; [9] → 0x09
    const packed = packInt4(new Uint8Array([15, 0, 3, 12, 9]));
    assert.deepEqual(arr(packed), [0x0f, 0xc3, 0x09]);
    assert.deepEqual(arr(unpackInt4(packed, 5, 'uint4')), [15, 0, 3, 12, 9]);
  });
  it('round trips every int4 / uint4 value pair', () => {
    const s = new Int8Array(256);
    const u = new Uint8Array(256);
    for (let i = 0; i < 256; i++) {
      s[i] = (i % 16) - 8;
      u[i] = (i * 7) % 16;
    }
    assert.deepEqual(arr(unpackInt4(packInt4(s), 256, 'int4')), arr(s));
    assert.deepEqual(arr(unpackInt4(packInt4(u), 256, 'uint4')), arr(u));
  });
  it('rejects values that do not fit and bad counts', () => {
    assert.throws(() => packInt4(new Int8Array([8])), /value 8 at index 0/);
    assert.throws(() => packInt4(new Uint8Array([0, 16])), /value 16 at index 1/);
    assert.throws(() => unpackInt4(new Uint8Array(2), 5, 'int4'), QuantizationError);
  });
});

describe('fp16', () => {
  it('encodes known bit patterns', () => {
    const cases: Array<[number, number]> = [
      [1.0, 0x3c00],
      [-2.0, 0xc000],
      [65504, 0x7bff], // largest finite half
      [6.103515625e-5, 0x0400], // 2^-14, smallest normal
      [5.960464477539063e-8, 0x0001], // 2^-24, smallest subnormal
      [65520, 0x7c00], // halfway to 2^16 rounds (to even) to Inf
      [65519.99, 0x7bff],
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [0, 0x0000],
      [-0, 0x8000],
      [0.1, 0x2e66], // 0.1 → 0.0999755859375
      [1 / 3, 0x3555], // → 0.333251953125
      [2 ** -25, 0x0000], // exactly half the smallest subnormal: tie to even (0)
      [1.5 * 2 ** -24, 0x0002], // tie between 1 and 2 ulps: even (2)
      [2.5 * 2 ** -24, 0x0002], // tie between 2 and 3 ulps: even (2)
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even mantissa (0)
      [1 + 3 * 2 ** -11, 0x3c02], // tie between mantissa 1 and 2: even (2)
      [1e-10, 0x0000],
      [2 ** -14 - 2 ** -25, 0x0400], // largest subnormal region rounding up into the smallest normal
    ];
    const bits = quantizeFp16(f32(cases.map((c) => c[0])));
    cases.forEach(([v, b], i) => assert.equal(bits[i], b, `${v} → 0x${bits[i]!.toString(16)} expected 0x${b.toString(16)}`));
    for (const [v, b] of cases) assert.equal(float32ToFp16Bits(v), b);
  });
  it('keeps NaN as NaN', () => {
    const b = quantizeFp16(f32([NaN]))[0]!;
    assert.equal(b & 0x7c00, 0x7c00);
    assert.notEqual(b & 0x3ff, 0);
    assert.ok(Number.isNaN(fp16ToFloat32(new Uint16Array([b]))[0]));
  });
  it('decodes known bit patterns', () => {
    assert.deepEqual(
      arr(fp16ToFloat32(new Uint16Array([0x3c00, 0x7bff, 0x0400, 0x0001, 0x7c00, 0xfc00, 0x3555, 0x8000]))),
      [1, 65504, 2 ** -14, 2 ** -24, Infinity, -Infinity, 0.333251953125, -0],
    );
  });
  it('decode then encode is the identity on all 63488 non-NaN patterns', () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const back = quantizeFp16(fp16ToFloat32(all));
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (!isNaN) assert.equal(back[i], i, `pattern 0x${i.toString(16)}`);
      else assert.ok(Number.isNaN(fp16BitsToNumber(back[i]!)));
    }
  });
  it('rounds to nearest: midpoints between consecutive halves go to the even one', () => {
    // For every pair of consecutive positive finite halves, the float32 midpoint must round to the even pattern.
    for (let h = 0; h < 0x7bff; h += 37) {
      const a = fp16BitsToNumber(h);
      const b = fp16BitsToNumber(h + 1);
      const mid = (a + b) / 2; // exact in float32 (halves have ≤ 11 significant bits)
      assert.equal(float32ToFp16Bits(mid), h % 2 === 0 ? h : h + 1);
      assert.equal(float32ToFp16Bits(mid + (b - a) / 8), h + 1);
      assert.equal(float32ToFp16Bits(mid - (b - a) / 8), h);
    }
  });
});

describe('bias quantization', () => {
  it('bias scale is the float32 product sIn·sW', () => {
    assert.equal(computeBiasScale(0.5, 0.25), 0.125);
    assert.equal(computeBiasScale(0.1, 0.3), Math.fround(0.1 * 0.3));
    assert.throws(() => computeBiasScale(0, 1), /input scale is 0/);
    assert.throws(() => computeBiasScale(1e-30, 1e-30), QuantizationError); // underflows float32
  });
  it('per tensor: round half to even, clamped to int32', () => {
    // bias scale 0.5·0.25 = 0.125: 1/0.125 = 8; 0.1875/0.125 = 1.5 → 2; 0.3125/0.125 = 2.5 → 2;
    // −0.3125/0.125 = −2.5 → −2; 1e12/0.125 = 8e12 → 2147483647; −1e12 → −2147483648
    const q = quantizeBias(f32([1, 0.1875, 0.3125, -0.3125, 1e12, -1e12]), 0.5, 0.25);
    assert.ok(q instanceof Int32Array);
    assert.deepEqual(arr(q), [8, 2, 2, -2, 2147483647, -2147483648]);
  });
  it('per channel', () => {
    // scales 0.5·[0.25, 0.1, 1] = [0.125, fround(0.05), 0.5]; −0.5/0.05 ≈ −10
    const q = quantizeBias(f32([1, -0.5, 3]), 0.5, f32([0.25, 0.1, 1]));
    assert.deepEqual(arr(q), [8, -10, 6]);
    assert.throws(() => quantizeBias(f32([1, 2]), 0.5, f32([1])), /2 values but 1 weight scales/);
    assert.throws(() => quantizeBias(f32([NaN]), 0.5, 1), /bias\[0\] is NaN/);
  });
});

/** Small deterministic PRNG (mulberry32) so the random tests are reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
