import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LayerColumns } from '../../src/shared/protocol';
import { applyPatch, formatBits, formatDb, formatRange, patchAffects, rowWindow, scrollToShow, TableData, TableQuery, visibleRows } from '../../webview/layer-view';

function columns(n: number): LayerColumns {
  return {
    weightMin: new Float32Array(n).fill(NaN),
    weightMax: new Float32Array(n).fill(NaN),
    actMin: new Float32Array(n).fill(NaN),
    actMax: new Float32Array(n).fill(NaN),
    sensitivityDb: new Float32Array(n).fill(NaN),
    bits: new Uint8Array(n),
    findings: new Uint16Array(n),
    severity: new Uint8Array(n),
  };
}

function data(): TableData {
  const c = columns(5);
  // conv_a: small weights; conv_b: large; gemm: mid; relu & reshape: no weight.
  c.weightMin.set([-0.5, -3, -1, NaN, NaN]);
  c.weightMax.set([0.4, 2, 1.5, NaN, NaN]);
  c.sensitivityDb.set([30, 12, NaN, NaN, 25]);
  c.bits.set([8, 16, 0, 0, 8]);
  c.findings.set([0, 2, 1, 0, 0]);
  c.severity.set([0, 1, 2, 0, 0]);
  return { names: ['conv_a', 'conv_b', 'fc', 'relu_1', 'Reshape_0'], opTypes: ['Conv', 'Conv', 'Gemm', 'Relu', 'Reshape'], columns: c };
}

const q = (o: Partial<TableQuery> = {}): TableQuery => ({ sortKey: 'index', sortDir: 1, filter: '', onlyFindings: false, ...o });
const names = (d: TableData, rows: Uint32Array) => [...rows].map((r) => d.names[r]);

describe('layer table: filter and sort', () => {
  test('node order by default, reversed descending', () => {
    const d = data();
    assert.deepEqual([...visibleRows(d, q())], [0, 1, 2, 3, 4]);
    assert.deepEqual([...visibleRows(d, q({ sortDir: -1 }))], [4, 3, 2, 1, 0]);
  });

  test('the filter matches names and op types, case-insensitively', () => {
    const d = data();
    assert.deepEqual(names(d, visibleRows(d, q({ filter: 'CONV' }))), ['conv_a', 'conv_b']);
    assert.deepEqual(names(d, visibleRows(d, q({ filter: 'gemm' }))), ['fc']);
    assert.deepEqual(names(d, visibleRows(d, q({ filter: '  relu ' }))), ['relu_1']);
    assert.equal(visibleRows(d, q({ filter: 'nothing' })).length, 0);
  });

  test('only with findings', () => {
    const d = data();
    assert.deepEqual(names(d, visibleRows(d, q({ onlyFindings: true }))), ['conv_b', 'fc']);
  });

  test('numeric columns sort with unknown values last in both directions', () => {
    const d = data();
    assert.deepEqual(names(d, visibleRows(d, q({ sortKey: 'weight', sortDir: -1 }))), ['conv_b', 'fc', 'conv_a', 'relu_1', 'Reshape_0']);
    assert.deepEqual(names(d, visibleRows(d, q({ sortKey: 'weight', sortDir: 1 }))), ['conv_a', 'fc', 'conv_b', 'relu_1', 'Reshape_0']);
    assert.deepEqual(names(d, visibleRows(d, q({ sortKey: 'sensitivity', sortDir: 1 }))), ['conv_b', 'Reshape_0', 'conv_a', 'fc', 'relu_1']);
    assert.deepEqual(names(d, visibleRows(d, q({ sortKey: 'bits', sortDir: -1 }))), ['conv_b', 'conv_a', 'Reshape_0', 'fc', 'relu_1']);
  });

  test('findings sort by worst severity, then count', () => {
    const d = data();
    assert.deepEqual(names(d, visibleRows(d, q({ sortKey: 'findings', sortDir: -1 }))).slice(0, 2), ['fc', 'conv_b']);
  });

  test('text columns sort by code point, ties in node order', () => {
    const d = data();
    assert.deepEqual(names(d, visibleRows(d, q({ sortKey: 'name' }))), ['Reshape_0', 'conv_a', 'conv_b', 'fc', 'relu_1']);
    assert.deepEqual(names(d, visibleRows(d, q({ sortKey: 'opType', sortDir: -1 }))), ['Reshape_0', 'relu_1', 'fc', 'conv_a', 'conv_b']);
  });

  test('10,000+ rows sort and filter quickly', () => {
    const n = 20_000;
    const c = columns(n);
    const ns: string[] = [];
    const ops: string[] = [];
    for (let i = 0; i < n; i++) {
      ns.push(`layer_${i}`);
      ops.push(i % 3 ? 'Add' : 'MatMul');
      c.sensitivityDb[i] = (i * 7919) % 1000;
    }
    const d = { names: ns, opTypes: ops, columns: c };
    const t = performance.now();
    const rows = visibleRows(d, q({ sortKey: 'sensitivity', filter: 'matmul' }));
    assert.ok(performance.now() - t < 500);
    assert.equal(rows.length, Math.ceil(n / 3));
    for (let i = 1; i < rows.length; i++) assert.ok(c.sensitivityDb[rows[i - 1]!]! <= c.sensitivityDb[rows[i]!]!);
  });
});

describe('layer table: virtualization window', () => {
  test('the window covers the viewport plus overscan, clamped to the rows', () => {
    assert.deepEqual(rowWindow(0, 240, 24, 10_000, 5), { start: 0, end: 16 });
    assert.deepEqual(rowWindow(24 * 100, 240, 24, 10_000, 5), { start: 95, end: 116 });
    assert.deepEqual(rowWindow(24 * 9_995, 240, 24, 10_000, 5), { start: 9_990, end: 10_000 });
    assert.deepEqual(rowWindow(0, 240, 24, 0), { start: 0, end: 0 });
    assert.deepEqual(rowWindow(-50, 240, 24, 3, 5), { start: 0, end: 3 });
  });

  test('the number of rendered rows is bounded whatever the row count', () => {
    for (const count of [100, 10_000, 1_000_000]) {
      const w = rowWindow(count * 12, 600, 24, count);
      assert.ok(w.end - w.start <= 600 / 24 + 2 + 12, `${count}: ${w.end - w.start} rows`);
    }
  });

  test('scrollToShow moves only as far as needed', () => {
    assert.equal(scrollToShow(10, 0, 240, 24), 240 + 24 - 240);
    assert.equal(scrollToShow(5, 0, 240, 24), 0);
    assert.equal(scrollToShow(2, 200, 240, 24), 48);
  });
});

describe('layer table: patches', () => {
  test('a patch writes its rows and columns only, for its own generation', () => {
    const c = columns(4);
    const patch = { generation: 3, rows: Uint32Array.from([1, 3]), values: { actMin: Float32Array.from([-1, -2]), actMax: Float32Array.from([1, 2]), bits: Uint8Array.from([8, 4]) } };
    assert.equal(applyPatch(c, 2, patch), false);
    assert.ok(Number.isNaN(c.actMin[1]!));
    assert.equal(applyPatch(c, 3, patch), true);
    assert.deepEqual([...c.actMin].map((v) => (Number.isNaN(v) ? null : v)), [null, -1, null, -2]);
    assert.deepEqual([...c.bits], [0, 8, 0, 4]);
    assert.ok(Number.isNaN(c.weightMin[1]!));
  });

  test('out-of-range rows are ignored', () => {
    const c = columns(2);
    applyPatch(c, 0, { generation: 0, rows: Uint32Array.from([5]), values: { bits: Uint8Array.from([8]) } });
    assert.deepEqual([...c.bits], [0, 0]);
  });

  test('patchAffects: re-sort only when the sorted or filtered column changed', () => {
    const p = { generation: 0, rows: new Uint32Array(0), values: { sensitivityDb: new Float32Array(0) } };
    assert.equal(patchAffects(p, q({ sortKey: 'sensitivity' })), true);
    assert.equal(patchAffects(p, q({ sortKey: 'name' })), false);
    assert.equal(patchAffects({ ...p, values: { findings: new Uint16Array(0) } }, q({ onlyFindings: true })), true);
  });
});

describe('layer table: formatting', () => {
  test('ranges, dB and bits', () => {
    assert.equal(formatRange(-0.5, 1.25), '[-0.500, 1.25]');
    assert.equal(formatRange(NaN, 1), '—');
    assert.equal(formatRange(0, 12345), '[0, 1.23e+4]');
    assert.equal(formatDb(NaN), '—');
    assert.equal(formatDb(null), '—');
    assert.equal(formatDb(31.26), '31.3 dB');
    assert.equal(formatBits(0), '—');
    assert.equal(formatBits(32), 'float');
    assert.equal(formatBits(4), '4');
  });
});
