/**
 * Static QDQ transform: quantized initializers against hand-computed values, onnxruntime's output
 * against a double-precision simulation of the quantized arithmetic, and accuracy on a CNN.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel } from '../../src/onnx/model';
import { ModelProto } from '../../src/onnx/proto';
import { tensorToFloat32, tensorValues } from '../../src/onnx/tensor-data';
import { DEFAULT_CONFIG, QuantConfig } from '../../src/quant/config';
import { quantizeStaticQdq } from '../../src/quant/graph/qdq';
import { computeQParams } from '../../src/quant/params';
import { calibrationTensors } from '../../src/runtime/quantize-model';
import { FloatRange } from '../../src/quant/types';
import { floatTensor, runModel } from '../helpers/ort';
import { sqnrDb as sqnr, widen } from '../helpers/reference';

const readWeight = (t: Parameters<typeof tensorToFloat32>[0]) => tensorToFloat32(t);

function config(overrides: Partial<QuantConfig> = {}): QuantConfig {
  return { ...DEFAULT_CONFIG, ...overrides };
}

/** HardSwish as the PaddleOCR models write it: x · HardSigmoid(x), both float ops. */
function hardSwish(b: ModelBuilder, t: string, name: string): string {
  return b.node('Mul', [t, b.node('HardSigmoid', [t], { alpha: 1 / 6, beta: 0.5 }, { name: `${name}_hsig` })], {}, { name });
}

/** Min/max of every float tensor of the main graph over the feeds: an independent calibration. */
async function observeAll(proto: ModelProto, feedsList: Record<string, ort.Tensor>[]): Promise<Map<string, FloatRange>> {
  const copy: ModelProto = { ...proto, graph: { ...proto.graph!, output: [...proto.graph!.output] } };
  const known = new Set(copy.graph!.output.map((o) => o.name));
  for (const n of proto.graph!.node) {
    for (const o of n.output) {
      if (!known.has(o)) {
        copy.graph!.output.push({ name: o, docString: '', metadataProps: [], unknownFields: [], type: { denotation: '', unknownFields: [], tensorType: { elemType: DataType.FLOAT, unknownFields: [] } } });
        known.add(o);
      }
    }
  }
  const session = await ort.InferenceSession.create(encodeModel(copy));
  const ranges = new Map<string, FloatRange>();
  for (const feeds of feedsList) {
    const out = await session.run(feeds);
    for (const [k, v] of [...Object.entries(feeds), ...Object.entries(out)]) {
      const r = ranges.get(k) ?? { min: Infinity, max: -Infinity };
      widen(r, v.data as Float32Array);
      ranges.set(k, r);
    }
  }
  await session.release();
  return ranges;
}


describe('static QDQ', () => {
  it('Gemm: weights, bias and activation parameters as computed by hand; onnxruntime matches the simulated arithmetic', async () => {
    const b = new ModelBuilder({ opset: 13 });
    const x = b.input('x', DataType.FLOAT, [1, 3]);
    // W rows (output channels): absmax 2 and 0.5 → scales 2/127 and 0.5/127 (symmetric int8, per channel).
    b.initializer('W', DataType.FLOAT, [2, 3], new Float32Array([2, -1, 0.5, 0.25, -0.5, 0.1]));
    b.initializer('B', DataType.FLOAT, [2], new Float32Array([0.3, -0.2]));
    const h = b.node('Gemm', [x, 'W', 'B'], { transB: 1 }, { name: 'fc', outputs: ['h'] });
    b.output(b.node('Relu', [h], {}, { name: 'act', outputs: ['y'] }), DataType.FLOAT, [1, 2]);
    const proto = b.build();
    // x in [-1, 1]: uint8 asymmetric → s = fround(2/255) = 0.0078431377 (float32 rounds it up), so
    // z = round(0 − (−1)/s) = round(127.49999) = 127.
    const ranges = new Map<string, FloatRange>([
      ['x', { min: -1, max: 1 }],
      ['h', { min: -3, max: 3 }],
    ]);
    const r = quantizeStaticQdq(proto, { config: config(), ranges, readWeight, domain: '' });
    assert.deepEqual(r.quantized.map((q) => q.name), ['fc']);
    assert.match(r.quantized[0]!.detail, /int8 per-channel weights, uint8 activations/);
    assert.deepEqual(r.skipped.map((s) => [s.name, s.opType, s.reason]), [['act', 'Relu', 'its output is a graph output, which stays in float']]);
    // Relu reads Gemm's float output: no Q/DQ pair on "h", nobody quantized reads it.
    assert.ok(!r.model.graph!.node.some((n) => n.input[0] === 'h' && n.opType === 'QuantizeLinear'));

    const inits = new Map(r.model.graph!.initializer.map((t) => [t.name, t]));
    const xs = tensorToFloat32(inits.get('x_scale')!)[0]!;
    assert.equal(xs, Math.fround(2 / 255));
    assert.deepEqual(Array.from(tensorValues(inits.get('x_zero_point')!) as Uint8Array), [127]);
    const ws = tensorToFloat32(inits.get('W_scale')!);
    assert.deepEqual(Array.from(ws), [Math.fround(2 / 127), Math.fround(0.5 / 127)]);
    // round(w / s): 2→127, −1→−63.5→−64 (half to even), 0.5→31.75→32; 0.25→63.5→64, −0.5→−127, 0.1→25.4→25.
    assert.deepEqual(Array.from(tensorValues(inits.get('W_quantized')!) as Int8Array), [127, -64, 32, 64, -127, 25]);
    const bq = Array.from(tensorValues(inits.get('B_quantized')!) as Int32Array);
    const bs = tensorToFloat32(inits.get('B_scale')!);
    assert.deepEqual(Array.from(bs), [Math.fround(xs * ws[0]!), Math.fround(xs * ws[1]!)]);
    assert.deepEqual(bq, [Math.round(0.3 / bs[0]!), Math.round(-0.2 / bs[1]!)]);
    assert.deepEqual(r.model.opsetImport, [{ domain: '', version: 13 }]);

    // Simulate in double precision: y = relu(Σ dq(q(x))·dq(w) + dq(b)).
    const input = new Float32Array([0.7, -0.33, 0.91]);
    const qx = Array.from(input, (v) => Math.min(255, Math.max(0, Math.round(v / xs) + 127)));
    const wq = [127, -64, 32, 64, -127, 25];
    const expected = [0, 1].map((o) => {
      let acc = 0;
      for (let k = 0; k < 3; k++) acc += (qx[k]! - 127) * xs * wq[o * 3 + k]! * ws[o]!;
      return Math.max(0, acc + bq[o]! * bs[o]!);
    });
    const out = await runModel(encodeModel(r.model), { x: new ort.Tensor('float32', input, [1, 3]) });
    const y = out.y!.data as Float32Array;
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(y[i]! - expected[i]!) < 1e-5, `y[${i}] = ${y[i]} vs ${expected[i]}`);
  });

  it('a CNN keeps SQNR above 30 dB, and its weights held in Constant nodes are quantized', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 5 });
    b.weightPlacement = 'constant';
    let x = b.input('x', DataType.FLOAT, [1, 3, 16, 16]);
    x = b.relu(b.conv(x, 3, 8, 3, { name: 'c1' }));
    x = b.node('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] }, { name: 'pool' });
    x = b.relu(b.conv(x, 8, 16, 3, { name: 'c2' }));
    x = b.node('GlobalAveragePool', [x], {}, { name: 'gap' });
    x = b.node('Flatten', [x], {}, { name: 'flat' });
    const logits = b.gemm(x, 16, 10, { name: 'fc' });
    b.output(logits, DataType.FLOAT, [1, 10]);
    const proto = b.build();
    const feeds = Array.from({ length: 8 }, (_, k) => ({ x: floatTensor([1, 3, 16, 16], (i) => Math.sin(i * 0.1 + k) + 0.3 * Math.cos(i * 0.37 * (k + 1))) }));
    const ranges = await observeAll(proto, feeds);
    const r = quantizeStaticQdq(proto, { config: config(), ranges, readWeight, domain: '' });
    assert.deepEqual(r.quantized.map((q) => q.name).sort(), ['c1', 'c2', 'fc', 'flat', 'gap', 'pool', ...r.quantized.filter((q) => q.opType === 'Relu').map((q) => q.name)].sort());
    const ops = r.model.graph!.node.map((n) => n.opType);
    assert.ok(!ops.includes('Constant'), 'Constant-held weights were replaced by quantized initializers');
    const qm = encodeModel(r.model);
    // Weight storage: float32 → int8; in a model this small the int32 biases and the per-channel
    // scale vectors are a good part of it, so the ratio is below the 4× of large layers.
    const weightBytes = (m: ModelProto) => m.graph!.initializer.reduce((s, t) => s + (t.rawData?.length ?? 0), 0);
    const floatWeights = OnnxModel.fromProto(proto).weights().reduce((s, w) => s + w.tensor.rawData!.length, 0);
    assert.ok(weightBytes(r.model) < floatWeights / 2.8, `weights ${weightBytes(r.model)} vs ${floatWeights}`);
    for (const f of feeds) {
      const ref = (await runModel(encodeModel(proto), f))[logits]!.data as Float32Array;
      const got = (await runModel(qm, f))[logits]!.data as Float32Array;
      const db = sqnr(ref, got);
      assert.ok(db > 30, `SQNR ${db.toFixed(1)} dB`);
    }
    // The original model is untouched.
    assert.ok(proto.graph!.node.some((n) => n.opType === 'Constant'));
    assert.equal(OnnxModel.fromProto(proto).weights().length, 6);
  });

  it('a weight shared by two MatMuls and an activation read by two nodes are quantized once', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 2 });
    const x = b.input('x', DataType.FLOAT, [2, 4]);
    b.initializer('W', DataType.FLOAT, [4, 4], b.rng.normals(16, 0.5));
    const h = b.relu(b.node('MatMul', [x, 'W'], {}, { name: 'mm1' }));
    const y1 = b.node('MatMul', [h, 'W'], {}, { name: 'mm2', outputs: ['y1'] });
    const y2 = b.node('MatMul', [h, 'W'], {}, { name: 'mm3', outputs: ['y2'] });
    b.output(y1, DataType.FLOAT);
    b.output(y2, DataType.FLOAT);
    const proto = b.build();
    const feeds = [{ x: floatTensor([2, 4], (i) => Math.cos(i)) }];
    const r = quantizeStaticQdq(proto, { config: config(), ranges: await observeAll(proto, feeds), readWeight, domain: '' });
    const names = r.model.graph!.initializer.map((t) => t.name);
    assert.equal(names.filter((n) => n.startsWith('W_quantized')).length, 1);
    assert.equal(r.model.graph!.node.filter((n) => n.opType === 'QuantizeLinear' && n.input[0] === h).length, 1);
    const ref = await runModel(encodeModel(proto), feeds[0]!);
    const got = await runModel(encodeModel(r.model), feeds[0]!);
    for (const k of ['y1', 'y2']) assert.ok(sqnr(ref[k]!.data as Float32Array, got[k]!.data as Float32Array) > 30);
  });

  it('excluded nodes, missing ranges and run-time weights are reported with reasons', () => {
    const b = new ModelBuilder({ opset: 13 });
    const x = b.input('x', DataType.FLOAT, [2, 4]);
    const w = b.input('w', DataType.FLOAT, [4, 4]);
    const h1 = b.matMul(x, 4, 4, { name: 'mm_excluded' });
    const h2 = b.node('Conv', [h1, w], {}, { name: 'conv_runtime_weight' });
    const h3 = b.matMul(h2, 4, 4, { name: 'mm_no_range' });
    b.output(h3, DataType.FLOAT);
    const r = quantizeStaticQdq(b.build(), {
      config: config({ exclude: ['mm_excluded'] }),
      ranges: new Map([['x', { min: -1, max: 1 }]]),
      readWeight,
      domain: '',
    });
    const reasons = Object.fromEntries(r.skipped.map((s) => [s.name, s.reason]));
    assert.match(reasons.mm_excluded!, /excluded by the user/);
    assert.match(reasons.conv_runtime_weight!, /weight is computed at run time/);
    assert.match(reasons.mm_no_range!, /no calibrated range for tensor/);
    assert.equal(r.quantized.length, 0);
  });

  it('com.microsoft Q/DQ for 16-bit activations runs in onnxruntime', async () => {
    const b = new ModelBuilder({ opset: 11, seed: 9 });
    let x = b.input('x', DataType.FLOAT, [1, 2, 8, 8]);
    x = b.relu(b.conv(x, 2, 4, 3, { name: 'c1' }));
    const y = b.conv(x, 4, 4, 3, { name: 'c2' });
    b.output(y, DataType.FLOAT);
    const proto = b.build();
    const feeds = [{ x: floatTensor([1, 2, 8, 8], (i) => Math.sin(i * 0.3)) }];
    const ranges = await observeAll(proto, feeds);
    const r = quantizeStaticQdq(proto, { config: config({ activationType: 'uint16' }), ranges, readWeight, domain: 'com.microsoft' });
    assert.deepEqual(r.model.opsetImport, [
      { domain: '', version: 11 },
      { domain: 'com.microsoft', version: 1 },
    ]);
    assert.ok(r.model.graph!.node.filter((n) => n.opType === 'QuantizeLinear').every((n) => n.domain === 'com.microsoft'));
    const ref = (await runModel(encodeModel(proto), feeds[0]!))[y]!.data as Float32Array;
    const got = (await runModel(encodeModel(r.model), feeds[0]!))[y]!.data as Float32Array;
    assert.ok(sqnr(ref, got) > 35, `SQNR ${sqnr(ref, got)}`);
  });
  it('activationQdq: a layer whose output only float ops read takes its input in float ("integer-kernels"), dequantized with "every-layer"', async () => {
    // x ─ conv0 → Relu → conv1 → HardSwish → y1     conv0 can be an integer kernel; conv1 cannot
    //   └ convA → HardSwish → y2                    convA cannot, and x is a graph input
    // a, c ─ MatMul → y3                            a float output, but onnxruntime still fuses it
    //                                               (MatMulIntegerToFloat): its inputs stay quantized
    const b = new ModelBuilder({ opset: 13, seed: 11 });
    const x = b.input('x', DataType.FLOAT, [1, 3, 10, 10]);
    const h0 = b.relu(b.conv(x, 3, 4, 3, { name: 'conv0' }));
    const y1 = hardSwish(b, b.conv(h0, 4, 4, 3, { name: 'conv1' }), 'hswish1');
    const y2 = hardSwish(b, b.conv(x, 3, 4, 3, { name: 'convA' }), 'hswish2');
    const a = b.input('a', DataType.FLOAT, [2, 3]);
    const c = b.input('c', DataType.FLOAT, [3, 2]);
    const y3 = b.node('MatMul', [a, c], {}, { name: 'mm_acts' });
    for (const y of [y1, y2, y3]) b.output(y, DataType.FLOAT);
    const proto = b.build();
    const feeds = [0, 1, 2].map((k) => ({
      x: floatTensor([1, 3, 10, 10], (i) => Math.sin(i * 0.37 + k)),
      a: floatTensor([2, 3], (i) => Math.cos(i + k)),
      c: floatTensor([3, 2], (i) => Math.sin(2 * i + k)),
    }));
    const ranges = await observeAll(proto, feeds);
    const nodeOf = (r: ReturnType<typeof quantizeStaticQdq>, name: string) => r.model.graph!.node.find((n) => n.name === name)!;
    const producerOp = (r: ReturnType<typeof quantizeStaticQdq>, t: string) => r.model.graph!.node.find((n) => n.output.includes(t))?.opType;

    const ik = quantizeStaticQdq(proto, { config: config(), ranges, readWeight, domain: '' });
    const convA = nodeOf(ik, 'convA');
    assert.equal(convA.input[0], x, 'convA reads the graph input itself');
    assert.equal(producerOp(ik, convA.input[1]!), 'DequantizeLinear', 'its weights are int8');
    assert.equal(producerOp(ik, convA.input[2]!), undefined, 'its bias stays float: no int32 bias without an input scale');
    assert.equal(producerOp(ik, nodeOf(ik, 'conv0').input[0]!), 'DequantizeLinear', 'conv0, an integer kernel, reads x quantized');
    assert.equal(producerOp(ik, nodeOf(ik, 'conv1').input[0]!), 'DequantizeLinear', "conv1 reads conv0's quantized output (conv0 fuses, and its Relu is folded)");
    assert.match(ik.quantized.find((q) => q.name === 'convA')!.detail, /float activations: its output feeds only float ops/);
    assert.equal(producerOp(ik, nodeOf(ik, 'mm_acts').input[0]!), 'DequantizeLinear');
    assert.deepEqual(ik.model.graph!.node.filter((n) => n.opType === 'QuantizeLinear').map((n) => n.input[0]).sort(), [x, h0, a, c].sort());

    const every = quantizeStaticQdq(proto, { config: config({ activationQdq: 'every-layer' }), ranges, readWeight, domain: '' });
    assert.equal(producerOp(every, nodeOf(every, 'convA').input[0]!), 'DequantizeLinear');

    // onnxruntime runs both; convA's branch loses only its weight rounding without the input's.
    const ref = await runModel(encodeModel(proto), feeds[0]!);
    const gotIk = await runModel(encodeModel(ik.model), feeds[0]!);
    const gotEvery = await runModel(encodeModel(every.model), feeds[0]!);
    const q = (got: typeof ref, y: string) => sqnr(ref[y]!.data as Float32Array, got[y]!.data as Float32Array);
    assert.ok(q(gotIk, y2) > q(gotEvery, y2) + 3, `convA branch: ${q(gotIk, y2)} vs ${q(gotEvery, y2)} dB`);
    assert.ok(q(gotIk, y1) > 25 && q(gotEvery, y1) > 25);
  });
  it('floatKernelWeights: float-kernel convs keep float weights, smallest first, within the budget; integer kernels and "every-layer" are untouched', async () => {
    // x ─ conv0 (432 weights) → Relu → convBig (2304) → HardSwish → y1   convBig: a float kernel
    //   └ convSmall (12 weights, 1×1) → HardSwish → y2                    convSmall: a float kernel
    // int8 weights: 2748 bytes; budget 0.125 → 343.5 bytes; convSmall in float adds 3 × 12 = 36, convBig 6912.
    const b = new ModelBuilder({ opset: 13, seed: 12 });
    const x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
    const h0 = b.relu(b.conv(x, 3, 16, 3, { name: 'conv0' }));
    const y1 = hardSwish(b, b.conv(h0, 16, 16, 3, { name: 'convBig' }), 'hswish1');
    const y2 = hardSwish(b, b.conv(x, 3, 4, 1, { name: 'convSmall' }), 'hswish2');
    for (const y of [y1, y2]) b.output(y, DataType.FLOAT);
    const proto = b.build();
    const feeds = [0, 1].map((k) => ({ x: floatTensor([1, 3, 8, 8], (i) => Math.sin(i * 0.29 + k)) }));
    const ranges = await observeAll(proto, feeds);
    const weightProducer = (r: ReturnType<typeof quantizeStaticQdq>, name: string) => {
      const n = r.model.graph!.node.find((m) => m.name === name)!;
      return r.model.graph!.node.find((m) => m.output.includes(n.input[1]!))?.opType ?? 'initializer';
    };

    const kept = quantizeStaticQdq(proto, { config: config({ floatKernelWeights: 0.125 }), ranges, readWeight, domain: '' });
    assert.equal(weightProducer(kept, 'convSmall'), 'initializer', 'convSmall keeps its float weights');
    assert.match(kept.skipped.find((s) => s.name === 'convSmall')!.reason, /float kernel .* its 12 weights stay float/);
    assert.equal(weightProducer(kept, 'convBig'), 'DequantizeLinear', 'convBig is over the budget');
    assert.equal(weightProducer(kept, 'conv0'), 'DequantizeLinear', 'conv0 is an integer kernel');
    const ref = await runModel(encodeModel(proto), feeds[0]!);
    const got = await runModel(encodeModel(kept.model), feeds[0]!);
    assert.deepEqual([...(got[y2]!.data as Float32Array)], [...(ref[y2]!.data as Float32Array)], "convSmall's branch is the float model's");
    assert.ok(sqnr(ref[y1]!.data as Float32Array, got[y1]!.data as Float32Array) > 25);

    for (const other of [config({ floatKernelWeights: 0 }), config({ floatKernelWeights: 0.125, activationQdq: 'every-layer' })]) {
      const r = quantizeStaticQdq(proto, { config: other, ranges, readWeight, domain: '' });
      assert.equal(weightProducer(r, 'convSmall'), 'DequantizeLinear', `${other.floatKernelWeights}, ${other.activationQdq}`);
    }
    // 3 lets every 8-bit float kernel stay float (3 extra bytes a weight).
    const all = quantizeStaticQdq(proto, { config: config({ floatKernelWeights: 3 }), ranges, readWeight, domain: '' });
    assert.deepEqual(['convSmall', 'convBig', 'conv0'].map((n) => weightProducer(all, n)), ['initializer', 'initializer', 'DequantizeLinear']);
  });
  it('activationQdq "none": every layer keeps quantized weights behind a DequantizeLinear, no activation is quantized, and nothing is folded', async () => {
    // x ─ conv0 → Relu → conv1 → HardSwish → y1;  a, c ─ MatMul → y2 (two activations: stays float)
    const b = new ModelBuilder({ opset: 13, seed: 13 });
    const x = b.input('x', DataType.FLOAT, [1, 3, 10, 10]);
    const h0 = b.relu(b.conv(x, 3, 8, 3, { name: 'conv0' }));
    const y1 = hardSwish(b, b.conv(h0, 8, 8, 3, { name: 'conv1' }), 'hswish1');
    const a = b.input('a', DataType.FLOAT, [2, 3]);
    const c = b.input('c', DataType.FLOAT, [3, 2]);
    const y2 = b.node('MatMul', [a, c], {}, { name: 'mm_acts' });
    for (const y of [y1, y2]) b.output(y, DataType.FLOAT);
    const proto = b.build();
    assert.deepEqual(calibrationTensors(proto, config({ activationQdq: 'none' })), [], 'no activation range is needed');
    const feeds = [0, 1].map((k) => ({ x: floatTensor([1, 3, 10, 10], (i) => Math.sin(i * 0.31 + k)), a: floatTensor([2, 3], (i) => Math.cos(i + k)), c: floatTensor([3, 2], (i) => Math.sin(2 * i + k)) }));
    const ranges = await observeAll(proto, feeds);
    const none = quantizeStaticQdq(proto, { config: config({ activationQdq: 'none', floatKernelWeights: 0 }), ranges: new Map(), readWeight, domain: '' });
    const g = none.model.graph!;
    assert.equal(g.node.filter((n) => n.opType === 'QuantizeLinear').length, 0, 'no activation Q/DQ');
    for (const name of ['conv0', 'conv1']) {
      const n = g.node.find((m) => m.name === name)!;
      assert.equal(g.node.find((m) => m.output.includes(n.input[1]!))?.opType, 'DequantizeLinear', `${name}: int8 weights`);
      assert.equal(n.input[2], proto.graph!.node.find((m) => m.name === name)!.input[2], `${name}: its bias stays float`);
      assert.match(none.quantized.find((q) => q.name === name)!.detail, /float activations \(--activation-qdq none\)/);
    }
    assert.equal(g.node.filter((n) => n.opType === 'Relu').length, 1, 'the Relu stays: no quantized output to fold it into');
    assert.match(none.skipped.find((s) => s.name === 'mm_acts')!.reason, /activations stay float/);
    // Only the weights' rounding is left: better than with quantized activations.
    const ik = quantizeStaticQdq(proto, { config: config({ floatKernelWeights: 0 }), ranges, readWeight, domain: '' });
    const ref = await runModel(encodeModel(proto), feeds[0]!);
    const gotNone = await runModel(encodeModel(none.model), feeds[0]!);
    const gotIk = await runModel(encodeModel(ik.model), feeds[0]!);
    const q = (got: typeof ref) => sqnr(ref[y1]!.data as Float32Array, got[y1]!.data as Float32Array);
    assert.ok(q(gotNone) > 35 && q(gotNone) > q(gotIk), `${q(gotNone)} vs ${q(gotIk)} dB`);
    assert.deepEqual([...(gotNone[y2]!.data as Float32Array)], [...(ref[y2]!.data as Float32Array)]);
  });
  it('calibrationTensors: only what the placement quantizes (a float-kernel conv\'s input is not observed), and those ranges give the same model as every range', async () => {
    // x ─ convA → HardSwish → y1          convA runs in float: x needs no range ('integer-kernels')
    // x2 ─ conv0 → Relu → conv1 → y2      conv0 is an integer kernel (Relu folded); conv1 reads its output
    const b = new ModelBuilder({ opset: 13, seed: 14 });
    const x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
    const x2 = b.input('x2', DataType.FLOAT, [1, 3, 8, 8]);
    const y1 = hardSwish(b, b.conv(x, 3, 4, 3, { name: 'convA' }), 'hswish');
    const h0 = b.relu(b.conv(x2, 3, 4, 3, { name: 'conv0' }));
    const y2 = b.conv(h0, 4, 4, 3, { name: 'conv1' });
    for (const y of [y1, y2]) b.output(y, DataType.FLOAT);
    const proto = b.build();
    const cfg = config({ floatKernelWeights: 0 });
    assert.deepEqual(calibrationTensors(proto, cfg).sort(), [x2, h0].sort());
    assert.deepEqual(calibrationTensors(proto, config({ floatKernelWeights: 0, activationQdq: 'every-layer' })).sort(), [x, x2, h0].sort());
    const feeds = [0, 1].map((k) => ({ x: floatTensor([1, 3, 8, 8], (i) => Math.sin(i * 0.3 + k)), x2: floatTensor([1, 3, 8, 8], (i) => Math.cos(i * 0.2 + k)) }));
    const all = await observeAll(proto, feeds);
    const only = new Map([...all].filter(([t]) => calibrationTensors(proto, cfg).includes(t)));
    const a = quantizeStaticQdq(proto, { config: cfg, ranges: all, readWeight, domain: '' });
    const o = quantizeStaticQdq(proto, { config: cfg, ranges: only, readWeight, domain: '' });
    assert.deepEqual(encodeModel(o.model), encodeModel(a.model));
    assert.deepEqual(o.skipped, a.skipped);
  });

  it('calibrationTensors leaves out what MaxPool / Flatten output (they take their input\'s parameters); when the pool is not quantized, its input\'s range serves the next conv', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 21 });
    const x = b.input('x', DataType.FLOAT, [1, 3, 12, 12]);
    const h = b.relu(b.conv(x, 3, 8, 3, { name: 'c1' }));
    const pooled = b.node('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] }, { name: 'pool' });
    const g = b.node('GlobalAveragePool', [b.relu(b.conv(pooled, 8, 8, 3, { name: 'c2' }))], {}, { name: 'gap' });
    const flat = b.node('Flatten', [g], {}, { name: 'flat' });
    b.output(b.gemm(flat, 8, 4, { name: 'fc' }), DataType.FLOAT, [1, 4]);
    const proto = b.build();
    const cfg = config();
    const names = calibrationTensors(proto, cfg);
    assert.ok(names.includes(h) && names.includes(g), names.join(', '));
    assert.ok(!names.includes(pooled) && !names.includes(flat), names.join(', '));
    const feeds = [0, 1, 2].map((k) => ({ x: floatTensor([1, 3, 12, 12], (i) => Math.sin(i * 0.13 + k)) }));
    const all = await observeAll(proto, feeds);
    const only = new Map([...all].filter(([t]) => names.includes(t)));
    const a = quantizeStaticQdq(proto, { config: cfg, ranges: all, readWeight, domain: '' });
    const o = quantizeStaticQdq(proto, { config: cfg, ranges: only, readWeight, domain: '' });
    assert.deepEqual(encodeModel(o.model), encodeModel(a.model), 'the pooled and flattened ranges were never read');
    // c1 in float: the pool moves float values, and c2 quantizes its input with the range of h ⊇ pooled.
    const e = quantizeStaticQdq(proto, { config: config({ exclude: ['c1'] }), ranges: only, readWeight, domain: '' });
    assert.ok(e.quantized.some((q) => q.name === 'c2'), e.skipped.map((s) => `${s.name}: ${s.reason}`).join('; '));
    assert.deepEqual(e.activations.get(pooled), computeQParams(all.get(h)!.min, all.get(h)!.max, 'uint8'));
  });
});
