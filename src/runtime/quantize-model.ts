/**
 * The quantization pipeline behind `onnx-quant quantize` and the extension's Quantize Model:
 * load → preprocess (fold BatchNorm, upgrade the opset when Q/DQ needs it) → calibrate (static) →
 * transform → check that onnxruntime loads and runs the result → save atomically → compare with
 * the float model on held-out data → report.
 *
 * Nothing is written unless the quantized model loads and runs; the input is never modified.
 */
import { encodeModel } from '../onnx/encode';
import { constantTensor, OnnxModel } from '../onnx/model';
import { GraphView } from '../onnx/graph';
import { ModelProto, NodeProto, TensorProto } from '../onnx/proto';
import { checkOutputPath, saveModel, writeFileAtomic } from '../onnx/save';
import { tensorToFloat32 } from '../onnx/tensor-data';
import { is16BitActivation, nodeSettings, QuantConfig, WIDER_ACTIVATION } from '../quant/config';
import { convertFp16 } from '../quant/graph/fp16';
import { foldBatchNorm } from '../quant/graph/fold-batchnorm';
import { describeFloatKernels, floatKernels, type FloatKernel } from '../quant/graph/float-kernels';
import { quantizeDynamic } from '../quant/graph/dynamic';
import { activationInputIndices, CALIBRATED_OPS, isFoldableActivation, SAME_SCALE_OPS, WEIGHTED_OPS } from '../quant/graph/ops';
import { clipLowerBound, quantizedActivationTensors, quantizeStaticQdq, RangeChooser, StaticQdqResult } from '../quant/graph/qdq';
import { quantizeWeightOnly } from '../quant/graph/weight-only';
import { SkippedNode, TransformedNode } from '../quant/graph/edit';
import { TARGET_PRESETS } from '../quant/presets';
import { placeQdq, wants16Bit } from '../quant/graph/placement';
import { FloatRange } from '../quant/types';
import { equalizeCrossLayer } from '../quant/refine/cle';
import type { RefinementReport } from '../quant/refine/report';
import { correctBiases, RefineContext } from './refine/bias-correction';
import { learnedRounding } from './refine/adaround';
import { verifyEqualizations } from './refine/verify-equalization';
import { stateActivationType } from '../quant/graph/recurrent-state';
import { inputLayerActivationType } from '../quant/graph/input-layers';
import { chooseInputLayerPrecision } from './refine/input-layers';
import { equalizeDepthwiseInputs, withPendingEqualizations, type PendingEqualization } from './refine/equalize-depthwise';
import { smoothQuant } from './refine/smoothquant';
import { chooseActivationQdq } from './activation-qdq';
import { calibrate, chooseRange, TensorStats } from './calibrate';
import { Branch, INLINED_OUTPUT_TAG, inlineTakenBranches, observeTakenBranches, quantizableIfNodes } from './branches';
import { compareModels, OutputComparison, QuantizedModelError } from './evaluate';
import { SampleSource } from './samples';
import { createSession, runSession, throwIfAborted } from './session';
import { accuracyLoop, LoopResult, LoopStep, LoopTarget, loopOverrides } from './accuracy-loop';
import { makeRecipe } from '../quant/recipe';
import * as path from 'node:path';

export interface PipelineProgress {
  phase: 'load' | 'preprocess' | 'calibrate' | 'quantize' | 'check' | 'save' | 'evaluate';
  done: number;
  total: number;
  message?: string;
}

export interface QuantizeModelOptions {
  input: string;
  output: string;
  config: QuantConfig;
  /** Calibration samples (static mode). */
  calib: SampleSource;
  /** Held-out samples for the report. */
  eval: SampleSource;
  /** How the evaluation set was chosen, for the report. */
  evalNote: string;
  signal?: AbortSignal;
  onProgress?: (p: PipelineProgress) => void;
  threads?: number;
  /** Latency runs per model in the comparison (0 skips the latency measurement). */
  latencyRuns?: number;
  /** Run the accuracy-aware loop towards this target (static mode). */
  accuracyTarget?: LoopTarget;
  /** Most layers the loop may raise (default 64). */
  loopSteps?: number;
}

export interface QuantizeReport {
  input: string;
  output: string;
  mode: QuantConfig['mode'];
  settings: QuantConfig;
  sizeBytes: { before: number; after: number; ratio: number };
  quantizedNodes: number;
  quantized: TransformedNode[];
  skippedNodes: SkippedNode[];
  /** Quantized Conv/ConvTranspose that onnxruntime runs in float (outputs read unquantized; static mode). */
  floatKernels: FloatKernel[];
  preprocessing: string[];
  /** Post-training refinements that ran (cross-layer equalization, SmoothQuant, learned rounding, bias correction), in order. */
  refinements: RefinementReport[];
  calibration: { samples: number; seconds: number; synthetic: boolean; method: string; source: string; peakRssBytes: number; unobserved: number } | null;
  eval: {
    outputs: OutputComparison[];
    latencyMs: { float: number; quantized: number; ratio: number } | null;
    samples: number;
    synthetic: boolean;
    source: string;
  };
  /** The accuracy-aware loop's steps, when a target was given (static mode). */
  accuracyLoop: { target: string; met: boolean; stopReason: LoopResult['stopReason']; steps: LoopStep[]; recipe: string | null } | null;
  warnings: string[];
  seconds: number;
}

/**
 * Activation tensors whose ranges the static transform needs: those its placement quantizes
 * (quantizedActivationTensors), within the inputs and outputs of candidate nodes, less the outputs
 * of data-movement ops (they reuse their input's scale) and the inputs of Relu/Clip nodes that fold
 * into their producer. Fewer exposed tensors keep onnxruntime's fusions in the calibration run and
 * make calibration cheaper.
 */
export function calibrationTensors(proto: ModelProto, config: QuantConfig): string[] {
  // Float activations: no range is needed.
  if (config.activationQdq === 'none') return [];
  const g = proto.graph!;
  const view = new GraphView(g);
  const constants = new Map<string, TensorProto>(g.initializer.map((t) => [t.name, t]));
  for (const n of g.node) {
    if (n.opType !== 'Constant') continue;
    const t = constantTensor(n);
    if (t && n.output[0]) constants.set(n.output[0], t);
  }
  const outputs = new Set(g.output.map((o) => o.name));
  // The outputs of an inlined If branch are branch outputs in the quantized model: never folded.
  for (const n of g.node) if (n.opType === 'Identity' && n.name.includes(INLINED_OUTPUT_TAG)) outputs.add(n.input[0]!);
  const read = (t: TensorProto) => tensorToFloat32(t);
  const foldedInputs = new Set<string>();
  for (const n of g.node) {
    const symmetric = nodeSettings(config, view.producer(n.input[0] ?? '')?.name ?? '').symmetricActivations;
    if (isFoldableActivation(n, view, outputs, symmetric, (c) => clipLowerBound(c as NodeProto, constants, read))) foldedInputs.add(n.input[0]!);
  }
  const names = new Set<string>();
  const add = (x: string | undefined) => {
    if (x && !constants.has(x) && !foldedInputs.has(x)) names.add(x);
  };
  for (const n of g.node) {
    const sameScale = SAME_SCALE_OPS.has(n.opType);
    if (!(n.opType in WEIGHTED_OPS) && !sameScale && !CALIBRATED_OPS.has(n.opType)) continue;
    for (const i of activationInputIndices(n.opType, n.input.length)) add(n.input[i]);
    if (!sameScale) for (const o of n.output) add(o);
  }
  const placed = quantizedActivationTensors(proto, config, read);
  return [...names].filter((t) => placed.has(t));
}

/** placeQdq, with its notes in the report; an unreachable standard-only target is an error. */
function chooseQdqDomain(proto: ModelProto, config: QuantConfig, notes: string[], warnings: string[]): { proto: ModelProto; domain: '' | 'com.microsoft' } {
  const placed = placeQdq(proto, config);
  const standardOnly = config.target ? TARGET_PRESETS[config.target].standardOpsOnly : false;
  if (placed.upgradeError && standardOnly) {
    throw new QuantizedModelError('<model>', `target ${config.target} needs standard Q/DQ at opset ${placed.needOpset}, and ${placed.upgradeError}`);
  }
  (placed.upgradeError ? warnings : notes).push(...placed.notes);
  return { proto: placed.proto, domain: placed.domain };
}


/** Static mode, stage 1: the float model ready to calibrate and transform. */
export interface StaticPlan {
  /** The float model after preprocessing and Q/DQ placement (opset upgrade), quantized in place. */
  proto: ModelProto;
  /** `proto` with taken If branches inlined: what calibration runs. */
  calibProto: ModelProto;
  domain: '' | 'com.microsoft';
  takenBranches: Map<string, Branch>;
  /** Lines for the report's preprocessing and warnings sections. */
  preprocessing: string[];
  warnings: string[];
  /** Refinements applied to the float model so far. */
  refinements: RefinementReport[];
  /** Tensors of calibProto calibrated besides the quantized ones (probes of a refinement under test). */
  extraCalibration?: string[];
}

export interface StageOptions {
  /** Place Q/DQ so that 16-bit activations are possible even if the config asks for none. */
  allow16Bit?: boolean;
  signal?: AbortSignal;
  threads?: number;
  onProgress?: (p: PipelineProgress) => void;
}

/** Stage 1 (static): fold BatchNorm, place Q/DQ (opset), find the If branches the data takes. */
export async function prepareStatic(model: OnnxModel, config: QuantConfig, calib: SampleSource, opts: StageOptions = {}): Promise<StaticPlan> {
  const { signal, onProgress } = opts;
  const preprocessing: string[] = [];
  const warnings: string[] = [];
  onProgress?.({ phase: 'preprocess', done: 0, total: 1 });
  let proto = model.proto;
  if (config.foldBatchNorm) {
    const folded = foldBatchNorm(model, config);
    if (folded.quantized.length) {
      proto = folded.model;
      preprocessing.push(`folded ${folded.quantized.length} BatchNormalization node(s) into the preceding Conv/Gemm`);
    }
  }
  const refinements: RefinementReport[] = [];
  if (config.crossLayerEqualization) {
    // After BatchNorm folding (the folded weights are what gets equalized), before placement.
    const t0 = performance.now();
    const cle = equalizeCrossLayer(proto, weightReader(model));
    proto = cle.model;
    refinements.push({
      name: 'cross-layer equalization',
      summary: cle.pairs.length
        ? `${cle.pairs.length} Conv pair(s) equalized in ${cle.iterations} pass(es); weight channel-range spread (max/mean) ${cle.spread.before.toFixed(2)} → ${cle.spread.after.toFixed(2)}${cle.skipped.length ? `; ${cle.skipped.length} pair(s) skipped (e.g. ${cle.skipped[0]!.name}: ${cle.skipped[0]!.reason})` : ''}`
        : `no Conv→activation→Conv pair to equalize${cle.skipped.length ? ` (${cle.skipped.length} skipped, e.g. ${cle.skipped[0]!.name}: ${cle.skipped[0]!.reason})` : ''}`,
      layers: [...new Set(cle.pairs.flatMap((p) => [p.first, p.second]))],
      seconds: (performance.now() - t0) / 1000,
    });
  }
  const wide = opts.allow16Bit ? { ...config, activationType: WIDER_ACTIVATION[config.activationType] } : config;
  const placed = chooseQdqDomain(proto, wide, preprocessing, warnings);
  proto = placed.proto;

  // If branches every calibration sample takes are calibrated (inlined for calibration only)
  // and quantized in place; branches taken by no sample or by some samples stay in float.
  let calibProto = proto;
  const takenBranches = new Map<string, Branch>();
  if (quantizableIfNodes(proto).length) {
    onProgress?.({ phase: 'calibrate', done: 0, total: calib.count, message: 'which If branches the data takes' });
    const observed = await observeTakenBranches(model, proto, calib, { signal, threads: opts.threads });
    const inl = inlineTakenBranches(proto, observed.taken);
    calibProto = inl.model;
    for (const name of inl.inlined) takenBranches.set(name, observed.taken.get(name)!);
    for (const [name, branch] of takenBranches) preprocessing.push(`If "${name}": every calibration sample takes its ${branch}, which is calibrated and quantized; the other branch stays in float`);
    for (const name of observed.varying) warnings.push(`If "${name}" takes different branches on different samples: both branches stay in float`);
  }
  return { proto, calibProto, domain: placed.domain, takenBranches, preprocessing, warnings, refinements };
}

export interface StaticCalibration {
  stats: Map<string, TensorStats>;
  summary: NonNullable<QuantizeReport['calibration']>;
  warnings: string[];
}

/** Stage 2 (static): run the float model over the calibration data and keep each tensor's statistics. */
export async function calibrateStatic(model: OnnxModel, plan: StaticPlan, config: QuantConfig, calib: SampleSource, opts: StageOptions = {}): Promise<StaticCalibration> {
  const { signal, onProgress } = opts;
  throwIfAborted(signal, 'quantization');
  const floatModel = OnnxModel.fromProto(plan.calibProto, model.file);
  const tensors = [...calibrationTensors(plan.calibProto, config), ...(plan.extraCalibration ?? [])];
  const calib_ = await calibrate(floatModel, tensors, calib, {
    method: config.method,
    histogramValues: config.histogramValues,
    signal,
    threads: opts.threads,
    onProgress: (p) => onProgress?.({ phase: 'calibrate', done: p.done, total: p.total }),
  });
  const warnings: string[] = [];
  for (const [name, stats] of calib_.tensors) {
    const bad = stats.nonFinite;
    const count = bad.nan + bad.posInf + bad.negInf;
    if (count > 0) warnings.push(`tensor "${name}" had ${count} NaN/Inf value(s) during calibration; they were ignored`);
  }
  if (calib_.synthetic) warnings.push('CALIBRATED ON SYNTHETIC DATA: activation ranges come from random inputs, not your data; pass --calib <dir> for real ranges');
  return {
    stats: calib_.tensors,
    warnings,
    summary: {
      samples: calib_.samples,
      seconds: calib_.seconds,
      synthetic: calib_.synthetic,
      method: config.method,
      source: calib.description,
      peakRssBytes: calib_.peakRssBytes,
      unobserved: calib_.unobserved.length,
    },
  };
}

/**
 * The range of each activation for the integer type it gets: a tensor kept at 16 bits (a recipe
 * override, or a step of the accuracy loop) gets the range its method picks for 16 bits, not the
 * clipped one picked for 8. Memoized: the search methods are not free.
 */
export function activationRanges(stats: ReadonlyMap<string, TensorStats>, config: QuantConfig): RangeChooser {
  const cache = new Map<string, FloatRange>();
  const choose: RangeChooser = (tensor, type, symmetric) => {
    const key = `${type}|${symmetric ? 's' : 'a'}|${tensor}`;
    let r = cache.get(key);
    if (!r) {
      const s = stats.get(tensor);
      if (!s) return undefined;
      // At 16 bits a step is finer than a histogram bin (2048 bins), so the histogram searches
      // cannot weigh rounding against clipping: the observed range is the right one. So it is for a
      // model input: its values come out of a fixed preprocessing, and its rare extremes are signal
      // (the dark text pixels of a white page), not outliers to clip. MSE clipped them and cost
      // PP-OCRv4's detector 2.6 dB on held-out pages with one of two calibration sets.
      const method = is16BitActivation(type) || s.graphInput ? 'minmax' : config.method;
      r = chooseRange(s, method, type, { symmetric, percentile: config.percentile });
      cache.set(key, r);
    }
    return r;
  };
  return choose;
}

/** Stage 3 (static): the Q/DQ transform of the prepared float model with calibrated ranges. */
export function transformStatic(plan: StaticPlan, config: QuantConfig, ranges: RangeChooser, readWeight: (t: TensorProto) => Float32Array): StaticQdqResult {
  return quantizeStaticQdq(plan.proto, { config, ranges, readWeight, domain: plan.domain, takenBranches: plan.takenBranches });
}

/** Reads weights of `model` (inline or external), and of tensors refinements replaced (inline). */
export function weightReader(model: OnnxModel): (t: TensorProto) => Float32Array {
  return (t) => tensorToFloat32(t, model.rawBytes(t), model.file);
}

/** Runs the pipeline. Throws OnnxFormatError, SampleDataError, QuantizedModelError, or an AbortError. */
export async function quantizeModel(options: QuantizeModelOptions): Promise<QuantizeReport> {
  const start = performance.now();
  const { signal, onProgress } = options;
  const warnings: string[] = [];
  const preprocessing: string[] = [];
  checkOutputPath(options.output, options.input);
  onProgress?.({ phase: 'load', done: 0, total: 1 });
  const model = OnnxModel.load(options.input);
  try {
    const stage: StageOptions = { signal, threads: options.threads, onProgress };
    // The accuracy loop may give layers 16-bit activations: place Q/DQ where those are legal.
    const allow16Bit = options.accuracyTarget !== undefined;
    let requested = options.config;
    let prepared: StaticPlan | undefined;
    if (requested.mode === 'static' && requested.activationQdq === 'auto') {
      const resolved = await resolveActivationQdq(model, requested, options.calib, { ...stage, allow16Bit });
      requested = resolved.config;
      prepared = resolved.plan;
      preprocessing.push(resolved.note);
    }
    const state = stateActivationType(model.proto, requested);
    if (state.note) preprocessing.push(state.note);
    let config = state.config;
    // 16-bit candidates for the layers reading the model input, measured after calibration.
    const stem = inputLayerActivationType(model.proto, config);
    const readWeight = weightReader(model);
    let transformed: { model: ModelProto; quantized: TransformedNode[]; skipped: SkippedNode[] };
    let calibration: QuantizeReport['calibration'] = null;
    const refinements: RefinementReport[] = [];
    let finalConfig = config;
    let accuracy: QuantizeReport['accuracyLoop'] = null;

    if (config.mode === 'static') {
      let plan = prepared ?? (await prepareStatic(model, config, options.calib, { ...stage, allow16Bit }));
      preprocessing.push(...plan.preprocessing);
      warnings.push(...plan.warnings);
      refinements.push(...plan.refinements);
      let pendingEq: PendingEqualization[] = [];
      if (config.depthwiseEqualization) {
        // Changes the activations of the equalized convs: before calibration.
        const eq = await equalizeDepthwiseInputs(plan, { model, config, readWeight, calib: options.calib, signal, threads: options.threads, onProgress });
        plan = eq.plan;
        pendingEq = eq.pending;
        refinements.push(eq.report);
      }
      if (config.smoothQuant) {
        // Changes the activations of the smoothed layers: before calibration. (Pending depthwise
        // folds are exact in float: they do not change what SmoothQuant measures.)
        const sq = await smoothQuant(plan, { model, config, readWeight, calib: options.calib, signal, threads: options.threads, onProgress });
        plan = sq.plan;
        refinements.push(sq.report);
      }
      const pending = withPendingEqualizations(plan, pendingEq);
      const calib = await calibrateStatic(model, pending.plan, config, options.calib, stage);
      calibration = calib.summary;
      warnings.push(...calib.warnings);
      let stats = calib.stats;
      if (pendingEq.length) {
        const v = await verifyEqualizations(plan, pendingEq, stats, pending.probes, { model, config, readWeight, calib: options.calib, signal, threads: options.threads, onProgress });
        plan = v.plan;
        stats = v.stats;
        refinements.push(v.report);
      }
      // Where 16-bit Q/DQ is possible without onnxruntime's contrib ops: that placement (an opset
      // upgrade keeps every tensor name, so the calibration statistics still apply) is used if the
      // 16-bit stem is kept.
      const stemPlacement = stem.layers.length > 0 ? placeQdq(plan.proto, stem.config) : undefined;
      if (stemPlacement && !stemPlacement.upgradeError) {
        const chosen = await chooseInputLayerPrecision(plan, config, stem, stats, { model, config, readWeight, calib: options.calib, signal, threads: options.threads, onProgress });
        preprocessing.push(chosen.note);
        if (chosen.config !== config) {
          config = chosen.config;
          finalConfig = config;
          preprocessing.push(...stemPlacement.notes);
          plan = { ...plan, proto: stemPlacement.proto, domain: stemPlacement.domain };
        }
      }
      onProgress?.({ phase: 'quantize', done: 0, total: 1 });
      const ranges = activationRanges(stats, config);
      let loop: LoopResult | undefined;
      if (options.accuracyTarget) {
        // The loop chooses each layer's precision first (with nearest rounding); the weight
        // refinements below then work on the chosen settings, so a layer the loop put in float
        // keeps its exact float weights and the written recipe reproduces this model.
        loop = await runAccuracyLoop(model, plan, config, ranges, readWeight, options);
        finalConfig = loop.config;
        accuracy = { target: describeTarget(loop.target), met: loop.met, stopReason: loop.stopReason, steps: loop.steps, recipe: null };
        if (!loop.met) warnings.push(`accuracy target ${describeTarget(loop.target)} not reached (${loop.stopReason}); the model of the last step was written`);
      }
      // Refinements of the float weights that use the calibrated ranges (bias correction last,
      // measured with the final weights).
      const refine: RefineContext = { model, config: finalConfig, ranges, readWeight, calib: options.calib, signal, threads: options.threads, onProgress };
      if (finalConfig.adaround) {
        // Chooses the weights' integers; bias correction then measures those final weights.
        const ar = await learnedRounding(plan, refine, { seconds: finalConfig.adaroundSeconds });
        plan = ar.plan;
        refinements.push(ar.report);
      }
      if (finalConfig.biasCorrection) {
        const bc = await correctBiases(plan, refine);
        plan = bc.plan;
        refinements.push(bc.report);
      }
      transformed = transformStatic(plan, finalConfig, ranges, readWeight);
      if (loop && (finalConfig.adaround || finalConfig.biasCorrection)) {
        // The loop measured nearest rounding; the weight refinements each optimize one layer and
        // can lower the target's quantity overall (seen on the detector: 25.2 → 23.9 dB). Keep them
        // only if the target is no worse with them.
        onProgress?.({ phase: 'quantize', done: 0, total: 1, message: 'accuracy loop: checking the weight refinements against the target' });
        const withRefinements = await loop.measure(transformed.model);
        const without = loop.steps.filter((s) => s.kept !== false).at(-1)!.metric;
        if (withRefinements < without) {
          transformed = loop.transformed;
          finalConfig = { ...finalConfig, adaround: false, biasCorrection: false };
          const names = refinements.filter((r) => r.name === 'learned rounding' || r.name === 'bias correction');
          for (const r of names) r.summary = `not used: with it the loop's target measured ${withRefinements.toFixed(2)} instead of ${without.toFixed(2)} (${r.summary})`;
        }
      }
    } else {
      onProgress?.({ phase: 'quantize', done: 0, total: 1 });
      const src = config.foldBatchNorm ? foldBatchNorm(model, config) : undefined;
      if (src?.quantized.length) preprocessing.push(`folded ${src.quantized.length} BatchNormalization node(s) into the preceding Conv/Gemm`);
      const input = src?.quantized.length ? OnnxModel.fromProto(src.model, model.file) : model;
      transformed = config.mode === 'dynamic' ? quantizeDynamic(input, config) : config.mode === 'weight-only' ? quantizeWeightOnly(input, config) : convertFp16(input, config);
    }
    throwIfAborted(signal, 'quantization');

    // A result onnxruntime cannot load or run is a failed quantization: check before writing.
    onProgress?.({ phase: 'check', done: 0, total: 1 });
    await checkRuns(transformed.model, model, options.eval, options.threads);

    onProgress?.({ phase: 'save', done: 0, total: 1 });
    // A model that keeps its weights in external data gets an output that does too.
    const external = model.weights().some((w) => w.external);
    saveModel(transformed.model, options.output, { inputFile: options.input, readExternal: (t) => model.rawBytes(t)!, externalData: external ? 'always' : 'auto' });

    throwIfAborted(signal, 'quantization');
    const cmp = await compareModels(options.input, options.output, options.eval, {
      signal,
      threads: options.threads,
      latencyRuns: options.latencyRuns,
      onProgress: (p) => onProgress?.({ phase: 'evaluate', done: p.done, total: p.total }),
    });
    if (options.eval.synthetic) warnings.push('EVALUATED ON SYNTHETIC DATA: the accuracy figures compare outputs on random inputs');
    // Q/DQ nodes onnxruntime cannot fuse into integer kernels: size without speed, said where it matters.
    const float = config.mode === 'static' ? floatKernels(transformed.model) : { kernels: [], quantizedCompute: 0 };
    const floatLine = describeFloatKernels(float.kernels, float.quantizedCompute);
    const lat = cmp.latencyMs;
    const hint = weightsOnlyHint(finalConfig, lat);
    if (lat && lat.quantized > lat.float) {
      warnings.push(`the quantized model ran slower than the float one (${lat.quantized.toFixed(2)} ms vs ${lat.float.toFixed(2)} ms median)${floatLine ? `: ${floatLine}` : ''}${hint ? `; ${hint}` : ''}`);
    } else if (hint) warnings.push(`the quantized model ran at ${(lat!.quantized / lat!.float).toFixed(2)}× the float latency (${lat!.quantized.toFixed(2)} vs ${lat!.float.toFixed(2)} ms median)${floatLine ? `: ${floatLine}` : ''}; ${hint}`);
    else if (floatLine && float.kernels.length * 2 > float.quantizedCompute) warnings.push(floatLine);
    if (accuracy) accuracy.recipe = writeLoopRecipe(options.output, options.input, config, finalConfig, accuracy);

    return {
      input: options.input,
      output: options.output,
      mode: config.mode,
      settings: finalConfig,
      sizeBytes: { before: cmp.sizeBytes.float, after: cmp.sizeBytes.quantized, ratio: cmp.sizeBytes.float / Math.max(1, cmp.sizeBytes.quantized) },
      quantizedNodes: transformed.quantized.length,
      quantized: transformed.quantized,
      skippedNodes: transformed.skipped,
      floatKernels: float.kernels,
      preprocessing,
      refinements,
      calibration,
      eval: {
        outputs: cmp.outputs,
        latencyMs: cmp.latencyMs ? { ...cmp.latencyMs, ratio: cmp.latencyMs.quantized / cmp.latencyMs.float } : null,
        samples: cmp.samples,
        synthetic: cmp.synthetic,
        source: `${options.eval.description} (${options.evalNote})`,
      },
      accuracyLoop: accuracy,
      warnings,
      seconds: (performance.now() - start) / 1000,
    };
  } finally {
    model.close();
  }
}

/**
 * Resolves ActivationQdq 'auto' (see runtime/activation-qdq.ts) on the model as 'integer-kernels'
 * would prepare it. That preparation is returned for reuse unless the choice changes what the
 * placement needs (float activations need no 16-bit state, so no opset 21).
 */
async function resolveActivationQdq(model: OnnxModel, config: QuantConfig, calib: SampleSource, opts: StageOptions): Promise<{ config: QuantConfig; plan?: StaticPlan; note: string }> {
  const probe = stateActivationType(model.proto, config).config;
  const plan = await prepareStatic(model, probe, calib, opts);
  opts.onProgress?.({ phase: 'preprocess', done: 0, total: 1, message: 'weighing integer kernels against float ones' });
  const choice = await chooseActivationQdq(plan.calibProto, probe, calib, { readWeight: weightReader(model), file: model.file, domain: plan.domain, threads: opts.threads, signal: opts.signal });
  const resolved: QuantConfig = { ...config, activationQdq: choice.activationQdq };
  const samePlacement = wants16Bit(stateActivationType(model.proto, resolved).config) === wants16Bit(probe);
  return { config: resolved, plan: samePlacement ? plan : undefined, note: choice.note };
}

/**
 * When quantized activations bought (almost) no speed on this machine, what to try instead: they
 * exist to feed integer kernels, and without the speed they only add error. Measured on PP-OCRv4's
 * recognizer (0.98× float either way): 775 → 784 of 800 lines decoded identically. Only a hint:
 * the deployment CPU or accelerator may run the integer kernels faster than this one.
 */
export function weightsOnlyHint(config: QuantConfig, latency: { float: number; quantized: number } | null | undefined): string | undefined {
  if (config.mode !== 'static' || config.activationQdq === 'none' || !latency || latency.quantized < 0.95 * latency.float) return undefined;
  return 'if the target runs it no faster either, --activation-qdq none keeps the int8 weights (the same size) and leaves the activations in float, without their rounding error';
}

function describeTarget(t: LoopTarget): string {
  return t.kind === 'sqnr' ? `SQNR ≥ ${t.minDb} dB on every output` : `${t.name} ≥ ${t.min}`;
}

async function runAccuracyLoop(
  model: OnnxModel,
  plan: StaticPlan,
  config: QuantConfig,
  ranges: RangeChooser,
  readWeight: (t: TensorProto) => Float32Array,
  options: QuantizeModelOptions,
): Promise<LoopResult> {
  const total = (options.loopSteps ?? 64) + 1;
  return accuracyLoop({
    floatProto: plan.proto,
    referenceProto: model.proto,
    externalDataDir: model.dir,
    config,
    transform: (c) => transformStatic(plan, c, ranges, readWeight),
    target: options.accuracyTarget!,
    eval: options.eval,
    maxSteps: options.loopSteps ?? 64,
    signal: options.signal,
    threads: options.threads,
    onStep: (s) => options.onProgress?.({ phase: 'quantize', done: s.step, total, message: s.layer ? `accuracy loop: ${s.layer} → ${s.precision}, ${s.metric.toFixed(2)}` : `accuracy loop: start at ${s.metric.toFixed(2)}` }),
    onProgress: (message) => options.onProgress?.({ phase: 'quantize', done: 0, total, message }),
  });
}

/** Writes the loop's final settings as `<output>.recipe.json` (atomically); returns its path. */
function writeLoopRecipe(output: string, input: string, start: QuantConfig, end: QuantConfig, accuracy: NonNullable<QuantizeReport['accuracyLoop']>): string {
  const file = output.replace(/\.onnx$/i, '') + '.recipe.json';
  const notes = [`written by the accuracy loop (${accuracy.target}; ${accuracy.met ? 'met' : 'not met'}: ${accuracy.stopReason})`];
  for (const [name, o] of Object.entries(loopOverrides(start, end))) notes.push(`${name}: ${o.exclude ? 'float' : o.activationType}`);
  const recipe = makeRecipe({ ...end, nodes: end.nodes }, { model: path.basename(input), notes });
  writeFileAtomic(file, JSON.stringify(recipe, null, 2) + '\n');
  return file;
}

/** Loads the quantized model from memory and runs it on the first evaluation sample. */
async function checkRuns(proto: ModelProto, source: OnnxModel, samples: SampleSource, threads: number | undefined): Promise<void> {
  const bytes = encodeModel(proto);
  let session;
  try {
    session = await createSession(bytes, { threads, name: '<quantized model>', externalDataDir: source.dir });
  } catch (err) {
    throw new QuantizedModelError('<quantized model>', `onnxruntime cannot load the quantized model: ${(err as Error).message}`, { cause: err });
  }
  try {
    for await (const sample of samples.samples()) {
      try {
        await runSession(session, sample, undefined, '<quantized model>');
      } catch (err) {
        throw new QuantizedModelError('<quantized model>', `onnxruntime cannot run the quantized model: ${(err as Error).message}`, { cause: err });
      }
      break;
    }
  } finally {
    await session.release();
  }
}

