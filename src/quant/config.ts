/**
 * Quantization settings: what `onnx-quant quantize` options and recipe files describe. Pure data,
 * shared by the CLI, the recipe reader, the graph transforms and the extension.
 */
import type { QuantType } from './types';

export type QuantMode = 'static' | 'dynamic' | 'weight-only' | 'fp16';
export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy' | 'mse';
export type ActivationType = 'uint8' | 'int8' | 'uint16' | 'int16';
export type WeightType = 'int8' | 'uint8' | 'int4' | 'uint4';
export type TargetPreset = 'cpu-x86' | 'cpu-arm' | 'gpu-tensorrt' | 'npu';
/**
 * Which activations get a Q/DQ pair (static mode):
 * - 'auto' (the default): 'integer-kernels' when the integer kernels would carry at least 1/8 of
 *   the model's multiply-adds, otherwise 'none' (runtime/activation-qdq.ts: below that share no
 *   integer speed-up pays for the activations' rounding error).
 * - 'integer-kernels': only where an integer kernel can use it. A Conv/ConvTranspose whose output
 *   only float ops read (a HardSwish, a graph output…) cannot become an integer kernel in
 *   onnxruntime: it runs in float on its int8 weights and reads its input in float. (Gemm and
 *   MatMul fuse with a float output too, so they keep their quantized inputs.)
 * - 'every-layer': every quantized layer's input is quantized, for compilers that choose int8 per
 *   layer from the Q/DQ around it (TensorRT, NPU toolchains).
 * - 'none': no activation is quantized; every layer keeps its quantized weights behind a
 *   DequantizeLinear and runs in float. For models where the integer kernels buy no speed
 *   (PP-OCRv4's recognizer ran at 0.98× float either way) it keeps the size and drops the
 *   activations' rounding error; calibration then only serves the weight refinements.
 */
export type ActivationQdq = 'auto' | 'integer-kernels' | 'every-layer' | 'none';

/** Per-node settings from a recipe; anything left out falls back to the global settings. */
export interface NodeOverride {
  /** Keep this node in float. */
  exclude?: boolean;
  activationType?: ActivationType;
  weightType?: WeightType;
  symmetricWeights?: boolean;
  symmetricActivations?: boolean;
  perChannel?: boolean;
}

export interface QuantConfig {
  mode: QuantMode;
  method: CalibrationMethod;
  /** Percentile for method "percentile", e.g. 99.99. */
  percentile: number;
  /**
   * Histogram methods: at most this many values of each activation per sample are binned (an
   * evenly strided subset taken inside onnxruntime; min and max stay exact); 0: every value.
   * Copying every activation out of onnxruntime cost 8–12× an inference on PP-OCRv4's detector
   * and recognizer, the subset 2.6–4.7×, with the same accuracy within what the choice of
   * calibration lines alone moves (README, "Calibration speed").
   */
  histogramValues: number;
  perChannel: boolean;
  activationType: ActivationType;
  /**
   * True when no option, recipe or --target preset chose activationType: static mode then widens
   * it to 16 bits for models that carry recurrent state between calls (graph/recurrent-state.ts).
   */
  activationTypeAuto?: boolean;
  weightType: WeightType;
  symmetricActivations: boolean;
  symmetricWeights: boolean;
  /** Block size for int4/uint4 weight-only quantization. */
  blockSize: 32 | 64 | 128;
  /** Node names or op types kept in float. */
  exclude: string[];
  /** Calibration samples to use (at most). */
  samples: number;
  target?: TargetPreset;
  /** Per-node overrides, keyed by node name. */
  nodes: Record<string, NodeOverride>;
  /** Fold BatchNormalization into the preceding Conv/Gemm before quantizing. */
  foldBatchNorm: boolean;
  /** Static mode: cross-layer equalization of Conv→activation→Conv chains (float-exact rescaling). */
  crossLayerEqualization: boolean;
  /** Static mode: shift each quantized layer's bias by its mean output error on calibration data. */
  biasCorrection: boolean;
  /**
   * Static mode: equalize the input channels of depthwise convolutions (X/s folded into the
   * producing Conv or BatchNormalization, filters × s; float-exact, and free for per-channel
   * weights) when one channel is much wider than the rest, so a per-tensor activation scale serves
   * them all. On by default: PP-OCRv4's recognizer went from 86 to 92 of 100 lines identical.
   */
  depthwiseEqualization: boolean;
  /** Static mode: SmoothQuant — migrate activation outlier scale into MatMul/Gemm weights. */
  smoothQuant: boolean;
  /** SmoothQuant migration strength α in [0, 1], or 'auto' to search it per layer. */
  smoothQuantAlpha: number | 'auto';
  /**
   * Static mode: learned rounding (AdaRound-style) — per layer, round each weight up or down to
   * minimize the layer's output error on calibration data. On by default since depthwise
   * equalization removed the recognizer's worst activation error: on 200 new lines it went from
   * 188 to 192 identical (README, "Closing the gap"); with 8-bit activations that error used to
   * dominate and learned rounding, which optimizes each layer against float inputs, hurt.
   * Bounded by adaroundSeconds.
   */
  adaround: boolean;
  /** Time budget of learned rounding in seconds; layers left when it runs out keep nearest rounding. */
  adaroundSeconds: number;
  /**
   * Conv/ConvTranspose weights: round so that each kernel's integers keep its float sum (its
   * response to a constant input) within half a step (quant/quantize.ts, preserveKernelSums).
   * With nearest rounding otherwise, PP-OCRv4's recognizer went from 12.2 to 14.5 dB; on top of
   * learned rounding (the default) it measured +0.9 dB there and neutral elsewhere, and it made
   * local sensitivity rank a synthetic test chain worse: off by default until that is understood.
   */
  kernelSumRounding: boolean;
  /**
   * See ActivationQdq. 'auto' by default: 'integer-kernels' (onnxruntime's CPU kernels) where
   * integer kernels carry enough of the work, else 'none'. A Q/DQ pair in front of a layer that
   * runs in float anyway adds rounding error and a pass over the tensor and buys nothing. On
   * PP-OCRv4's detector (36 of 64 convs run in float) output SQNR went from 20.3 to 21.8 dB and
   * latency down ~10%; the recognizer's from 14.6 to 16.7 dB (README).
   */
  activationQdq: ActivationQdq;
  /**
   * Static mode with 'integer-kernels': the convolutions onnxruntime runs as float kernels keep
   * float weights, smallest first, while the bytes they add over int8 stay within this fraction of
   * the quantized weights' size (0: quantize them all). Their int8 weights would save size and no
   * time, and the small ones lose the most accuracy to them (PP-OCRv4's recognizer: see README).
   */
  floatKernelWeights: number;
}

/**
 * Defaults: static uint8 activations (asymmetric) with int8 symmetric per-channel weights is what
 * onnxruntime's x86 and ARM kernels run fastest. Activation ranges by MSE search over histograms:
 * on the real models we test it beat min-max clearly (PP-OCRv4 recognizer: 88% vs 67% of lines
 * decoded identically; angle classifier 67.9 vs 64.5 dB) and entropy failed badly on the
 * recognizer (README, "Choosing the defaults").
 */
export const DEFAULT_CONFIG: Readonly<QuantConfig> = Object.freeze({
  mode: 'static',
  method: 'mse',
  percentile: 99.99,
  histogramValues: 16384,
  perChannel: true,
  activationType: 'uint8',
  activationTypeAuto: true,
  weightType: 'int8',
  symmetricActivations: false,
  symmetricWeights: true,
  blockSize: 32,
  exclude: [],
  samples: 64,
  nodes: {},
  foldBatchNorm: true,
  crossLayerEqualization: false,
  depthwiseEqualization: true,
  biasCorrection: false,
  smoothQuant: false,
  smoothQuantAlpha: 0.5,
  adaround: true,
  adaroundSeconds: 60,
  kernelSumRounding: false,
  activationQdq: 'auto',
  floatKernelWeights: 0.125,
} satisfies QuantConfig);

/** Whether an activation type is a 16-bit one. */
export function is16BitActivation(t: string | undefined): boolean {
  return t === 'uint16' || t === 'int16';
}

/** The 16-bit type of the same signedness (16-bit types map to themselves). */
export const WIDER_ACTIVATION: Readonly<Record<ActivationType, ActivationType>> = { uint8: 'uint16', int8: 'int16', uint16: 'uint16', int16: 'int16' };

/** The effective settings of one node: global settings with its override applied. */
export interface NodeQuantSettings {
  activationType: ActivationType;
  weightType: WeightType;
  symmetricWeights: boolean;
  symmetricActivations: boolean;
  perChannel: boolean;
}

export function nodeSettings(config: QuantConfig, nodeName: string): NodeQuantSettings {
  const o = config.nodes[nodeName] ?? {};
  return {
    activationType: o.activationType ?? config.activationType,
    weightType: o.weightType ?? config.weightType,
    symmetricWeights: o.symmetricWeights ?? config.symmetricWeights,
    symmetricActivations: o.symmetricActivations ?? config.symmetricActivations,
    perChannel: o.perChannel ?? config.perChannel,
  };
}

/** True when the user asked to keep this node in float (by name, by op type, or in a recipe). */
export function isExcluded(config: QuantConfig, node: { name: string; opType: string }): boolean {
  return config.exclude.includes(node.name) || config.exclude.includes(node.opType) || config.nodes[node.name]?.exclude === true;
}

export function asQuantType(t: ActivationType | WeightType): QuantType {
  return t;
}
