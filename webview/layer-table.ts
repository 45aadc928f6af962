/**
 * The virtualized layer table: a header of sort buttons and a scrolling viewport whose spacer is
 * as tall as all rows, with only the rows in view (plus a few) in the DOM, absolutely positioned
 * at a fixed row height. Rows are recycled as the window moves, so 10,000+ nodes scroll smoothly.
 * Every string goes in through textContent.
 */
import { el } from './dom';
import { formatBits, formatDb, formatRange, formatRangeFull, rowWindow, scrollToShow, SortKey, TableData, TableQuery, visibleRows } from './layer-view';

/** Row height in CSS pixels; must match `.lt-row` in media/editor.css. */
export const ROW_HEIGHT = 24;

interface ColumnSpec {
  key: SortKey;
  label: string;
  title: string;
  numeric?: boolean;
}

const COLUMNS: readonly ColumnSpec[] = [
  { key: 'name', label: 'Name', title: 'Node name' },
  { key: 'opType', label: 'Op', title: 'Operator type' },
  { key: 'weight', label: 'Weight range', title: 'Min and max of the weight (sorts by the largest magnitude)', numeric: true },
  { key: 'activation', label: 'Activation range', title: 'Min and max of the input activation during calibration', numeric: true },
  { key: 'sensitivity', label: 'Sensitivity', title: 'SQNR with this layer quantized to int8: lower is more sensitive', numeric: true },
  { key: 'bits', label: 'Bits', title: 'Suggested bit width', numeric: true },
  { key: 'findings', label: 'Findings', title: 'Findings about this node (worst severity first)', numeric: true },
];

const SEVERITY_CLASS = ['', 'sev-info', 'sev-warning', 'sev-error'];
const SEVERITY_NAME = ['', 'info', 'warning', 'error'];

export interface LayerTableEvents {
  select(row: number): void;
  sort(key: SortKey): void;
  scroll(scrollTop: number): void;
}

export class LayerTableView {
  readonly element: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly headerButtons = new Map<SortKey, HTMLElement>();
  /** Rendered row elements, by visible position. */
  private readonly pool: HTMLElement[] = [];
  private data: TableData | undefined;
  private order: Uint32Array = new Uint32Array(0);
  private selected: number | undefined;
  private frame = 0;

  constructor(private readonly events: LayerTableEvents) {
    const header = el(
      'div',
      { className: 'lt-header', attrs: { role: 'row' } },
      COLUMNS.map((c) => {
        const b = el('div', { className: `lt-cell lt-col-${c.key}${c.numeric ? ' num' : ''}`, attrs: { role: 'columnheader', tabindex: 0, title: c.title, 'data-sort': c.key } }, [
          el('span', { text: c.label }),
          el('span', { className: 'lt-sort-mark', attrs: { 'aria-hidden': 'true' } }),
        ]);
        b.addEventListener('click', () => events.sort(c.key));
        b.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' || e.key === ' ') {
            e.preventDefault();
            events.sort(c.key);
          }
        });
        this.headerButtons.set(c.key, b);
        return b;
      }),
    );
    this.spacer = el('div', { className: 'lt-spacer', attrs: { role: 'rowgroup' } });
    this.viewport = el('div', { className: 'lt-viewport', attrs: { tabindex: 0, 'aria-label': 'Layers' } }, [this.spacer]);
    this.element = el('div', { className: 'layer-table', attrs: { role: 'grid', 'aria-rowcount': 0 } }, [header, this.viewport]);
    this.viewport.addEventListener('scroll', () => {
      this.schedule();
      events.scroll(this.viewport.scrollTop);
    }, { passive: true });
    this.spacer.addEventListener('click', (e) => {
      const row = (e.target as Element | null)?.closest<HTMLElement>('.lt-row');
      const index = row ? Number(row.dataset.row) : NaN;
      if (Number.isInteger(index)) events.select(index);
    });
    this.viewport.addEventListener('keydown', (e) => this.onKey(e));
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
  }

  /** New data or query: recomputes the visible order and redraws. */
  setData(data: TableData, query: TableQuery): void {
    this.data = data;
    this.order = visibleRows(data, query);
    this.element.setAttribute('aria-rowcount', String(this.order.length + 1));
    this.spacer.style.height = `${this.order.length * ROW_HEIGHT}px`;
    for (const c of COLUMNS) {
      const b = this.headerButtons.get(c.key)!;
      const active = query.sortKey === c.key;
      b.setAttribute('aria-sort', active ? (query.sortDir === 1 ? 'ascending' : 'descending') : 'none');
      b.querySelector('.lt-sort-mark')!.textContent = active ? (query.sortDir === 1 ? '▲' : '▼') : '';
    }
    this.renderNow();
  }

  /** Values changed but not the order: redraws the rows in view. */
  refresh(): void {
    this.schedule();
  }

  /** Rows shown after filtering. */
  get rowCount(): number {
    return this.order.length;
  }

  setSelected(row: number | undefined): void {
    this.selected = row;
    this.schedule();
  }

  /** Scrolls so that a node's row is in view; false when the filter hides it. */
  reveal(row: number): boolean {
    const position = this.order.indexOf(row);
    if (position < 0) return false;
    this.viewport.scrollTop = scrollToShow(position, this.viewport.scrollTop, this.viewport.clientHeight, ROW_HEIGHT);
    this.renderNow();
    return true;
  }

  /** Scrolls the page (not only the viewport) so that a rendered row is on screen. */
  scrollRowIntoPage(row: number): void {
    const element = this.pool.find((r) => r.dataset.row === String(row));
    element?.scrollIntoView({ block: 'nearest' });
  }

  get scrollTop(): number {
    return this.viewport.scrollTop;
  }

  set scrollTop(v: number) {
    this.viewport.scrollTop = v;
    this.renderNow();
  }

  focus(): void {
    this.viewport.focus();
  }

  private onKey(e: KeyboardEvent): void {
    if (this.order.length === 0) return;
    const page = Math.max(1, Math.floor(this.viewport.clientHeight / ROW_HEIGHT) - 1);
    const current = this.selected === undefined ? -1 : this.order.indexOf(this.selected);
    const moves: Record<string, number> = { ArrowDown: current + 1, ArrowUp: current - 1, PageDown: current + page, PageUp: current - page, Home: 0, End: this.order.length - 1 };
    const target = moves[e.key];
    if (target === undefined) return;
    e.preventDefault();
    const position = Math.max(0, Math.min(this.order.length - 1, target));
    this.events.select(this.order[position]!);
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.renderNow();
    });
  }

  private renderNow(): void {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    const data = this.data;
    if (!data) return;
    const { start, end } = rowWindow(this.viewport.scrollTop, this.viewport.clientHeight || 400, ROW_HEIGHT, this.order.length);
    const needed = end - start;
    while (this.pool.length < needed) this.pool.push(this.makeRow());
    while (this.pool.length > needed) this.pool.pop()!.remove();
    for (let i = 0; i < needed; i++) this.fillRow(this.pool[i]!, start + i, data);
  }

  private makeRow(): HTMLElement {
    const row = el(
      'div',
      { className: 'lt-row', attrs: { role: 'row' } },
      COLUMNS.map((c) => el('div', { className: `lt-cell lt-col-${c.key}${c.numeric ? ' num' : ''}`, attrs: { role: 'gridcell' } })),
    );
    this.spacer.append(row);
    return row;
  }

  private fillRow(row: HTMLElement, position: number, data: TableData): void {
    const r = this.order[position]!;
    const c = data.columns;
    row.dataset.row = String(r);
    row.style.transform = `translateY(${position * ROW_HEIGHT}px)`;
    row.setAttribute('aria-rowindex', String(position + 2));
    const selected = r === this.selected;
    row.classList.toggle('selected', selected);
    row.setAttribute('aria-selected', String(selected));
    const cells = row.children;
    const name = data.names[r]!;
    setText(cells[0]!, name, name);
    setText(cells[1]!, data.opTypes[r]!);
    // Ranges are shortened to fit the column; the tooltip has every digit.
    setText(cells[2]!, formatRange(c.weightMin[r]!, c.weightMax[r]!), formatRangeFull(c.weightMin[r]!, c.weightMax[r]!));
    setText(cells[3]!, formatRange(c.actMin[r]!, c.actMax[r]!), formatRangeFull(c.actMin[r]!, c.actMax[r]!));
    setText(cells[4]!, formatDb(c.sensitivityDb[r]!));
    setText(cells[5]!, formatBits(c.bits[r]!));
    const n = c.findings[r]!;
    const sev = c.severity[r]!;
    const cell = cells[6]!;
    cell.className = `lt-cell lt-col-findings num ${SEVERITY_CLASS[sev] ?? ''}`;
    setText(cell, n === 0 ? '' : `${n} ${SEVERITY_NAME[sev] ?? ''}`);
  }
}

/** Sets a cell's text and, when given, its tooltip ('' removes it: recycled rows keep no stale one). */
function setText(cell: Element, text: string, title?: string): void {
  if (cell.textContent !== text) cell.textContent = text;
  if (title === undefined) return;
  if (title === '') cell.removeAttribute('title');
  else if (cell.getAttribute('title') !== title) cell.setAttribute('title', title);
}
