/**
 * Where Q/DQ ops go: standard ONNX QuantizeLinear/DequantizeLinear need default-domain opset ≥ 13
 * (per-channel axis) or ≥ 21 (16-bit types). Older models are upgraded when every op allows it;
 * 16-bit activations that cannot have opset 21 get onnxruntime's com.microsoft Q/DQ on an opset-13
 * model (onnxruntime's own bias pass emits standard DequantizeLinear with an axis, which an older
 * opset rejects); a model that cannot be upgraded at all gets com.microsoft Q/DQ as it is.
 * Shared by the quantize pipeline and the analysis, so both measure the same model.
 */
import { defaultOpset, OpsetUpgradeError, upgradeOpset } from '../../onnx/opset-upgrade';
import type { ModelProto } from '../../onnx/proto';
import { is16BitActivation, type QuantConfig } from '../config';
import { TARGET_PRESETS } from '../presets';

export interface Placement {
  proto: ModelProto;
  domain: '' | 'com.microsoft';
  notes: string[];
  /** The opset Q/DQ needs for these settings (13, or 21 for 16-bit types) and the model's own. */
  needOpset: number;
  opset: number;
  /** Set when standard Q/DQ was wanted but the model could not be upgraded. */
  upgradeError?: string;
}

export function wants16Bit(config: QuantConfig): boolean {
  return is16BitActivation(config.activationType) || Object.values(config.nodes).some((o) => is16BitActivation(o.activationType));
}

/** See the header. `upgradeError` is set when standard Q/DQ was wanted but could not be had. */
export function placeQdq(proto: ModelProto, config: QuantConfig): Placement {
  const wants16 = wants16Bit(config);
  const need = wants16 ? 21 : 13;
  const current = defaultOpset(proto) ?? 0;
  const base = { needOpset: need, opset: current };
  if (current >= need) return { ...base, proto, domain: '', notes: [] };
  const standardOnly = config.target ? TARGET_PRESETS[config.target].standardOpsOnly : false;
  let firstError: string | undefined;
  for (const [target, domain] of [
    [need, ''],
    [13, 'com.microsoft'],
  ] as const) {
    if (domain === 'com.microsoft' && (standardOnly || !wants16)) continue;
    if (current >= target) return { ...base, proto, domain, notes: ["16-bit activations: onnxruntime's com.microsoft QuantizeLinear/DequantizeLinear (standard ones need opset 21)"] };
    try {
      const up = upgradeOpset(proto, target);
      return { ...base, proto: up.model, domain, notes: [`opset ${current} → ${target} for ${domain ? "onnxruntime's com.microsoft" : 'standard'} Q/DQ`] };
    } catch (err) {
      if (!(err instanceof OpsetUpgradeError)) throw err;
      firstError ??= err.message;
    }
  }
  return { ...base, proto, domain: 'com.microsoft', notes: [`${firstError}; onnxruntime's com.microsoft Q/DQ ops instead`], upgradeError: firstError };
}
