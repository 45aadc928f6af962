/**
 * The quantize pipeline end to end on models the tests build: data folders, held-out evaluation,
 * If branches, verification before writing, and reports.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { openSampleFolder, splitSource, syntheticSource, writeNpy } from '../../src/runtime/data';
import { quantizeModel, weightsOnlyHint } from '../../src/runtime/quantize-model';
import { runModel, tempDir } from '../helpers/ort';

/** x → If(use_conv) { Conv→Relu→Conv } else { Identity } with the conv weights in the main graph. */
function branchyModel(file: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 4 });
  const x = b.input('x', DataType.FLOAT, [1, 4, 12, 12]);
  const flag = b.input('use_conv', DataType.BOOL, []);
  const thenG = b.subgraph('then', (g) => {
    const h = g.relu(g.conv(x, 4, 8, 3, { name: 'conv_a' }));
    g.output(g.node('Identity', [g.conv(h, 8, 4, 3, { name: 'conv_b' })], {}, { outputs: ['then_out'] }), DataType.FLOAT);
  });
  const elseG = b.subgraph('else', (g) => {
    g.output(g.node('Identity', [x], {}, { outputs: ['else_out'] }), DataType.FLOAT);
  });
  b.output(b.node('If', [flag], { then_branch: thenG, else_branch: elseG }, { name: 'branch', outputs: ['y'] }), DataType.FLOAT);
  saveModel(b.build(), file);
}

describe('quantize pipeline', () => {
  it('quantizes the If branch every sample takes, keeps the other in float, and both still run', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'branchy.onnx');
      branchyModel(file);
      const calib = path.join(dir, 'calib');
      fs.mkdirSync(calib);
      fs.writeFileSync(path.join(calib, 'use_conv.npy'), writeNpy(Uint8Array.from([1]), [], { dtype: 'bool' }));
      for (let k = 0; k < 10; k++) {
        const v = new Float32Array(4 * 144).map((_, i) => Math.sin(i * 0.1 + k));
        fs.writeFileSync(path.join(calib, `x_${k}.npy`), writeNpy(v, [1, 4, 12, 12]));
      }
      const model = OnnxModel.load(file);
      const folder = openSampleFolder(calib, model);
      const split = splitSource(folder, 0.2);
      const out = path.join(dir, 'branchy.int8.onnx');
      const report = await quantizeModel({ input: file, output: out, config: { ...DEFAULT_CONFIG }, calib: split.calib, eval: split.eval, evalNote: 'test', latencyRuns: 0 });
      assert.deepEqual(report.quantized.map((q) => q.name).sort(), ['conv_a', 'conv_b', ...report.quantized.filter((q) => q.opType === 'Relu').map((q) => q.name)].sort());
      assert.ok(report.preprocessing.some((p) => /If "branch": every calibration sample takes its then_branch/.test(p)));
      assert.ok(report.skippedNodes.some((s) => /else_branch of If "branch", which no calibration sample took/.test(s.reason)));
      assert.ok(report.eval.outputs[0]!.sqnrDb > 30, `SQNR ${report.eval.outputs[0]!.sqnrDb}`);
      // The quantized model keeps the If: the untaken branch still works.
      const xs = new ort.Tensor('float32', new Float32Array(4 * 144).fill(0.5), [1, 4, 12, 12]);
      const off = await runModel(out, { x: xs, use_conv: new ort.Tensor('bool', Uint8Array.from([0]), []) });
      assert.deepEqual(Array.from(off.y!.data as Float32Array).slice(0, 3), [0.5, 0.5, 0.5]);
      const q = OnnxModel.load(out);
      const thenBranch = q.graph.subgraphsOf(q.graph.proto.node.find((n) => n.opType === 'If')!)[0]!.graph;
      assert.ok(thenBranch.proto.node.some((n) => n.opType === 'DequantizeLinear'));
    } finally {
      cleanup();
    }
  });

  it('refuses an output path equal to the input before doing any work', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'm.onnx');
      branchyModel(file);
      const before = fs.readFileSync(file);
      const model = OnnxModel.load(file);
      const src = syntheticSource(model, { count: 2, fixed: { use_conv: [1] } });
      await assert.rejects(
        quantizeModel({ input: file, output: path.join(dir, '.', 'm.onnx'), config: { ...DEFAULT_CONFIG }, calib: src, eval: src, evalNote: '' }),
        /would overwrite the input/,
      );
      assert.ok(fs.readFileSync(file).equals(before));
    } finally {
      cleanup();
    }
  });
  it('weightsOnlyHint: suggested when static int8 measured at least 0.95× the float latency, not otherwise', () => {
    const hint = (q: number, cfg = {}) => weightsOnlyHint({ ...DEFAULT_CONFIG, ...cfg }, { float: 10, quantized: q });
    assert.match(hint(9.8)!, /--activation-qdq none keeps the int8 weights/);
    assert.match(hint(12)!, /--activation-qdq none/);
    assert.equal(hint(9.4), undefined, 'integer kernels that bought speed');
    assert.equal(hint(9.8, { activationQdq: 'none' }), undefined, 'already weights only');
    assert.equal(hint(9.8, { mode: 'dynamic' }), undefined);
    assert.equal(weightsOnlyHint(DEFAULT_CONFIG, null), undefined, 'no latency measured');
  });
});
