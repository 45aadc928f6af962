/**
 * The "Layers" part of the model editor: toolbar (filter, only-with-findings, analysis progress
 * and actions), the virtualized table and the selected layer's details. Keeps its view state
 * (selection, sort, filter, scroll) in the object the caller persists with vscode.setState.
 */
import type { AnalysisStatus, LayerPatch, LayerTable } from '../src/shared/protocol';
import { el, replaceChildren } from './dom';
import { formatCount } from './format';
import { renderLayerDetails } from './layer-details';
import { LayerTableView } from './layer-table';
import { applyPatch, patchAffects, SORT_KEYS, SortKey, TableQuery } from './layer-view';
import type { RpcClient } from './rpc';

export interface LayersViewState {
  selected: string | null;
  sortKey: SortKey;
  sortDir: 1 | -1;
  filter: string;
  onlyFindings: boolean;
  scrollTop: number;
}

export function defaultLayersState(): LayersViewState {
  return { selected: null, sortKey: 'index', sortDir: 1, filter: '', onlyFindings: false, scrollTop: 0 };
}

/** A saved state checked field by field (it comes back from vscode.getState as plain data). */
export function restoreLayersState(saved: unknown): LayersViewState {
  const s = defaultLayersState();
  if (typeof saved !== 'object' || saved === null) return s;
  const v = saved as Record<string, unknown>;
  if (typeof v.selected === 'string') s.selected = v.selected;
  if (typeof v.sortKey === 'string' && (SORT_KEYS as readonly string[]).includes(v.sortKey)) s.sortKey = v.sortKey as SortKey;
  if (v.sortDir === -1) s.sortDir = -1;
  if (typeof v.filter === 'string') s.filter = v.filter.slice(0, 256);
  if (v.onlyFindings === true) s.onlyFindings = true;
  if (typeof v.scrollTop === 'number' && Number.isFinite(v.scrollTop) && v.scrollTop >= 0) s.scrollTop = v.scrollTop;
  return s;
}

const PHASE_TEXT: Record<string, string> = {
  load: 'Loading the model',
  weights: 'Weight statistics',
  calibrate: 'Calibrating',
  activations: 'Activation statistics and sensitivity',
  global: 'Global sensitivity',
  suggest: 'Suggesting bit widths (verifying by quantizing)',
  findings: 'Findings',
};

export class LayersPanel {
  readonly element: HTMLElement;
  private readonly table: LayerTableView;
  private readonly details: HTMLElement;
  private readonly statusLine: HTMLElement;
  private readonly countLine: HTMLElement;
  private readonly cancelButton: HTMLElement;
  private data: LayerTable | undefined;
  private detailsRequest = 0;
  private patchTimer: ReturnType<typeof setTimeout> | undefined;
  private pendingReveal: string | undefined;
  private restoredScroll = false;

  constructor(
    private readonly state: LayersViewState,
    private readonly rpc: RpcClient,
    private readonly save: () => void,
  ) {
    this.table = new LayerTableView({
      select: (row) => this.select(row),
      sort: (key) => this.sort(key),
      scroll: (top) => {
        this.state.scrollTop = top;
        this.saveSoon();
      },
    });
    const filter = el('vscode-textfield', { className: 'lt-filter', attrs: { placeholder: 'Filter by name or op type', 'aria-label': 'Filter layers', value: state.filter } });
    filter.value = state.filter;
    filter.addEventListener('input', () => {
      this.state.filter = filter.value.slice(0, 256);
      this.requery();
    });
    const only = el('vscode-checkbox', { className: 'lt-only-findings', attrs: { label: 'Only with findings', checked: state.onlyFindings } });
    only.checked = state.onlyFindings;
    only.addEventListener('change', () => {
      this.state.onlyFindings = only.checked;
      this.requery();
    });
    const rerun = el('vscode-button', { className: 'lt-rerun', text: 'Re-run (synthetic)', attrs: { secondary: true, title: 'Analyze again with synthetic inputs' } });
    rerun.addEventListener('click', () => void this.rpc.request('runAnalysis', { data: 'synthetic' }).catch(() => undefined));
    const calib = el('vscode-button', { className: 'lt-calib', text: 'Use calibration data…', attrs: { secondary: true, title: 'Analyze with a folder of real inputs (.npy, .npz, images, ONNX test data)' } });
    calib.addEventListener('click', () => void this.rpc.request('runAnalysis', { data: 'folder' }).catch(() => undefined));
    this.cancelButton = el('vscode-button', { className: 'lt-cancel', text: 'Cancel', attrs: { secondary: true, hidden: true } });
    this.cancelButton.addEventListener('click', () => void this.rpc.request('cancelAnalysis').catch(() => undefined));
    this.statusLine = el('div', { className: 'lt-status', attrs: { role: 'status', 'aria-live': 'polite' } });
    this.countLine = el('span', { className: 'lt-count muted' });
    this.details = el('aside', { className: 'layer-details', attrs: { 'aria-label': 'Layer details' } }, [el('p', { className: 'muted', text: 'Select a layer to see its histograms and findings.' })]);
    this.element = el('section', { className: 'layers', attrs: { 'aria-busy': 'true' } }, [
      el('h2', { className: 'layers-heading', text: 'Layers' }),
      el('div', { className: 'lt-toolbar' }, [filter, only, this.countLine, el('span', { className: 'lt-spring' }), rerun, calib, this.cancelButton]),
      this.statusLine,
      el('div', { className: 'layers-body' }, [this.table.element, this.details]),
    ]);
  }

  private get query(): TableQuery {
    return { sortKey: this.state.sortKey, sortDir: this.state.sortDir, filter: this.state.filter, onlyFindings: this.state.onlyFindings };
  }

  /** A whole table (first load, or the file changed on disk): selection and view are kept by name. */
  setTable(table: LayerTable): void {
    this.data = table;
    this.element.setAttribute('aria-busy', 'false');
    this.table.setData(table, this.query);
    this.updateCount();
    this.setStatus(table.status);
    if (!this.restoredScroll) {
      this.restoredScroll = true;
      this.table.scrollTop = this.state.scrollTop;
    }
    const reveal = this.pendingReveal;
    this.pendingReveal = undefined;
    if (reveal !== undefined) {
      this.reveal(reveal);
      return;
    }
    // The saved selection keeps the saved scroll position (no jump on restore).
    const row = this.state.selected === null ? -1 : table.names.indexOf(this.state.selected);
    if (row >= 0) this.select(row, false);
    else this.table.setSelected(undefined);
  }

  applyPatch(patch: LayerPatch): void {
    const data = this.data;
    if (!data || !applyPatch(data.columns, data.generation, patch)) return;
    if (patchAffects(patch, this.query)) {
      // Re-sorting on every batch would make rows jump under the pointer: at most twice a second.
      if (this.patchTimer === undefined) {
        this.patchTimer = setTimeout(() => {
          this.patchTimer = undefined;
          if (this.data) this.table.setData(this.data, this.query);
          this.updateCount();
        }, 500);
      }
    } else {
      this.table.refresh();
    }
  }

  setStatus(status: AnalysisStatus): void {
    if (this.data && status.generation !== this.data.generation) return;
    const wasRunning = this.element.classList.contains('running');
    const running = status.state === 'running';
    this.element.classList.toggle('running', running);
    this.cancelButton.toggleAttribute('hidden', !running);
    const parts: (Node | string)[] = [];
    if (running) {
      parts.push(el('vscode-progress-ring', { className: 'lt-ring', attrs: { 'aria-label': 'Analysis running' } }));
      const phase = PHASE_TEXT[status.phase] ?? status.phase;
      parts.push(el('span', { text: `${phase}${status.total > 0 ? ` ${formatCount(status.done)}/${formatCount(status.total)}` : ''}… (${status.data})` }));
    } else if (status.state === 'failed') {
      parts.push(el('span', { className: 'lt-error', attrs: { role: 'alert' }, text: `Analysis failed: ${status.message ?? 'unknown error'}` }));
    } else if (status.state === 'cancelled') {
      parts.push(el('span', { className: 'muted', text: 'Analysis cancelled: activation ranges, sensitivity and suggested bits are incomplete.' }));
    } else if (status.state === 'done') {
      const model = status.modelFindings.length;
      parts.push(el('span', { className: 'muted', text: `Analyzed with ${status.data}.${model ? ` ${model} finding(s) about the whole model: ${status.modelFindings.map((f) => f.code).join(', ')}.` : ''}` }));
    }
    this.statusLine.setAttribute('data-state', status.state);
    replaceChildren(this.statusLine, parts);
    // The final report fills in what the details show (suggestion, findings): refresh them.
    if (wasRunning && !running && this.state.selected !== null) void this.loadDetails(this.state.selected);
  }

  /** Selects a layer by name (command onnxQuant.revealLayer), clearing a filter that hides it. */
  reveal(name: string): void {
    const data = this.data;
    if (!data) {
      this.pendingReveal = name;
      return;
    }
    const row = data.names.indexOf(name);
    if (row < 0) return;
    if (!this.table.reveal(row)) {
      this.state.filter = '';
      this.state.onlyFindings = false;
      const filter = this.element.querySelector('vscode-textfield');
      if (filter) filter.value = '';
      const only = this.element.querySelector('vscode-checkbox');
      if (only) only.checked = false;
      this.table.setData(data, this.query);
      this.updateCount();
    }
    this.select(row, true);
    // The row itself, not just the section: in a short editor (Problems panel open) the table's
    // viewport may reach below the window.
    this.table.scrollRowIntoPage(row);
  }

  private select(row: number, scroll = true): void {
    const data = this.data;
    if (!data) return;
    const name = data.names[row];
    if (name === undefined) return;
    this.state.selected = name;
    this.save();
    this.table.setSelected(row);
    if (scroll) this.table.reveal(row);
    void this.loadDetails(name);
  }

  private async loadDetails(name: string): Promise<void> {
    const id = ++this.detailsRequest;
    try {
      const d = await this.rpc.request('getLayerDetails', { name });
      if (id !== this.detailsRequest) return;
      replaceChildren(this.details, d ? renderLayerDetails(d) : [el('p', { className: 'muted', text: 'This layer is no longer in the model.' })]);
    } catch (err) {
      if (id !== this.detailsRequest) return;
      replaceChildren(this.details, [el('p', { className: 'lt-error', text: `Cannot show ${name}: ${err instanceof Error ? err.message : String(err)}` })]);
    }
  }

  private sort(key: SortKey): void {
    if (this.state.sortKey === key) this.state.sortDir = this.state.sortDir === 1 ? -1 : 1;
    else {
      this.state.sortKey = key;
      // Sensitivity: most sensitive (lowest SQNR) first; other numbers: largest first.
      this.state.sortDir = key === 'name' || key === 'opType' || key === 'index' || key === 'sensitivity' ? 1 : -1;
    }
    this.requery();
  }

  private requery(): void {
    this.save();
    if (!this.data) return;
    this.table.setData(this.data, this.query);
    this.updateCount();
  }

  private updateCount(): void {
    const total = this.data?.names.length ?? 0;
    const shown = this.table.rowCount;
    this.countLine.textContent = shown === total ? `${formatCount(total)} nodes` : `${formatCount(shown)} of ${formatCount(total)} nodes`;
  }

  private saveTimer: ReturnType<typeof setTimeout> | undefined;
  private saveSoon(): void {
    if (this.saveTimer !== undefined) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.save();
    }, 200);
  }
}
