/**
 * `onnx-quant compare` and the error trace: the output figures match quantize's own evaluation on
 * the same samples; the trace's last layer (the graph output) measures what the output comparison
 * (an independent code path) does; the layer that is made to hurt is ranked worst; bad arguments
 * are usage errors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { cli } from '../helpers/cli';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { saveModel } from '../../src/onnx/save';
import { tempDir } from '../helpers/ort';

/** conv0 → relu → conv1 → relu → [×400 on one channel] → conv2 → relu → conv3 (graph output). */
function chain(): ReturnType<ModelBuilder['build']> {
  const b = new ModelBuilder({ opset: 17, seed: 4 });
  let x = b.input('x', DataType.FLOAT, [1, 4, 10, 10]);
  for (let i = 0; i < 3; i++) {
    if (i === 2) {
      const gain = new Float32Array(6).fill(1);
      gain[1] = 400; // an outlier channel: conv2's 8-bit input loses the other five
      x = b.node('Mul', [x, b.initializer('gain', DataType.FLOAT, [1, 6, 1, 1], gain)], {}, { name: 'outlier' });
    }
    x = b.relu(b.conv(x, i === 0 ? 4 : 6, 6, 3, { name: `conv${i}` }));
  }
  b.output(b.conv(x, 6, 3, 1, { name: 'conv3' }), DataType.FLOAT);
  return b.build();
}

describe('compare', () => {
  it('reports what quantize measured, and an error trace whose last layer agrees with the output figures', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const float = path.join(dir, 'f.onnx');
      const quant = path.join(dir, 'q.onnx');
      saveModel(chain(), float);
      const q = await cli(['quantize', float, '-o', quant, '--no-adaround', '--latency-runs', '0', '--json']);
      assert.equal(q.code, 0, q.err);
      const qr = JSON.parse(q.out);
      const c = await cli(['compare', float, quant, '--layers', '--latency-runs', '0', '--json']);
      assert.equal(c.code, 0, c.err);
      const r = JSON.parse(c.out);
      // Both default to the same 8 synthetic samples.
      assert.ok(r.synthetic);
      assert.ok(Math.abs(r.outputs[0].sqnrDb - qr.eval.outputs[0].sqnrDb) < 1e-6, `${r.outputs[0].sqnrDb} vs ${qr.eval.outputs[0].sqnrDb}`);
      const layers = r.trace.layers as { node: string; sqnrDb: number; addedSqnrDb: number; inputSqnrDb: number | string }[];
      assert.deepEqual(layers.map((l) => l.node), ['conv0', 'conv1', 'conv2', 'conv3']);
      assert.ok(Math.abs(layers[3]!.sqnrDb - r.outputs[0].sqnrDb) < 0.01, `trace ${layers[3]!.sqnrDb} vs output ${r.outputs[0].sqnrDb}`);
      assert.equal(layers[0]!.inputSqnrDb, 'Infinity', 'the first layer reads the exact graph input');
      // conv2 reads the outlier channel: it adds the most error.
      const worst = [...layers].sort((a, b) => a.addedSqnrDb - b.addedSqnrDb)[0]!;
      assert.equal(worst.node, 'conv2', JSON.stringify(layers));
      const text = await cli(['compare', float, quant, '--layers', '--top', '1', '--latency-runs', '0']);
      assert.match(text.out, /layers adding the most error[^\n]*\n {4}conv2 \(Conv\)/);
      assert.match(text.out, /SYNTHETIC DATA/);
    } finally {
      cleanup();
    }
  });

  it('refuses wrong arguments with a usage error', async () => {
    const one = await cli(['compare', 'a.onnx']);
    assert.equal(one.code, 2);
    assert.match(one.err, /compare takes a float model and a quantized model/);
    const same = await cli(['compare', 'a.onnx', 'a.onnx']);
    assert.equal(same.code, 2);
    assert.match(same.err, /same file/);
  });
});
