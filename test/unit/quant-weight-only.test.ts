/**
 * Weight-only blockwise quantization: onnxruntime's MatMulNBits (and DequantizeLinear with
 * block_size) must compute exactly X · dequantize(W) as an independent JS decoder of the stored
 * tensors reads them, stay within int4/int8 error of float, and shrink the weights.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Attr, GraphBuilder, ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel, walkGraphs } from '../../src/onnx/model';
import { GraphProto, ModelProto, NodeProto, TensorProto } from '../../src/onnx/proto';
import { tensorToFloat32, tensorValues } from '../../src/onnx/tensor-data';
import { DEFAULT_CONFIG, QuantConfig } from '../../src/quant/config';
import { quantizeWeightOnly } from '../../src/quant/graph/weight-only';
import { floatTensor, REAL_MODELS, realModelFeeds, runModel } from '../helpers/ort';
import { sqnrDb } from '../helpers/reference';


const cfg = (o: Partial<QuantConfig> = {}): QuantConfig => ({ ...DEFAULT_CONFIG, mode: 'weight-only', weightType: 'int4', ...o });

function nodes(model: ModelProto): NodeProto[] {
  return [...walkGraphs(model.graph!)].flatMap((g) => g.node);
}

function findTensor(model: ModelProto, name: string): TensorProto {
  for (const g of walkGraphs(model.graph!)) {
    const t = g.initializer.find((x) => x.name === name);
    if (t) return t;
  }
  throw new Error(`no initializer ${name}`);
}

function intAttr(n: NodeProto, name: string): number {
  return Number(n.attribute.find((a) => a.name === name)!.i);
}

/** Independent reading of MatMulNBits' documented layout: W[k, n] = (code − zero point) · scale. */
function decodeMatMulNBits(model: ModelProto, node: NodeProto): { w: Float64Array; k: number; n: number } {
  const k = intAttr(node, 'K');
  const n = intAttr(node, 'N');
  const bits = intAttr(node, 'bits');
  const bs = intAttr(node, 'block_size');
  const blocks = Math.ceil(k / bs);
  const b = tensorValues(findTensor(model, node.input[1]!)) as Uint8Array;
  const scales = tensorToFloat32(findTensor(model, node.input[2]!));
  const zpT = node.input[3] ? (tensorValues(findTensor(model, node.input[3])) as Uint8Array) : undefined;
  const code = (bytes: Uint8Array, bitIndex: number) => (bytes[bitIndex >> 3]! >> (bitIndex & 7)) & ((1 << bits) - 1);
  const blob = (bs * bits) / 8;
  const zpRow = Math.ceil((blocks * bits) / 8);
  const w = new Float64Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let kk = 0; kk < k; kk++) {
      const blk = Math.floor(kk / bs);
      const q = code(b.subarray((col * blocks + blk) * blob), (kk % bs) * bits);
      const z = zpT ? code(zpT.subarray(col * zpRow), blk * bits) : 1 << (bits - 1);
      w[kk * n + col] = (q - z) * scales[col * blocks + blk]!;
    }
  }
  return { w, k, n };
}

function matmul(x: Float32Array, m: number, w: Float64Array, k: number, n: number): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let kk = 0; kk < k; kk++) for (let j = 0; j < n; j++) y[i * n + j]! += x[i * k + kk]! * w[kk * n + j]!;
  return y;
}

function maxRelDiff(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < ref.length; i++) {
    e = Math.max(e, Math.abs(ref[i]! - got[i]!));
    s = Math.max(s, Math.abs(ref[i]!));
  }
  return e / s;
}

function weightBytes(model: ModelProto): number {
  let n = 0;
  for (const g of walkGraphs(model.graph!)) for (const t of g.initializer) n += t.rawData?.length ?? 0;
  return n;
}

/** x [M, K] → MatMul(W [K, N]); K = 80 leaves a partial last block for every block size. */
function matMulModel(k = 80, n = 24, opset = 17, placement: 'initializer' | 'constant' = 'initializer'): ModelProto {
  const b = new ModelBuilder({ opset, seed: 11 });
  b.weightPlacement = placement;
  const x = b.input('x', DataType.FLOAT, [3, k]);
  b.output(b.matMul(x, k, n), DataType.FLOAT);
  return b.build();
}

const input = (m: number, k: number) => floatTensor([m, k], (i) => Math.sin(i * 0.61) * 1.5);

describe('quantizeWeightOnly: MatMulNBits', () => {
  for (const [weightType, symmetricWeights, blockSize] of [
    ['int4', true, 32],
    ['uint4', false, 64],
    ['int4', false, 128],
    ['int8', true, 32],
    ['uint8', false, 32],
  ] as const) {
    it(`${weightType} ${symmetricWeights ? 'symmetric' : 'asymmetric'} block ${blockSize}: equals the JS-dequantized reference`, async () => {
      const model = matMulModel();
      const r = quantizeWeightOnly(model, cfg({ weightType, symmetricWeights, blockSize }));
      assert.equal(r.quantized.length, 1);
      const node = nodes(r.model).find((x) => x.opType === 'MatMulNBits')!;
      assert.equal(node.domain, 'com.microsoft');
      assert.equal(intAttr(node, 'bits'), weightType.endsWith('4') ? 4 : 8);
      assert.ok(r.model.opsetImport.some((o) => o.domain === 'com.microsoft' && o.version === 1));
      const { w, k, n } = decodeMatMulNBits(r.model, node);
      const x = input(3, k);
      const got = (await runModel(encodeModel(r.model), { x }))[r.model.graph!.output[0]!.name]!.data as Float32Array;
      const ref = matmul(x.data as Float32Array, 3, w, k, n);
      assert.ok(maxRelDiff(ref, got) < 1e-5, `kernel vs JS reference: ${maxRelDiff(ref, got)}`);
      const float = (await runModel(encodeModel(model), { x }))[model.graph!.output[0]!.name]!.data as Float32Array;
      const db = sqnrDb(float, got);
      assert.ok(db > (weightType.endsWith('4') ? 17 : 38), `SQNR vs float ${db.toFixed(1)} dB`);
    });
  }

  it('Gemm: transB, alpha, beta and C (constant and computed) become MatMulNBits + Add', async () => {
    const b = new ModelBuilder({ opset: 17, seed: 4 });
    const x = b.input('x', DataType.FLOAT, [4, 64]);
    const w = b.weight('w', [48, 64], b.rng.normals(48 * 64, 0.2));
    const c = b.weight('c', [48], b.rng.normals(48, 0.3));
    const g1 = b.node('Gemm', [x, w, c], { transB: 1, alpha: 0.5, beta: Attr.float(2) });
    const w2 = b.weight('w2', [48, 32], b.rng.normals(48 * 32, 0.2));
    // A computed C: the first 32 columns of the first Gemm's output.
    const slice = b.node('Slice', [g1, b.initializer('st', DataType.INT64, [1], BigInt64Array.of(0n)), b.initializer('en', DataType.INT64, [1], BigInt64Array.of(32n)), b.initializer('ax', DataType.INT64, [1], BigInt64Array.of(1n))]);
    const g2 = b.node('Gemm', [g1, w2, slice], { beta: 0.5 });
    b.output(g2, DataType.FLOAT);
    const model = b.build();
    const r = quantizeWeightOnly(model, cfg({ weightType: 'int8', blockSize: 32 }));
    assert.deepEqual(r.quantized.map((q) => q.detail.split(',')[0]), ['MatMulNBits + Add', 'MatMulNBits + Add']);
    const feeds = { x: input(4, 64) };
    const a = (await runModel(encodeModel(model), feeds))[g2]!.data as Float32Array;
    const q = (await runModel(encodeModel(r.model), feeds))[g2]!.data as Float32Array;
    assert.ok(sqnrDb(a, q) > 38, `SQNR ${sqnrDb(a, q)}`);
  });

  it('quantizes a shared weight once, weights in Constant nodes and inside If branches', async () => {
    const b = new ModelBuilder({ opset: 17, seed: 8 });
    b.weightPlacement = 'constant';
    const x = b.input('x', DataType.FLOAT, [2, 64]);
    const cond = b.input('cond', DataType.BOOL, []);
    const w = b.weight('shared', [64, 64], b.rng.normals(64 * 64, 0.15));
    const h = b.node('MatMul', [b.node('MatMul', [x, w]), w]);
    const branch = (name: string) =>
      b.subgraph(name, (g: GraphBuilder) => {
        g.output(g.matMul(h, 64, 16), DataType.FLOAT);
      });
    const [y] = b.nodeOutputs('If', [cond], { then_branch: branch('then'), else_branch: branch('else') });
    b.output(y!, DataType.FLOAT);
    const model = b.build();
    const r = quantizeWeightOnly(model, cfg({ weightType: 'int8' }));
    assert.equal(r.quantized.length, 4);
    const nb = nodes(r.model).filter((n) => n.opType === 'MatMulNBits');
    assert.equal(nb.length, 4);
    assert.equal(nb[0]!.input[1], nb[1]!.input[1], 'one packed copy of the shared weight');
    assert.equal(nodes(r.model).filter((n) => n.opType === 'Constant').length, 0, 'float Constants are gone');
    for (const c of [true, false]) {
      const feeds = { x: input(2, 64), cond: new ort.Tensor('bool', [c], []) };
      const a = (await runModel(encodeModel(model), feeds))[y!]!.data as Float32Array;
      const q = (await runModel(encodeModel(r.model), feeds))[y!]!.data as Float32Array;
      assert.ok(sqnrDb(a, q) > 35, `branch ${c}: ${sqnrDb(a, q)}`);
    }
  });

  it('weights shrink 6-7x at int4 (block 32: 6.4x, block 128: 7.5x)', () => {
    const model = matMulModel(512, 256);
    const before = weightBytes(model);
    const r32 = weightBytes(quantizeWeightOnly(model, cfg({ blockSize: 32 })).model);
    const r128 = weightBytes(quantizeWeightOnly(model, cfg({ blockSize: 128 })).model);
    assert.ok(Math.abs(before / r32 - 6.4) < 0.05, `block 32: ${before / r32}`);
    assert.ok(Math.abs(before / r128 - 7.53) < 0.05, `block 128: ${before / r128}`);
  });

  it('reports what it leaves: activation × activation, excluded nodes', () => {
    const b = new ModelBuilder({ opset: 17 });
    const x = b.input('x', DataType.FLOAT, [2, 8]);
    const y = b.input('y', DataType.FLOAT, [8, 2]);
    b.output(b.node('MatMul', [x, y], {}, { name: 'act' }), DataType.FLOAT);
    b.output(b.matMul(x, 8, 4, { name: 'skipme' }), DataType.FLOAT);
    const r = quantizeWeightOnly(b.build(), cfg({ exclude: ['skipme'] }));
    assert.equal(r.quantized.length, 0);
    assert.deepEqual(
      r.skipped.map((s) => [s.name, s.reason]),
      [
        ['act', 'input B is not a constant (no weight)'],
        ['skipme', 'excluded by the configuration'],
      ],
    );
  });
});

describe('quantizeWeightOnly: DequantizeLinear with block_size (opset 21)', () => {
  it('int4 MatMul and transposed Gemm equal the JS-dequantized reference', async () => {
    const b = new ModelBuilder({ opset: 21, seed: 12 });
    const x = b.input('x', DataType.FLOAT, [3, 80]);
    const m = b.matMul(x, 80, 40);
    const g = b.gemm(m, 40, 8, { transB: true });
    b.output(g, DataType.FLOAT);
    const model = b.build();
    const r = quantizeWeightOnly(model, cfg({ weightType: 'int4', symmetricWeights: false, blockSize: 32 }));
    const dqs = nodes(r.model).filter((n) => n.opType === 'DequantizeLinear');
    assert.equal(dqs.length, 2);
    assert.equal(nodes(r.model).filter((n) => n.opType === 'Gemm').length, 1, 'Gemm keeps its attributes');
    // Reference: dequantize each weight in JS (blocks along the K axis) and substitute it as float.
    const ref = structuredClone(model) as ModelProto;
    for (const dq of dqs) {
      const q = findTensor(r.model, dq.input[0]!);
      const s = findTensor(r.model, dq.input[1]!);
      const z = dq.input[2] ? tensorToFloat32(findTensor(r.model, dq.input[2])) : undefined;
      const axis = intAttr(dq, 'axis');
      const bs = intAttr(dq, 'block_size');
      assert.equal(q.dataType, DataType.INT4);
      const qv = tensorToFloat32(q);
      const sv = tensorToFloat32(s);
      const [r0, c0] = q.dims as [number, number];
      const w = new Float32Array(qv.length);
      for (let i = 0; i < r0; i++) {
        for (let j = 0; j < c0; j++) {
          const si = axis === 0 ? Math.floor(i / bs) * c0 + j : i * s.dims[1]! + Math.floor(j / bs);
          w[i * c0 + j] = (qv[i * c0 + j]! - (z ? z[si]! : 0)) * sv[si]!;
        }
      }
      const consumer = nodes(r.model).find((n) => n.input.includes(dq.output[0]!))!;
      const original = nodes(ref).find((n) => n.name === consumer.name)!;
      const gr = ref.graph as GraphProto;
      const t = gr.initializer.find((x) => x.name === original.input[1])!;
      t.rawData = new Uint8Array(w.buffer);
    }
    const feeds = { x: input(3, 80) };
    const name = model.graph!.output[0]!.name;
    const want = (await runModel(encodeModel(ref), feeds))[name]!.data as Float32Array;
    // Unoptimized, DequantizeLinear + MatMul compute exactly the dequantized product …
    const session = await ort.InferenceSession.create(encodeModel(r.model), { graphOptimizationLevel: 'disabled' });
    const exact = (await session.run(feeds))[name]!.data as Float32Array;
    await session.release();
    assert.ok(maxRelDiff(want, exact) < 1e-5, `DQ vs JS reference: ${maxRelDiff(want, exact)}`);
    // … while onnxruntime's default optimizations fuse them into MatMulNBits with int8 activations.
    const fused = (await runModel(encodeModel(r.model), feeds))[name]!.data as Float32Array;
    assert.ok(maxRelDiff(want, fused) < 3e-2, `fused: ${maxRelDiff(want, fused)}`);
  });

  it('"dq" below opset 21 is refused rather than silently upgrading the opset', () => {
    assert.throws(() => quantizeWeightOnly(matMulModel(), cfg(), { format: 'dq' }), /needs opset 21/);
  });
});

describe('quantizeWeightOnly: real model', () => {
  it('PP-OCRv4 recognizer (MatMul weights in Constant nodes) runs; output SQNR reported', async () => {
    const model = OnnxModel.load(REAL_MODELS.ocrRec);
    const feeds = realModelFeeds('ocrRec');
    const ref = await runModel(REAL_MODELS.ocrRec, feeds);
    const lines: string[] = [];
    for (const [weightType, blockSize, floor] of [
      ['int4', 32, 20],
      ['int8', 32, 38],
    ] as const) {
      const r = quantizeWeightOnly(model, cfg({ weightType, blockSize }));
      assert.equal(r.quantized.length, 9);
      assert.ok(r.skipped.every((s) => /not a constant/.test(s.reason)));
      const bytes = encodeModel(r.model);
      const out = await runModel(bytes, feeds);
      const name = Object.keys(ref)[0]!;
      const db = sqnrDb(ref[name]!.data as Float32Array, out[name]!.data as Float32Array);
      lines.push(`${weightType}/block ${blockSize}: ${db.toFixed(1)} dB, file ${(model.buffer.length / 1e6).toFixed(2)} → ${(bytes.length / 1e6).toFixed(2)} MB`);
      assert.ok(db >= floor, `${weightType}: ${db.toFixed(1)} dB`);
    }
    console.log(`ocrRec weight-only (9 MatMul): ${lines.join('; ')}`);
  });
});
