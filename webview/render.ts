/**
 * Renders the model summary and the error panel with @vscode-elements components. Every string
 * from the model (names, producer, domains, dims, the file path) reaches the DOM through
 * textContent or setAttribute (see dom.ts), never as HTML.
 */
import type { IoSummary, ModelSummary } from '../src/onnx/summary';
import { Child, el } from './dom';
import { baseName, domainName, formatBytes, formatCount, formatPercent, formatShape } from './format';

/** Rows shown per table; the rest are summarized in a note so huge graphs stay responsive. */
export const MAX_TABLE_ROWS = 1000;

/** Which sections are open, kept in the webview state by the caller. */
export interface SectionState {
  isOpen(id: string): boolean;
  setOpen(id: string, open: boolean): void;
}

function section(id: string, heading: string, description: string, ui: SectionState, content: readonly Child[]): HTMLElement {
  const c = el('vscode-collapsible', { className: 'section', attrs: { 'data-section': id, open: ui.isOpen(id) } }, content);
  // Properties, not attributes: lit renders them as text.
  c.heading = heading;
  c.description = description;
  c.addEventListener('vsc-collapsible-toggle', (e) => ui.setOpen(id, e.detail.open));
  return c;
}

interface Column {
  label: string;
  width: string;
  numeric?: boolean;
}

type Cell = string | number | { node: Node; title?: string };

/** A vscode-table with text cells; long cell text is also in the cell's tooltip. */
function table(label: string, columns: readonly Column[], rows: readonly (readonly Cell[])[]): HTMLElement[] {
  const shown = rows.slice(0, MAX_TABLE_ROWS);
  const t = el('vscode-table', { className: 'data-table', attrs: { zebra: true, 'bordered-rows': true, resizable: true, 'aria-label': label } }, [
    el(
      'vscode-table-header',
      { attrs: { slot: 'header' } },
      columns.map((c) => el('vscode-table-header-cell', { className: c.numeric ? 'num' : undefined, text: c.label })),
    ),
    el(
      'vscode-table-body',
      { attrs: { slot: 'body' } },
      shown.map((row) =>
        el(
          'vscode-table-row',
          {},
          row.map((cell, i) => {
            const numeric = columns[i]?.numeric === true;
            if (typeof cell === 'object') {
              return el('vscode-table-cell', { className: numeric ? 'num' : undefined, attrs: { title: cell.title } }, [cell.node]);
            }
            const text = typeof cell === 'number' ? formatCount(cell) : cell;
            return el('vscode-table-cell', { className: numeric ? 'num' : undefined, text, attrs: { title: text.length > 24 ? text : undefined } });
          }),
        ),
      ),
    ),
  ]);
  t.columns = columns.map((c) => c.width);
  const out: HTMLElement[] = [t];
  if (rows.length > shown.length) {
    out.push(el('p', { className: 'note', text: `Showing the first ${formatCount(shown.length)} of ${formatCount(rows.length)} rows.` }));
  }
  return out;
}

/** A label/value grid (a <dl>). */
function facts(items: readonly (readonly [string, Child | readonly Child[]])[]): HTMLElement {
  const dl = el('dl', { className: 'facts' });
  for (const [label, value] of items) {
    dl.append(el('dt', { text: label }), el('dd', {}, Array.isArray(value) ? (value as readonly Child[]) : [value as Child]));
  }
  return dl;
}

function badge(text: string, title?: string): HTMLElement {
  return el('vscode-badge', { attrs: { variant: 'default', title }, text });
}

function muted(text: string): HTMLElement {
  return el('span', { className: 'muted', text });
}

function ioSection(id: string, heading: string, list: readonly IoSummary[], ui: SectionState): HTMLElement {
  const content =
    list.length === 0
      ? [el('p', { className: 'muted', text: `No ${heading.toLowerCase()}.` })]
      : table(heading, [
          { label: 'Name', width: '45%' },
          { label: 'Type', width: '20%' },
          { label: 'Shape', width: '35%' },
        ], list.map((v) => [v.name, v.type, formatShape(v.shape)]));
  return section(id, heading, `${list.length}`, ui, content);
}

function opsetsValue(opsets: Record<string, number>): Child[] {
  const entries = Object.entries(opsets).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b)));
  if (entries.length === 0) return [muted('none')];
  return entries.map(([domain, version]) => el('span', { className: 'opset', text: `${domainName(domain)} ${version}` }));
}

function overview(s: ModelSummary, ui: SectionState): HTMLElement {
  const nodes = [
    `${formatCount(s.nodes)} in the main graph`,
    `${formatCount(s.nodesTotal)} in all`,
    `${formatCount(s.subgraphs)} subgraph${s.subgraphs === 1 ? '' : 's'}`,
  ];
  if (s.functions) nodes.push(`${formatCount(s.functions)} function${s.functions === 1 ? '' : 's'}`);
  return section('overview', 'Model', '', ui, [
    facts([
      ['File', el('span', { className: 'path', text: s.file })],
      ['Size', el('span', { text: formatBytes(s.fileBytes), attrs: { title: `${formatCount(s.fileBytes)} bytes` } })],
      ['IR version', String(s.irVersion)],
      ['Opsets', opsetsValue(s.opsets)],
      ['Producer', s.producer ? s.producer : muted('not recorded')],
      ['Graph', s.graphName ? s.graphName : muted('unnamed')],
      ['Nodes', nodes.join(', ')],
    ]),
  ]);
}

function weightsSection(s: ModelSummary, ui: SectionState): HTMLElement {
  const w = s.weights;
  const loc = w.byLocation;
  return section('weights', 'Weights', `${formatCount(w.count)} tensors`, ui, [
    facts([
      ['Tensors', formatCount(w.count)],
      ['Elements', formatCount(w.elements)],
      ['Bytes', el('span', { text: formatBytes(w.bytes), attrs: { title: `${formatCount(w.bytes)} bytes` } })],
      [
        'By location',
        [
          badge(`initializers ${formatCount(loc.initializer)}`, 'Graph initializers stored in the model file'),
          badge(`Constant nodes ${formatCount(loc.constant)}`, 'Values of Constant nodes stored in the model file'),
          badge(`external ${formatCount(loc.external)}`, 'Tensors whose data lives in external data files'),
        ],
      ],
    ]),
  ]);
}

/** Op types by count, most frequent first, ties by name. */
export function sortedOpTypes(opTypes: Record<string, number>): [string, number][] {
  return Object.entries(opTypes).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function operatorsSection(s: ModelSummary, ui: SectionState): HTMLElement {
  const ops = sortedOpTypes(s.opTypes);
  const total = ops.reduce((sum, [, n]) => sum + n, 0);
  const max = ops.length > 0 ? ops[0]![1] : 0;
  const rows = ops.map(([op, n]): Cell[] => {
    const bar = el('span', { className: 'bar' });
    bar.style.width = `${max > 0 ? (n / max) * 100 : 0}%`;
    const share = el('span', { className: 'share' }, [el('span', { className: 'bar-track' }, [bar]), el('span', { className: 'pct', text: formatPercent(n, total) })]);
    return [op, n, { node: share, title: `${formatCount(n)} of ${formatCount(total)} nodes` }];
  });
  const content =
    ops.length === 0
      ? [el('p', { className: 'muted', text: 'No nodes.' })]
      : table('Operator types', [
          { label: 'Op type', width: '40%' },
          { label: 'Count', width: '15%', numeric: true },
          { label: 'Share of nodes', width: '45%' },
        ], rows);
  return section('operators', 'Operators', `${ops.length} types, ${formatCount(total)} nodes`, ui, content);
}

/** The whole summary view. */
export function renderSummary(s: ModelSummary, ui: SectionState): HTMLElement[] {
  const header = el('header', { className: 'model-header' }, [
    el('h1', { text: baseName(s.file) }),
    el('div', { className: 'badges' }, [
      badge(formatBytes(s.fileBytes), `${formatCount(s.fileBytes)} bytes`),
      badge(`IR ${s.irVersion}`),
      badge(`opset ${s.opsets[''] ?? '?'}`, 'Default (ai.onnx) opset'),
      badge(`${formatCount(s.nodesTotal)} nodes`),
      badge(`${formatCount(s.weights.count)} weights`),
    ]),
  ]);
  return [
    header,
    overview(s, ui),
    ioSection('inputs', 'Inputs', s.inputs, ui),
    ioSection('outputs', 'Outputs', s.outputs, ui),
    operatorsSection(s, ui),
    weightsSection(s, ui),
  ];
}

/** The panel shown instead of the summary when the model cannot be loaded. */
export function renderError(file: string | undefined, message: string): HTMLElement[] {
  return [
    el('section', { className: 'error-panel', attrs: { role: 'alert' } }, [
      el('h1', { text: file ? `Cannot open ${baseName(file)}` : 'Cannot open this model' }),
      file ? el('p', { className: 'path', text: file }) : null,
      el('pre', { className: 'message', text: message }),
      el('p', {
        className: 'muted',
        text: 'The file is not a valid ONNX model or could not be read. This view reloads when the file changes on disk.',
      }),
    ]),
  ];
}

export function renderLoading(): HTMLElement[] {
  return [el('p', { className: 'status', text: 'Loading model…' })];
}
