/**
 * Rendering of the results panel: the job's phases with counts while it runs, then the
 * float-vs-quantized comparison, what stayed in float and why, the analysis, and the warnings.
 * Everything is built with textContent (webview/dom.ts): model strings are never parsed as HTML.
 */
import { el, type Child } from '../dom';
import type { AnalysisView, ComparisonView, JobHeader, QuantizeSummaryView, ResultsPhase, ResultView } from '../../src/shared/results-protocol';
import { JOB_PHASES } from '../../src/shared/results-protocol';

export interface PhaseState {
  done: number;
  total: number;
  message?: string;
}

export interface PanelState {
  job: JobHeader | null;
  phases: Partial<Record<ResultsPhase, PhaseState>>;
  /** The phase reported last (earlier ones are finished). */
  current: ResultsPhase | null;
  end: { kind: 'result'; result: ResultView } | { kind: 'failed'; message: string } | { kind: 'cancelled' } | null;
}

export interface Actions {
  openModel: () => void;
  revealInExplorer: () => void;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

function db(x: number): string {
  if (x === Infinity) return '∞ (identical)';
  return Number.isFinite(x) ? `${x.toFixed(1)} dB` : '—';
}

function table(head: string[], rows: Child[][], className = ''): HTMLElement {
  return el('vscode-table', { className, attrs: { zebra: true, 'bordered-columns': true, 'resizable': true } }, [
    el('vscode-table-header', { attrs: { slot: 'header' } }, head.map((h) => el('vscode-table-header-cell', { text: h }))),
    el('vscode-table-body', { attrs: { slot: 'body' } }, rows.map((r) => el('vscode-table-row', {}, r.map((c) => el('vscode-table-cell', {}, [c]))))),
  ]);
}

function phasesView(s: PanelState): HTMLElement {
  const kind = s.job?.kind ?? 'quantize';
  const order = JOB_PHASES[kind];
  const currentIndex = s.current ? order.indexOf(s.current) : -1;
  const finished = s.end?.kind === 'result';
  return el(
    'ol',
    { className: 'phases' },
    order.map((phase, i) => {
      const p = s.phases[phase];
      let status: string;
      let cls: string;
      if (finished || i < currentIndex) {
        status = p && p.total > 1 ? `done (${p.total})` : p ? 'done' : 'skipped';
        cls = p ? 'done' : 'skipped';
      } else if (i === currentIndex && !s.end) {
        status = p && p.total > 1 ? `${p.done}/${p.total}` : 'running';
        cls = 'running';
      } else {
        status = s.end ? '—' : 'waiting';
        cls = 'waiting';
      }
      return el('li', { className: `phase ${cls}`, attrs: { 'data-phase': phase } }, [
        el('span', { className: 'phase-name', text: phase }),
        el('span', { className: 'phase-status', text: status }),
        cls === 'running' && p && p.total > 1 ? el('progress', { attrs: { max: p.total, value: p.done } }) : null,
      ]);
    }),
  );
}

function comparisonView(c: ComparisonView, actions: Actions, hasTarget: boolean): HTMLElement {
  const ratio = c.sizeAfter > 0 ? c.sizeBefore / c.sizeAfter : NaN;
  const rows: Child[][] = [['size', bytes(c.sizeBefore), bytes(c.sizeAfter), Number.isFinite(ratio) ? `${ratio.toFixed(2)}× smaller` : '—']];
  if (c.latencyFloatMs !== null && c.latencyQuantMs !== null) {
    rows.push(['median latency', `${c.latencyFloatMs.toFixed(2)} ms`, `${c.latencyQuantMs.toFixed(2)} ms`, `${(c.latencyQuantMs / c.latencyFloatMs).toFixed(2)}× the float time`]);
  }
  const outputs: Child[][] = c.outputNames.map((name, i) => [
    name,
    db(c.sqnrDb[i]!),
    c.cosine[i]!.toFixed(5),
    c.minCosine[i]!.toFixed(5),
    c.maxAbsError[i]!.toPrecision(3),
    Number.isNaN(c.top1Agreement[i]!) ? '—' : `${(c.top1Agreement[i]! * 100).toFixed(1)}%`,
  ]);
  return el('section', { className: 'comparison' }, [
    el('h2', { text: 'Float vs quantized' }),
    table(['', 'float', 'quantized', ''], rows, 'sizes'),
    table(['output', 'SQNR', 'cosine', 'min cosine', 'max abs error', 'top-1 agreement'], outputs, 'outputs'),
    el('p', { className: c.synthetic ? 'loud' : 'note', text: `Evaluated on ${c.samples} sample(s)${c.synthetic ? ' of SYNTHETIC DATA (random inputs)' : ''}: ${c.evalSource}` }),
    hasTarget
      ? el('div', { className: 'actions' }, [button('Open quantized model', actions.openModel, 'open-model'), button('Reveal in Explorer', actions.revealInExplorer, 'reveal', true)])
      : null,
  ]);
}

function button(label: string, onClick: () => void, id: string, secondary = false): HTMLElement {
  const b = el('vscode-button', { text: label, attrs: { id, secondary } });
  b.addEventListener('click', onClick);
  return b;
}

function quantizeView(q: QuantizeSummaryView): HTMLElement {
  const parts: Child[] = [el('h2', { text: 'Quantization' }), el('p', { text: `mode ${q.mode}: ${q.quantizedNodes} node(s) quantized, ${q.skipped.length} kept in float, ${q.seconds.toFixed(1)} s` })];
  if (q.calibration) {
    const c = q.calibration;
    parts.push(el('p', { className: c.synthetic ? 'loud' : '', text: `calibration: ${c.samples} sample(s), ${c.method}, ${c.seconds.toFixed(1)} s${c.synthetic ? ' — SYNTHETIC DATA' : ''}: ${c.source}` }));
  }
  for (const p of q.preprocessing) parts.push(el('p', { className: 'note', text: `preprocessing: ${p}` }));
  if (q.skipped.length) {
    parts.push(el('h3', { text: `Kept in float (${q.skipped.length})` }), table(['node', 'op', 'reason'], q.skipped.map((s) => [s.name, s.opType, s.reason]), 'skipped'));
  }
  return el('section', { className: 'quantize' }, parts);
}

function analysisView(a: AnalysisView): HTMLElement {
  const bits = (x: number) => (Number.isNaN(x) ? '—' : x === 32 ? 'float' : String(x));
  const parts: Child[] = [el('h2', { text: `Layers (${a.layerNames.length})` })];
  if (a.suggestion) {
    const s = a.suggestion;
    parts.push(el('p', { className: s.met ? '' : 'loud', text: `suggestion (${s.mode}): ${s.met ? 'meets' : 'does NOT meet'} the target — verified ${db(s.achievedSqnrDb)} (target ${s.targetSqnrDb} dB), ${bytes(s.floatSizeBytes)} → ${bytes(s.sizeBytes)}` }));
  }
  if (a.recipeWritten) parts.push(el('p', { text: `recipe written: ${a.recipeWritten}` }));
  parts.push(table(['layer', 'op', 'local SQNR', 'global SQNR', 'bits'], a.layerNames.map((n, i) => [n, a.opTypes[i]!, db(a.localSqnrDb[i]!), db(a.globalSqnrDb[i]!), bits(a.suggestedBits[i]!)]), 'layers'));
  if (a.findings.length) {
    parts.push(el('h3', { text: `Findings (${a.findings.length})` }), table(['code', 'severity', 'layer', 'message'], a.findings.map((f) => [f.code, f.severity, f.node ?? '', f.message]), 'findings'));
  }
  return el('section', { className: 'analysis' }, parts);
}

export function renderPanel(s: PanelState, actions: Actions): Child[] {
  if (!s.job) return [el('p', { className: 'status', text: 'Starting…' })];
  const out: Child[] = [
    el('header', {}, [
      el('h1', { text: s.job.title }),
      el('p', { className: 'path', text: s.job.model }),
      s.job.output ? el('p', { className: 'path', text: `→ ${s.job.output}` }) : null,
    ]),
    phasesView(s),
  ];
  const end = s.end;
  if (end?.kind === 'failed') out.push(el('p', { className: 'error', attrs: { role: 'alert' }, text: end.message }));
  if (end?.kind === 'cancelled') out.push(el('p', { className: 'loud', text: 'Cancelled: nothing was written.' }));
  if (end?.kind === 'result') {
    const r = end.result;
    for (const w of r.warnings) out.push(el('p', { className: 'loud warning', attrs: { role: 'note' }, text: `⚠ ${w}` }));
    if (r.comparison) out.push(comparisonView(r.comparison, actions, s.job.output !== undefined));
    if (r.quantize) out.push(quantizeView(r.quantize));
    if (r.analysis) out.push(analysisView(r.analysis));
  }
  return out;
}
