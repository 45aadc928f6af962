/**
 * Findings: what analysis noticed that changes how (or whether) to quantize, each with a stable
 * code, the node it is about (null for the model), a message and a suggestion. The codes and
 * their meanings never change once published (the README lists them, the extension shows them in
 * the Problems tab, CI pipelines may filter on them); new findings get new codes.
 */

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  severity: Severity;
  /** The node (layer) it is about; null for the whole model. */
  node: string | null;
  code: FindingCode;
  message: string;
  suggestion: string;
}

export interface FindingCodeInfo {
  /** Short stable slug. */
  id: string;
  /** Default severity (some findings are raised or lowered by context, see `when`). */
  severity: Severity;
  title: string;
  /** When it is reported, with the thresholds. */
  when: string;
}

/** Thresholds behind the findings (documented with the codes). */
export const THRESHOLDS = {
  /** OQ004: largest channel range over the median one… */
  channelSpread: 8,
  /** …and per-tensor int8 at least this many dB below per-channel int8. */
  perChannelGainDb: 6,
  /** OQ005: share of an activation's [min, max] range outside [p0.01, p99.99]. */
  activationRangeShare: 0.5,
  /** OQ006: share of the all-int8 model's output noise that keeping one layer in float removes. */
  dominantShare: 0.5,
} as const;

export const FINDING_CODES = {
  OQ001: {
    id: 'weight-non-finite',
    severity: 'error',
    title: 'NaN or infinite weights',
    when: 'a weight tensor holds NaN or ±Inf; quantization cannot represent them and the float model already produces garbage wherever they reach',
  },
  OQ002: {
    id: 'weight-denormal',
    severity: 'warning',
    title: 'Denormal weights',
    when: 'a weight tensor holds non-zero values below the smallest normal float32 (1.2e-38): slow on many CPUs, flushed to zero by fp16 and by most accelerators, and far below any quantization step',
  },
  OQ003: {
    id: 'already-quantized',
    severity: 'warning',
    title: 'Weights already quantized',
    when: 'the model already holds integer weights (DequantizeLinear of a constant, QLinearConv, MatMulInteger, MatMulNBits, …): quantizing again stacks rounding errors',
  },
  OQ004: {
    id: 'per-channel-needed',
    severity: 'warning',
    title: 'Channel ranges differ: per-channel weights needed',
    when: `the largest output channel's weight range is ≥ ${THRESHOLDS.channelSpread}× the median one and int8 per-tensor loses ≥ ${THRESHOLDS.perChannelGainDb} dB of weight SQNR against per-channel (warning with --per-tensor, info otherwise)`,
  },
  OQ005: {
    id: 'activation-outliers',
    severity: 'warning',
    title: 'Activation outliers',
    when: `more than ${THRESHOLDS.activationRangeShare * 100}% of a layer input's [min, max] range lies beyond its 0.01th–99.99th percentiles: a min/max range spends most int8 steps on 0.02% of the values (warning with --method minmax, info otherwise)`,
  },
  OQ006: {
    id: 'sensitivity-dominant',
    severity: 'warning',
    title: 'One layer dominates the quantization noise',
    when: `with --sensitivity global, keeping one layer alone in float removes ≥ ${THRESHOLDS.dominantShare * 100}% of the output noise of the model with every layer in int8`,
  },
  OQ007: {
    id: 'not-quantizable',
    severity: 'info',
    title: 'Operators that stay in float',
    when: 'operators with compute but no integer kernel in static QDQ (one finding per operator type), and weighted layers the static transform cannot quantize (LSTM/GRU/RNN, Gemm transA, layers inside If/Loop/Scan)',
  },
  OQ008: {
    id: 'opset-too-old',
    severity: 'warning',
    title: 'Opset too old for the requested types',
    when: 'the default-domain opset is below what standard Q/DQ needs (13; 21 for 16-bit activations or blocked int4): info when quantize can upgrade the model or falls back to onnxruntime com.microsoft Q/DQ, warning when the model cannot be upgraded',
  },
  OQ009: {
    id: 'missing-shapes',
    severity: 'warning',
    title: 'Missing or symbolic input shapes',
    when: 'a graph input has no declared shape (warning: synthetic data cannot be generated) or symbolic dims (info: the sizes used are given)',
  },
  OQ010: {
    id: 'synthetic-calibration',
    severity: 'warning',
    title: 'Calibrated on synthetic data',
    when: 'no --calib data was given: activation ranges, activation statistics and sensitivities come from random inputs',
  },
  OQ011: {
    id: 'dead-channels',
    severity: 'info',
    title: 'Dead channels',
    when: 'output channels of a layer were exactly zero in every sample (prunable; they also waste no precision, but say something about the data or the model)',
  },
  OQ012: {
    id: 'activation-non-finite',
    severity: 'error',
    title: 'NaN or infinite activations',
    when: 'a layer input or output held NaN or ±Inf during calibration',
  },
} as const satisfies Record<string, FindingCodeInfo>;

export type FindingCode = keyof typeof FINDING_CODES;

export function finding(code: FindingCode, node: string | null, message: string, suggestion: string, severity: Severity = FINDING_CODES[code].severity): Finding {
  return { severity, node, code, message, suggestion };
}

/** The codes as a Markdown table (for the README). */
export function findingCodesMarkdown(): string {
  const rows = Object.entries(FINDING_CODES).map(([code, c]) => `| \`${code}\` | ${c.id} | ${c.severity} | ${c.title}: ${c.when} |`);
  return ['| code | id | severity | when |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

const ORDER: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** Errors first, then warnings, then info; stable within a severity. */
export function sortFindings(findings: Finding[]): Finding[] {
  return findings.map((f, i) => ({ f, i })).sort((a, b) => ORDER[a.f.severity] - ORDER[b.f.severity] || a.i - b.i).map((x) => x.f);
}
