/**
 * Which operators the static QDQ transform quantizes, and how.
 *
 * The choice follows what onnxruntime's CPU provider fuses into integer kernels when it sees
 * DequantizeLinear → op → QuantizeLinear (QLinearConv, QLinearMatMul, QGemm, QLinearAdd,
 * QLinearGlobalAveragePool, QLinearConcat, …) or drops as exact (data movement with equal input and
 * output scales). An op outside these sets stays in float: quantizing it would only add
 * Q/DQ pairs around a float kernel, costing time and accuracy.
 */

/** Ops with a weight input: index of the weight and of the optional bias. */
export const WEIGHTED_OPS: Readonly<Record<string, { weight: number; bias?: number }>> = {
  Conv: { weight: 1, bias: 2 },
  ConvTranspose: { weight: 1, bias: 2 },
  Gemm: { weight: 1, bias: 2 },
  MatMul: { weight: 1 },
};

/**
 * Weighted ops that onnxruntime's CPU provider runs as integer kernels only when their output is
 * quantized too (QLinearConv, QLinearConvTranspose): with a float output they run in float on
 * dequantized inputs. Gemm and MatMul are not here: with a float output they still fuse, into QGemm
 * and MatMulIntegerToFloat (checked in onnxruntime's profile, test/unit/float-kernels.test.ts).
 */
export const INTEGER_ONLY_WITH_QUANTIZED_OUTPUT: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose']);

/**
 * Ops whose output reuses the input's scale and zero point (pure data movement or max/min
 * selection): quantized only when their input is, so onnxruntime can drop their Q/DQ pairs.
 */
export const SAME_SCALE_OPS: ReadonlySet<string> = new Set([
  'MaxPool',
  'Reshape',
  'Transpose',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Identity',
  'Slice',
  'Gather',
  'Split',
  'Resize',
  'Pad',
  'Expand',
  'Tile',
  'DepthToSpace',
  'SpaceToDepth',
]);

/**
 * Same-scale ops whose output holds only values of their first input (no interpolation, no pad
 * value): the input's range covers the output, so the output needs no calibration of its own.
 * Not Resize (cubic overshoots) or Pad (its constant may lie outside).
 */
export const VALUE_PRESERVING_OPS: ReadonlySet<string> = new Set([...SAME_SCALE_OPS].filter((op) => op !== 'Resize' && op !== 'Pad'));

/** Ops with integer kernels and their own output range (calibrated). Quantized next to quantized ops. */
export const CALIBRATED_OPS: ReadonlySet<string> = new Set([
  'Add',
  'Mul',
  'Concat',
  'GlobalAveragePool',
  'AveragePool',
  'Relu',
  'Clip',
  'LeakyRelu',
  'Sigmoid',
]);

/** Float inputs of a node that carry activations (the ones a QDQ pair goes on). */
export function activationInputIndices(opType: string, inputCount: number): number[] {
  switch (opType) {
    case 'Reshape':
    case 'Expand':
    case 'Tile':
    case 'Gather':
    case 'Slice':
    case 'Split':
    case 'Squeeze':
    case 'Unsqueeze':
    case 'Pad':
    case 'Resize':
    case 'Clip':
      return [0]; // the rest are shapes, indices, pads, scales or bounds
    default:
      return Array.from({ length: inputCount }, (_, i) => i);
  }
}

/**
 * The weight axis that holds output channels, for per-channel quantization.
 * Conv [M, C/g, kH, kW] → 0; ConvTranspose [C, M/g, kH, kW] → 1; Gemm B [N, K] with transB → 0,
 * [K, N] without → 1; MatMul B [..., K, N] → last.
 */
export function outputChannelAxis(opType: string, weightRank: number, transB: boolean): number {
  switch (opType) {
    case 'Conv':
      return 0;
    case 'ConvTranspose':
      return 1;
    case 'Gemm':
      return transB ? 0 : 1;
    default:
      return weightRank - 1;
  }
}

/** Producers into which a following Relu / Clip(0, …) folds: their integer kernels requantize the output. */
const FOLD_INTO: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'Add']);

interface FoldGraph {
  producer(name: string): { opType: string } | undefined;
  consumers(name: string): readonly unknown[];
}

/**
 * A Relu, or a Clip whose lower bound is 0, right after an integer op folds into that op's
 * output quantization: with an asymmetric range starting at 0 the zero point is qmin, so
 * QuantizeLinear's saturation clamps negatives exactly as the activation would. The activation node
 * disappears and its input tensor needs no range of its own. Symmetric activations keep negatives,
 * so nothing folds then. `clipMin` gives the constant lower bound of a Clip (undefined if unknown).
 */
export function isFoldableActivation(
  node: { opType: string; input: string[]; output: string[] },
  graph: FoldGraph,
  graphOutputs: ReadonlySet<string>,
  symmetricActivations: boolean,
  clipMin: (node: { opType: string; input: string[] }) => number | undefined,
): boolean {
  if (symmetricActivations) return false;
  if (node.opType !== 'Relu' && node.opType !== 'Clip') return false;
  const x = node.input[0];
  const y = node.output[0];
  if (!x || !y || graphOutputs.has(x) || graphOutputs.has(y)) return false;
  const p = graph.producer(x);
  if (!p || !FOLD_INTO.has(p.opType) || graph.consumers(x).length !== 1) return false;
  return node.opType === 'Relu' || clipMin(node) === 0;
}
