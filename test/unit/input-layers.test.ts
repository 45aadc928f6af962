/**
 * The layers reading the model input get 16-bit activations by default (src/quant/graph/input-layers.ts):
 * which layers, when the default applies, and the quantized model onnxruntime runs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import type { ModelProto } from '../../src/onnx/proto';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { inputLayerActivationType, inputLayers } from '../../src/quant/graph/input-layers';
import * as path from 'node:path';
import { saveModel } from '../../src/onnx/save';
import type { SampleSource } from '../../src/runtime/samples';
import { quantizeModel } from '../../src/runtime/quantize-model';
import { tempDir } from '../helpers/ort';
import { quantizeBuilt } from '../helpers/quantize';

/** x → conv0 → Relu → conv1 → out; y → mm_y → out2; ids (int64) → Gather → mm_ids → out3. */
function model(): ModelProto {
  const b = new ModelBuilder({ opset: 13, seed: 7 });
  const x = b.input('x', DataType.FLOAT, [1, 3, 16, 16]);
  b.output(b.conv(b.relu(b.conv(x, 3, 8, 3, { name: 'conv0' })), 8, 4, 3, { name: 'conv1' }), DataType.FLOAT, [1, 4, 16, 16]);
  const y = b.input('y', DataType.FLOAT, [2, 6]);
  b.output(b.matMul(y, 6, 4, { name: 'mm_y' }), DataType.FLOAT, [2, 4]);
  const ids = b.input('ids', DataType.INT64, [2]);
  const table = b.initializer('table', DataType.FLOAT, [10, 6], b.rng.normals(60, 1));
  b.output(b.matMul(b.node('Gather', [table, ids], {}, { name: 'embed' }), 6, 4, { name: 'mm_ids' }), DataType.FLOAT, [2, 4]);
  return b.build();
}

describe('input layers: 16-bit activations by default', () => {
  it('finds the weighted layers whose activation input is a float graph input', () => {
    assert.deepEqual(inputLayers(model()), ['conv0', 'mm_y']);
  });

  it('widens them only when nobody chose the activation type, and keeps per-node choices', () => {
    const m = model();
    const auto = inputLayerActivationType(m, { ...DEFAULT_CONFIG });
    assert.deepEqual(auto.config.nodes, { conv0: { activationType: 'uint16' }, mm_y: { activationType: 'uint16' } });
    assert.deepEqual(auto.layers, ['conv0', 'mm_y']);
    assert.equal(inputLayerActivationType(m, { ...DEFAULT_CONFIG, activationType: 'int8' }).config.nodes.conv0!.activationType, 'int16');

    for (const config of [
      { ...DEFAULT_CONFIG, activationTypeAuto: false },
      { ...DEFAULT_CONFIG, activationType: 'uint16' as const },
      { ...DEFAULT_CONFIG, mode: 'dynamic' as const },
    ]) {
      const r = inputLayerActivationType(m, config);
      assert.equal(r.config, config);
      assert.deepEqual(r.layers, []);
    }
    const own = inputLayerActivationType(m, { ...DEFAULT_CONFIG, nodes: { conv0: { activationType: 'uint8' }, mm_y: { exclude: true } } });
    assert.deepEqual(own.layers, []);
    assert.deepEqual(own.config.nodes, { conv0: { activationType: 'uint8' }, mm_y: { exclude: true } });
  });

  /** Samples with channel 0 of x 50× wider than the others (one 8-bit scale serves them badly). */
  const wideInput = (count: number, seed: number): SampleSource => ({
    count,
    synthetic: false,
    description: 'test samples',
    async *samples() {
      for (let k = 0; k < count; k++) {
        yield { x: new ort.Tensor('float32', new Float32Array(3 * 16 * 16).map((_, i) => Math.sin(i * 0.71 + seed * 13 + k) * (i < 256 ? 50 : 1)), [1, 3, 16, 16]) };
      }
    },
  });

  /** stem → Relu → `depth` 3×3 conv + Relu layers → 1×1 head. */
  function cnn(depth: number): ModelProto {
    const b = new ModelBuilder({ opset: 13, seed: 3 });
    let h = b.input('x', DataType.FLOAT, [1, 3, 16, 16]);
    h = b.relu(b.conv(h, 3, 8, 3, { name: 'stem' }));
    for (let i = 0; i < depth; i++) h = b.relu(b.conv(h, 8, 8, 3, { name: `conv${i}` }));
    b.output(b.conv(h, 8, 4, 1, { name: 'head' }), DataType.FLOAT, [1, 4, 16, 16]);
    return b.build();
  }

  it('quantize keeps 16 bits where they measure better: the stem reads and writes 16-bit tensors, and onnxruntime confirms the gain', async () => {
    const tmp = tempDir();
    try {
      const input = path.join(tmp.dir, 'wide.onnx');
      // The stem and the head alone: the stem's tensors are most of what is quantized.
      saveModel(cnn(0), input);
      const run = (name: string, extra: object) =>
        quantizeModel({ input, output: path.join(tmp.dir, `${name}.onnx`), config: { ...DEFAULT_CONFIG, ...extra }, calib: wideInput(8, 1), eval: wideInput(4, 2), evalNote: 'test', latencyRuns: 0 });
      const wide = await run('wide.q', {});
      const narrow = await run('narrow.q', { activationTypeAuto: false });
      const note = wide.preprocessing.find((p) => /reading the model input/.test(p));
      assert.match(note ?? '', /^activations uint16 for the 1 layer\(s\) reading the model input \("stem"\), weights stay int8: worst output SQNR on 4 calibration samples .* dB; --activation-type uint8 keeps 8 bits$/, wide.preprocessing.join('\n'));
      assert.equal(narrow.preprocessing.some((p) => /reading the model input/.test(p)), false);
      assert.match(wide.quantized.find((q) => q.name === 'stem')!.detail, /uint16 activations/);
      assert.match(narrow.quantized.find((q) => q.name === 'stem')!.detail, /uint8 activations/);

      const q = OnnxModel.load(path.join(tmp.dir, 'wide.q.onnx'));
      const zeroPointType = (tensor: string) => {
        const node = q.proto.graph!.node.find((n) => n.opType === 'QuantizeLinear' && n.input[0] === tensor)!;
        return q.proto.graph!.initializer.find((t) => t.name === node.input[2])!.dataType;
      };
      const stemOut = q.proto.graph!.node.find((n) => n.name === 'stem')!.output[0]!;
      assert.equal(zeroPointType('x'), DataType.UINT16);
      assert.equal(zeroPointType(stemOut), DataType.UINT16, 'the stem output (its Relu folded) is 16-bit too');
      // Kept, so placed for 16 bits: standard Q/DQ at opset 21 (measured with com.microsoft Q/DQ).
      assert.equal(q.proto.opsetImport.find((o) => o.domain === '')!.version, 21);
      assert.ok(q.proto.graph!.node.filter((n) => n.opType === 'QuantizeLinear').every((n) => n.domain === ''));
      q.close();
      // onnxruntime's own measurement on the held-out samples agrees with the choice.
      assert.ok(wide.eval.outputs[0]!.sqnrDb > narrow.eval.outputs[0]!.sqnrDb + 1, `16-bit stem ${wide.eval.outputs[0]!.sqnrDb.toFixed(1)} dB vs 8-bit ${narrow.eval.outputs[0]!.sqnrDb.toFixed(1)} dB`);
    } finally {
      tmp.cleanup();
    }
  });

  it('quantize keeps the stem 8-bit when 16 bits buy less than 1 dB, and says so', async () => {
    const tmp = tempDir();
    try {
      const r = await quantizeBuilt(cnn(8), tmp.dir, 'deep', { ...DEFAULT_CONFIG });
      const note = r.report.preprocessing.find((p) => /reading the model input/.test(p));
      assert.match(note ?? '', /^the 1 layer\(s\) reading the model input \("stem"\) stay uint8: uint16 activations there measured worst output SQNR on 4 calibration samples (\S+) → (\S+) dB, less than 1 dB/, r.report.preprocessing.join('\n'));
      const [, at8, at16] = /(\S+) → (\S+) dB/.exec(note!)!;
      assert.ok(Number(at16) < Number(at8) + 1);
      assert.match(r.report.quantized.find((q) => q.name === 'stem')!.detail, /uint8 activations/);
      // Not kept: the model keeps its opset (the measurement used com.microsoft Q/DQ).
      assert.equal(r.report.preprocessing.some((p) => /opset 13 → 21/.test(p)), false, r.report.preprocessing.join('\n'));
      const q = OnnxModel.load(r.output);
      assert.equal(q.proto.opsetImport.find((o) => o.domain === '')!.version, 13);
      q.close();
    } finally {
      tmp.cleanup();
    }
  });
});
