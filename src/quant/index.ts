/**
 * Public API of the pure quantization math (no vscode / onnxruntime / src/onnx imports).
 *
 * Typical flows:
 *   weights:     tensorMinMax / channelMinMax → computeQParams / computePerChannelQParams → quantize*
 *   int4 blocks: computeBlockwiseQParams → quantizeBlockwise → packInt4
 *   activations: observer.update(batch)… → range (min/max) or histogram() → percentile/entropy/mseRange
 *                → qparamsFromRange(range, type, { symmetric })
 *   bias:        quantizeBias(bias, inputScale, weightScale(s)) with scale computeBiasScale(s)
 */
export {
  QUANT_TYPES,
  quantRange,
  allocQuantArray,
  type QuantType,
  type QuantRange,
  type QuantParams,
  type PerChannelQuantParams,
  type BlockwiseQuantParams,
  type QuantArray,
  type QuantArrayFor,
  type QuantArrayMap,
  type FloatRange,
  type QParamOptions,
} from './types';
export { QuantizationError } from './errors';
export { roundHalfToEven, INT32_MIN, INT32_MAX } from './round';
export { normalizeAxis, shapeSize } from './shape';
export {
  MIN_NORMAL_FLOAT32,
  DEGENERATE_SCALE,
  computeQParams,
  computeQParamsInto,
  qparamsFromRange,
  computePerChannelQParams,
  tensorMinMax,
  computeBiasScale,
  computeBiasScales,
  quantizeBias,
  type ScaleZeroPoint,
} from './params';
export {
  quantizeTensor,
  dequantize,
  quantizePerChannel,
  dequantizePerChannel,
  channelMinMax,
  computeBlockwiseQParams,
  quantizeBlockwise,
  dequantizeBlockwise,
} from './quantize';
export { packInt4, unpackInt4 } from './int4';
export { quantizeFp16, fp16ToFloat32, float32ToFp16Bits, fp16BitsToNumber } from './fp16';
export {
  MinMaxObserver,
  MovingAverageMinMaxObserver,
  PerChannelMinMaxObserver,
  type NonFiniteCounts,
  type PerChannelObserverOptions,
} from './observers';
export { HistogramObserver, DEFAULT_HISTOGRAM_BINS, type Histogram, type HistogramOptions } from './histogram';
export { percentileRange, foldAbs, histogramQuantile, type RangeChooserOptions, type AbsHistogram } from './calibrate-range';
export { entropyRange } from './calibrate-entropy';
export { mseRange } from './calibrate-mse';
