/**
 * `onnx-quant compare <float.onnx> <quantized.onnx>`: runs both models on the same samples and
 * reports size, latency and per-output SQNR / cosine / top-1 agreement; with `--layers`, the error
 * trace — every layer's output SQNR in the quantized model and the error each layer adds — so a
 * quantized model from any tool can be asked "which layer hurts".
 */
import { parseArgs } from 'node:util';
import { OnnxModel } from '../onnx/model';
import { formatBytes } from '../onnx/summary';
import { openSampleFolder, syntheticSource } from '../runtime/data';
import { traceErrors, worstLayers, type TraceResult } from '../runtime/error-trace';
import { compareModels, type ComparisonResult } from '../runtime/evaluate';
import type { SampleSource } from '../runtime/samples';
import { CliUsageError, DATA_OPTIONS, dims, fixedValues, fmtDb, imageOptions, num, outputLines, type Values } from './quantize';

export const COMPARE_OPTIONS = {
  eval: { type: 'string' },
  samples: { type: 'string' },
  layers: { type: 'boolean' },
  top: { type: 'string' },
  ...DATA_OPTIONS,
  threads: { type: 'string' },
  'latency-runs': { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const COMPARE_USAGE = `  compare <float.onnx> <quantized.onnx> [options] [--json]
      --eval DIR              samples both models run on (as quantize's --calib); none: synthetic, reported loudly
      --samples N             at most N samples (default all, 8 synthetic)
      --layers                error trace: each layer's output SQNR and the error it adds, then the worst ones
      --top N                 layers listed as worst (default 10)
      --dim, --fixed, --image-…  as for quantize   --threads N  --latency-runs N (default 20; 0 skips)`;

export interface CompareReport extends ComparisonResult {
  float: string;
  quantized: string;
  source: string;
  trace?: TraceResult;
}

function evalSource(v: Values, floatFile: string): SampleSource {
  const model = OnnxModel.load(floatFile);
  try {
    const limit = num(v.samples, 'samples', { integer: true, min: 1 });
    if (v.eval) {
      const image = imageOptions(v);
      const folder = openSampleFolder(v.eval, model, image ? { image } : {});
      return limit === undefined ? folder : { ...folder, count: Math.min(limit, folder.count), samples: (signal) => firstN(folder.samples(signal), limit) };
    }
    return syntheticSource(model, { count: limit ?? 8, seed: 2, dims: dims(v), fixed: fixedValues(v) });
  } finally {
    model.close();
  }
}

async function* firstN<T>(it: AsyncIterable<T>, n: number): AsyncIterable<T> {
  let i = 0;
  for await (const x of it) {
    if (i++ >= n) return;
    yield x;
  }
}

export function formatCompareReport(r: CompareReport, top = 10): string {
  const lines = [`${r.quantized} vs ${r.float}`];
  lines.push(`  size ${formatBytes(r.sizeBytes.float)} → ${formatBytes(r.sizeBytes.quantized)} (${(r.sizeBytes.float / r.sizeBytes.quantized).toFixed(2)}× smaller)`);
  lines.push(`  ${r.samples} sample(s)${r.synthetic ? ' — SYNTHETIC DATA' : ''}: ${r.source}`);
  lines.push(...outputLines(r.outputs));
  if (r.latencyMs) lines.push(`  latency (median): float ${r.latencyMs.float.toFixed(2)} ms, quantized ${r.latencyMs.quantized.toFixed(2)} ms (${(r.latencyMs.quantized / r.latencyMs.float).toFixed(2)}×)`);
  if (r.trace) {
    const t = r.trace;
    lines.push(`  error trace over ${t.samples} sample(s): each layer's output SQNR, and the error it adds (as the SQNR it would have alone)`);
    for (const l of t.layers) lines.push(`    ${l.node.padEnd(28)} ${l.opType.padEnd(14)} ${fmtDb(l.sqnrDb).padStart(14)}   adds ${fmtDb(l.addedSqnrDb)}`);
    const worst = worstLayers(t, top);
    if (worst.length) {
      lines.push(`  layers adding the most error to their own output (whether it reaches the model outputs is what analyze --sensitivity global measures):`);
      for (const l of worst) lines.push(`    ${l.node} (${l.opType}): adds ${fmtDb(l.addedSqnrDb)}; ${fmtDb(l.inputSqnrDb)} in → ${fmtDb(l.sqnrDb)} out`);
    }
    if (t.untraced) lines.push(`  ${t.untraced} layer(s) of the float model have no tensor of the same name in the quantized one: not traced`);
  }
  return lines.join('\n');
}

export async function runCompare(args: string[], io: { out: (s: string) => void }, signal?: AbortSignal): Promise<CompareReport> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: COMPARE_OPTIONS });
  const v = values as Values & { layers?: boolean; top?: string };
  if (positionals.length !== 2) throw new CliUsageError('compare takes a float model and a quantized model');
  const [floatFile, quantFile] = positionals as [string, string];
  if (floatFile === quantFile) throw new CliUsageError('compare: the two models are the same file');
  const source = evalSource(v, floatFile);
  const threads = num(v.threads, 'threads', { integer: true, min: 1 });
  const top = num(v.top, 'top', { integer: true, min: 1 }) ?? 10;
  const result = await compareModels(floatFile, quantFile, source, { signal, threads, latencyRuns: num(v['latency-runs'], 'latency-runs', { integer: true, min: 0 }) });
  const report: CompareReport = { ...result, float: floatFile, quantized: quantFile, source: source.description };
  if (v.layers) report.trace = await traceErrors(floatFile, quantFile, source, { signal, threads });
  io.out(v.json ? JSON.stringify(report, (_k, x) => (x === Infinity ? 'Infinity' : x)) : formatCompareReport(report, top));
  return report;
}
