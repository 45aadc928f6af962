/** Quantizing a model a test builds, end to end, on synthetic data. */
import * as path from 'node:path';
import { OnnxModel } from '../../src/onnx/model';
import type { ModelProto } from '../../src/onnx/proto';
import { saveModel } from '../../src/onnx/save';
import type { QuantConfig } from '../../src/quant/config';
import { syntheticSource } from '../../src/runtime/data/synthetic';
import { quantizeModel, type QuantizeReport } from '../../src/runtime/quantize-model';

/**
 * Saves `proto` as `<dir>/<name>.onnx` and quantizes it to `<dir>/<name>.q.onnx` with `config`:
 * 8 synthetic calibration samples (seed 1), 2 evaluation samples (seed 2), no latency runs.
 */
export async function quantizeBuilt(proto: ModelProto, dir: string, name: string, config: QuantConfig): Promise<{ report: QuantizeReport; input: string; output: string }> {
  const input = path.join(dir, `${name}.onnx`);
  const output = path.join(dir, `${name}.q.onnx`);
  saveModel(proto, input);
  const m = OnnxModel.load(input);
  const calib = syntheticSource(m, { count: 8, seed: 1 });
  const evalSource = syntheticSource(m, { count: 2, seed: 2 });
  m.close();
  const report = await quantizeModel({ input, output, config, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0 });
  return { report, input, output };
}
