/**
 * `--target` presets: the types, symmetry and granularity each backend runs fastest and most
 * accurately. A preset sets defaults; explicit options and recipe fields override it.
 */
import type { QuantConfig, TargetPreset } from './config';

export interface PresetInfo {
  settings: Partial<QuantConfig>;
  /** Standard ONNX Q/DQ only (no onnxruntime contrib ops): the backend compiles plain ONNX. */
  standardOpsOnly: boolean;
  why: string;
}

export const TARGET_PRESETS: Readonly<Record<TargetPreset, PresetInfo>> = {
  'cpu-x86': {
    settings: { activationType: 'uint8', symmetricActivations: false, weightType: 'int8', symmetricWeights: true, perChannel: true },
    standardOpsOnly: false,
    why: 'x86 integer dot products (VPMADDUBSW, AVX-VNNI/AVX512-VNNI) multiply unsigned by signed bytes: uint8 asymmetric activations with int8 symmetric per-channel weights (U8S8) run fastest in onnxruntime',
  },
  'cpu-arm': {
    settings: { activationType: 'int8', symmetricActivations: false, weightType: 'int8', symmetricWeights: true, perChannel: true },
    standardOpsOnly: false,
    why: "ARM64's SDOT/SMMLA multiply signed bytes: int8 activations and int8 symmetric per-channel weights (S8S8) run natively in onnxruntime's ARM kernels",
  },
  'gpu-tensorrt': {
    settings: { activationType: 'int8', symmetricActivations: true, weightType: 'int8', symmetricWeights: true, perChannel: true, activationQdq: 'every-layer' },
    standardOpsOnly: true,
    why: 'TensorRT supports only symmetric int8 (zero point 0) for activations and weights, with per-channel weight scales, from standard QuantizeLinear/DequantizeLinear; it runs a layer in int8 when its input has a Q/DQ pair, so every quantized layer gets one',
  },
  npu: {
    settings: { activationType: 'uint8', symmetricActivations: false, weightType: 'int8', symmetricWeights: true, perChannel: true, activationQdq: 'every-layer' },
    standardOpsOnly: true,
    why: 'NPU compilers (e.g. Qualcomm QNN, Rockchip, NXP eIQ) take standard QDQ with uint8 asymmetric activations and int8 symmetric weights, and usually no onnxruntime contrib ops; every quantized layer gets a Q/DQ pair on its input',
  },
};
