/**
 * The details of the selected layer: weight and activation histograms, per-channel weight ranges,
 * quantization error at 8 and 4 bits, sensitivity, suggested bits and findings. Names and messages
 * from the model go in through textContent (dom.ts).
 */
import type { ActivationDetails, LayerDetails } from '../src/shared/protocol';
import { chartCanvas, drawChannelRanges, drawHistogram } from './charts';
import { Child, el } from './dom';
import { formatCount } from './format';
import { formatBits, formatDb, formatRange } from './layer-view';

function facts(items: readonly (readonly [string, Child])[]): HTMLElement {
  const dl = el('dl', { className: 'facts' });
  for (const [label, value] of items) dl.append(el('dt', { text: label }), el('dd', {}, [value]));
  return dl;
}

function block(title: string, children: readonly Child[]): HTMLElement {
  return el('section', { className: 'ld-block' }, [el('h3', { text: title }), ...children]);
}

function num(v: number): string {
  return Number.isFinite(v) ? v.toPrecision(4) : String(v);
}

function activationBlock(role: string, a: ActivationDetails): HTMLElement {
  return block(`${role} activation "${a.tensor}"`, [
    facts([
      ['Range', formatRange(a.min, a.max)],
      ['p0.01 … p99.99', a.percentiles['p0.01'] !== undefined && a.percentiles['p99.99'] !== undefined ? formatRange(a.percentiles['p0.01'], a.percentiles['p99.99']) : '—'],
      ['Shape', a.dims ? `[${a.dims.join(', ')}]` : '?'],
      ['Dead channels', a.channels ? `${a.deadChannels} of ${a.channels}` : '—'],
    ]),
    chartCanvas(`${role} activation histogram`, (c, w) => drawHistogram(c, w, a.histogram)),
  ]);
}

/** Error of the layer at 8 and 4 bits: weight rounding (from the weights) and layer output (calibrated). */
function errorTable(d: LayerDetails): HTMLElement {
  const w = d.weight?.sqnrDb;
  const l = d.sensitivity.local;
  const rows: [string, string, string][] = [
    ['8-bit', w ? `${formatDb(w.int8PerChannel)} per channel, ${formatDb(w.int8)} per tensor` : '—', formatDb(l.int8)],
    ['4-bit', w ? formatDb(w.int4) : '—', formatDb(l.int4)],
    ['16-bit activations', '—', formatDb(l.int16)],
  ];
  const table = el('table', { className: 'ld-error' }, [
    el('thead', {}, [el('tr', {}, [el('th', { text: 'Precision' }), el('th', { text: 'Weight SQNR' }), el('th', { text: 'Layer output SQNR' })])]),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((t) => el('td', { text: t }))))),
  ]);
  return block('Quantization error (SQNR, higher is better)', [table]);
}

function findingsBlock(d: LayerDetails): HTMLElement {
  if (d.findings.length === 0) return block('Findings', [el('p', { className: 'muted', text: 'None.' })]);
  return block(`Findings (${d.findings.length})`, [
    el(
      'ul',
      { className: 'ld-findings' },
      d.findings.map((f) =>
        el('li', { className: `sev-${f.severity}` }, [
          el('span', { className: 'ld-code', text: `${f.code} ${f.severity}` }),
          el('span', { text: f.message }),
          el('span', { className: 'muted', text: `→ ${f.suggestion}` }),
        ]),
      ),
    ),
  ]);
}

export function renderLayerDetails(d: LayerDetails): HTMLElement[] {
  const out: HTMLElement[] = [
    el('h2', { className: 'ld-name', text: d.name, attrs: { title: d.name } }),
    facts([
      ['Op type', d.opType],
      ['Graph', d.graph || 'main'],
      ['Inputs', d.inputs.filter(Boolean).join(', ') || '—'],
      ['Outputs', d.outputs.filter(Boolean).join(', ') || '—'],
      ['Suggested bits', d.suggestedBits === null ? '—' : `${formatBits(d.suggestedBits)}${d.suggestion ? ` (${d.suggestion})` : ''}`],
      ['Why', d.reason || '—'],
      ['Sensitivity', `${formatDb(d.sensitivity.local.int8)} local${d.sensitivity.globalDb !== null ? `, ${formatDb(d.sensitivity.globalDb)} global` : ''}${d.sensitivity.rank !== null ? `, rank ${d.sensitivity.rank}` : ''}`],
    ]),
  ];
  const w = d.weight;
  if (w) {
    out.push(
      block(`Weight "${w.input}"`, [
        facts([
          ['Shape', `[${w.dims.join(', ')}] (${formatCount(w.elements)} values)`],
          ['Range', formatRange(w.min, w.max)],
          ['Mean ± std', `${num(w.mean)} ± ${num(w.std)}`],
          ['Zeros', formatCount(w.zeros)],
          ['Folded BatchNorm', w.foldedBatchNorm ?? '—'],
        ]),
        chartCanvas('weight histogram', (c, width) => drawHistogram(c, width, w.histogram)),
        el('h4', { text: `Per-channel ranges (axis ${w.perChannel.axis})` }),
        chartCanvas('per-channel weight ranges', (c, width) => drawChannelRanges(c, width, w.perChannel.min, w.perChannel.max)),
      ]),
    );
  } else {
    out.push(block('Weight', [el('p', { className: 'muted', text: 'No constant float weight: nothing to quantize in this node itself.' })]));
  }
  const a = d.activation;
  if (a?.input) out.push(activationBlock('Input', a.input));
  if (a?.output) out.push(activationBlock('Output', a.output));
  if (a?.note) out.push(el('p', { className: 'muted', text: a.note }));
  if (a?.synthetic) out.push(el('p', { className: 'note', text: 'Activations come from synthetic inputs: choose calibration data for real ranges.' }));
  out.push(errorTable(d), findingsBlock(d));
  return out;
}
