/**
 * The layer table's logic without the DOM: which rows pass the filter, in which order, which of
 * them a scrolled viewport shows, and how pushed patches land in the columns. Pure, so plain Node
 * tests cover it (test/unit/layer-table.test.ts).
 */
import type { LayerColumns, LayerPatch } from '../src/shared/protocol';

export type SortKey = 'index' | 'name' | 'opType' | 'weight' | 'activation' | 'sensitivity' | 'bits' | 'findings';
export const SORT_KEYS: readonly SortKey[] = ['index', 'name', 'opType', 'weight', 'activation', 'sensitivity', 'bits', 'findings'];

export interface TableQuery {
  sortKey: SortKey;
  /** 1 ascending, -1 descending. */
  sortDir: 1 | -1;
  /** Case-insensitive substring of the name or op type. */
  filter: string;
  onlyFindings: boolean;
}

export interface TableData {
  names: readonly string[];
  opTypes: readonly string[];
  columns: LayerColumns;
}

/** Largest magnitude of a range (NaN when unknown): how "wide" a weight or activation is. */
function magnitude(min: number, max: number): number {
  return Math.max(Math.abs(min), Math.abs(max));
}

/** The sort value of a numeric column for a row; NaN sorts last in both directions. */
function numericKey(data: TableData, key: SortKey, row: number): number {
  const c = data.columns;
  switch (key) {
    case 'weight':
      return magnitude(c.weightMin[row]!, c.weightMax[row]!);
    case 'activation':
      return magnitude(c.actMin[row]!, c.actMax[row]!);
    case 'sensitivity':
      return c.sensitivityDb[row]!;
    case 'bits':
      return c.bits[row] === 0 ? NaN : c.bits[row]!;
    case 'findings':
      // Worst severity first, then how many.
      return c.findings[row] === 0 ? NaN : c.severity[row]! * 65536 + c.findings[row]!;
    default:
      return row;
  }
}

function textKey(data: TableData, key: 'name' | 'opType', row: number): string {
  return key === 'name' ? data.names[row]! : data.opTypes[row]!;
}

/** Rows that pass the query's filter, sorted by its key (ties in node order). */
export function visibleRows(data: TableData, q: TableQuery): Uint32Array {
  const needle = q.filter.trim().toLowerCase();
  const rows: number[] = [];
  const n = data.names.length;
  for (let i = 0; i < n; i++) {
    if (q.onlyFindings && data.columns.findings[i] === 0) continue;
    if (needle && !data.names[i]!.toLowerCase().includes(needle) && !data.opTypes[i]!.toLowerCase().includes(needle)) continue;
    rows.push(i);
  }
  const dir = q.sortDir;
  if (q.sortKey === 'index') {
    if (dir === -1) rows.reverse();
  } else if (q.sortKey === 'name' || q.sortKey === 'opType') {
    const key = q.sortKey;
    rows.sort((a, b) => {
      const x = textKey(data, key, a);
      const y = textKey(data, key, b);
      return x < y ? -dir : x > y ? dir : a - b;
    });
  } else {
    const key = q.sortKey;
    const values = new Float64Array(n);
    for (const r of rows) values[r] = numericKey(data, key, r);
    rows.sort((a, b) => {
      const x = values[a]!;
      const y = values[b]!;
      const xn = Number.isNaN(x);
      const yn = Number.isNaN(y);
      if (xn || yn) return xn && yn ? a - b : xn ? 1 : -1;
      return x < y ? -dir : x > y ? dir : a - b;
    });
  }
  return Uint32Array.from(rows);
}

/** Whether a patch changes what a query's filter or order depends on. */
export function patchAffects(patch: LayerPatch, q: TableQuery): boolean {
  const v = patch.values;
  if (q.onlyFindings && v.findings) return true;
  switch (q.sortKey) {
    case 'weight':
      return !!(v.weightMin || v.weightMax);
    case 'activation':
      return !!(v.actMin || v.actMax);
    case 'sensitivity':
      return !!v.sensitivityDb;
    case 'bits':
      return !!v.bits;
    case 'findings':
      return !!(v.findings || v.severity);
    default:
      return false;
  }
}

/** Writes a patch's values into the columns; false when it belongs to another model load. */
export function applyPatch(columns: LayerColumns, generation: number, patch: LayerPatch): boolean {
  if (patch.generation !== generation) return false;
  const rows = patch.rows;
  const write = <T extends Float32Array | Uint8Array | Uint16Array>(target: T, values: T | undefined) => {
    if (!values) return;
    for (let i = 0; i < rows.length && i < values.length; i++) {
      const r = rows[i]!;
      if (r < target.length) target[r] = values[i]!;
    }
  };
  const v = patch.values;
  write(columns.weightMin, v.weightMin);
  write(columns.weightMax, v.weightMax);
  write(columns.actMin, v.actMin);
  write(columns.actMax, v.actMax);
  write(columns.sensitivityDb, v.sensitivityDb);
  write(columns.bits, v.bits);
  write(columns.findings, v.findings);
  write(columns.severity, v.severity);
  return true;
}

export interface RowWindow {
  /** First and one-past-last positions (in the visible order) to render. */
  start: number;
  end: number;
}

/** The rows a viewport shows, plus `overscan` rows on each side so fast scrolling shows no gaps. */
export function rowWindow(scrollTop: number, viewportHeight: number, rowHeight: number, count: number, overscan = 6): RowWindow {
  if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0 };
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const visible = Math.ceil(Math.max(0, viewportHeight) / rowHeight) + 1;
  const start = Math.max(0, Math.min(count - 1, first) - overscan);
  const end = Math.min(count, first + visible + overscan);
  return { start, end: Math.max(start, end) };
}

/** The scrollTop that brings a position into view (unchanged when it already is). */
export function scrollToShow(position: number, scrollTop: number, viewportHeight: number, rowHeight: number): number {
  const top = position * rowHeight;
  if (top < scrollTop) return top;
  if (top + rowHeight > scrollTop + viewportHeight) return Math.max(0, top + rowHeight - viewportHeight);
  return scrollTop;
}

const compact = (v: number) => {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(3);
};

/** "[-1.23, 4.56]", or "—" when unknown. */
export function formatRange(min: number, max: number): string {
  return Number.isNaN(min) || Number.isNaN(max) ? '—' : `[${compact(min)}, ${compact(max)}]`;
}

/** A range at full precision, for the cell's tooltip ('' when unknown). */
export function formatRangeFull(min: number, max: number): string {
  return Number.isNaN(min) || Number.isNaN(max) ? '' : `[${String(min)}, ${String(max)}]`;
}

export function formatDb(v: number | null | undefined): string {
  return v === null || v === undefined || Number.isNaN(v) ? '—' : `${v.toFixed(1)} dB`;
}

export function formatBits(bits: number): string {
  if (bits === 0) return '—';
  return bits >= 32 ? 'float' : `${bits}`;
}
