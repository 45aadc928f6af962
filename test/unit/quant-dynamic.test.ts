/**
 * Dynamic quantization: the rewritten models must run in onnxruntime (contrib kernels included)
 * and stay close to float — SQNR against the float model on random data — for MatMul, Gemm, Conv
 * and LSTM, in subgraphs too; and on the Silero VAD models (LSTM, and Gemm-unrolled inside an If).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Attr, GraphBuilder, ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel, walkGraphs } from '../../src/onnx/model';
import { ModelProto, NodeProto } from '../../src/onnx/proto';
import { DEFAULT_CONFIG, QuantConfig } from '../../src/quant/config';
import { quantizeDynamic } from '../../src/quant/graph/dynamic';
import { floatTensor, REAL_MODELS, realModelFeeds, runModel, type Feeds } from '../helpers/ort';
import { sqnrDb } from '../helpers/reference';


const cfg = (o: Partial<QuantConfig> = {}): QuantConfig => ({ ...DEFAULT_CONFIG, mode: 'dynamic', ...o });

function ops(model: ModelProto): string[] {
  return [...walkGraphs(model.graph!)].flatMap((g) => g.node.map((n: NodeProto) => (n.domain ? `${n.domain}.${n.opType}` : n.opType)));
}

/** SQNR (dB) of every output of `quantized` against `model`, run on the same feeds. */
async function outputSqnr(model: ModelProto, quantized: ModelProto, feeds: Feeds): Promise<Record<string, number>> {
  const a = await runModel(encodeModel(model), feeds);
  const b = await runModel(encodeModel(quantized), feeds);
  const out: Record<string, number> = {};
  for (const name of Object.keys(a)) {
    assert.deepEqual(b[name]!.dims, a[name]!.dims);
    out[name] = sqnrDb(a[name]!.data as Float32Array, b[name]!.data as Float32Array);
  }
  return out;
}

const random = (dims: number[], seed = 1) => floatTensor(dims, (i) => Math.sin(i * 12.9898 + seed) * 43758.5453 % 1);

describe('quantizeDynamic: MatMul and Gemm → DynamicQuantizeMatMul', () => {
  for (const [weightType, symmetricWeights, perChannel] of [
    ['int8', true, true],
    ['uint8', false, false],
    ['int8', false, true],
  ] as const) {
    it(`MLP, ${weightType} ${symmetricWeights ? 'symmetric' : 'asymmetric'} ${perChannel ? 'per-channel' : 'per-tensor'}: SQNR > 30 dB`, async () => {
      const b = new ModelBuilder({ opset: 17, seed: 21 });
      const x = b.input('x', DataType.FLOAT, [8, 64]);
      const h = b.relu(b.matMul(x, 64, 48));
      const y = b.gemm(b.relu(b.gemm(h, 48, 32, { transB: true })), 32, 16, { transB: false });
      b.output(y, DataType.FLOAT);
      const model = b.build();
      const r = quantizeDynamic(model, cfg({ weightType, symmetricWeights, perChannel }));
      assert.equal(r.quantized.length, 3);
      assert.equal(ops(r.model).filter((o) => o === 'com.microsoft.DynamicQuantizeMatMul').length, 3);
      assert.ok(r.model.opsetImport.some((o) => o.domain === 'com.microsoft' && o.version === 1));
      const db = await outputSqnr(model, r.model, { x: random([8, 64]) });
      assert.ok(db[y]! > 30, `SQNR ${db[y]}`);
    });
  }

  it('Gemm alpha/beta, a computed C and a weight shared by two nodes (quantized once)', async () => {
    const b = new ModelBuilder({ opset: 17, seed: 22 });
    const x = b.input('x', DataType.FLOAT, [4, 32]);
    const w = b.weight('w', [32, 32], b.rng.normals(32 * 32, 0.2));
    const c = b.weight('c', [32], b.rng.normals(32, 0.2));
    const g1 = b.node('Gemm', [x, w, c], { alpha: 0.5, beta: Attr.float(2) });
    const g2 = b.node('Gemm', [g1, w, x], { beta: 0.5 }); // C is an activation
    b.output(g2, DataType.FLOAT);
    const model = b.build();
    const r = quantizeDynamic(model, cfg());
    assert.equal(r.quantized.length, 2);
    assert.match(r.quantized[1]!.detail, /DynamicQuantizeMatMul \+ Add/);
    const qWeights = r.model.graph!.initializer.filter((t) => t.dataType === DataType.INT8 && t.dims.length === 2);
    assert.equal(qWeights.length, 2, 'w scaled by alpha 0.5 and by alpha 1 are two different weights');
    assert.ok(!r.model.graph!.initializer.some((t) => t.name === 'w_0'), 'the float weight is gone');
    const db = await outputSqnr(model, r.model, { x: random([4, 32], 2) });
    assert.ok(db[g2]! > 30, `SQNR ${db[g2]}`);
  });

  it('reports every node it leaves, with the reason', () => {
    const b = new ModelBuilder({ opset: 17 });
    const x = b.input('x', DataType.FLOAT, [2, 8]);
    const y = b.input('y', DataType.FLOAT, [8, 2]);
    b.output(b.node('MatMul', [x, y], {}, { name: 'activations' }), DataType.FLOAT);
    b.output(b.matMul(x, 8, 4, { name: 'excluded' }), DataType.FLOAT);
    b.output(b.node('Gemm', [b.weight('a', [8, 2], b.rng.normals(16)), x], { transA: 1 }, { name: 'transA' }), DataType.FLOAT);
    const r = quantizeDynamic(b.build(), cfg({ exclude: ['excluded'] }));
    assert.deepEqual(
      r.skipped.map((s) => s.name),
      ['activations', 'excluded', 'transA'],
    );
    assert.match(r.skipped[0]!.reason, /no constant weight/);
    assert.match(r.skipped[1]!.reason, /excluded/);
    assert.match(r.skipped[2]!.reason, /transA=1/);
    const int4 = quantizeDynamic(b.build(), cfg({ weightType: 'int4' }));
    assert.ok(int4.skipped.some((s) => /weight-only mode/.test(s.reason)));
  });
});

describe('quantizeDynamic: Conv → DynamicQuantizeLinear + ConvInteger', () => {
  it('CNN with int8 per-channel weights: SQNR > 30 dB; asymmetric per-channel falls back to per-tensor', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 23 });
    const x = b.input('x', DataType.FLOAT, [1, 3, 16, 16]);
    const c1 = b.relu(b.conv(x, 3, 8, 3));
    const c2 = b.relu(b.conv(c1, 8, 8, 3, { group: 8 }));
    const y = b.conv(c2, 8, 4, 1, { bias: false });
    b.output(y, DataType.FLOAT);
    const model = b.build();
    const r = quantizeDynamic(model, cfg());
    assert.equal(r.quantized.length, 3);
    assert.equal(ops(r.model).filter((o) => o === 'ConvInteger').length, 3);
    const feeds = { x: random([1, 3, 16, 16], 3) };
    const db = await outputSqnr(model, r.model, feeds);
    assert.ok(db[y]! > 30, `SQNR ${db[y]}`);
    const asym = quantizeDynamic(model, cfg({ symmetricWeights: false }));
    assert.ok(asym.quantized.every((q) => /per-tensor/.test(q.detail) && /ConvInteger takes one/.test(q.detail)));
    const dbAsym = await outputSqnr(model, asym.model, feeds);
    assert.ok(dbAsym[y]! > 25, `SQNR ${dbAsym[y]}`);
  });

  it('skips ConvTranspose, GRU and opsets without DynamicQuantizeLinear', () => {
    const b = new ModelBuilder({ opset: 10 });
    const x = b.input('x', DataType.FLOAT, [1, 2, 4, 4]);
    b.output(b.conv(x, 2, 2, 3, { name: 'old' }), DataType.FLOAT);
    b.output(b.node('ConvTranspose', [x, b.weight('t', [2, 2, 2, 2], b.rng.normals(16))], {}, { name: 'ct' }), DataType.FLOAT);
    const r = quantizeDynamic(b.build(), cfg());
    assert.match(r.skipped.find((s) => s.name === 'old')!.reason, /opset 10 has no DynamicQuantizeLinear/);
    assert.match(r.skipped.find((s) => s.name === 'ct')!.reason, /no integer ConvTranspose/);
  });
});

/** An LSTM with ONNX layouts W [D, 4H, I], R [D, 4H, H], B [D, 8H]. */
function lstmModel(direction: 'forward' | 'bidirectional', inSubgraph: boolean): { model: ModelProto; feeds: Feeds } {
  const T = 7;
  const I = 24;
  const H = 16;
  const D = direction === 'forward' ? 1 : 2;
  const b = new ModelBuilder({ opset: 14, seed: 31 });
  const x = b.input('x', DataType.FLOAT, [T, 2, I]);
  const cond = b.input('cond', DataType.BOOL, []);
  const w = b.weight('W', [D, 4 * H, I], b.rng.normals(D * 4 * H * I, 0.3));
  const r = b.weight('R', [D, 4 * H, H], b.rng.normals(D * 4 * H * H, 0.3));
  const bias = b.weight('B', [D, 8 * H], b.rng.normals(D * 8 * H, 0.1));
  const lstm = (g: GraphBuilder) => g.nodeOutputs('LSTM', [x, w, r, bias], { hidden_size: H, direction }, { outputs: 3 });
  if (inSubgraph) {
    const branch = (name: string) =>
      b.subgraph(name, (g) => {
        const [y, yh] = lstm(g);
        g.output(y!, DataType.FLOAT);
        g.output(yh!, DataType.FLOAT);
      });
    const outs = b.nodeOutputs('If', [cond], { then_branch: branch('then'), else_branch: branch('else') }, { outputs: 2 });
    for (const o of outs) b.output(o, DataType.FLOAT);
  } else {
    const [y, yh, yc] = lstm(b);
    b.output(y!, DataType.FLOAT);
    b.output(yh!, DataType.FLOAT);
    b.output(yc!, DataType.FLOAT);
  }
  return { model: b.build(), feeds: { x: random([T, 2, I], 4), cond: new ort.Tensor('bool', [true], []) } };
}

describe('quantizeDynamic: LSTM → DynamicQuantizeLSTM', () => {
  for (const [direction, perChannel, inSubgraph] of [
    ['forward', true, false],
    ['bidirectional', false, false],
    ['bidirectional', true, true],
  ] as const) {
    it(`${direction}, ${perChannel ? 'per-channel' : 'per-tensor'}${inSubgraph ? ', inside If branches' : ''}: SQNR > 30 dB`, async () => {
      const { model, feeds } = lstmModel(direction, inSubgraph);
      const r = quantizeDynamic(model, cfg({ perChannel }));
      assert.equal(r.quantized.length, inSubgraph ? 2 : 1);
      assert.equal(ops(r.model).filter((o) => o === 'com.microsoft.DynamicQuantizeLSTM').length, r.quantized.length);
      if (inSubgraph) {
        // Both branches read the same outer weights: one quantized copy, in the main graph.
        assert.equal(r.model.graph!.initializer.filter((t) => t.dataType === DataType.INT8 && t.dims.length === 3).length, 2);
      }
      const db = await outputSqnr(model, r.model, feeds);
      for (const [name, v] of Object.entries(db)) assert.ok(v > 30, `${name}: SQNR ${v}`);
    });
  }
});

describe('quantizeDynamic: Silero VAD', () => {
  for (const kind of ['vadIfless', 'vad'] as const) {
    it(`${kind}: runs, speech probability SQNR ≥ 20 dB`, async () => {
      const model = OnnxModel.load(REAL_MODELS[kind]);
      const r = quantizeDynamic(model, cfg());
      assert.equal(r.skipped.length, 0);
      const expected = kind === 'vad' ? ['ConvInteger', 'DynamicQuantizeLSTM'] : ['ConvInteger', 'DynamicQuantizeMatMul'];
      for (const e of expected) assert.ok(r.quantized.some((q) => q.detail.startsWith(e)), `${e} used`);
      const bytes = encodeModel(r.model);
      const feeds = realModelFeeds(kind);
      const db = await outputSqnr(model.proto, r.model, feeds);
      console.log(`${kind} dynamic int8 per-channel: ${r.quantized.length} nodes (${[...new Set(r.quantized.map((q) => q.detail.split(',')[0]))].join(', ')}); output SQNR ${db.output!.toFixed(1)} dB, state ${db.stateN!.toFixed(1)} dB; file ${(model.buffer.length / 1e6).toFixed(2)} → ${(bytes.length / 1e6).toFixed(2)} MB`);
      assert.ok(db.output! >= 20, `speech probability SQNR ${db.output}`);
    });
  }
});
