/**
 * The analysis report as one self-contained HTML page (`onnx-quant analyze --html FILE`): the
 * layer table, the suggestion and the findings, with no script and no remote content.
 *
 * Every string in a report can come from the model file (node, tensor and op names, the file
 * name, messages that quote them), so nothing is interpolated raw: the `html` template tag escapes
 * every value unless it is markup this module built itself (`Markup`). Escaping covers the five
 * HTML-significant characters (so values are safe in text and in quoted attributes), and control
 * and bidirectional-override characters are shown as visible code points, so a name cannot
 * reorder the text around it (a "Trojan Source" spoof) or hide itself.
 */
import { formatBytes } from '../onnx/summary';
import { showInvisible, type AnalysisReport } from './report';

/** Markup built by this module: the only thing `html` inserts unescaped. */
class Markup {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Value = string | number | boolean | null | undefined | Markup | readonly Value[];

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for HTML text and quoted attribute values. */
export function escapeHtml(s: string): string {
  return showInvisible(s).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

function render(v: Value): string {
  if (v instanceof Markup) return v.text;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v === null || v === undefined || v === false) return '';
  return escapeHtml(String(v));
}

/** Template tag: literal parts are markup, every interpolated value is escaped. */
function html(parts: TemplateStringsArray, ...values: Value[]): Markup {
  let out = parts[0]!;
  values.forEach((v, i) => (out += render(v) + parts[i + 1]!));
  return new Markup(out);
}

function db(x: number | null | undefined): string {
  if (x === null || x === undefined) return '—';
  if (x === Infinity) return '∞';
  if (Number.isNaN(x)) return 'NaN';
  return x.toFixed(1);
}

const STYLE = `body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
td.n{text-align:right}.error{color:#b00}.warning{color:#a60}.info{color:#06c}
code{overflow-wrap:anywhere}`;

export function formatReportHtml(r: AnalysisReport): string {
  const c = r.data.calibration;
  const e = r.data.evaluation;
  const s = r.suggestion;
  const layers = r.layers.map(
    (l) => html`<tr><td><code>${l.name}</code></td><td>${l.opType}</td><td class="n">${db(l.weight?.sqnrDb.int8)}</td><td class="n">${db(l.weight?.sqnrDb.int8PerChannel)}</td><td class="n">${db(l.weight?.sqnrDb.int4)}</td><td class="n">${db(l.sensitivity.localSqnrDb)}</td><td class="n">${db(l.sensitivity.globalSqnrDb)}</td><td class="n">${l.sensitivity.rank ?? '—'}</td><td class="n">${l.suggestedBits ?? '—'}</td><td>${l.reason}</td></tr>\n`,
  );
  const findings = r.findings.map(
    (f) => html`<li class="${f.severity}" title="${f.node ?? ''}"><b>${f.code}</b> ${f.severity}${f.node ? html` [<code>${f.node}</code>]` : ''}: ${f.message}<br>→ ${f.suggestion}</li>\n`,
  );
  const page = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>onnx-quant analysis: ${r.model}</title>
<style>${new Markup(STYLE)}</style>
</head>
<body>
<h1>Analysis of <code>${r.model}</code></h1>
<p>${formatBytes(r.fileBytes)}, opset ${r.opset ?? '?'}, ${r.layers.length} layer(s).
${c ? html`Calibration: ${c.samples} sample(s)${c.synthetic ? ' — SYNTHETIC DATA' : ''} (${c.source}).` : 'No calibration data: weights only.'}
${e ? html`Evaluation: ${e.samples} sample(s)${e.synthetic ? ' — SYNTHETIC DATA' : ''} (${e.source}).` : ''}</p>
<h2>Layers</h2>
<table>
<tr><th>layer</th><th>op</th><th>W int8 dB</th><th>W per-channel dB</th><th>W int4 dB</th><th>local dB</th><th>global dB</th><th>rank</th><th>bits</th><th>reason</th></tr>
${layers}</table>
${s ? html`<h2>Suggestion (${s.mode})</h2>
<p>${s.met ? 'Meets' : 'Does NOT meet'} the goal: verified SQNR ${db(s.achievedSqnrDb)} dB (target ${s.targetSqnrDb} dB), size ${formatBytes(s.floatSizeBytes)} → ${formatBytes(s.sizeBytes)}.</p>
<ul>${s.notes.map((n) => html`<li>${n}</li>`)}</ul>` : ''}
<h2>Findings (${r.findings.length})</h2>
<ul>
${findings}</ul>
${r.notes.length ? html`<h2>Notes</h2><ul>${r.notes.map((n) => html`<li>${n}</li>`)}</ul>` : ''}
</body>
</html>
`;
  return page.text;
}
