/**
 * SmoothQuant: the smoothing scales against hand-computed values; the float function unchanged in
 * onnxruntime (X/s folded into a LayerNormalization, or a Div inserted); and on a model whose
 * MatMul input has outlier channels, static int8 SQNR improves with it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { tensorToFloat32 } from '../../src/onnx/tensor-data';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { divideActivation, findSmoothGroups, scaleWeights, smoothScales } from '../../src/quant/refine/smoothquant';
import { applyEdits, ConstReader } from '../../src/quant/refine/weights';
import { syntheticSource } from '../../src/runtime/data';
import { quantizeModel } from '../../src/runtime/quantize-model';
import { floatTensor, runModel, tempDir } from '../helpers/ort';

const K = 16;

/** x [1, 8, K] → LayerNormalization (γ with outlier channels) → MatMul [K, 12] (and a second MatMul on a Relu). */
function outlierModel(useLayerNorm: boolean) {
  const b = new ModelBuilder({ opset: 17, seed: 9 });
  const x = b.input('x', DataType.FLOAT, [1, 8, K]);
  const gamma = Float32Array.from({ length: K }, (_, j) => (j === 3 ? 40 : j === 11 ? 25 : 1));
  const h = useLayerNorm
    ? b.node('LayerNormalization', [x, b.initializer('gamma', DataType.FLOAT, [K], gamma), b.initializer('beta', DataType.FLOAT, [K], b.rng.normals(K, 0.1))], { axis: -1 }, { name: 'ln' })
    : b.node('Mul', [b.relu(x), b.initializer('gamma', DataType.FLOAT, [K], gamma)], {}, { name: 'scale' });
  const y = b.matMul(h, K, 12, { name: 'mm' });
  b.output(b.gemm(b.node('Reshape', [y, b.initializer('shape', DataType.INT64, [2], BigInt64Array.from([8n, 12n]))]), 12, 6, { name: 'fc' }), DataType.FLOAT);
  return b.build();
}

describe('SmoothQuant', () => {
  it('computes s_j = max|X_j|^α / max|W_j|^(1−α)', () => {
    const s = smoothScales(new Float32Array([16, 1, 0]), new Float32Array([1, 4, 2]), 0.5);
    assert.deepEqual(Array.from(s), [4, 0.5, 1]);
  });

  for (const ln of [true, false]) {
    it(`keeps the float function with X/s ${ln ? 'folded into LayerNormalization' : 'as an inserted Div'}`, async () => {
      const m = outlierModel(ln);
      const consts = new ConstReader(m.graph!, (t) => tensorToFloat32(t));
      const groups = findSmoothGroups(m.graph!, consts, () => false);
      assert.deepEqual(groups.map((g) => g.layers.map((l) => l.node.name)), [['mm'], ['fc']]); // fc reads a Reshape's output: its own group
      const g = groups[0]!;
      const s = smoothScales(Float32Array.from({ length: K }, (_, j) => (j === 3 ? 40 : 1)), new Float32Array(K).fill(0.5), 0.5);
      const div = divideActivation(m.graph!, consts, g, s);
      assert.match(div.where, ln ? /LayerNormalization "ln"/ : /Div/);
      const out = applyEdits(m, [...div.edits, ...scaleWeights(g, s)]);
      assert.equal(out.graph!.node.filter((n) => n.opType === 'Div').length, ln ? 0 : 1);
      const feeds = { x: floatTensor([1, 8, K], (i) => Math.sin(i * 0.7) * 2) };
      const a = Object.values(await runModel(encodeModel(m), feeds))[0]!.data as Float32Array;
      const c = Object.values(await runModel(encodeModel(out), feeds))[0]!.data as Float32Array;
      const scale = Math.max(...a.map(Math.abs));
      const err = Math.max(...a.map((v, i) => Math.abs(v - c[i]!)));
      assert.ok(err / scale <= 1e-5, `relative change ${err / scale}`);
    });
  }

  it('improves static int8 SQNR on a MatMul whose input has outlier channels (fixed α and searched α)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'outliers.onnx');
      saveModel(outlierModel(true), file);
      const model = OnnxModel.load(file);
      const run = async (extra: object) => {
        const r = await quantizeModel({
          input: file,
          output: path.join(dir, 'q.onnx'),
          config: { ...DEFAULT_CONFIG, adaround: false, ...extra },
          calib: syntheticSource(model, { count: 16, seed: 1 }),
          eval: syntheticSource(model, { count: 8, seed: 2 }),
          evalNote: 'synthetic',
          latencyRuns: 0,
        });
        return r;
      };
      const base = await run({ smoothQuant: false });
      const fixed = await run({ smoothQuant: true, smoothQuantAlpha: 0.5 });
      const auto = await run({ smoothQuant: true, smoothQuantAlpha: 'auto' });
      model.close();
      const db = (r: typeof base) => r.eval.outputs[0]!.sqnrDb;
      assert.deepEqual(fixed.refinements.at(-1)?.layers, ['mm']);
      assert.match(fixed.refinements.at(-1)!.summary, /LayerNormalization/);
      assert.ok(db(fixed) > db(base) + 3, `SQNR ${db(base).toFixed(1)} → ${db(fixed).toFixed(1)} dB (α 0.5)`);
      assert.ok(db(auto) > db(base) + 3, `SQNR ${db(base).toFixed(1)} → ${db(auto).toFixed(1)} dB (α searched: ${auto.refinements.at(-1)?.summary})`);
    } finally {
      cleanup();
    }
  });
});
