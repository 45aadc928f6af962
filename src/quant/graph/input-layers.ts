/**
 * The layers that read the model's input (a network's stem): Conv/ConvTranspose/Gemm/MatMul of the
 * main graph whose activation input is a float graph input. Their output's rounding error passes
 * through every later layer, and nothing upstream averages it out, so when nobody chose the
 * activation type (config.activationTypeAuto) they are candidates for 16-bit activations: their
 * input and output tensors. Weights stay 8-bit, so the file is as small, but the stem then runs as
 * a float kernel, which can cost: the quantize pipeline measures both and keeps 16 bits only where
 * the model gains at least 1 dB (runtime/refine/input-layers.ts), and only then places 16-bit Q/DQ.
 *
 * Measured with the defaults: PP-OCRv4's detector 21.6 → 25.5 dB at its output (5 other pages:
 * map 22.3 → 25.3 dB), its recognizer 762 → 774 of 800 lines decoded identically; the accuracy-
 * aware loop had ranked the detector's stem first (+3.4 dB alone). Quantizing the image input
 * alone at 16 bits gave nothing: the loss is the stem's 8-bit output. On the ResNet-style
 * benchmark CNN it bought 0.3 dB and doubled the int8 latency (0.24× → 0.47× of float): kept 8-bit.
 */
import type { ModelProto } from '../../onnx/proto';
import { is16BitActivation, WIDER_ACTIVATION, type NodeOverride, type QuantConfig } from '../config';
import { floatGraphInputs, isDefaultDomain } from './edit';
import { WEIGHTED_OPS } from './ops';

/** Names of the weighted layers whose activation input is a float graph input. */
export function inputLayers(model: ModelProto): string[] {
  const g = model.graph;
  if (!g) return [];
  const floatInputs = new Set(floatGraphInputs(g).map((i) => i.name));
  return g.node.filter((n) => n.opType in WEIGHTED_OPS && isDefaultDomain(n) && n.name && floatInputs.has(n.input[0] ?? '')).map((n) => n.name);
}

/**
 * The config with 16-bit activations for the input layers (per-node overrides), when static,
 * nobody chose the activation type and it is 8-bit; a node with its own activation type or
 * excluded keeps that. `layers`: the layers raised (none: `config` is returned as given).
 * The quantize pipeline keeps the raise only where it measures better (runtime/refine/input-layers.ts).
 */
export function inputLayerActivationType(model: ModelProto, config: QuantConfig): { config: QuantConfig; layers: string[] } {
  if (config.mode !== 'static' || config.activationQdq === 'none' || !config.activationTypeAuto || is16BitActivation(config.activationType)) return { config, layers: [] };
  const wider = WIDER_ACTIVATION[config.activationType];
  const raised = inputLayers(model).filter((name) => {
    const o = config.nodes[name];
    return !o?.exclude && o?.activationType === undefined;
  });
  if (!raised.length) return { config, layers: [] };
  const nodes: Record<string, NodeOverride> = { ...config.nodes };
  for (const name of raised) nodes[name] = { ...nodes[name], activationType: wider };
  return { config: { ...config, nodes }, layers: raised };
}

/** "conv0", "conv1", … for a report line. */
export function listLayers(names: readonly string[]): string {
  return names.slice(0, 3).map((n) => `"${n}"`).join(', ') + (names.length > 3 ? ', …' : '');
}
