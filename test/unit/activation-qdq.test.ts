/**
 * --activation-qdq auto (the default): activations are quantized only when the integer kernels
 * they feed carry at least 1/8 of the model's multiply-adds. Multiply-add counts against
 * hand-computed values; the choice end to end on models the tests build, each quantized model run
 * by onnxruntime.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import type { NodeProto } from '../../src/onnx/proto';
import { saveModel } from '../../src/onnx/save';
import { DEFAULT_CONFIG, type QuantConfig } from '../../src/quant/config';
import { integerKernelShare, multiplyAdds } from '../../src/quant/graph/multiply-adds';
import { syntheticSource } from '../../src/runtime/data';
import { MIN_INTEGER_SHARE } from '../../src/runtime/activation-qdq';
import { quantizeModel, type QuantizeReport } from '../../src/runtime/quantize-model';
import { analyzeModel } from '../../src/analysis/analyze';
import { tempDir } from '../helpers/ort';

function node(opType: string, input: string[], output: string[], attrs: Record<string, number> = {}): NodeProto {
  const b = new ModelBuilder();
  b.node(opType, input, attrs, { name: `${opType}_${output[0]}`, outputs: output });
  return b.build().graph!.node[0]!;
}

function shapes(map: Record<string, number[]>) {
  return (t: string) => map[t];
}

function hardSwish(b: ModelBuilder, t: string): string {
  return b.node('Mul', [t, b.node('HardSigmoid', [t], { alpha: 1 / 6, beta: 0.5 })]);
}

/** Two 3×3 convs read by HardSwish (float kernels in onnxruntime), pooling, a small Gemm head. */
function hardSwishNet(file: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 7 });
  const x = b.input('x', DataType.FLOAT, [1, 3, 32, 32]);
  let h = hardSwish(b, b.conv(x, 3, 16, 3, { name: 'conv1' }));
  h = hardSwish(b, b.conv(h, 16, 16, 3, { name: 'conv2' }));
  const pooled = b.node('Flatten', [b.node('GlobalAveragePool', [h])]);
  b.output(b.gemm(pooled, 16, 10, { name: 'head' }), DataType.FLOAT);
  saveModel(b.build(), file);
}

/** Conv → Relu chains: every conv is an integer kernel. */
function reluNet(file: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 8 });
  let h = b.input('x', DataType.FLOAT, [1, 3, 16, 16]);
  h = b.relu(b.conv(h, 3, 8, 3, { name: 'conv1' }));
  h = b.relu(b.conv(h, 8, 8, 3, { name: 'conv2' }));
  b.output(b.conv(h, 8, 4, 3, { name: 'conv3' }), DataType.FLOAT);
  saveModel(b.build(), file);
}

/** A HardSwish conv feeding an LSTM whose initial state is a model input (recurrent state). */
function stateNet(file: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 9 });
  const x = b.input('x', DataType.FLOAT, [1, 3, 16, 16]);
  const h0 = b.input('h', DataType.FLOAT, [1, 1, 4]);
  const feat = b.node('Reshape', [b.node('GlobalAveragePool', [hardSwish(b, b.conv(x, 3, 8, 3, { name: 'conv' }))]), b.initializer('to_seq', DataType.INT64, [3], BigInt64Array.from([1n, 1n, 8n]))]);
  const W = b.initializer('W', DataType.FLOAT, [1, 16, 8], b.rng.normals(16 * 8, 0.3));
  const R = b.initializer('R', DataType.FLOAT, [1, 16, 4], b.rng.normals(16 * 4, 0.3));
  const [, yh] = b.nodeOutputs('LSTM', [feat, W, R, '', '', h0], { hidden_size: 4 }, { outputs: 2, name: 'lstm' });
  b.output(b.node('Identity', [yh!], {}, { outputs: ['hN'] }), DataType.FLOAT);
  saveModel(b.build(), file);
}

/** Runs `body` in a fresh folder, removed afterwards. */
async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir();
  try {
    await body(dir);
  } finally {
    cleanup();
  }
}

async function quantize(file: string, config: Partial<QuantConfig> = {}): Promise<{ report: QuantizeReport; ops: string[]; opset: number }> {
  const model = OnnxModel.load(file);
  const src = syntheticSource(model, { count: 4, seed: 3 });
  const output = file.replace(/\.onnx$/, `.${config.activationQdq ?? 'default'}.int8.onnx`);
  const report = await quantizeModel({ input: file, output, config: { ...DEFAULT_CONFIG, ...config }, calib: src, eval: src, evalNote: 'test', latencyRuns: 0 });
  model.close();
  const q = OnnxModel.load(output);
  const ops = q.proto.graph!.node.map((n) => n.opType);
  const opset = Number(q.proto.opsetImport.find((o) => o.domain === '')?.version ?? 0);
  q.close();
  return { report, ops, opset };
}

describe('activation Q/DQ: auto', () => {
  it('multiplyAdds: Conv (grouped), ConvTranspose, MatMul (N-D and 1-D), Gemm (transA), hand-computed', () => {
    // Conv: 8 × 10 × 10 outputs, each summing 2 input channels (group 2 of 4) × 3 × 3 taps.
    assert.equal(multiplyAdds(node('Conv', ['x', 'w'], ['y'], { group: 2 }), shapes({ x: [1, 4, 10, 10], w: [8, 2, 3, 3], y: [1, 8, 10, 10] })), 800 * 18);
    // ConvTranspose: 4 × 5 × 5 inputs, each scattered into 3 output channels × 2 × 2 taps.
    assert.equal(multiplyAdds(node('ConvTranspose', ['x', 'w'], ['y']), shapes({ x: [1, 4, 5, 5], w: [4, 3, 2, 2], y: [1, 3, 10, 10] })), 100 * 12);
    assert.equal(multiplyAdds(node('MatMul', ['a', 'b'], ['y']), shapes({ a: [2, 7, 5], b: [5, 3], y: [2, 7, 3] })), 42 * 5);
    assert.equal(multiplyAdds(node('MatMul', ['a', 'b'], ['y']), shapes({ a: [5], b: [5, 3], y: [3] })), 15);
    assert.equal(multiplyAdds(node('Gemm', ['a', 'b'], ['y']), shapes({ a: [4, 6], b: [6, 9], y: [4, 9] })), 36 * 6);
    assert.equal(multiplyAdds(node('Gemm', ['a', 'b'], ['y'], { transA: 1 }), shapes({ a: [6, 4], b: [6, 9], y: [4, 9] })), 36 * 6);
    assert.equal(multiplyAdds(node('Conv', ['x', 'w'], ['y']), shapes({ w: [8, 2, 3, 3] })), undefined, 'output shape unknown');
  });

  it('integerKernelShare: the multiply-adds of the nodes said to run as integer kernels over those of every compute node', () => {
    const nodes = [
      node('Conv', ['x', 'w1'], ['c1']),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'w2'], ['c2']),
      node('HardSigmoid', ['c2'], ['s2']),
      node('MatMul', ['s2q', 'w3'], ['m3']),
      node('Gemm', ['s2', 'w4'], ['g4']),
    ];
    const shape = shapes({ x: [1, 2, 4, 4], w1: [3, 2, 1, 1], c1: [1, 3, 4, 4], r1: [1, 3, 4, 4], w2: [5, 3, 1, 1], c2: [1, 5, 4, 4], s2q: [16, 5], w3: [5, 7], m3: [16, 7], s2: [16, 5], w4: [5, 2], g4: [16, 2] });
    const s = integerKernelShare(nodes, (n) => n.name === 'Conv_c1' || n.name === 'MatMul_m3', shape);
    const macs = { c1: 48 * 2, c2: 80 * 3, m3: 112 * 5, g4: 32 * 5 };
    assert.deepEqual(
      s.work.map((w) => [w.opType, w.macs, w.integer]),
      [
        ['Conv', macs.c1, true],
        ['Conv', macs.c2, false],
        ['MatMul', macs.m3, true],
        ['Gemm', macs.g4, false],
      ],
    );
    assert.equal(s.totalMacs, macs.c1 + macs.c2 + macs.m3 + macs.g4);
    assert.equal(s.share, (macs.c1 + macs.m3) / s.totalMacs);
  });

  it('a network whose convs all run as float kernels keeps float activations and int8 weights; integer-kernels still quantizes them on request', async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, 'hswish.onnx');
      hardSwishNet(file);
      const auto = await quantize(file);
      assert.equal(auto.report.settings.activationQdq, 'none');
      const note = auto.report.preprocessing.find((p) => /^activations stay float/.test(p));
      // conv1 3·9 × 16·32·32, conv2 16·9 × 16·32·32, head 16 × 10: the head alone reads a quantized input.
      const total = 27 * 16384 + 144 * 16384 + 160;
      assert.ok(note?.includes(`${((100 * 160) / total).toFixed(1)}% of the ${(total / 1e6).toFixed(1)} M multiply-adds`), note);
      assert.ok(!auto.ops.includes('QuantizeLinear'), 'no activation is quantized');
      assert.equal(auto.ops.filter((o) => o === 'DequantizeLinear').length, 3, 'each weight behind a DequantizeLinear');
      assert.ok(auto.report.eval.outputs[0]!.sqnrDb > 30, `SQNR ${auto.report.eval.outputs[0]!.sqnrDb}`);

      const forced = await quantize(file, { activationQdq: 'integer-kernels' });
      assert.equal(forced.report.settings.activationQdq, 'integer-kernels');
      assert.ok(forced.ops.includes('QuantizeLinear'), 'the head reads a quantized input');
      assert.ok(!forced.report.preprocessing.some((p) => /^activations/.test(p)), 'no choice was made');
    });
  });

  it('Conv → Relu chains keep quantized activations (every multiply-add in integer kernels)', async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, 'relu.onnx');
      reluNet(file);
      const { report, ops } = await quantize(file);
      assert.equal(report.settings.activationQdq, 'integer-kernels');
      // conv3's output is the graph output: it runs as a float kernel.
      const total = 27 * 8 * 256 + 72 * 8 * 256 + 72 * 4 * 256;
      const share = ((100 * (27 + 72) * 8 * 256) / total).toFixed(1);
      assert.ok(report.preprocessing.some((p) => p.includes(`integer kernels carry ${share}% of the`)), report.preprocessing.join('\n'));
      assert.ok(Number(share) / 100 >= MIN_INTEGER_SHARE);
      assert.ok(ops.includes('QuantizeLinear'));
    });
  });

  it('analyze says what quantize\'s default will do with the activations', async () => {
    await inTempDir(async (dir) => {
      const hs = path.join(dir, 'hswish.onnx');
      hardSwishNet(hs);
      const relu = path.join(dir, 'relu.onnx');
      reluNet(relu);
      const notes = async (file: string) => {
        const m = OnnxModel.load(file);
        const src = syntheticSource(m, { count: 2, seed: 3 });
        const r = await analyzeModel({ model: file, calib: src, eval: src, sensitivity: 'local', suggest: false });
        m.close();
        return r.notes.filter((n) => /^quantize's default for this model: activations/.test(n));
      };
      const [floatNote] = await notes(hs);
      assert.match(floatNote ?? '', /activations stay float, weights int8: integer kernels would carry only 0\.0% .*the activation sensitivities here are for uint8 activations where integer kernels read them/);
      assert.match((await notes(relu))[0] ?? '', /activations quantized where an integer kernel reads them: integer kernels carry \d+\.\d% of the/);
    });
  });

  it('recurrent state: float activations need no 16-bit state, so the model keeps its opset', async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, 'state.onnx');
      stateNet(file);
      const auto = await quantize(file);
      assert.equal(auto.report.settings.activationQdq, 'none');
      assert.ok(!auto.report.preprocessing.some((p) => /recurrent state/.test(p)), auto.report.preprocessing.join('\n'));
      assert.equal(auto.opset, 17, 'no upgrade to opset 21 for 16-bit Q/DQ');
      assert.ok(!auto.ops.includes('QuantizeLinear'));
      // As integer kernels would have it: 16-bit state at opset 21.
      const forced = await quantize(file, { activationQdq: 'integer-kernels' });
      assert.ok(forced.report.preprocessing.some((p) => /recurrent state/.test(p)));
      assert.equal(forced.opset, 21);
    });
  });
});
