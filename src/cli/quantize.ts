/**
 * `onnx-quant quantize <in.onnx> -o <out.onnx> [options]`: settings from defaults < --target preset
 * < --recipe < command line; data from --calib/--eval folders (or synthetic, said loudly); the
 * pipeline in src/runtime/quantize-model.ts; a human or JSON report.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LoopTarget, ScoreFunction } from '../runtime/accuracy-loop';
import { parseArgs } from 'node:util';
import { OnnxModel } from '../onnx/model';
import { DEFAULT_CONFIG, QuantConfig, TargetPreset } from '../quant/config';
import { parseRecipeText, parseRecipe, RecipeError } from '../quant/recipe';
import { TARGET_PRESETS } from '../quant/presets';
import { ImageOptions, openSampleFolder, sliceSource, splitSource, syntheticSource } from '../runtime/data';
import { PipelineProgress, quantizeModel, QuantizeReport } from '../runtime/quantize-model';
import type { OutputComparison } from '../runtime/evaluate';
import { SampleSource } from '../runtime/samples';
import { formatBytes } from '../onnx/summary';

export class CliUsageError extends Error {}

/** How samples are made: synthetic dims and values, image preprocessing (quantize and compare). */
export const DATA_OPTIONS = {
  dim: { type: 'string', multiple: true },
  fixed: { type: 'string', multiple: true },
  'image-resize': { type: 'string' },
  'image-scale': { type: 'string' },
  'image-mean': { type: 'string' },
  'image-std': { type: 'string' },
  'image-layout': { type: 'string' },
  'image-channels': { type: 'string' },
} as const;

export const QUANTIZE_OPTIONS = {
  output: { type: 'string', short: 'o' },
  mode: { type: 'string' },
  calib: { type: 'string' },
  eval: { type: 'string' },
  'eval-fraction': { type: 'string' },
  samples: { type: 'string' },
  method: { type: 'string' },
  percentile: { type: 'string' },
  'histogram-values': { type: 'string' },
  'per-channel': { type: 'boolean' },
  'per-tensor': { type: 'boolean' },
  'activation-type': { type: 'string' },
  'weight-type': { type: 'string' },
  'symmetric-activations': { type: 'boolean' },
  'symmetric-weights': { type: 'boolean' },
  'asymmetric-weights': { type: 'boolean' },
  'block-size': { type: 'string' },
  exclude: { type: 'string', multiple: true },
  target: { type: 'string' },
  recipe: { type: 'string' },
  'no-fold-batchnorm': { type: 'boolean' },
  cle: { type: 'boolean' },
  'no-cle': { type: 'boolean' },
  'dw-equalization': { type: 'boolean' },
  'no-dw-equalization': { type: 'boolean' },
  'bias-correction': { type: 'boolean' },
  'no-bias-correction': { type: 'boolean' },
  smoothquant: { type: 'boolean' },
  'no-smoothquant': { type: 'boolean' },
  'smoothquant-alpha': { type: 'string' },
  adaround: { type: 'boolean' },
  'no-adaround': { type: 'boolean' },
  'adaround-seconds': { type: 'string' },
  'kernel-sums': { type: 'boolean' },
  'no-kernel-sums': { type: 'boolean' },
  'activation-qdq': { type: 'string' },
  'float-kernel-weights': { type: 'string' },
  ...DATA_OPTIONS,
  threads: { type: 'string' },
  'latency-runs': { type: 'string' },
  progress: { type: 'string' },
  'target-sqnr': { type: 'string' },
  metric: { type: 'string' },
  'target-metric': { type: 'string' },
  'loop-steps': { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const QUANTIZE_USAGE = `  quantize <in.onnx> -o <out.onnx> [options] [--json]
      --mode static|dynamic|weight-only|fp16        (default static)
      --calib DIR             calibration data (.npy/.npz/test_data_set_*/images); none: synthetic, reported loudly
      --eval DIR              held-out data for the report (default: 20% of --calib kept aside)
      --eval-fraction F       share of --calib held out when there is no --eval (default 0.2)
      --samples N             calibration samples to use (default 64)
      --method minmax|percentile|entropy|mse  --percentile P (default 99.99)
      --histogram-values N    histogram methods: bin at most N values of each activation per sample (default 16384; 0: all)
      --per-channel | --per-tensor                   weight scales (default per channel)
      --activation-type uint8|int8|uint16|int16      (default uint8; uint16 for models that carry
                              recurrent state between calls)   --weight-type int8|uint8|int4|uint4
      --symmetric-activations  --symmetric-weights | --asymmetric-weights
      --block-size 32|64|128  int4 weight-only block size
      --exclude NAME|OPTYPE   keep in float (repeatable, comma-separated)
      --target cpu-x86|cpu-arm|gpu-tensorrt|npu      backend preset
      --recipe FILE           settings and per-node overrides (the command line wins)
      --no-fold-batchnorm     keep BatchNormalization nodes
      --cle | --no-cle        cross-layer equalization of Conv→act→Conv chains (static)
      --bias-correction | --no-bias-correction      correct biases by the mean quantization error (static)
      --smoothquant | --no-smoothquant  --smoothquant-alpha A|auto (default 0.5)  MatMul/Gemm outliers (static)
      --adaround | --no-adaround  --adaround-seconds S (default 60)  learned weight rounding per layer (static, on by default)
      --dw-equalization | --no-dw-equalization      equalize depthwise conv input channels (static, on by default)
      --kernel-sums | --no-kernel-sums              Conv weights keep each kernel's sum when rounded (static; off by default)
      --activation-qdq auto|integer-kernels|every-layer|none  auto (default): integer-kernels when
                              integer kernels carry ≥ 1/8 of the multiply-adds, else none;
                              integer-kernels: Q/DQ only where onnxruntime runs an integer kernel
                              (layers whose output feeds float ops read float inputs); every-layer: on
                              every quantized layer's input (default of --target gpu-tensorrt and npu);
                              none: int8 weights, float activations
      --float-kernel-weights F  convs onnxruntime runs as float kernels keep float weights, smallest
                              first, within F × the quantized weights' size (default 0.125; 0: none; 3: all)
      --dim NAME=SIZE         size of a symbolic input dim for synthetic data (repeatable)
      --fixed INPUT=V1,V2,…   exact values of an input for synthetic data, e.g. --fixed sr=16000
      --image-resize model|HxW --image-scale S --image-mean a,b,c --image-std a,b,c
      --image-layout NCHW|NHWC --image-channels RGB|BGR|GRAY
      --target-sqnr DB        accuracy-aware loop: raise the layer that hurts most (16-bit activations,
                              then float) until every output's SQNR on the eval set is ≥ DB
      --metric FILE.js        the loop's target is your metric instead: a module exporting
                              score(floatOutputs, quantOutputs, sample) → number (higher is better)
                              and optionally target; --target-metric X sets or overrides it
      --loop-steps N          most layers the loop may raise (default 64); the final recipe is
                              written next to the output as <out>.recipe.json
      --threads N  --latency-runs N (default 20; 0 skips)  --progress ndjson`;

export type Values = { [K in keyof typeof QUANTIZE_OPTIONS]?: (typeof QUANTIZE_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof QUANTIZE_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

export function num(v: string | undefined, name: string, opts: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (opts.integer && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
    throw new CliUsageError(`--${name}: expected ${opts.integer ? 'an integer' : 'a number'}${opts.min !== undefined ? ` ≥ ${opts.min}` : ''}${opts.max !== undefined ? ` ≤ ${opts.max}` : ''}, got "${v}"`);
  }
  return n;
}

function numbers(v: string | undefined, name: string): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isFinite(x))) throw new CliUsageError(`--${name}: expected comma-separated numbers, got "${v}"`);
  return xs;
}

/** Settings from the command line only (undefined where not given). */
function commandLineSettings(v: Values): Partial<QuantConfig> {
  const s: Record<string, unknown> = {};
  if (v.mode !== undefined) s.mode = v.mode;
  if (v.method !== undefined) s.method = v.method;
  if (v.percentile !== undefined) s.percentile = num(v.percentile, 'percentile', { min: 50, max: 100 });
  if (v['histogram-values'] !== undefined) s.histogramValues = num(v['histogram-values'], 'histogram-values', { min: 0, max: 1073741824, integer: true });
  if (v['per-channel'] && v['per-tensor']) throw new CliUsageError('--per-channel and --per-tensor exclude each other');
  if (v['per-channel']) s.perChannel = true;
  if (v['per-tensor']) s.perChannel = false;
  if (v['activation-type'] !== undefined) s.activationType = v['activation-type'];
  if (v['weight-type'] !== undefined) s.weightType = v['weight-type'];
  if (v['symmetric-activations']) s.symmetricActivations = true;
  if (v['symmetric-weights'] && v['asymmetric-weights']) throw new CliUsageError('--symmetric-weights and --asymmetric-weights exclude each other');
  if (v['symmetric-weights']) s.symmetricWeights = true;
  if (v['asymmetric-weights']) s.symmetricWeights = false;
  if (v['block-size'] !== undefined) s.blockSize = num(v['block-size'], 'block-size', { integer: true });
  if (v.exclude) s.exclude = v.exclude.flatMap((e) => e.split(',')).map((e) => e.trim()).filter(Boolean);
  if (v.samples !== undefined) s.samples = num(v.samples, 'samples', { integer: true, min: 1 });
  if (v.target !== undefined) s.target = v.target;
  if (v['no-fold-batchnorm']) s.foldBatchNorm = false;
  const toggle = (on: boolean | undefined, off: boolean | undefined, flag: string, key: keyof QuantConfig) => {
    if (on && off) throw new CliUsageError(`--${flag} and --no-${flag} exclude each other`);
    if (on) s[key] = true;
    if (off) s[key] = false;
  };
  toggle(v.cle, v['no-cle'], 'cle', 'crossLayerEqualization');
  toggle(v['dw-equalization'], v['no-dw-equalization'], 'dw-equalization', 'depthwiseEqualization');
  toggle(v['bias-correction'], v['no-bias-correction'], 'bias-correction', 'biasCorrection');
  toggle(v.smoothquant, v['no-smoothquant'], 'smoothquant', 'smoothQuant');
  toggle(v.adaround, v['no-adaround'], 'adaround', 'adaround');
  toggle(v['kernel-sums'], v['no-kernel-sums'], 'kernel-sums', 'kernelSumRounding');
  if (v['activation-qdq'] !== undefined) s.activationQdq = v['activation-qdq'];
  if (v['float-kernel-weights'] !== undefined) s.floatKernelWeights = num(v['float-kernel-weights'], 'float-kernel-weights', { min: 0, max: 8 });
  if (v['adaround-seconds'] !== undefined) s.adaroundSeconds = num(v['adaround-seconds'], 'adaround-seconds', { min: 1, max: 86400 });
  const alpha = v['smoothquant-alpha'];
  if (alpha !== undefined) s.smoothQuantAlpha = alpha === 'auto' ? 'auto' : num(alpha, 'smoothquant-alpha', { min: 0, max: 1 });
  // Same validation as recipe files, so both reject the same values with the same words.
  try {
    return parseRecipe(s, 'command line').settings;
  } catch (err) {
    if (err instanceof RecipeError) throw new CliUsageError(err.message.replace(/^command line: (\w)/, '--$1').replace(/^--(\w+)([A-Z])/, (_m, a: string, b: string) => `--${a}-${b.toLowerCase()}`));
    throw err;
  }
}

/** defaults < --target preset < recipe < command line. */
export function resolveConfig(v: Values, readFile: (f: string) => string = (f) => fs.readFileSync(f, 'utf8')): QuantConfig {
  const cli = commandLineSettings(v);
  let recipe: Partial<QuantConfig> = {};
  if (v.recipe) {
    let text: string;
    try {
      text = readFile(v.recipe);
    } catch (err) {
      throw new RecipeError(`${v.recipe}: cannot read: ${(err as Error).message}`);
    }
    recipe = parseRecipeText(text, v.recipe).settings;
  }
  const target = (cli.target ?? recipe.target) as TargetPreset | undefined;
  const preset = target ? TARGET_PRESETS[target].settings : {};
  const config: QuantConfig = { ...DEFAULT_CONFIG, ...preset, ...recipe, ...cli, nodes: { ...(recipe.nodes ?? {}) } };
  config.activationTypeAuto = !('activationType' in preset) && recipe.activationType === undefined && cli.activationType === undefined;
  // Excludes accumulate: a recipe's list and the command line's both apply.
  config.exclude = [...new Set([...(recipe.exclude ?? []), ...(cli.exclude ?? [])])];
  if (config.mode === 'weight-only' && !v['weight-type'] && !recipe.weightType) config.weightType = 'int4';
  if (config.mode === 'static' && (config.weightType === 'int4' || config.weightType === 'uint4')) {
    throw new CliUsageError('4-bit weights are weight-only: use --mode weight-only with --weight-type int4');
  }
  return config;
}

export function imageOptions(v: Values): ImageOptions | undefined {
  const o: ImageOptions = {};
  if (v['image-resize'] !== undefined) {
    if (v['image-resize'] === 'model') o.resize = 'model';
    else {
      const m = /^(\d+)x(\d+)$/.exec(v['image-resize']);
      if (!m) throw new CliUsageError(`--image-resize: expected "model" or HxW, got "${v['image-resize']}"`);
      o.resize = [Number(m[1]), Number(m[2])];
    }
  }
  if (v['image-scale'] !== undefined) o.scale = num(v['image-scale'], 'image-scale');
  const mean = numbers(v['image-mean'], 'image-mean');
  const std = numbers(v['image-std'], 'image-std');
  if (mean) o.mean = mean;
  if (std) o.std = std;
  if (v['image-layout'] !== undefined) {
    if (v['image-layout'] !== 'NCHW' && v['image-layout'] !== 'NHWC') throw new CliUsageError('--image-layout: NCHW or NHWC');
    o.layout = v['image-layout'];
  }
  if (v['image-channels'] !== undefined) {
    if (!['RGB', 'BGR', 'GRAY'].includes(v['image-channels'])) throw new CliUsageError('--image-channels: RGB, BGR or GRAY');
    o.channels = v['image-channels'] as ImageOptions['channels'];
  }
  return Object.keys(o).length ? o : undefined;
}

export function dims(v: Values): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of v.dim ?? []) {
    const m = /^(.+)=(\d+)$/.exec(d);
    if (!m) throw new CliUsageError(`--dim: expected NAME=SIZE, got "${d}"`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

export function fixedValues(v: Values): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const f of v.fixed ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(f);
    const values = m ? numbers(m[2], 'fixed') : undefined;
    if (!m || !values) throw new CliUsageError(`--fixed: expected INPUT=V1,V2,…, got "${f}"`);
    out[m[1]!] = values;
  }
  return out;
}

/** Calibration and evaluation sources, and a sentence on how the evaluation set was chosen. */
export function dataSources(v: Values, model: OnnxModel, config: QuantConfig): { calib: SampleSource; eval: SampleSource; evalNote: string } {
  const image = imageOptions(v);
  const folderOptions = image ? { image } : {};
  const synthetic = (count: number, seed: number) => syntheticSource(model, { count, seed, dims: dims(v), fixed: fixedValues(v) });
  let calib: SampleSource;
  let evalSource: SampleSource;
  let evalNote: string;
  if (v.calib) {
    const folder = openSampleFolder(v.calib, model, folderOptions);
    if (v.eval) {
      calib = sliceSource(folder, 0, config.samples);
      evalSource = openSampleFolder(v.eval, model, folderOptions);
      evalNote = `from --eval ${v.eval}`;
    } else if (folder.entries.length >= 5) {
      const fraction = num(v['eval-fraction'], 'eval-fraction', { min: 0.01, max: 0.99 }) ?? 0.2;
      const split = splitSource(folder, fraction);
      calib = sliceSource(split.calib, 0, config.samples);
      evalSource = split.eval;
      evalNote = `${Math.round(fraction * 100)}% of --calib held out: ${split.eval.entries.map((e) => e.id).join(', ')}`;
    } else {
      calib = sliceSource(folder, 0, config.samples);
      evalSource = folder;
      evalNote = `--calib has only ${folder.entries.length} sample(s), too few to hold some out: evaluated on the calibration samples themselves`;
    }
  } else {
    calib = synthetic(config.mode === 'static' ? Math.min(config.samples, 32) : 1, 1);
    evalSource = v.eval ? openSampleFolder(v.eval, model, folderOptions) : synthetic(8, 2);
    evalNote = v.eval ? `from --eval ${v.eval}` : 'synthetic samples, separate from the calibration ones';
  }
  return { calib, eval: evalSource, evalNote };
}

export function fmtDb(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(1)} dB` : '∞ (identical)';
}

/** One line per output: SQNR, cosine, max abs error, top-1 agreement where it applies. */
export function outputLines(outputs: readonly OutputComparison[]): string[] {
  return outputs.map((o) => {
    const top1 = o.top1Agreement !== undefined ? `, top-1 agreement ${(o.top1Agreement * 100).toFixed(1)}%` : '';
    return `    ${o.name}: SQNR ${fmtDb(o.sqnrDb)}, cosine ${o.cosine.toFixed(5)}, max abs error ${o.maxAbsError.toPrecision(3)}${top1}`;
  });
}

/** The report for terminals. */
export function formatQuantizeReport(r: QuantizeReport): string {
  const lines: string[] = [];
  lines.push(`${r.output}`);
  lines.push(`  mode ${r.mode}: ${r.quantizedNodes} node(s) quantized, ${r.skippedNodes.length} kept in float`);
  lines.push(`  size ${formatBytes(r.sizeBytes.before)} → ${formatBytes(r.sizeBytes.after)} (${r.sizeBytes.ratio.toFixed(2)}× smaller)`);
  for (const p of r.preprocessing) lines.push(`  preprocessing: ${p}`);
  for (const f of r.refinements ?? []) {
    const layers = f.layers.length ? ` (${f.layers.slice(0, 3).join(', ')}${f.layers.length > 3 ? ', …' : ''})` : '';
    lines.push(`  refinement ${f.name}: ${f.summary}${layers}, ${f.seconds.toFixed(1)} s`);
  }
  if (r.calibration) {
    const c = r.calibration;
    lines.push(`  calibration: ${c.samples} sample(s), ${c.method}, ${c.seconds.toFixed(1)} s, peak RSS ${formatBytes(c.peakRssBytes)}${c.synthetic ? ' — SYNTHETIC DATA' : ''}`);
    lines.push(`    from ${c.source}`);
  }
  lines.push(`  evaluation on ${r.eval.samples} sample(s)${r.eval.synthetic ? ' — SYNTHETIC DATA' : ''}: ${r.eval.source}`);
  lines.push(...outputLines(r.eval.outputs));
  if (r.eval.latencyMs) {
    const l = r.eval.latencyMs;
    lines.push(`  latency (median): float ${l.float.toFixed(2)} ms, quantized ${l.quantized.toFixed(2)} ms (${l.ratio.toFixed(2)}×)`);
  }
  if (r.skippedNodes.length) {
    const byReason = new Map<string, string[]>();
    for (const s of r.skippedNodes) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s.name]);
    lines.push('  kept in float:');
    for (const [reason, names] of [...byReason].sort((a, b) => b[1].length - a[1].length)) {
      lines.push(`    ${names.length} × ${reason}${names.length <= 3 ? ` (${names.join(', ')})` : ` (${names.slice(0, 3).join(', ')}, …)`}`);
    }
  }
  if (r.accuracyLoop) {
    const a = r.accuracyLoop;
    lines.push(`  accuracy loop, target ${a.target}: ${a.met ? 'met' : 'NOT met'} after ${a.steps.length - 1} step(s) (${a.stopReason})`);
    for (const s of a.steps) {
      const what = s.layer ? `${s.layer} (${s.opType}) → ${s.precision}${s.gainDb !== undefined ? ` (alone it bought ${s.gainDb.toFixed(1)} dB)` : ''}` : 'start';
      lines.push(`    ${String(s.step).padStart(3)}. ${what}: ${s.metric.toFixed(3)}, ${formatBytes(s.sizeBytes)}${s.kept === false ? ' — worse, undone' : ''}`);
    }
    if (a.recipe) lines.push(`    recipe: ${a.recipe}`);
  }
  for (const w of r.warnings) lines.push(`  WARNING: ${w}`);
  return lines.join('\n');
}

/** The accuracy loop's target from --target-sqnr or --metric (with --target-metric), if any. */
async function loopTarget(v: Values, config: QuantConfig): Promise<LoopTarget | undefined> {
  const sqnr = num(v['target-sqnr'], 'target-sqnr', { min: -100, max: 200 });
  if (v['loop-steps'] !== undefined && sqnr === undefined && !v.metric) throw new CliUsageError('--loop-steps needs --target-sqnr or --metric');
  if (v['target-metric'] !== undefined && !v.metric) throw new CliUsageError('--target-metric needs --metric FILE.js');
  if (sqnr !== undefined && v.metric) throw new CliUsageError('--target-sqnr and --metric exclude each other: give one target');
  if (sqnr === undefined && !v.metric) return undefined;
  if (config.mode !== 'static') throw new CliUsageError(`the accuracy loop raises activation precision, which needs --mode static (got ${config.mode})`);
  if (sqnr !== undefined) return { kind: 'sqnr', minDb: sqnr };
  const metric = await loadMetric(v.metric!);
  const min = num(v['target-metric'], 'target-metric') ?? metric.target;
  if (min === undefined) throw new CliUsageError(`${v.metric}: exports no numeric "target"; pass --target-metric X`);
  return { kind: 'metric', name: path.basename(v.metric!), score: metric.score, min };
}

/** Loads a user's metric module (CommonJS or ES module). Its code runs with the CLI's rights. */
export async function loadMetric(file: string): Promise<{ score: ScoreFunction; target?: number }> {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new CliUsageError(`--metric ${file}: no such file`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (err) {
    throw new CliUsageError(`--metric ${file}: cannot load it: ${(err as Error).message}`);
  }
  // A CommonJS module's exports arrive as the ES module's default.
  const exp = typeof mod.score === 'function' ? mod : ((mod.default ?? {}) as Record<string, unknown>);
  if (typeof exp.score !== 'function') throw new CliUsageError(`--metric ${file}: must export a function score(floatOutputs, quantOutputs, sample)`);
  const target = exp.target;
  if (target !== undefined && (typeof target !== 'number' || !Number.isFinite(target))) throw new CliUsageError(`--metric ${file}: "target" must be a number`);
  return { score: exp.score as ScoreFunction, target: target as number | undefined };
}

export async function runQuantize(
  args: string[],
  io: { out: (s: string) => void; err: (s: string) => void },
  signal?: AbortSignal,
): Promise<QuantizeReport> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: QUANTIZE_OPTIONS });
  const v = values as Values;
  if (positionals.length !== 1) throw new CliUsageError('quantize takes exactly one input model');
  if (!v.output) throw new CliUsageError('quantize needs -o <out.onnx>');
  if (v.progress !== undefined && v.progress !== 'ndjson') throw new CliUsageError('--progress takes "ndjson"');
  const input = positionals[0]!;
  const config = resolveConfig(v);
  const model = OnnxModel.load(input);
  let sources;
  try {
    sources = dataSources(v, model, config);
  } finally {
    model.close();
  }
  const accuracyTarget = await loopTarget(v, config);
  const onProgress = v.progress === 'ndjson' ? (p: PipelineProgress) => io.err(JSON.stringify({ event: 'progress', ...p })) : undefined;
  const report = await quantizeModel({
    input,
    output: v.output,
    config,
    calib: sources.calib,
    eval: sources.eval,
    evalNote: sources.evalNote,
    signal,
    onProgress,
    threads: num(v.threads, 'threads', { integer: true, min: 1 }),
    latencyRuns: num(v['latency-runs'], 'latency-runs', { integer: true, min: 0 }),
    accuracyTarget,
    loopSteps: num(v['loop-steps'], 'loop-steps', { integer: true, min: 1, max: 100_000 }),
  });
  io.out(v.json ? JSON.stringify(report) : formatQuantizeReport(report));
  return report;
}
