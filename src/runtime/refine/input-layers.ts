/**
 * Whether the layers reading the model input get 16-bit activations (see quant/graph/input-layers.ts):
 * measured, not assumed. The 16-bit stem costs no size but makes it a float kernel, which on a
 * ResNet-style CNN doubled the int8 latency for 0.3 dB; on PP-OCRv4's detector it bought 3.9 dB.
 * Both variants are quantized from the same calibration and measured on the first PROBE_SAMPLES
 * calibration samples (worst output SQNR, logits for Softmax outputs, as the affine folds are);
 * 16 bits are kept when they gain at least MIN_GAIN_DB; the caller then places Q/DQ for them.
 */
import { defaultOpset } from '../../onnx/opset-upgrade';
import type { QuantConfig } from '../../quant/config';
import { listLayers } from '../../quant/graph/input-layers';
import type { TensorStats } from '../calibrate';
import { activationRanges, transformStatic, type StaticPlan } from '../quantize-model';
import { throwIfAborted } from '../session';
import type { SmoothContext } from './smoothquant';
import { PROBE_SAMPLES, probeMeter } from './verify-equalization';

/** The gain (dB of the worst output's SQNR) that pays for a float-kernel stem. */
export const MIN_GAIN_DB = 1;

export async function chooseInputLayerPrecision(
  plan: StaticPlan,
  narrow: QuantConfig,
  wide: { config: QuantConfig; layers: readonly string[] },
  stats: ReadonlyMap<string, TensorStats>,
  ctx: SmoothContext,
): Promise<{ config: QuantConfig; note: string }> {
  // Measured with onnxruntime's com.microsoft Q/DQ where standard 16-bit Q/DQ would need opset 21:
  // the same arithmetic, so the model is upgraded only if the 16-bit stem is kept.
  const probePlan: StaticPlan = plan.domain === '' && (defaultOpset(plan.proto) ?? 0) < 21 ? { ...plan, domain: 'com.microsoft' } : plan;
  const meter = probeMeter(ctx);
  const measure = async (config: QuantConfig, what: string) => {
    throwIfAborted(ctx.signal, 'quantization');
    ctx.onProgress?.({ phase: 'quantize', done: 0, total: 1, message: `input layers: measuring ${what}` });
    return meter.measure(transformStatic(probePlan, config, activationRanges(stats, config), ctx.readWeight).model);
  };
  const at8 = await measure(narrow, '8-bit activations');
  const at16 = await measure(wide.config, '16-bit activations');
  const bits = wide.config.nodes[wide.layers[0]!]?.activationType ?? 'uint16';
  const layers = `${wide.layers.length} layer(s) reading the model input (${listLayers(wide.layers)})`;
  const measured = `worst output SQNR on ${PROBE_SAMPLES} calibration samples ${at8.toFixed(1)} → ${at16.toFixed(1)} dB`;
  if (at16 >= at8 + MIN_GAIN_DB) {
    return { config: wide.config, note: `activations ${bits} for the ${layers}, weights stay ${narrow.weightType}: ${measured}; --activation-type ${narrow.activationType} keeps 8 bits` };
  }
  return { config: narrow, note: `the ${layers} stay ${narrow.activationType}: ${bits} activations there measured ${measured}, less than ${MIN_GAIN_DB} dB for a stem that would run in float` };
}
