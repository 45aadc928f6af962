/**
 * Export Report: a job's result as a standalone HTML page and as JSON. Every string that comes
 * from a model (node names, op types, output names, paths, reasons) goes through the analysis
 * report's escapeHtml (which also shows control and bidi characters visibly); the
 * page has no script and a CSP that forbids loading anything. No `vscode`: plain Node tests run it.
 */
import { escapeHtml, formatReportHtml } from '../analysis/report-html';
import type { JobResult } from '../runtime/worker/job-protocol';
import { resultView } from './result-view';
import type { ComparisonView, ResultView } from '../shared/results-protocol';

/** JSON of a result: typed arrays as arrays; non-finite numbers become null (JSON has none). */
export function reportJsonText(result: JobResult): string {
  return JSON.stringify(result, (_k, v: unknown) => (ArrayBuffer.isView(v) && !(v instanceof DataView) ? Array.from(v as unknown as ArrayLike<number>) : v), 2) + '\n';
}

const e = (s: string | number) => escapeHtml(String(s));

function db(x: number): string {
  if (x === Infinity) return '∞ (identical)';
  return Number.isFinite(x) ? `${x.toFixed(1)} dB` : '—';
}

export function formatBytesShort(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

function table(head: string[], rows: (string | number)[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${e(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${e(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function comparisonHtml(c: ComparisonView): string {
  const parts: string[] = ['<h2>Float vs quantized</h2>'];
  const ratio = c.sizeAfter > 0 ? (c.sizeBefore / c.sizeAfter).toFixed(2) : '—';
  const rows: (string | number)[][] = [['size', formatBytesShort(c.sizeBefore), formatBytesShort(c.sizeAfter), `${ratio}× smaller`]];
  if (c.latencyFloatMs !== null && c.latencyQuantMs !== null) rows.push(['median latency', `${c.latencyFloatMs.toFixed(2)} ms`, `${c.latencyQuantMs.toFixed(2)} ms`, `${(c.latencyQuantMs / c.latencyFloatMs).toFixed(2)}×`]);
  parts.push(table(['', 'float', 'quantized', ''], rows));
  parts.push(
    table(
      ['output', 'SQNR', 'cosine', 'min cosine', 'max abs error', 'top-1 agreement'],
      c.outputNames.map((name, i) => [
        name,
        db(c.sqnrDb[i]!),
        c.cosine[i]!.toFixed(5),
        c.minCosine[i]!.toFixed(5),
        c.maxAbsError[i]!.toPrecision(3),
        Number.isNaN(c.top1Agreement[i]!) ? '—' : `${(c.top1Agreement[i]! * 100).toFixed(1)}%`,
      ]),
    ),
  );
  parts.push(`<p>Evaluated on ${e(c.samples)} sample(s)${c.synthetic ? ' — <strong>SYNTHETIC DATA</strong>' : ''}: ${e(c.evalSource)}</p>`);
  return parts.join('\n');
}

function bodyHtml(v: ResultView): string {
  const parts: string[] = [];
  for (const w of v.warnings) parts.push(`<p class="warning">⚠ ${e(w)}</p>`);
  if (v.comparison) parts.push(comparisonHtml(v.comparison));
  const q = v.quantize;
  if (q) {
    parts.push(`<h2>Quantization</h2><p>mode ${e(q.mode)}: ${e(q.quantizedNodes)} node(s) quantized, ${e(q.skipped.length)} kept in float, ${e(q.seconds.toFixed(1))} s</p>`);
    if (q.calibration) parts.push(`<p>calibration: ${e(q.calibration.samples)} sample(s), ${e(q.calibration.method)}, from ${e(q.calibration.source)}${q.calibration.synthetic ? ' — <strong>SYNTHETIC DATA</strong>' : ''}</p>`);
    for (const p of q.preprocessing) parts.push(`<p>preprocessing: ${e(p)}</p>`);
    if (q.skipped.length) parts.push('<h3>Kept in float</h3>', table(['node', 'op', 'reason'], q.skipped.map((s) => [s.name, s.opType, s.reason])));
  }
  const a = v.analysis;
  if (a) {
    parts.push('<h2>Layers</h2>');
    const bits = (x: number) => (Number.isNaN(x) ? '—' : x === 32 ? 'float' : String(x));
    parts.push(table(['layer', 'op', 'local SQNR', 'global SQNR', 'suggested bits'], a.layerNames.map((n, i) => [n, a.opTypes[i]!, db(a.localSqnrDb[i]!), db(a.globalSqnrDb[i]!), bits(a.suggestedBits[i]!)])));
    if (a.suggestion) {
      const s = a.suggestion;
      parts.push(`<p>suggestion (${e(s.mode)}): ${s.met ? 'meets' : 'does NOT meet'} the target — verified ${e(db(s.achievedSqnrDb))} (target ${e(s.targetSqnrDb)} dB), ${e(formatBytesShort(s.floatSizeBytes))} → ${e(formatBytesShort(s.sizeBytes))}</p>`);
    }
    if (a.recipeWritten) parts.push(`<p>recipe written: ${e(a.recipeWritten)}</p>`);
    if (a.findings.length) parts.push('<h2>Findings</h2>', table(['code', 'severity', 'layer', 'message'], a.findings.map((f) => [f.code, f.severity, f.node ?? '', f.message])));
  }
  return parts.join('\n');
}

/** A standalone HTML report of a job's result (an analysis: the analysis's own HTML report). */
export function reportHtml(result: JobResult, o: { model: string; title: string; finishedAt: Date }): string {
  if (result.kind === 'analyze') return formatReportHtml(result.report);
  const v = resultView(result);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${e(o.title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #1f1f1f; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
.warning { color: #9a5b00; font-weight: 600; }
</style>
</head>
<body>
<h1>${e(o.title)}</h1>
<p>model: ${e(o.model)}<br>finished: ${e(o.finishedAt.toISOString())}</p>
${bodyHtml(v)}
</body>
</html>
`;
}
