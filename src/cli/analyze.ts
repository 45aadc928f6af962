/**
 * `onnx-quant analyze <model.onnx> [options]`: per-layer weight and activation statistics,
 * sensitivity, suggested bit widths and findings (src/analysis). Settings and data options are
 * quantize's (same defaults, recipe and --dim handling, same calibration/evaluation split), so a
 * recipe written with --write-recipe and given to `quantize --recipe` with the same data options
 * reproduces the verified result.
 */
import { parseArgs } from 'node:util';
import { OnnxModel } from '../onnx/model';
import { checkOutputPath, writeFileAtomic } from '../onnx/save';
import { analyzeModel, DEFAULT_TARGET_SQNR_DB, type AnalysisEvent, type SensitivityMode } from '../analysis/analyze';
import { formatReport, reportJson, type AnalysisReport } from '../analysis/report';
import { formatReportHtml } from '../analysis/report-html';
import { CliUsageError, dataSources, QUANTIZE_OPTIONS, resolveConfig } from './quantize';

export const ANALYZE_OPTIONS = {
  calib: QUANTIZE_OPTIONS.calib,
  eval: QUANTIZE_OPTIONS.eval,
  'eval-fraction': QUANTIZE_OPTIONS['eval-fraction'],
  samples: QUANTIZE_OPTIONS.samples,
  method: QUANTIZE_OPTIONS.method,
  percentile: QUANTIZE_OPTIONS.percentile,
  'per-channel': QUANTIZE_OPTIONS['per-channel'],
  'per-tensor': QUANTIZE_OPTIONS['per-tensor'],
  'activation-type': QUANTIZE_OPTIONS['activation-type'],
  'weight-type': QUANTIZE_OPTIONS['weight-type'],
  'symmetric-activations': QUANTIZE_OPTIONS['symmetric-activations'],
  'symmetric-weights': QUANTIZE_OPTIONS['symmetric-weights'],
  'asymmetric-weights': QUANTIZE_OPTIONS['asymmetric-weights'],
  'block-size': QUANTIZE_OPTIONS['block-size'],
  exclude: QUANTIZE_OPTIONS.exclude,
  target: QUANTIZE_OPTIONS.target,
  recipe: QUANTIZE_OPTIONS.recipe,
  'no-fold-batchnorm': QUANTIZE_OPTIONS['no-fold-batchnorm'],
  dim: QUANTIZE_OPTIONS.dim,
  fixed: QUANTIZE_OPTIONS.fixed,
  'image-resize': QUANTIZE_OPTIONS['image-resize'],
  'image-scale': QUANTIZE_OPTIONS['image-scale'],
  'image-mean': QUANTIZE_OPTIONS['image-mean'],
  'image-std': QUANTIZE_OPTIONS['image-std'],
  'image-layout': QUANTIZE_OPTIONS['image-layout'],
  'image-channels': QUANTIZE_OPTIONS['image-channels'],
  threads: QUANTIZE_OPTIONS.threads,
  sensitivity: { type: 'string' },
  'target-sqnr': { type: 'string' },
  'max-size': { type: 'string' },
  'write-recipe': { type: 'string' },
  html: { type: 'string' },
  'no-suggest': { type: 'boolean' },
  workers: { type: 'string' },
  'global-samples': { type: 'string' },
  progress: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const ANALYZE_USAGE = `  analyze <model.onnx> [options] [--json]
      --calib DIR             calibration data (as quantize); none: synthetic, reported loudly (finding OQ010)
      --eval DIR  --eval-fraction F   held-out data for global sensitivity and for verifying the suggestion
      --sensitivity none|local|global  per-layer sensitivity (default local; global runs the model once per layer)
      --target-sqnr DB        output SQNR the suggestion must keep (default ${DEFAULT_TARGET_SQNR_DB})
      --max-size SIZE         size budget instead (bytes, or 12MB / 800KB / 1.5GB): best SQNR within it
      --write-recipe FILE     write the suggestion as a recipe for quantize --recipe
      --html FILE             also write the report as a self-contained HTML page
      --no-suggest            statistics and sensitivity only
      --workers N             worker threads for --sensitivity global (default: cores)
      --global-samples N      evaluation samples for global sensitivity (default 16)
      --progress ndjson       one JSON event per line on stderr as results complete
      quantize's settings and data options apply too (--method, --activation-type, --per-tensor,
      --recipe, --dim NAME=SIZE, --image-*, --samples, --threads, …): analysis assumes them`;

type Values = { [K in keyof typeof ANALYZE_OPTIONS]?: (typeof ANALYZE_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof ANALYZE_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

function positiveInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new CliUsageError(`--${name}: expected a positive integer, got "${v}"`);
  return n;
}

/** "123", "12MB", "800 KB", "1.5GB", "2MiB" → bytes (decimal units; KiB/MiB/GiB binary). */
export function parseSize(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$/i.exec(v);
  if (!m) throw new CliUsageError(`--max-size: expected bytes or a size like 12MB, got "${v}"`);
  const unit = (m[2] ?? 'b').toLowerCase().replace(/b$/, '');
  const scale: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3 };
  const f = scale[unit];
  if (f === undefined) throw new CliUsageError(`--max-size: unknown unit in "${v}"`);
  return Math.round(Number(m[1]) * f);
}

export async function runAnalyze(
  args: string[],
  io: { out: (s: string) => void; err: (s: string) => void },
  signal?: AbortSignal,
): Promise<AnalysisReport> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: ANALYZE_OPTIONS });
  const v = values as Values;
  if (positionals.length !== 1) throw new CliUsageError('analyze takes exactly one model');
  if (v.progress !== undefined && v.progress !== 'ndjson') throw new CliUsageError('--progress takes "ndjson"');
  const sensitivity = (v.sensitivity ?? 'local') as SensitivityMode;
  if (!['none', 'local', 'global'].includes(sensitivity)) throw new CliUsageError(`--sensitivity: none, local or global (got "${v.sensitivity}")`);
  let targetSqnrDb: number | undefined;
  if (v['target-sqnr'] !== undefined) {
    targetSqnrDb = Number(v['target-sqnr']);
    if (!Number.isFinite(targetSqnrDb)) throw new CliUsageError(`--target-sqnr: expected a number of dB, got "${v['target-sqnr']}"`);
  }
  const maxSizeBytes = v['max-size'] !== undefined ? parseSize(v['max-size']) : undefined;
  const suggestWanted = v['no-suggest'] !== true;
  if (v['write-recipe'] && (sensitivity === 'none' || !suggestWanted)) {
    throw new CliUsageError('--write-recipe needs a suggestion: use --sensitivity local or global (and no --no-suggest)');
  }
  const config = resolveConfig(v);
  if (config.mode !== 'static') config.mode = 'static'; // analysis assumes static settings; the suggestion picks the mode
  const input = positionals[0]!;
  // An unwritable output path is refused before the analysis runs, not after it.
  for (const out of [v['write-recipe'], v.html]) if (out) checkOutputPath(out, input);
  const model = OnnxModel.load(input);
  try {
    const sources = dataSources(v, model, config);
    const onProgress = v.progress === 'ndjson' ? (e: AnalysisEvent) => io.err(JSON.stringify(e)) : undefined;
    const dims: Record<string, number> = {};
    for (const d of v.dim ?? []) {
      const m = /^(.+)=(\d+)$/.exec(d);
      if (m) dims[m[1]!] = Number(m[2]);
    }
    const report = await analyzeModel({
      model,
      config,
      calib: sources.calib,
      eval: sources.eval,
      sensitivity,
      suggest: suggestWanted,
      targetSqnrDb,
      maxSizeBytes,
      workers: positiveInt(v.workers, 'workers'),
      globalSamples: positiveInt(v['global-samples'], 'global-samples'),
      threads: positiveInt(v.threads, 'threads'),
      dims,
      signal,
      onProgress,
    });
    if (v['write-recipe']) {
      if (!report.suggestion) throw new CliUsageError(`--write-recipe: no suggestion was made (${report.notes.find((n) => n.startsWith('no suggestion')) ?? 'see the report'})`);
      writeFileAtomic(v['write-recipe'], JSON.stringify(report.suggestion.recipe, null, 2) + '\n', input);
    }
    if (v.html) writeFileAtomic(v.html, formatReportHtml(report), input);
    io.out(v.json ? reportJson(report) : formatReport(report));
    if (v['write-recipe'] && !v.json) io.out(`recipe written: ${v['write-recipe']} (use: onnx-quant quantize ${input} -o out.onnx --recipe ${v['write-recipe']} with the same data options)`);
    return report;
  } finally {
    model.close();
  }
}
