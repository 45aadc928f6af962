/**
 * A job's result as the results panel shows it (src/shared/results-protocol.ts): the reports of
 * src/runtime and src/analysis flattened into columns. No `vscode`: plain Node tests run it.
 */
import type { AnalysisReport } from '../analysis/report';
import type { ComparisonResult } from '../runtime/evaluate';
import type { QuantizeReport } from '../runtime/quantize-model';
import type { JobResult } from '../runtime/worker/job-protocol';
import type { AnalysisView, ComparisonView, ResultView } from '../shared/results-protocol';

const num = (x: number | null | undefined): number => (x === null || x === undefined ? NaN : x);

function comparisonView(c: ComparisonResult, evalSource: string): ComparisonView {
  const outs = c.outputs;
  return {
    sizeBefore: c.sizeBytes.float,
    sizeAfter: c.sizeBytes.quantized,
    latencyFloatMs: c.latencyMs?.float ?? null,
    latencyQuantMs: c.latencyMs?.quantized ?? null,
    outputNames: outs.map((o) => o.name),
    sqnrDb: Float64Array.from(outs, (o) => o.sqnrDb),
    cosine: Float64Array.from(outs, (o) => o.cosine),
    minCosine: Float64Array.from(outs, (o) => o.minCosine),
    maxAbsError: Float64Array.from(outs, (o) => o.maxAbsError),
    top1Agreement: Float64Array.from(outs, (o) => num(o.top1Agreement)),
    samples: c.samples,
    evalSource,
    synthetic: c.synthetic,
  };
}

function quantizeComparison(r: QuantizeReport): ComparisonView {
  return comparisonView(
    {
      outputs: r.eval.outputs,
      latencyMs: r.eval.latencyMs ? { float: r.eval.latencyMs.float, quantized: r.eval.latencyMs.quantized } : undefined,
      sizeBytes: { float: r.sizeBytes.before, quantized: r.sizeBytes.after },
      samples: r.eval.samples,
      synthetic: r.eval.synthetic,
      seconds: 0,
    },
    r.eval.source,
  );
}

export function analysisView(r: AnalysisReport, recipeWritten: string | undefined): AnalysisView {
  const s = r.suggestion;
  return {
    layerNames: r.layers.map((l) => l.name),
    opTypes: r.layers.map((l) => l.opType),
    localSqnrDb: Float64Array.from(r.layers, (l) => num(l.sensitivity.localSqnrDb)),
    globalSqnrDb: Float64Array.from(r.layers, (l) => num(l.sensitivity.globalSqnrDb)),
    suggestedBits: Float64Array.from(r.layers, (l) => num(l.suggestedBits)),
    findings: r.findings.map((f) => ({ severity: f.severity, code: f.code, node: f.node, message: f.message })),
    suggestion: s ? { mode: s.mode, met: s.met, achievedSqnrDb: s.achievedSqnrDb, targetSqnrDb: s.targetSqnrDb, sizeBytes: s.sizeBytes, floatSizeBytes: s.floatSizeBytes } : null,
    recipeWritten: recipeWritten ?? null,
    synthetic: r.data.calibration?.synthetic ?? true,
  };
}

export function resultView(result: JobResult): ResultView {
  switch (result.kind) {
    case 'quantize': {
      const r = result.report;
      return {
        comparison: quantizeComparison(r),
        quantize: {
          mode: r.mode,
          quantizedNodes: r.quantizedNodes,
          skipped: r.skippedNodes.map((n) => ({ name: n.name, opType: n.opType, reason: n.reason })),
          preprocessing: r.preprocessing,
          calibration: r.calibration
            ? { samples: r.calibration.samples, method: r.calibration.method, source: r.calibration.source, synthetic: r.calibration.synthetic, seconds: r.calibration.seconds }
            : null,
          seconds: r.seconds,
        },
        analysis: null,
        warnings: r.warnings,
      };
    }
    case 'analyze': {
      const a = analysisView(result.report, result.recipeWritten);
      const warnings = a.synthetic ? ['ANALYZED ON SYNTHETIC DATA: activation statistics and sensitivities come from random inputs; set onnxQuant.calibrationFolder for real ones'] : [];
      return { comparison: null, quantize: null, analysis: a, warnings };
    }
    case 'compare':
      return { comparison: comparisonView(result.report.comparison, result.report.evalSource), quantize: null, analysis: null, warnings: result.report.warnings };
  }
}
