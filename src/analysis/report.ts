/**
 * The analysis report: the JSON shape `onnx-quant analyze --json` prints (and the extension reads),
 * the conversions into it, and the human-readable text.
 *
 * JSON conventions: numbers that are not finite (an SQNR of +∞ for a lossless quantization, NaN
 * for a broken one) are written as null, as JSON has no such values; per-channel and histogram
 * ranges are rounded to float32 precision (7 significant digits).
 */
import { formatBytes } from '../onnx/summary';
import type { ActivationStats } from './activation-stats';
import type { Finding } from './findings';
import type { Choice } from './suggest';
import type { WeightStats } from './weight-stats';

export interface WeightReport {
  /** The node input the weight comes from, and its shape. */
  input: string;
  dims: number[];
  elements: number;
  min: number;
  max: number;
  absMax: number;
  mean: number;
  std: number;
  zeros: number;
  denormals: number;
  nonFinite: { nan: number; posInf: number; negInf: number };
  perChannel: { axis: number; min: number[]; max: number[] };
  histogram: { min: number; max: number; counts: number[] };
  absP999: number;
  outlierScore: number;
  channelRangeSpread: number;
  sqnrDb: { int8: number; int8PerChannel: number; int4: number };
  /** The BatchNormalization folded into these statistics (as quantize folds it). */
  foldedBatchNorm?: string;
}

export interface ActivationTensorReport {
  tensor: string;
  dims: number[] | null;
  min: number;
  max: number;
  percentiles: Record<string, number>;
  histogram: { min: number; max: number; counts: number[] };
  beyondP9999: { valueShare: number; rangeShare: number };
  nonFinite: { nan: number; posInf: number; negInf: number };
  channelAxis: number | null;
  channels: number | null;
  deadChannels: number[];
}

export interface ActivationReport {
  /** True when the statistics come from generated inputs. */
  synthetic: boolean;
  input: ActivationTensorReport | null;
  output: ActivationTensorReport | null;
  note?: string;
}

export interface SensitivityReport {
  /** Layer-output SQNR with only this layer quantized (int8 with the analysis settings). */
  localSqnrDb: number | null;
  /**
   * Model-output SQNR (worst output) of the noise this layer's quantization adds: of the noise the
   * all-quantized model has, the part that keeping this layer alone in float removes (+∞ / null: none).
   */
  globalSqnrDb: number | null;
  /** Model-output SQNR with every layer but this one quantized. */
  leaveOneOutSqnrDb?: number;
  /** Local SQNR per precision: int8, int16 (16-bit activations), int4 (weight-only). */
  local: Partial<Record<'int8' | 'int16' | 'int4', number>>;
  /** Global SQNR per model output. */
  globalOutputs?: Record<string, number>;
  /** 1 = most sensitive (global when measured, else local); null when not ranked. */
  rank: number | null;
  note?: string;
}

export interface LayerReport {
  name: string;
  opType: string;
  /** '' for the main graph, else the chain of control-flow nodes holding it. */
  graph: string;
  /** The node had no name; this one was generated (a recipe cannot address it). */
  unnamed?: boolean;
  weight: WeightReport | null;
  /** R of LSTM/GRU/RNN. */
  recurrentWeight?: WeightReport;
  activation: ActivationReport | null;
  sensitivity: SensitivityReport;
  /** Multiply-accumulates per run, from the observed shapes (null when unknown). */
  macs: number | null;
  /** 4 (int4 weight-only), 8 (int8), 16 (int16 activations), 32 (float); null without a suggestion. */
  suggestedBits: number | null;
  suggestion: Choice | null;
  reason: string;
}

export interface SuggestionReport {
  mode: 'static' | 'weight-only';
  met: boolean;
  targetSqnrDb: number;
  maxSizeBytes: number | null;
  /** Verified by quantizing with the suggestion: worst output SQNR and model size. */
  achievedSqnrDb: number;
  sizeBytes: number;
  floatSizeBytes: number;
  estimatedSizeBytes: number;
  /** Σ MACs × relative cost (float 1, int8 0.5, int16 1, int4 weight-only 1) over Σ MACs. */
  latencyProxy: number;
  history: { mode: string; sqnrDb: number; sizeBytes: number; promoted: number }[];
  counts: Record<Choice, number>;
  /** The recipe settings `--write-recipe` writes. */
  recipe: Record<string, unknown>;
  notes: string[];
}

export interface AnalysisReport {
  model: string;
  fileBytes: number;
  irVersion: number;
  opset: number | null;
  settings: Record<string, unknown>;
  data: {
    calibration: { source: string; samples: number; synthetic: boolean; seconds: number } | null;
    evaluation: { source: string; samples: number; synthetic: boolean } | null;
  };
  layers: LayerReport[];
  findings: Finding[];
  suggestion: SuggestionReport | null;
  global: { workers: number; samples: number; seconds: number; outputs: string[]; allQuantizedSqnrDb: number } | null;
  notes: string[];
  seconds: number;
}

const f7 = (v: number): number => (Number.isFinite(v) ? Number(v.toPrecision(7)) : v);

export function weightReport(input: string, dims: readonly number[], s: WeightStats, fold?: string): WeightReport {
  const r: WeightReport = {
    input,
    dims: [...dims],
    elements: s.elements,
    min: s.min,
    max: s.max,
    absMax: s.absMax,
    mean: s.mean,
    std: s.std,
    zeros: s.zeros,
    denormals: s.denormals,
    nonFinite: { ...s.nonFinite },
    perChannel: { axis: s.perChannel.axis, min: Array.from(s.perChannel.min, f7), max: Array.from(s.perChannel.max, f7) },
    histogram: { min: s.histogram.min, max: s.histogram.max, counts: s.histogram.counts },
    absP999: s.absP999,
    outlierScore: s.outlierScore,
    channelRangeSpread: s.channelRangeSpread,
    sqnrDb: { ...s.sqnrDb },
  };
  if (fold) r.foldedBatchNorm = fold;
  return r;
}

export function activationTensorReport(tensor: string, dims: number[] | undefined, a: ActivationStats): ActivationTensorReport {
  return {
    tensor,
    dims: dims ?? null,
    min: a.min,
    max: a.max,
    percentiles: a.percentiles,
    histogram: { min: f7(a.histogram.min), max: f7(a.histogram.max), counts: a.histogram.counts },
    beyondP9999: a.beyondP9999,
    nonFinite: a.nonFinite,
    channelAxis: a.channels?.axis ?? null,
    channels: a.channels?.channels ?? null,
    deadChannels: a.channels?.dead ?? [],
  };
}

/** JSON text of the report (non-finite numbers as null). */
export function reportJson(r: AnalysisReport): string {
  return JSON.stringify(r);
}

/**
 * C0/C1 controls (tab and newline aside; ESC starts terminal escape sequences) and the bidi
 * embeddings, overrides, isolates and marks (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069).
 */
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Shows the characters above as visible code points ("⟨U+202E⟩"): names come from the model file,
 * and one must not recolour the terminal, reorder the text around it or hide itself.
 */
export function showInvisible(s: string): string {
  return s.replace(INVISIBLE, (c) => `⟨U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}⟩`);
}

function db(x: number | null | undefined): string {
  if (x === null || x === undefined) return '—';
  if (x === Infinity) return '∞';
  if (Number.isNaN(x)) return 'NaN';
  return x.toFixed(1);
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** The report for terminals. */
export function formatReport(r: AnalysisReport): string {
  const lines: string[] = [];
  lines.push(`${r.model} (${formatBytes(r.fileBytes)}, opset ${r.opset ?? '?'}): ${r.layers.length} layer(s)`);
  const c = r.data.calibration;
  if (c) lines.push(`  calibration: ${c.samples} sample(s), ${c.seconds.toFixed(1)} s${c.synthetic ? ' — SYNTHETIC DATA' : ''}: ${c.source}`);
  else lines.push('  no calibration data: weights only');
  const e = r.data.evaluation;
  if (e) lines.push(`  evaluation: ${e.samples} sample(s)${e.synthetic ? ' — SYNTHETIC DATA' : ''}: ${e.source}`);
  if (r.global) lines.push(`  global sensitivity: ${r.global.samples} sample(s), ${r.global.workers} worker(s), ${r.global.seconds.toFixed(1)} s; every layer in int8: ${db(r.global.allQuantizedSqnrDb)} dB`);
  lines.push('');
  const nameWidth = Math.min(40, Math.max(4, ...r.layers.map((l) => l.name.length)));
  lines.push(
    `  ${pad('layer', nameWidth)}  ${pad('op', 13)} ${pad('W int8', 6)} ${pad('W pc', 6)} ${pad('W int4', 6)} ${pad('outl', 5)} ${pad('spread', 6)} ${pad('in range', 20)} ${pad('local', 6)} ${pad('global', 6)} ${pad('rank', 4)} bits`,
  );
  for (const l of r.layers) {
    const w = l.weight;
    const a = l.activation?.input;
    const range = a ? `[${a.min.toPrecision(3)}, ${a.max.toPrecision(3)}]` : '—';
    lines.push(
      `  ${pad(l.name.length > nameWidth ? `…${l.name.slice(-(nameWidth - 1))}` : l.name, nameWidth)}  ${pad(l.opType, 13)} ${pad(db(w?.sqnrDb.int8), 6)} ${pad(db(w?.sqnrDb.int8PerChannel), 6)} ${pad(db(w?.sqnrDb.int4), 6)} ${pad(w ? w.outlierScore.toFixed(1) : '—', 5)} ${pad(w ? (Number.isFinite(w.channelRangeSpread) ? w.channelRangeSpread.toFixed(1) : '∞') : '—', 6)} ${pad(range, 20)} ${pad(db(l.sensitivity.localSqnrDb), 6)} ${pad(db(l.sensitivity.globalSqnrDb), 6)} ${pad(l.sensitivity.rank === null ? '—' : String(l.sensitivity.rank), 4)} ${l.suggestedBits ?? '—'}`,
    );
  }
  lines.push('  (W: weight SQNR in dB, int8 per tensor / per channel / int4 blocks; outl: |w| max over its 99.9th percentile; spread: widest');
  lines.push('   channel range over the median; local: layer-output SQNR with only this layer int8; global: model-output SQNR of the noise');
  lines.push('   keeping only this layer in float removes; rank 1 = most sensitive; bits: suggested, 32 = float)');
  const s = r.suggestion;
  if (s) {
    lines.push('');
    lines.push(
      `suggestion (${s.mode}): ${s.met ? 'meets' : 'does NOT meet'} the goal — verified SQNR ${db(s.achievedSqnrDb)} dB (target ${s.targetSqnrDb} dB${s.maxSizeBytes !== null ? `, budget ${formatBytes(s.maxSizeBytes)}` : ''}), size ${formatBytes(s.floatSizeBytes)} → ${formatBytes(s.sizeBytes)}, latency proxy ${s.latencyProxy.toFixed(2)}× float`,
    );
    lines.push(`  ${Object.entries(s.counts).filter(([, n]) => n > 0).map(([k, n]) => `${n} × ${k}`).join(', ')}`);
    for (const l of r.layers) if (l.suggestion && l.suggestion !== (s.mode === 'static' ? 'int8' : 'int4') && l.reason) lines.push(`  ${l.name}: ${l.suggestion} — ${l.reason}`);
    for (const n of s.notes) lines.push(`  note: ${n}`);
  }
  if (r.findings.length) {
    lines.push('');
    lines.push(`findings (${r.findings.length}):`);
    for (const f of r.findings) {
      lines.push(`  ${f.code} ${f.severity}${f.node ? ` [${f.node}]` : ''}: ${f.message}`);
      lines.push(`      → ${f.suggestion}`);
    }
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.map(showInvisible).join('\n');
}
