/**
 * Models that carry recurrent state between calls get 16-bit activations by default (unless an
 * option, a recipe or a --target preset chose the activation type): detection on models built
 * here and on the real ones, the CLI's notion of "chosen", and an end-to-end run in onnxruntime.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { resolveConfig } from '../../src/cli/quantize';
import { GraphBuilder, ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import type { ModelProto } from '../../src/onnx/proto';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { recurrentStateInputs, stateActivationType } from '../../src/quant/graph/recurrent-state';
import { syntheticSource } from '../../src/runtime/data';
import { quantizeModel } from '../../src/runtime/quantize-model';
import { REAL_MODELS, tempDir } from '../helpers/ort';

const HIDDEN = 4;

/** x [seq 1, batch 1, 6] → MatMul → LSTM (initial_h from `initialH`) → MatMul → y; Y_h is output hN. */
function lstmModel(initialH: (b: GraphBuilder, x: string) => string, wrapInIf = false): ModelProto {
  const b = new ModelBuilder({ opset: 17, seed: 3 });
  const x = b.input('x', DataType.FLOAT, [1, 1, 6]);
  const h0 = initialH(b, x);
  const proj = b.matMul(x, 6, 6, { name: 'proj' });
  const W = b.initializer('W', DataType.FLOAT, [1, 4 * HIDDEN, 6], b.rng.normals(4 * HIDDEN * 6, 0.3));
  const R = b.initializer('R', DataType.FLOAT, [1, 4 * HIDDEN, HIDDEN], b.rng.normals(4 * HIDDEN * HIDDEN, 0.3));
  let yh: string;
  if (wrapInIf) {
    // The LSTM inside a branch, reading the state from the outer scope (as Silero VAD does).
    const cond = b.input('cond', DataType.BOOL, []);
    const branch = (name: string) =>
      b.subgraph(name, (g) => {
        const [, h] = g.nodeOutputs('LSTM', [proj, W, R, '', '', h0], { hidden_size: HIDDEN }, { outputs: 2, name: `${name}_lstm` });
        g.output(h!, DataType.FLOAT);
      });
    yh = b.node('If', [cond], { then_branch: branch('then'), else_branch: branch('else') }, { name: 'branch' });
  } else {
    [, yh] = b.nodeOutputs('LSTM', [proj, W, R, '', '', h0], { hidden_size: HIDDEN }, { outputs: 2, name: 'lstm' }) as [string, string];
  }
  const flat = b.node('Reshape', [yh, b.initializer('flat', DataType.INT64, [2], BigInt64Array.from([1n, BigInt(HIDDEN)]))]);
  b.output(b.matMul(flat, HIDDEN, 3, { name: 'head' }), DataType.FLOAT);
  b.output(b.node('Identity', [yh], {}, { name: 'hN' }), DataType.FLOAT);
  return b.build();
}

const stateInput = (b: GraphBuilder) => b.input('h', DataType.FLOAT, [1, 1, HIDDEN]);
/** Zeros shaped from the input: a fresh state every call, not carried state. */
const zerosFromShape = (b: GraphBuilder, x: string) => {
  const shape = b.node('Concat', [b.node('Slice', [b.node('Shape', [x]), b.initializer('s0', DataType.INT64, [1], BigInt64Array.from([0n])), b.initializer('s1', DataType.INT64, [1], BigInt64Array.from([2n]))]), b.initializer('hid', DataType.INT64, [1], BigInt64Array.from([BigInt(HIDDEN)]))], { axis: 0 });
  return b.node('ConstantOfShape', [shape]);
};

describe('recurrent state: 16-bit activations by default', () => {
  it('finds a float input that reaches an LSTM initial state, in the main graph and through an If branch', () => {
    assert.deepEqual(recurrentStateInputs(lstmModel(stateInput)), ['h']);
    assert.deepEqual(recurrentStateInputs(lstmModel(stateInput, true)), ['h']);
  });

  it('follows the state into a Loop body (a loop-carried value under the body’s own input name)', () => {
    const b = new ModelBuilder({ opset: 17, seed: 3 });
    const x = b.input('x', DataType.FLOAT, [1, 1, 6]);
    const h = b.input('h', DataType.FLOAT, [1, 1, HIDDEN]);
    const W = b.initializer('W', DataType.FLOAT, [1, 4 * HIDDEN, 6], b.rng.normals(4 * HIDDEN * 6, 0.3));
    const R = b.initializer('R', DataType.FLOAT, [1, 4 * HIDDEN, HIDDEN], b.rng.normals(4 * HIDDEN * HIDDEN, 0.3));
    const body = b.subgraph('body', (g) => {
      g.input('iter', DataType.INT64, []);
      const cond = g.input('cond_in', DataType.BOOL, []);
      const hIn = g.input('h_in', DataType.FLOAT, [1, 1, HIDDEN]);
      const [, yh] = g.nodeOutputs('LSTM', [x, W, R, '', '', hIn], { hidden_size: HIDDEN }, { outputs: 2, name: 'loop_lstm' });
      g.output(g.node('Identity', [cond]), DataType.BOOL);
      g.output(yh!, DataType.FLOAT);
    });
    const trips = b.initializer('trips', DataType.INT64, [], BigInt64Array.from([2n]));
    const keepGoing = b.initializer('keep_going', DataType.BOOL, [], new Uint8Array([1]));
    b.output(b.node('Loop', [trips, keepGoing, h], { body }, { name: 'loop' }), DataType.FLOAT);
    // x reaches the LSTM's sequence input (from the outer scope), not its state.
    assert.deepEqual(recurrentStateInputs(b.build()), ['h']);
  });

  it('does not count a state made from the input’s shape, nor a model without recurrent ops', () => {
    assert.deepEqual(recurrentStateInputs(lstmModel(zerosFromShape)), []);
    const b = new ModelBuilder({ opset: 17 });
    b.output(b.matMul(b.input('x', DataType.FLOAT, [1, 6]), 6, 3), DataType.FLOAT);
    assert.deepEqual(recurrentStateInputs(b.build()), []);
  });

  it('real models: Silero VAD carries `state`; the PaddleOCR models carry none', () => {
    const expected: Record<string, string[]> = { vad: ['state'], ocrDet: [], ocrRec: [], ocrCls: [] };
    for (const [task, want] of Object.entries(expected)) {
      const m = OnnxModel.load(REAL_MODELS[task as keyof typeof REAL_MODELS]);
      try {
        assert.deepEqual(recurrentStateInputs(m.proto), want, task);
      } finally {
        m.close();
      }
    }
  });

  it('widens only an activation type nobody chose, only in static mode', () => {
    const model = lstmModel(stateInput);
    const auto = stateActivationType(model, { ...DEFAULT_CONFIG });
    assert.equal(auto.config.activationType, 'uint16');
    assert.match(auto.note!, /input h carries recurrent state/);
    assert.equal(stateActivationType(model, { ...DEFAULT_CONFIG, activationType: 'int8' }).config.activationType, 'int16');
    assert.equal(stateActivationType(model, { ...DEFAULT_CONFIG, activationTypeAuto: false }).config.activationType, 'uint8');
    assert.equal(stateActivationType(model, { ...DEFAULT_CONFIG, mode: 'dynamic' }).config.activationType, 'uint8');
    assert.equal(stateActivationType(lstmModel(zerosFromShape), { ...DEFAULT_CONFIG }).note, undefined);
  });

  it('the CLI: chosen by --activation-type, a recipe or a --target preset; otherwise automatic', () => {
    assert.equal(resolveConfig({}).activationTypeAuto, true);
    assert.equal(resolveConfig({ 'activation-type': 'uint8' }).activationTypeAuto, false);
    assert.equal(resolveConfig({ target: 'cpu-arm' }).activationTypeAuto, false);
    assert.equal(resolveConfig({ recipe: 'r.json' }, () => JSON.stringify({ version: 1, activationType: 'int8' })).activationTypeAuto, false);
    assert.equal(resolveConfig({ recipe: 'r.json' }, () => JSON.stringify({ version: 1, method: 'minmax' })).activationTypeAuto, true);
  });

  it('quantize: the stateful model gets 16-bit activation Q/DQ, says why, and runs in onnxruntime', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'lstm.onnx');
      saveModel(lstmModel(stateInput), file);
      const model = OnnxModel.load(file);
      const calib = syntheticSource(model, { count: 8, seed: 1 });
      const evalSource = syntheticSource(model, { count: 4, seed: 2 });
      model.close();
      const out = path.join(dir, 'q.onnx');
      const r = await quantizeModel({ input: file, output: out, config: { ...DEFAULT_CONFIG }, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0 });
      assert.equal(r.settings.activationType, 'uint16');
      assert.ok(r.preprocessing.some((p) => /carries recurrent state/.test(p)), r.preprocessing.join('\n'));
      const q = OnnxModel.load(out);
      try {
        const zeroPoints = q.proto.graph!.node.filter((n) => n.opType === 'QuantizeLinear').map((n) => q.proto.graph!.initializer.find((t) => t.name === n.input[2]));
        assert.ok(zeroPoints.length > 0);
        for (const z of zeroPoints) assert.equal(z?.dataType, DataType.UINT16);
      } finally {
        q.close();
      }
      // 8 bits when asked for.
      const r8 = await quantizeModel({ input: file, output: path.join(dir, 'q8.onnx'), config: { ...DEFAULT_CONFIG, activationTypeAuto: false }, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0 });
      assert.equal(r8.settings.activationType, 'uint8');
      assert.ok(!r8.preprocessing.some((p) => /recurrent state/.test(p)));
      const s = await ort.InferenceSession.create(out, { logSeverityLevel: 3 });
      const res = await s.run({ x: new ort.Tensor('float32', new Float32Array(6).fill(0.5), [1, 1, 6]), h: new ort.Tensor('float32', new Float32Array(HIDDEN).fill(0.1), [1, 1, HIDDEN]) });
      assert.equal(res[s.outputNames[1]!]!.dims.join(','), `1,1,${HIDDEN}`);
      for (const v of res[s.outputNames[0]!]!.data as Float32Array) assert.ok(Number.isFinite(v));
      await s.release();
    } finally {
      cleanup();
    }
  });
});
