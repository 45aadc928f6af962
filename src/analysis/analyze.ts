/**
 * `onnx-quant analyze`: per-layer analysis of a model for quantization.
 *
 * Phases (each reported through `onProgress`, results streamed as they complete):
 *   weights      every layer's weight statistics, one tensor at a time (read, compute, drop: the
 *                model's weights are held once, as the loaded file);
 *   calibrate    the model as quantize prepares it (BatchNormalization folded, Q/DQ placement)
 *                run over the calibration samples with histogram observers (src/runtime/calibrate);
 *   activations  per-layer input/output statistics, and the channel/local pass
 *                (sensitivity-local.ts): dead channels, shapes, local sensitivity;
 *   global       quantized models over the evaluation samples in worker threads: every layer in
 *                int8, then all but one for each layer (sensitivity-global.ts);
 *   suggest      bit widths per layer, verified by quantizing with them (suggest.ts);
 *   findings     stable-coded observations (findings.ts).
 * Cancellation: `signal` rejects the promise with an AbortError at the next sample or layer.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataType, byteSizeOf } from '../onnx/dtypes';
import { isExternal } from '../onnx/external-data';
import { constantTensor, OnnxModel } from '../onnx/model';
import { defaultOpset } from '../onnx/opset-upgrade';
import type { ModelProto, NodeProto, TensorProto } from '../onnx/proto';
import { tensorToFloat32 } from '../onnx/tensor-data';
import { DEFAULT_CONFIG, QuantConfig } from '../quant/config';
import { equalizeDepthwiseInputs } from '../runtime/refine/equalize-depthwise';
import { stateActivationType } from '../quant/graph/recurrent-state';
import { inputLayerActivationType, listLayers } from '../quant/graph/input-layers';
import { modelScopes } from '../quant/graph/edit';
import { CALIBRATED_OPS, SAME_SCALE_OPS, WEIGHTED_OPS } from '../quant/graph/ops';
import { MIN_NORMAL_FLOAT32 } from '../quant/params';
import { makeRecipe } from '../quant/recipe';
import type { FloatRange } from '../quant/types';
import { calibrate, type CalibrationResult } from '../runtime/calibrate';
import { modelSizeBytes } from '../runtime/evaluate';
import { activationRanges, calibrationTensors, quantizeModel } from '../runtime/quantize-model';
import { chooseActivationQdq } from '../runtime/activation-qdq';
import type { Sample, SampleSource } from '../runtime/samples';
import { hasExternalData, throwIfAborted } from '../runtime/session';
import { activationStats, type ChannelUsage } from './activation-stats';
import { finding, type Finding, sortFindings, THRESHOLDS } from './findings';
import { discoverLayers, layerWeightValues, type LayerInfo, withNodeNames } from './layers';
import { foldForQuantization, placeQdq, type Placement } from './prepare';
import {
  activationTensorReport,
  type ActivationReport,
  type AnalysisReport,
  type LayerReport,
  type SuggestionReport,
  weightReport,
  type WeightReport,
} from './report';
import { globalSensitivity, type GlobalLayerResult, type GlobalSensitivityResult } from './sensitivity-global';
import { foldedActivation, localPass, type LocalLayerResult, type RuntimeLayer } from './sensitivity-local';
import { suggest, type Choice, type Plan, type Suggestion, type SuggestLayer, type Verification } from './suggest';
import { loadModelForAnalysisAsync } from './load';
import { yieldEvery } from './yield';
import { weightStats, weightStatsOfBytes } from './weight-stats';
import { elementCount } from '../onnx/tensor-data';
import { OnnxFormatError } from '../onnx/errors';

export type SensitivityMode = 'none' | 'local' | 'global';

/**
 * Default `--target-sqnr`, in dB of the worst model output: at 25 dB the output error's RMS is 5.6%
 * of the output's (cosine similarity ≈ 0.998), half the 10% (20 dB) at which quantized outputs
 * commonly start to change decisions. Plain int8 with per-channel weights clears it on
 * well-behaved networks (PP-OCR's angle classifier: 29.6 dB, the demo CNN: 42.5 dB, synthetic
 * inputs), so by default the suggestion keeps int8 wherever it is harmless and spends bits only
 * where int8 really breaks the model. Raise it for regression outputs (boxes, depth, audio),
 * lower it when only an argmax matters.
 */
export const DEFAULT_TARGET_SQNR_DB = 25;

export type AnalysisPhase = 'load' | 'weights' | 'calibrate' | 'activations' | 'global' | 'suggest' | 'findings' | 'done';

/** One progress event; with `--progress ndjson` each is one line of JSON. */
export type AnalysisEvent =
  | { event: 'phase'; phase: AnalysisPhase; total?: number }
  | { event: 'progress'; phase: AnalysisPhase; done: number; total: number }
  | { event: 'layer'; phase: 'weights'; name: string; opType: string; graph: string; weight: WeightReport | null; recurrentWeight?: WeightReport }
  | { event: 'layer'; phase: 'activations'; name: string; activation: ActivationReport; localSqnrDb: number | null; local: LayerReport['sensitivity']['local'] }
  | { event: 'layer'; phase: 'global'; name: string; globalSqnrDb: number | null; outputs: Record<string, number>; error?: string; done: number; total: number }
  | { event: 'suggestion'; plan: Plan['mode']; round: number; sqnrDb: number; sizeBytes: number; promoted: number }
  | { event: 'finding'; finding: Finding };

export interface AnalyzeOptions {
  /** The model file (or a loaded model). */
  model: string | OnnxModel;
  /** Analysis settings: the quantization settings analysis assumes (default DEFAULT_CONFIG). */
  config?: QuantConfig;
  /** Calibration data (activation statistics, ranges, local sensitivity). None: weights only. */
  calib?: SampleSource;
  /** Held-out data for global sensitivity and for verifying the suggestion (default: calib). */
  eval?: SampleSource;
  sensitivity?: SensitivityMode;
  /** Suggest bit widths (needs sensitivity); default true when sensitivity is not "none". */
  suggest?: boolean;
  targetSqnrDb?: number;
  maxSizeBytes?: number;
  /** Worker threads for global sensitivity (default: available cores). */
  workers?: number;
  /** Evaluation samples global sensitivity uses (default 16). */
  globalSamples?: number;
  /** Verification rounds of the suggestion search (default 6). */
  maxRounds?: number;
  /** Sizes used for symbolic input dims (reported by finding OQ009). */
  dims?: Record<string, number>;
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (e: AnalysisEvent) => void;
}

/** The first `n` samples of a source. */
export function takeSamples(source: SampleSource, n: number): SampleSource {
  if (source.count <= n) return source;
  return {
    count: n,
    synthetic: source.synthetic,
    description: `first ${n} of ${source.description}`,
    async *samples(signal?: AbortSignal): AsyncGenerator<Sample> {
      let k = 0;
      if (k >= n) return;
      for await (const s of source.samples(signal)) {
        yield s;
        if (++k >= n) return;
      }
    },
  };
}

function weightTypeForStats(config: QuantConfig): 'int8' | 'uint8' {
  return config.weightType === 'uint8' || config.weightType === 'uint4' ? 'uint8' : 'int8';
}

/** NaN/Inf and denormal counts of a float tensor (for weights that are not layers). */
function scanValues(x: Float32Array): { nonFinite: number; denormals: number } {
  let nonFinite = 0;
  let denormals = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v - v !== 0) nonFinite++;
    else if (v !== 0 && (v < 0 ? -v : v) < MIN_NORMAL_FLOAT32) denormals++;
  }
  return { nonFinite, denormals };
}

const RECURRENT_OPS = new Set(['LSTM', 'GRU', 'RNN']);

/** Ops with compute but no integer kernel that findings do not bother about. */
const SHAPE_OPS = new Set([
  'Constant',
  'Shape',
  'Size',
  'Cast',
  'CastLike',
  'ConstantOfShape',
  'Range',
  'NonZero',
  'Equal',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'If',
  'Loop',
  'Scan',
  'Identity',
  'Dropout',
  'BatchNormalization',
  'QuantizeLinear',
  'DequantizeLinear',
]);

function macsOf(layer: LayerInfo, local: LocalLayerResult | undefined): number | null {
  const w = layer.weights[0];
  if (!w || !local) return null;
  const n = w.dims.reduce((a, b) => a * b, 1);
  const elems = (dims: number[] | undefined) => (dims ? dims.reduce((a, b) => a * b, 1) : undefined);
  const out = elems(local.output?.dims);
  const inp = elems(local.input?.dims);
  switch (layer.opType) {
    case 'Conv':
      return out !== undefined && w.dims[0] ? (out * n) / w.dims[0] : null;
    case 'ConvTranspose':
      return inp !== undefined && w.dims[0] ? (inp * n) / w.dims[0] : null;
    case 'Gemm':
    case 'MatMul': {
      const r = w.dims.length;
      const k = layer.opType === 'Gemm' ? (layer.weights[0]!.layout.channelAxis === 0 ? w.dims[1] : w.dims[0]) : w.dims[r - 2];
      return out !== undefined && k ? out * k : null;
    }
    default:
      return null;
  }
}

/**
 * The nodes whose 16-bit override makes `layer`'s input 16-bit: the layer, and upstream the node
 * that registers its input tensor in the static transform (its producer, through data movement; a
 * Relu/Clip that folds into its own producer brings that producer too).
 */
function int16Nodes(prepared: ModelProto, layer: RuntimeLayer): string[] {
  const producers = new Map<string, NodeProto>();
  for (const n of prepared.graph!.node) for (const o of n.output) if (o) producers.set(o, n);
  const out = [layer.name];
  let t = layer.input;
  for (let depth = 0; depth < 32; depth++) {
    const p = producers.get(t);
    if (!p || !p.name || (p.domain && p.domain !== 'ai.onnx')) break;
    if (SAME_SCALE_OPS.has(p.opType)) {
      out.push(p.name);
      t = p.input[0] ?? '';
      continue;
    }
    if (p.opType in WEIGHTED_OPS || CALIBRATED_OPS.has(p.opType)) {
      out.push(p.name);
      if (p.opType === 'Relu' || p.opType === 'Clip') {
        const q = producers.get(p.input[0] ?? '');
        if (q?.name && (q.opType in WEIGHTED_OPS || q.opType === 'Add')) out.push(q.name);
      }
    }
    break;
  }
  return [...new Set(out)];
}

/** Runs the analysis. Throws OnnxFormatError / SampleDataError / ModelLoadError, or an AbortError. */
export async function analyzeModel(options: AnalyzeOptions): Promise<AnalysisReport> {
  const start = performance.now();
  const config: QuantConfig = options.config ?? { ...DEFAULT_CONFIG };
  const sensitivity = options.sensitivity ?? 'local';
  const targetSqnrDb = options.targetSqnrDb ?? DEFAULT_TARGET_SQNR_DB;
  const { signal } = options;
  const emit = (e: AnalysisEvent) => options.onProgress?.(e);
  const what = 'analysis';
  const notes: string[] = [];

  emit({ event: 'phase', phase: 'load' });
  // Weight statistics run on this thread: let the event loop in every ~15 ms between tensors.
  const pause = yieldEvery();
  const owned = typeof options.model === 'string';
  const model = typeof options.model === 'string' ? await loadModelForAnalysisAsync(options.model, signal) : options.model;
  try {
    throwIfAborted(signal, what);
    const fileBytes = model.buffer.length > 0 ? model.buffer.length : 0;
    const read = (t: TensorProto) => model.rawBytes(t);
    const toFloat32 = (t: TensorProto) => tensorToFloat32(t, isExternal(t) ? model.rawBytes(t) : undefined, model.file);
    const { model: named, generated } = withNodeNames(model.proto);
    const { layers, quantizedNodes } = discoverLayers(named, read, config, generated);
    const state = stateActivationType(model.proto, config);
    if (state.note) notes.push(`quantize's default for this model: ${state.note}; the activation sensitivities here are for ${config.activationType}`);
    const stem = inputLayerActivationType(model.proto, config);
    if (stem.layers.length) notes.push(`quantize's default: 16-bit activations for the ${stem.layers.length} layer(s) reading the model input (${listLayers(stem.layers)}) where that measures ≥ 1 dB better; the sensitivities here are for ${config.activationType} everywhere`);
    if (config.activationQdq === 'auto' && options.calib && sensitivity !== 'none' && !hasExternalData(model.proto)) {
      // What quantize's default would do with the activations (a probe transform and one float
      // run: skipped for weight-and-range-only analyses and for models whose weights live in
      // external data, where a second session would double the peak memory). The sensitivities
      // below are measured with them quantized where integer kernels read them either way.
      const choice = await chooseActivationQdq(named, config, options.calib, { readWeight: toFloat32, file: model.file, domain: '', threads: options.threads, signal });
      notes.push(`quantize's default for this model: ${choice.note}${choice.activationQdq === 'none' ? `; the activation sensitivities here are for ${config.activationType} activations where integer kernels read them (--activation-qdq integer-kernels)` : ''}`);
    }

    // ---- weights: one tensor at a time ----
    emit({ event: 'phase', phase: 'weights', total: layers.length });
    const reports = new Map<string, LayerReport>();
    const findings: Finding[] = [];
    const statsOptions = { symmetric: config.symmetricWeights, type: weightTypeForStats(config), blockType: 'int4' as const };
    const layerTensors = new Set<TensorProto>();
    for (const [i, layer] of layers.entries()) {
      let weight: WeightReport | null = null;
      let recurrent: WeightReport | undefined;
      for (const w of layer.weights) {
        await pause();
        throwIfAborted(signal, what);
        layerTensors.add(w.constant.tensor);
        // float32 raw_data is read in place (no copy); anything else (other types, folded
        // BatchNormalization) becomes one Float32Array, dropped before the next tensor is read.
        const t = w.constant.tensor;
        const raw = t.dataType === DataType.FLOAT && !(layer.fold && w.role === 'weight') ? model.rawBytes(t) : undefined;
        // A corrupt file can hold fewer or more bytes than the dims say: refuse it, naming the tensor.
        if (raw && raw.byteLength !== 4 * elementCount(t.dims, t.name, model.file)) {
          throw new OnnxFormatError(`${model.file}: tensor "${t.name}": raw_data has ${raw.byteLength} bytes, expected ${4 * elementCount(t.dims)} for dims [${t.dims.join(', ')}] of type float32`, { file: model.file, tensor: t.name });
        }
        const s = raw ? weightStatsOfBytes(raw, w.layout, statsOptions) : weightStats(layerWeightValues(layer, w, toFloat32), w.layout, statsOptions);
        const r = weightReport(w.input, w.dims, s, w.role === 'weight' ? layer.fold?.node : undefined);
        if (w.role === 'weight') weight = r;
        else recurrent = r;
        const bad = s.nonFinite.nan + s.nonFinite.posInf + s.nonFinite.negInf;
        if (bad > 0) {
          findings.push(finding('OQ001', layer.name, `weight "${w.input}" holds ${s.nonFinite.nan} NaN, ${s.nonFinite.posInf} +Inf and ${s.nonFinite.negInf} −Inf value(s)`, 'fix the model (retrain or repair the export); quantization keeps the float outputs broken'));
        }
        if (s.denormals > 0) {
          findings.push(finding('OQ002', layer.name, `weight "${w.input}" holds ${s.denormals} denormal value(s) (|w| < 1.2e-38)`, 'flush them to zero before deployment (they are far below any quantization step)'));
        }
        if (w.role === 'weight' && s.channelRangeSpread >= THRESHOLDS.channelSpread && s.sqnrDb.int8 <= s.sqnrDb.int8PerChannel - THRESHOLDS.perChannelGainDb) {
          findings.push(
            finding(
              'OQ004',
              layer.name,
              `channel weight ranges differ ${Number.isFinite(s.channelRangeSpread) ? `${s.channelRangeSpread.toFixed(1)}×` : 'infinitely (some channels are all zero)'} (widest over median): int8 per-tensor ${s.sqnrDb.int8.toFixed(1)} dB vs per-channel ${s.sqnrDb.int8PerChannel.toFixed(1)} dB`,
              config.perChannel ? 'keep per-channel weights (the default)' : 'quantize weights per channel: drop --per-tensor (or set perChannel: true for this node in a recipe)',
              config.perChannel && (config.nodes[layer.name]?.perChannel ?? true) ? 'info' : 'warning',
            ),
          );
        }
      }
      const report: LayerReport = {
        name: layer.name,
        opType: layer.opType,
        graph: layer.graph,
        weight,
        activation: null,
        sensitivity: { localSqnrDb: null, globalSqnrDb: null, local: {}, rank: null },
        macs: null,
        suggestedBits: null,
        suggestion: null,
        reason: '',
      };
      if (layer.unnamed) report.unnamed = true;
      if (recurrent) report.recurrentWeight = recurrent;
      reports.set(layer.name, report);
      emit({ event: 'layer', phase: 'weights', name: layer.name, opType: layer.opType, graph: layer.graph, weight, ...(recurrent ? { recurrentWeight: recurrent } : {}) });
      emit({ event: 'progress', phase: 'weights', done: i + 1, total: layers.length });
    }
    // Weights that are not layers: only checked for NaN/Inf and denormals.
    for (const scope of modelScopes(named)) {
      const tensors: TensorProto[] = [...scope.graph.initializer];
      for (const n of scope.graph.node) {
        if (n.opType !== 'Constant') continue;
        const t = constantTensor(n);
        if (t) tensors.push(t);
      }
      for (const t of tensors) {
        if (layerTensors.has(t) || t.dataType !== DataType.FLOAT) continue;
        await pause();
        throwIfAborted(signal, what);
        const scan = scanValues(toFloat32(t));
        if (scan.nonFinite > 0) findings.push(finding('OQ001', null, `tensor "${t.name}" holds ${scan.nonFinite} NaN/Inf value(s)`, 'fix the model: NaN/Inf constants poison every value they reach'));
        if (scan.denormals > 0) findings.push(finding('OQ002', null, `tensor "${t.name}" holds ${scan.denormals} denormal value(s)`, 'flush them to zero'));
      }
    }
    if (quantizedNodes.length) {
      const byOp = new Map<string, string[]>();
      for (const q of quantizedNodes) byOp.set(q.opType, [...(byOp.get(q.opType) ?? []), q.name]);
      for (const [op, names] of byOp) {
        findings.push(finding('OQ003', names[0] ?? null, `${names.length} ${op} node(s) hold already quantized weights (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''})`, 'quantize the original float model instead; quantizing twice stacks rounding errors'));
      }
    }

    // ---- model-level findings that need no data ----
    const opset = defaultOpset(named) ?? null;
    for (const v of named.graph!.input) {
      if (named.graph!.initializer.some((t) => t.name === v.name)) continue;
      const shape = v.type?.tensorType?.shape;
      if (!v.type?.tensorType) continue;
      if (!shape) {
        findings.push(finding('OQ009', null, `input "${v.name}" has no declared shape`, 'pass --calib data (synthetic inputs need a shape), or add the shape to the model'));
        continue;
      }
      const symbolic = shape.dims.map((d, i) => (d.value !== undefined ? undefined : d.param || `${v.name}[${i}]`)).filter((d): d is string => d !== undefined);
      if (symbolic.length) {
        const used = symbolic.map((d) => `${d}=${options.dims?.[d] ?? (/^(n|b|bs)$|batch/i.test(d) ? 1 : '?')}`);
        findings.push(
          finding(
            'OQ009',
            null,
            `input "${v.name}" has symbolic dim(s) ${symbolic.map((d) => `"${d}"`).join(', ')}${options.calib?.synthetic ? `; synthetic data used ${used.join(', ')}` : ''}`,
            'make sure the sizes match real inputs (--dim NAME=SIZE for synthetic data); activation ranges can depend on them',
            'info',
          ),
        );
      }
    }
    const opCounts = new Map<string, string[]>();
    for (const n of named.graph!.node) {
      if (n.domain && n.domain !== 'ai.onnx') continue;
      if (n.opType in WEIGHTED_OPS || SAME_SCALE_OPS.has(n.opType) || CALIBRATED_OPS.has(n.opType) || SHAPE_OPS.has(n.opType)) continue;
      opCounts.set(n.opType, [...(opCounts.get(n.opType) ?? []), n.name]);
    }
    for (const [op, names] of opCounts) {
      findings.push(finding('OQ007', names[0] ?? null, `${names.length} ${op} node(s) have no integer kernel and stay in float (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''})`, 'nothing to do; Q/DQ pairs around them cost time, so the transform leaves them alone', 'info'));
    }
    const nested = new Map<string, LayerInfo[]>();
    for (const l of layers) {
      if (l.scope.parent) nested.set(l.graph, [...(nested.get(l.graph) ?? []), l]);
      else if (!l.staticQuantizable && l.staticNote) {
        findings.push(finding('OQ007', l.name, `${l.opType} layer is not quantized statically: ${l.staticNote}`, RECURRENT_OPS.has(l.opType) ? 'use --mode dynamic for recurrent layers' : 'it stays in float', 'info'));
      }
    }
    for (const [graph, ls] of nested) {
      findings.push(
        finding(
          'OQ007',
          ls[0]!.name,
          `${ls.length} layer(s) inside the control-flow subgraph(s) of ${graph} (${ls.slice(0, 3).map((l) => l.name).join(', ')}${ls.length > 3 ? ', …' : ''}): analysed for weights only; static quantization covers the main graph (and If branches every calibration sample takes)`,
          ls.some((l) => RECURRENT_OPS.has(l.opType)) ? 'recurrent layers quantize with --mode dynamic' : 'their weights can still be quantized with --mode dynamic or weight-only',
          'info',
        ),
      );
    }

    let calibInfo: AnalysisReport['data']['calibration'] = null;
    let evalInfo: AnalysisReport['data']['evaluation'] = null;
    let suggestion: Suggestion | undefined;
    let globalInfo: AnalysisReport['global'] = null;
    let placement: Placement | undefined;

    if (options.calib) {
      // ---- prepare as quantize does ----
      const source = OnnxModel.fromProto(named, model.file);
      let folded = foldForQuantization(source, config).proto;
      if (config.depthwiseEqualization) {
        // Quantize equalizes wide depthwise-conv inputs before calibrating: measure that model.
        // (Folds into affine blocks, which quantize keeps only where the quantized model measures
        // better with them, are not applied here: that measurement needs the quantized model.)
        const plan = { proto: folded, calibProto: folded, domain: '' as const, takenBranches: new Map(), preprocessing: [], warnings: [], refinements: [] };
        const eq = await equalizeDepthwiseInputs(plan, { model: source, config, readWeight: toFloat32, calib: options.calib, signal, threads: options.threads });
        folded = eq.plan.proto;
        if (eq.report.layers.length) notes.push(`depthwise equalization, as quantize does it: ${eq.report.summary}`);
      }
      placement = placeQdq(folded, config);
      const prepared = placement.proto;
      const runtime = new Map<string, RuntimeLayer>();
      const preparedModel = OnnxModel.fromProto(prepared, model.file);
      for (const l of discoverLayers(prepared, read, config).layers) {
        if (l.scope.parent) continue;
        const activation = l.staticQuantizable ? foldedActivation(prepared.graph!, l.output) : undefined;
        runtime.set(l.name, {
          name: l.name,
          opType: l.opType,
          node: l.node,
          input: l.input,
          output: activation?.output[0] ?? l.output,
          nodeOutput: l.output,
          activation,
          staticQuantizable: l.staticQuantizable,
          weightOnly: l.weightOnly,
        });
      }
      const runtimeLayers = layers.map((l) => runtime.get(l.name)).filter((l): l is RuntimeLayer => l !== undefined);

      // ---- calibrate (histograms: exact min/max plus the 2048-bin histogram quantize uses) ----
      emit({ event: 'phase', phase: 'calibrate', total: options.calib.count });
      const tensors = [...new Set([...calibrationTensors(prepared, config), ...runtimeLayers.flatMap((l) => [l.input, l.output, l.nodeOutput])])];
      const calib: CalibrationResult = await calibrate(preparedModel, tensors, options.calib, {
        method: 'entropy',
        histogramValues: config.histogramValues,
        signal,
        threads: options.threads,
        onProgress: (p) => {
          if (p.phase === 'calibrate') emit({ event: 'progress', phase: 'calibrate', done: p.done, total: p.total });
        },
      });
      calibInfo = { source: options.calib.description, samples: calib.samples, synthetic: calib.synthetic, seconds: calib.seconds };
      // The ranges quantize would choose (activationRanges: a model input keeps its observed range).
      const choose = activationRanges(calib.tensors, config);
      const ranges = new Map<string, FloatRange>();
      for (const name of calib.tensors.keys()) ranges.set(name, choose(name, config.activationType, config.symmetricActivations)!);
      if (calib.synthetic) {
        findings.push(finding('OQ010', null, `calibrated on synthetic data (${options.calib.description}): activation statistics, ranges and sensitivities describe random inputs`, 'pass --calib DIR with a few dozen real inputs'));
      }

      // ---- activations: statistics, channel pass, local sensitivity ----
      emit({ event: 'phase', phase: 'activations', total: options.calib.count });
      const local = await localPass({
        model,
        prepared,
        layers: runtimeLayers,
        ranges,
        config,
        sensitivity: sensitivity !== 'none',
        source: options.calib,
        signal,
        threads: options.threads,
        onProgress: (done, total) => emit({ event: 'progress', phase: 'activations', done, total }),
      });
      notes.push(...local.notes);
      for (const layer of layers) {
        const report = reports.get(layer.name)!;
        const rt = runtime.get(layer.name);
        if (!rt) {
          report.activation = { synthetic: calib.synthetic, input: null, output: null, note: layer.scope.parent ? 'inside a control-flow subgraph: onnxruntime cannot expose its tensors' : 'not found in the prepared model' };
          report.sensitivity.note = report.activation.note;
          continue;
        }
        const lr = local.layers.get(layer.name);
        const tensorReport = (name: string, shape: { dims: number[]; channels?: ChannelUsage } | undefined) => {
          const st = calib.tensors.get(name);
          return st ? activationTensorReport(name, shape?.dims, activationStats(st, shape?.channels)) : null;
        };
        report.activation = { synthetic: calib.synthetic, input: tensorReport(rt.input, lr?.input), output: tensorReport(rt.output, lr?.output) };
        report.macs = macsOf(layer, lr);
        if (lr) {
          report.sensitivity.local = { ...lr.sqnrDb };
          report.sensitivity.localSqnrDb = lr.sqnrDb.int8 ?? null;
        }
        emit({ event: 'layer', phase: 'activations', name: layer.name, activation: report.activation, localSqnrDb: report.sensitivity.localSqnrDb, local: report.sensitivity.local });
        // Activation findings.
        for (const [role, t] of [
          ['input', report.activation.input],
          ['output', report.activation.output],
        ] as const) {
          if (!t) continue;
          const bad = t.nonFinite.nan + t.nonFinite.posInf + t.nonFinite.negInf;
          if (bad > 0) findings.push(finding('OQ012', layer.name, `${role} "${t.tensor}" held ${bad} NaN/Inf value(s) during calibration`, 'check the calibration data and the float model; quantization ranges ignore these values'));
          if (role === 'input' && layer.staticQuantizable && t.beyondP9999.rangeShare >= THRESHOLDS.activationRangeShare) {
            findings.push(
              finding(
                'OQ005',
                layer.name,
                `input "${t.tensor}" spans [${t.min.toPrecision(3)}, ${t.max.toPrecision(3)}] but 99.98% of its values lie in [${t.percentiles['p0.01']!.toPrecision(3)}, ${t.percentiles['p99.99']!.toPrecision(3)}] (${(t.beyondP9999.rangeShare * 100).toFixed(0)}% of the range holds 0.02% of the values)`,
                config.method === 'minmax' ? 'calibrate with --method percentile (or entropy), or give this layer 16-bit activations (recipe nodes.<name>.activationType uint16)' : 'consider 16-bit activations for this layer (recipe nodes.<name>.activationType uint16)',
                config.method === 'minmax' ? 'warning' : 'info',
              ),
            );
          }
          if (role === 'output' && t.deadChannels.length > 0 && t.channels) {
            findings.push(finding('OQ011', layer.name, `${t.deadChannels.length} of ${t.channels} output channel(s) were zero for every sample (${t.deadChannels.slice(0, 8).join(', ')}${t.deadChannels.length > 8 ? ', …' : ''})`, 'the channels could be pruned; check that the calibration data exercises the model', 'info'));
          }
        }
      }

      // ---- global sensitivity ----
      const evalSource = options.eval ?? options.calib;
      evalInfo = { source: evalSource.description, samples: evalSource.count, synthetic: evalSource.synthetic };
      let global: GlobalSensitivityResult | undefined;
      if (sensitivity === 'global') {
        const staticLayers = runtimeLayers.filter((l) => l.staticQuantizable);
        emit({ event: 'phase', phase: 'global', total: staticLayers.length });
        global = await globalSensitivity({
          model,
          prepared,
          domain: placement.domain,
          layers: staticLayers,
          ranges,
          config,
          source: takeSamples(evalSource, options.globalSamples ?? 16),
          workers: options.workers,
          signal,
          onLayer: (r: GlobalLayerResult, done, total) => {
            const rep = reports.get(r.name);
            if (rep) {
              rep.sensitivity.globalSqnrDb = r.sqnrDb ?? null;
              rep.sensitivity.globalOutputs = r.outputs;
              if (r.leaveOneOutSqnrDb !== undefined) rep.sensitivity.leaveOneOutSqnrDb = r.leaveOneOutSqnrDb;
              if (r.error) rep.sensitivity.note = r.error;
            }
            emit({ event: 'layer', phase: 'global', name: r.name, globalSqnrDb: r.sqnrDb ?? null, outputs: r.outputs, ...(r.error ? { error: r.error } : {}), done, total });
          },
        });
        globalInfo = { workers: global.workers, samples: global.samples, seconds: global.seconds, outputs: global.outputs, allQuantizedSqnrDb: global.allQuantizedSqnrDb };
        // A layer whose float version removes most of the quantized model's noise dominates.
        const all = 10 ** (-global.allQuantizedSqnrDb / 10);
        if (global.layers.size >= 3 && all > 0 && Number.isFinite(all)) {
          for (const r of global.layers.values()) {
            if (r.sqnrDb === undefined || !Number.isFinite(r.sqnrDb)) continue;
            const share = 10 ** (-r.sqnrDb / 10) / all;
            if (share >= THRESHOLDS.dominantShare) {
              findings.push(
                finding(
                  'OQ006',
                  r.name,
                  `keeping it in float removes ${Math.min(100, share * 100).toFixed(0)}% of the quantized model's output noise (model SQNR ${global.allQuantizedSqnrDb.toFixed(1)} dB with every layer in int8, ${r.leaveOneOutSqnrDb?.toFixed(1) ?? '?'} dB with all but this one)`,
                  'keep it in float or give it 16-bit activations (see suggestedBits), or calibrate its input with --method percentile',
                ),
              );
            }
          }
        }
      }
      // Ranking: global when measured, else local.
      const rankKey = (r: LayerReport) => r.sensitivity.globalSqnrDb ?? (global ? null : r.sensitivity.localSqnrDb);
      const ranked = [...reports.values()].filter((r) => rankKey(r) !== null && !Number.isNaN(rankKey(r)!)).sort((a, b) => rankKey(a)! - rankKey(b)!);
      ranked.forEach((r, i) => (r.sensitivity.rank = i + 1));

      // ---- suggestion ----
      if (sensitivity !== 'none' && options.suggest !== false) {
        emit({ event: 'phase', phase: 'suggest' });
        const floatSizeBytes = modelSizeBytes(model.file);
        const suggestLayers: SuggestLayer[] = layers.map((l) => {
          const rep = reports.get(l.name)!;
          const rt = runtime.get(l.name);
          const w = l.weights[0]!;
          const elements = l.weights.reduce((a, x) => a + x.dims.reduce((p, d) => p * d, 1), 0);
          const floatBytes = l.weights.reduce((a, x) => a + byteSizeOf(x.dataType, x.dims.reduce((p, d) => p * d, 1)), 0);
          return {
            name: l.name,
            opType: l.opType,
            unnamed: l.unnamed,
            staticQuantizable: rt?.staticQuantizable ?? false,
            weightOnly: rt?.weightOnly ?? false,
            weightElements: elements,
            channels: w.layout.channel.channels,
            floatBytes,
            macs: rep.macs ?? 0,
            globalSqnrDb: rep.sensitivity.globalSqnrDb ?? undefined,
            localSqnrDb: rep.sensitivity.local,
            fixedReason: rt ? undefined : (l.staticNote ?? 'not in the main graph'),
            int16Nodes: rt ? int16Nodes(prepared, rt) : undefined,
          };
        });
        const verifier = makeVerifier(model.file, config, options.calib, evalSource, options.threads, signal);
        try {
          suggestion = await suggest({
            layers: suggestLayers,
            config,
            targetSqnrDb,
            maxSizeBytes: options.maxSizeBytes,
            floatSizeBytes,
            verify: verifier.verify,
            maxRounds: options.maxRounds,
            signal,
            onRound: (r) => emit({ event: 'suggestion', plan: r.plan, round: r.round, sqnrDb: r.verification.sqnrDb, sizeBytes: r.verification.sizeBytes, promoted: r.changed }),
          });
        } catch (err) {
          if (err instanceof Error && err.name === 'AbortError') throw err;
          notes.push(`no suggestion: ${err instanceof Error ? err.message : String(err)}`);
        } finally {
          verifier.cleanup();
        }
        if (suggestion) {
          for (const [name, s] of suggestion.layers) {
            const rep = reports.get(name);
            if (!rep) continue;
            rep.suggestedBits = s.bits;
            rep.suggestion = s.choice;
            rep.reason = s.reason;
          }
          const wants16 = [...suggestion.layers.values()].some((s) => s.choice === 'int16');
          if (wants16 && (opset ?? 0) < 21) {
            const p16 = placeQdq(named, { ...config, activationType: 'uint16' });
            findings.push(
              finding(
                'OQ008',
                null,
                `the suggestion uses 16-bit activations; opset ${opset} predates standard 16-bit Q/DQ (opset 21)`,
                p16.domain === '' ? `quantize upgrades the model to opset 21 (${p16.notes.join('; ')})` : `quantize uses onnxruntime's com.microsoft QuantizeLinear/DequantizeLinear (${p16.notes.join('; ')}); other runtimes may not run it`,
                'info',
              ),
            );
          }
          if (suggestion.mode === 'weight-only' && (opset ?? 0) < 21) {
            findings.push(finding('OQ008', null, `int4 weight-only at opset ${opset}: blocked DequantizeLinear needs opset 21`, "quantize writes onnxruntime's com.microsoft MatMulNBits instead", 'info'));
          }
        }
      }
    } else {
      for (const r of reports.values()) r.reason = 'no calibration data: weights only';
    }

    // ---- opset ----
    const p = placement ?? placeQdq(named, config);
    if (p.needOpset > p.opset) {
      findings.push(
        finding(
          'OQ008',
          null,
          p.upgradeError ? `opset ${p.opset} is below ${p.needOpset}, which standard Q/DQ needs, and the model cannot be upgraded (${p.upgradeError})` : `opset ${p.opset} is below ${p.needOpset}, which standard Q/DQ needs for these settings`,
          p.upgradeError ? "quantize uses onnxruntime's com.microsoft Q/DQ ops: the result runs in onnxruntime only" : p.domain === '' ? `quantize upgrades the model to opset ${p.needOpset} (${p.notes.join('; ')})` : p.notes.join('; '),
          p.upgradeError ? 'warning' : 'info',
        ),
      );
    }

    emit({ event: 'phase', phase: 'findings' });
    const sorted = sortFindings(findings);
    for (const f of sorted) emit({ event: 'finding', finding: f });
    // A cancel that arrives while the last events stream must still win: the caller (the CLI
    // writing a recipe, the extension filling the Problems tab) would otherwise act on it.
    throwIfAborted(signal, what);
    const report: AnalysisReport = {
      model: model.file,
      fileBytes: fileBytes || safeSize(model.file),
      irVersion: model.proto.irVersion,
      opset,
      settings: {
        sensitivity,
        targetSqnrDb,
        maxSizeBytes: options.maxSizeBytes ?? null,
        method: config.method,
        activationType: config.activationType,
        weightType: config.weightType,
        perChannel: config.perChannel,
        symmetricActivations: config.symmetricActivations,
        symmetricWeights: config.symmetricWeights,
        blockSize: config.blockSize,
        foldBatchNorm: config.foldBatchNorm,
      },
      data: { calibration: calibInfo, evaluation: evalInfo },
      layers: layers.map((l) => reports.get(l.name)!),
      findings: sorted,
      suggestion: suggestion ? suggestionReport(suggestion, model.file) : null,
      global: globalInfo,
      notes,
      seconds: (performance.now() - start) / 1000,
    };
    emit({ event: 'phase', phase: 'done' });
    return report;
  } finally {
    if (owned) model.close();
  }
}

function safeSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function suggestionReport(s: Suggestion, file: string): SuggestionReport {
  const counts: Record<Choice, number> = { int4: 0, int8: 0, int16: 0, float: 0 };
  for (const l of s.layers.values()) counts[l.choice]++;
  return {
    mode: s.mode,
    met: s.met,
    targetSqnrDb: s.targetSqnrDb,
    maxSizeBytes: s.maxSizeBytes ?? null,
    achievedSqnrDb: s.achieved.sqnrDb,
    sizeBytes: s.achieved.sizeBytes,
    floatSizeBytes: s.achieved.floatSizeBytes,
    estimatedSizeBytes: Math.round(s.achieved.estimatedSizeBytes),
    latencyProxy: s.achieved.latencyProxy,
    history: s.history,
    counts,
    recipe: makeRecipe(s.recipe, {
      model: path.basename(file),
      notes: [
        `written by onnx-quant analyze: ${s.mode} plan, verified output SQNR ${Number.isFinite(s.achieved.sqnrDb) ? s.achieved.sqnrDb.toFixed(1) : String(s.achieved.sqnrDb)} dB (target ${s.targetSqnrDb} dB), ${s.achieved.sizeBytes} bytes`,
        ...[...s.layers].filter(([, l]) => l.choice !== (s.mode === 'static' ? 'int8' : 'int4')).map(([n, l]) => `${n}: ${l.choice} — ${l.reason}`),
        ...s.notes,
      ],
    }),
    notes: s.notes,
  };
}

/**
 * Quantizes with a plan through the quantize pipeline itself (src/runtime/quantize-model.ts: the
 * same preparation, calibration, transform and comparison `quantize --recipe` runs, on the same
 * calibration and evaluation data), into a temporary file, and reports the worst output's SQNR and
 * the file size.
 */
function makeVerifier(
  file: string,
  config: QuantConfig,
  calib: SampleSource,
  evalSource: SampleSource,
  threads: number | undefined,
  signal: AbortSignal | undefined,
): { verify: (plan: Plan, settings: Partial<QuantConfig>) => Promise<Verification>; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-quant-analyze-'));
  let k = 0;
  const verify = async (_plan: Plan, settings: Partial<QuantConfig>): Promise<Verification> => {
    // As quantize --recipe resolves it: a recipe that names the activation type turns off the
    // model-dependent 16-bit defaults (recurrent state, input layers), so the verified model is
    // the one the recipe reproduces.
    const activationTypeAuto = settings.activationType === undefined ? config.activationTypeAuto : false;
    const cfg: QuantConfig = { ...config, ...settings, nodes: settings.nodes ?? {}, exclude: settings.exclude ?? [], activationTypeAuto };
    const output = path.join(dir, `candidate-${k++}.onnx`);
    try {
      const r = await quantizeModel({ input: file, output, config: cfg, calib, eval: evalSource, evalNote: 'analysis verification', latencyRuns: 0, threads, signal });
      let worst = Infinity;
      for (const o of r.eval.outputs) if (!(o.sqnrDb >= worst)) worst = o.sqnrDb;
      return { sqnrDb: worst, sizeBytes: r.sizeBytes.after };
    } finally {
      fs.rmSync(output, { force: true });
      fs.rmSync(`${output}.data`, { force: true });
    }
  };
  return { verify, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export type { Suggestion };
