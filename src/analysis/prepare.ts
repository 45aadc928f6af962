/**
 * The model as `onnx-quant quantize` sees it before its transforms: BatchNormalization folded
 * (when the config says so) and the Q/DQ placement chosen by opset — the same steps, in the same
 * order, as src/runtime/quantize-model.ts, so that what analysis measures is what quantize makes.
 */
import { OnnxModel } from '../onnx/model';
import type { ModelProto } from '../onnx/proto';
import { QuantConfig } from '../quant/config';
import { foldBatchNorm } from '../quant/graph/fold-batchnorm';
export { placeQdq, wants16Bit, type Placement } from '../quant/graph/placement';

/** BatchNormalization folded as quantize folds it (a copy; the input is untouched). */
export function foldForQuantization(model: OnnxModel | ModelProto, config: QuantConfig): { proto: ModelProto; folded: number } {
  const proto = model instanceof OnnxModel ? model.proto : model;
  if (!config.foldBatchNorm) return { proto, folded: 0 };
  const r = foldBatchNorm(model, config);
  return r.quantized.length ? { proto: r.model, folded: r.quantized.length } : { proto, folded: 0 };
}

