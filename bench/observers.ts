/**
 * Benchmarks of the calibration observers' JS-side cost per value, on 10M-element float32 batches
 * (about the largest activation a calibration sample brings back): scanBatch (min/max/NaN scan),
 * MinMaxObserver.update and HistogramObserver.update (steady state, and batches that grow the grid),
 * each with the WebAssembly SIMD kernels (what runs) and with the plain JavaScript loops (what runs
 * where WebAssembly SIMD is missing, and what the kernels are checked against).
 *
 * Each figure is the best of several interleaved rounds (the least disturbed run), printed in ns per
 * value and as a ratio to a plain one-accumulator min/max loop measured in the same run, so figures
 * from different machines or loads can be compared through the ratio.
 *
 * Standalone: `node --import tsx bench/observers.ts`.
 */
import { HistogramObserver } from '../src/quant/histogram';
import { emptyScan, MinMaxObserver, scanBatch } from '../src/quant/observers';
import { useObserverKernels } from '../src/quant/wasm/observer-kernels';

const SIZE = 10_000_000;
const ROUNDS = 7;

/** Deterministic gaussian float32 data (mulberry32 + Box–Muller), like typical pre-activation values. */
function gaussian(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - uniform()));
    const th = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

/** The baseline: the loop one would write without thinking about speed. */
function referenceMinMax(batch: Float32Array): number {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < batch.length; i++) {
    const v = batch[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min + max;
}

interface Case {
  name: string;
  /** Untimed preparation (fresh observer state); returns the timed operation. */
  setup: () => () => void;
}

let sink = 0;

/** Best time in ms of each case over ROUNDS interleaved rounds (after one warm-up round). */
function measure(cases: readonly Case[]): Map<string, number> {
  const best = new Map<string, number>();
  for (let r = 0; r <= ROUNDS; r++) {
    for (const c of cases) {
      const run = c.setup();
      const t0 = performance.now();
      run();
      const ms = performance.now() - t0;
      if (r > 0) best.set(c.name, Math.min(best.get(c.name) ?? Infinity, ms));
    }
  }
  return best;
}

export function benchObservers(): string[] {
  const x = gaussian(SIZE, 42);
  // Same values with a NaN, +Inf and -Inf in every 16K block: every block takes scanBatch's exact fallback.
  const withNonFinite = x.slice();
  for (let i = 0; i < SIZE; i += 16_384) {
    withNonFinite[i + 100] = NaN;
    withNonFinite[Math.min(SIZE - 1, i + 5_000)] = Infinity;
    withNonFinite[Math.min(SIZE - 1, i + 9_000)] = -Infinity;
  }
  // Same values but one outlier in the last position: the one-pass histogram bins the whole batch
  // before finding it, then undoes that and takes the two-pass path (its worst case).
  const lateOutlier = x.slice();
  lateOutlier[SIZE - 1] = 40;
  // The first 1000 values span about ±3.3σ: the full batch (±5.5σ) grows a grid built from them.
  const narrow = x.subarray(0, 1000);
  const scan = emptyScan();

  const cases: Case[] = [
    { name: 'reference', setup: () => () => void (sink += referenceMinMax(x)) },
    { name: 'scanBatch', setup: () => () => void (sink += scanBatch(x, scan).max) },
    { name: 'scanBatch non-finite', setup: () => () => void (sink += scanBatch(withNonFinite, scan).nan) },
    {
      name: 'minmax',
      setup: () => {
        const o = new MinMaxObserver();
        return () => o.update(x);
      },
    },
    {
      name: 'hist steady',
      setup: () => {
        const o = new HistogramObserver();
        o.update(x);
        return () => o.update(x);
      },
    },
    {
      name: 'hist growth',
      setup: () => {
        const o = new HistogramObserver();
        o.update(narrow);
        return () => o.update(x);
      },
    },
    {
      name: 'hist growth late',
      setup: () => {
        const o = new HistogramObserver();
        o.update(x);
        return () => o.update(lateOutlier);
      },
    },
  ];
  // Every case again on the JavaScript loops (setup switches the kernels off for its run).
  const withKernels = (on: boolean, c: Case): Case => ({
    name: on ? c.name : `${c.name} js`,
    setup: () => {
      useObserverKernels(on);
      return c.setup();
    },
  });
  const all = [cases[0]!, ...cases.slice(1).map((c) => withKernels(true, c)), ...cases.slice(1).map((c) => withKernels(false, c))];
  const best = measure(all);
  useObserverKernels(true);
  const ref = best.get('reference')!;
  const line = (label: string, name: string, note = '') => {
    const ms = best.get(name)!;
    const ns = (ms * 1e6) / SIZE;
    const js = best.get(`${name} js`);
    const jsNote = js === undefined ? '' : `  (JavaScript loops: ${((js * 1e6) / SIZE).toFixed(2)} ns/value)`;
    return `  ${label.padEnd(52)} ${ns.toFixed(2).padStart(6)} ns/value  ${(ms / ref).toFixed(2).padStart(5)}× reference${jsNote}${note}`;
  };
  return [
    `calibration observers on ${SIZE / 1e6}M-element float32 batches (gaussian; best of ${ROUNDS} rounds; WebAssembly SIMD kernels, JavaScript loops in parentheses):`,
    line('reference: plain min/max loop', 'reference'),
    line('scanBatch (min/max + NaN/Inf counts)', 'scanBatch'),
    line('scanBatch, NaN/±Inf in every 16K block (exact path)', 'scanBatch non-finite'),
    line('MinMaxObserver.update', 'minmax'),
    line('HistogramObserver.update, steady state (2048 bins)', 'hist steady'),
    line('HistogramObserver.update, batch grows the grid', 'hist growth'),
    line('HistogramObserver.update, grows on its last value', 'hist growth late', '  (one-pass worst case)'),
  ];
}

if (require.main === module) {
  for (const line of benchObservers()) console.log(line);
  if (sink === 0.5) console.log(''); // keeps the timed results observable
}
