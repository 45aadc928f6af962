/**
 * WebAssembly SIMD kernels behind weight-stats.ts: the per-element work of the weight statistics
 * (ranges and sums, histogram, int8 per-tensor/per-channel and int4 blockwise quantization error),
 * four float32 lanes at a time. Scalar JavaScript does the same work ~10× slower, far from the
 * 1 GB/s a model's weights deserve.
 *
 * Arithmetic: values and quantization in float32 (as QuantizeLinear computes: q = nearest(x / s)
 * rounded half to even by f32x4.nearest, clamped); squared errors and sums accumulated in float32
 * over at most 256 elements, then in float64, so the totals carry float64 precision for practical
 * purposes. Only symmetric signed quantization (the default) runs here; other settings, NaN/Inf
 * weights and unusual layouts take the JavaScript path of weight-stats.ts.
 *
 * Memory: one WebAssembly.Memory per process, grown on demand; tensors are copied in chunk by chunk
 * (see weight-stats.ts), so it stays at about one chunk plus per-channel arrays.
 */
import { assemble, Code, FunctionDef, OP, SIMD, whileLt } from '../quant/wasm/asm';

const MIN_NORMAL = 1.1754943508222875e-38;
/** Vectors per float32 partial sum before it is added into the float64 total. */
const FLUSH_ELEMENTS = 256;
const HIGH_TO_LOW = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
/**
 * Histogram bins: the pair tables index bin_a·2^PAIR_SHIFT + bin_b, so the kernels take at most
 * 2^PAIR_SHIFT bins (weight-stats.ts uses exactly that many).
 */
export const PAIR_SHIFT = 7;
export const HIST_BINS = 1 << PAIR_SHIFT;
const PAIR_TABLE_BYTES = 4 * HIST_BINS * HIST_BINS;
/** Bytes of the histogram area pass2 kernels need at `countsP`: two pair tables and a tail table. */
export const HIST_AREA_BYTES = 2 * PAIR_TABLE_BYTES + 4 * HIST_BINS;
/** i8x16.shuffle moving lane 1 to lane 0 and lane 3 to lane 2. */
const NEXT_LANE = [4, 5, 6, 7, 4, 5, 6, 7, 12, 13, 14, 15, 12, 13, 14, 15];
/** Lanes (2, 3, 0, 1) and (1, 0, 3, 2), as byte indices: two shuffles reduce 4 lanes. */
const SWAP_PAIRS = HIGH_TO_LOW;
const SWAP_LANES = [4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11];

/** `acc64 += promote(lo lanes of v) + promote(hi lanes of v)`, v a local v128 of f32x4. */
function flush(c: Code, v: string, acc64: string): void {
  c.get(acc64).get(v).simd(SIMD.f64x2_promote_low_f32x4).simd(SIMD.f64x2_add);
  c.get(v).get(v).shuffle(HIGH_TO_LOW).simd(SIMD.f64x2_promote_low_f32x4).simd(SIMD.f64x2_add).set(acc64);
}

/** Pushes lane0 + lane1 of an f64x2 local. */
function hsum64(c: Code, v: string): void {
  c.get(v).simd(SIMD.f64x2_extract_lane, 0).get(v).simd(SIMD.f64x2_extract_lane, 1).op(OP.f64_add);
}

/** Pushes the sum of the 4 lanes of an i32x4 local. */
function hsumI32(c: Code, v: string): void {
  c.get(v).simd(SIMD.i32x4_extract_lane, 0);
  for (let l = 1; l < 4; l++) c.get(v).simd(SIMD.i32x4_extract_lane, l).op(OP.i32_add);
}

/** Pushes min (or max) of the 4 lanes of an f32x4 local combined with a scalar local. */
function hreduce(c: Code, v: string, scalar: string, op: number): void {
  c.get(scalar);
  for (let l = 0; l < 4; l++) c.get(v).simd(SIMD.f32x4_extract_lane, l).op(op);
}

const addr = (c: Code, base: string, i: string) => c.get(base).get(i).i32(2).op(OP.i32_shl).op(OP.i32_add);

/** `end = min(i + step, limit)`. */
function minEnd(c: Code, end: string, i: string, step: string | number, limit: string): void {
  c.get(i);
  if (typeof step === 'number') c.i32(step);
  else c.get(step);
  c.op(OP.i32_add).tee(end).get(limit).get(end).get(limit).op(OP.i32_lt_s).op(OP.select).set(end);
}

/**
 * `acc += (v − nearest(v·inv)·s)²` on f32x4. No clamp: every scale here is absmax/qmax of the values
 * it quantizes, so |v·inv| stays within qmax (up to float32 rounding, far from qmax + 0.5).
 */
function quantErr(c: Code, v: string, inv: () => void, s: () => void, acc: string, d: string): void {
  c.get(v).get(v);
  inv();
  c.simd(SIMD.f32x4_mul).simd(SIMD.f32x4_nearest);
  s();
  c.simd(SIMD.f32x4_mul).simd(SIMD.f32x4_sub).tee(d).get(d).simd(SIMD.f32x4_mul).get(acc).simd(SIMD.f32x4_add).set(acc);
}

/** Scalar quantErr, accumulating into an f64 local. */
function quantErrScalar(c: Code, x: string, inv: () => void, s: () => void, acc: string, d: string): void {
  c.get(x).get(x);
  inv();
  c.op(OP.f32_mul, OP.f32_nearest);
  s();
  c.op(OP.f32_mul, OP.f32_sub).tee(d).get(d).op(OP.f32_mul, OP.f64_promote_f32).get(acc).op(OP.f64_add).set(acc);
}

/**
 * stats_spans(p, spans, len, minP, maxP, out): `spans` consecutive runs of `len` float32 values;
 * writes each run's min/max to minP/maxP (f32) and the totals to out: f64 sum, f64 sum of squares,
 * i32 count of |x| below the smallest normal float32 (zeros included).
 */
const statsSpans: FunctionDef = {
  name: 'stats_spans',
  params: [['p', 'i32'], ['spans', 'i32'], ['len', 'i32'], ['minP', 'i32'], ['maxP', 'i32'], ['out', 'i32']],
  results: [],
  body: (c) => {
    c.local('i32', 'k', 'i', 'n4', 'end', 'base', 'small');
    c.local('v128', 'v', 'vmin', 'vmax', 'vs', 'vq', 's64', 'q64', 'vsmall', 'vMinN', 'vZeroF');
    c.local('f32', 'x', 'mn', 'mx');
    c.local('f64', 'sS', 'qS');
    c.f32(MIN_NORMAL).simd(SIMD.f32x4_splat).set('vMinN');
    c.get('len').i32(-4).op(OP.i32_and).set('n4');
    c.i32(0).set('k');
    whileLt(c, 'k', 'spans', 1, () => {
      c.get('p').get('k').get('len').op(OP.i32_mul).i32(2).op(OP.i32_shl).op(OP.i32_add).set('base');
      c.f32(Infinity).simd(SIMD.f32x4_splat).set('vmin');
      c.f32(-Infinity).simd(SIMD.f32x4_splat).set('vmax');
      c.i32(0).set('i');
      whileLt(c, 'i', 'n4', 0, () => {
        minEnd(c, 'end', 'i', FLUSH_ELEMENTS, 'n4');
        c.get('vZeroF').set('vs').get('vZeroF').set('vq');
        whileLt(c, 'i', 'end', 4, () => {
          addr(c, 'base', 'i').v128load().set('v');
          // pmin/pmax are one instruction each (min/max carry NaN rules that cost several); NaN
          // never gets here (it makes the sums non-finite, and the JS engine takes over).
          c.get('v').get('vmin').simd(SIMD.f32x4_pmin).set('vmin');
          c.get('v').get('vmax').simd(SIMD.f32x4_pmax).set('vmax');
          c.get('vs').get('v').simd(SIMD.f32x4_add).set('vs');
          c.get('vq').get('v').get('v').simd(SIMD.f32x4_mul).simd(SIMD.f32x4_add).set('vq');
          c.get('vsmall').get('v').simd(SIMD.f32x4_abs).get('vMinN').simd(SIMD.f32x4_lt).simd(SIMD.i32x4_sub).set('vsmall');
        });
        flush(c, 'vs', 's64');
        flush(c, 'vq', 'q64');
      });
      c.f32(Infinity).set('mn').f32(-Infinity).set('mx');
      hreduce(c, 'vmin', 'mn', OP.f32_min);
      c.set('mn');
      hreduce(c, 'vmax', 'mx', OP.f32_max);
      c.set('mx');
      whileLt(c, 'i', 'len', 1, () => {
        addr(c, 'base', 'i').mem(OP.f32_load, 0).set('x');
        c.get('mn').get('x').op(OP.f32_min).set('mn');
        c.get('mx').get('x').op(OP.f32_max).set('mx');
        c.get('sS').get('x').op(OP.f64_promote_f32).op(OP.f64_add).set('sS');
        c.get('qS').get('x').get('x').op(OP.f32_mul).op(OP.f64_promote_f32).op(OP.f64_add).set('qS');
        c.get('small').get('x').op(OP.f32_abs).f32(MIN_NORMAL).op(OP.f32_lt).op(OP.i32_add).set('small');
      });
      addr(c, 'minP', 'k').get('mn').mem(OP.f32_store, 0);
      addr(c, 'maxP', 'k').get('mx').mem(OP.f32_store, 0);
    });
    c.get('out');
    hsum64(c, 's64');
    c.get('sS').op(OP.f64_add).mem(OP.f64_store, 0, 0);
    c.get('out');
    hsum64(c, 'q64');
    c.get('qS').op(OP.f64_add).mem(OP.f64_store, 0, 8);
    c.get('out');
    hsumI32(c, 'vsmall');
    c.get('small').op(OP.i32_add).mem(OP.i32_store, 0, 16);
  },
};

/** stats_cols(p, rows, n, minP, maxP, out): stats_spans' totals for a [rows, n] block, min/max per column. */
const statsCols: FunctionDef = {
  name: 'stats_cols',
  params: [['p', 'i32'], ['rows', 'i32'], ['n', 'i32'], ['minP', 'i32'], ['maxP', 'i32'], ['out', 'i32']],
  results: [],
  body: (c) => {
    c.local('i32', 'r', 'j', 'n4', 'end', 'row', 'a', 'small');
    c.local('v128', 'v', 'vs', 'vq', 's64', 'q64', 'vsmall', 'vMinN', 'vZeroF');
    c.local('f32', 'x');
    c.local('f64', 'sS', 'qS');
    c.f32(MIN_NORMAL).simd(SIMD.f32x4_splat).set('vMinN');
    c.get('n').i32(-4).op(OP.i32_and).set('n4');
    c.i32(0).set('r');
    whileLt(c, 'r', 'rows', 1, () => {
      c.get('p').get('r').get('n').op(OP.i32_mul).i32(2).op(OP.i32_shl).op(OP.i32_add).set('row');
      c.i32(0).set('j');
      whileLt(c, 'j', 'n4', 0, () => {
        minEnd(c, 'end', 'j', FLUSH_ELEMENTS, 'n4');
        c.get('vZeroF').set('vs').get('vZeroF').set('vq');
        whileLt(c, 'j', 'end', 4, () => {
          addr(c, 'row', 'j').v128load().set('v');
          addr(c, 'minP', 'j').tee('a').get('v').get('a').v128load().simd(SIMD.f32x4_pmin).v128store();
          addr(c, 'maxP', 'j').tee('a').get('v').get('a').v128load().simd(SIMD.f32x4_pmax).v128store();
          c.get('vs').get('v').simd(SIMD.f32x4_add).set('vs');
          c.get('vq').get('v').get('v').simd(SIMD.f32x4_mul).simd(SIMD.f32x4_add).set('vq');
          c.get('vsmall').get('v').simd(SIMD.f32x4_abs).get('vMinN').simd(SIMD.f32x4_lt).simd(SIMD.i32x4_sub).set('vsmall');
        });
        flush(c, 'vs', 's64');
        flush(c, 'vq', 'q64');
      });
      whileLt(c, 'j', 'n', 1, () => {
        addr(c, 'row', 'j').mem(OP.f32_load, 0).set('x');
        addr(c, 'minP', 'j').tee('a').get('a').mem(OP.f32_load, 0).get('x').op(OP.f32_min).mem(OP.f32_store, 0);
        addr(c, 'maxP', 'j').tee('a').get('a').mem(OP.f32_load, 0).get('x').op(OP.f32_max).mem(OP.f32_store, 0);
        c.get('sS').get('x').op(OP.f64_promote_f32).op(OP.f64_add).set('sS');
        c.get('qS').get('x').get('x').op(OP.f32_mul).op(OP.f64_promote_f32).op(OP.f64_add).set('qS');
        c.get('small').get('x').op(OP.f32_abs).f32(MIN_NORMAL).op(OP.f32_lt).op(OP.i32_add).set('small');
      });
    });
    c.get('out');
    hsum64(c, 's64');
    c.get('sS').op(OP.f64_add).mem(OP.f64_store, 0, 0);
    c.get('out');
    hsum64(c, 'q64');
    c.get('qS').op(OP.f64_add).mem(OP.f64_store, 0, 8);
    c.get('out');
    hsumI32(c, 'vsmall');
    c.get('small').op(OP.i32_add).mem(OP.i32_store, 0, 16);
  },
};

/** Parameters shared by the two pass-2 kernels (after their layout-specific ones). */
const PASS2_COMMON: [string, 'i32' | 'f32'][] = [
  ['invT', 'f32'],
  ['sT', 'f32'],
  ['bs', 'i32'],
  ['qmaxB', 'f32'],
  ['lo', 'f32'],
  ['scale', 'f32'],
  ['last', 'i32'],
  ['countsP', 'i32'],
  ['T', 'f32'],
  ['colP', 'i32'],
  ['cap', 'i32'],
];

/** Locals and constant splats every pass-2 kernel uses. */
function pass2Prologue(c: Code): void {
  c.local('i32', 'cnt', 'stride', 'a', 'b');
  c.local('v128', 'v', 'd', 'idx', 'av', 'aT', 'aC', 'aB', 'eT64', 'eC64', 'eB64', 'vinvT', 'vsT', 'vlo', 'vscale', 'vlast', 'vT', 'vZeroF', 'vbases', 'vMagic', 'vMagicBits');
  c.f32(8388608).simd(SIMD.f32x4_splat).set('vMagic');
  c.i32(0x4b000000).simd(SIMD.i32x4_splat).set('vMagicBits');
  c.local('f32', 'x', 'dx', 'ax');
  c.local('f64', 'eTS', 'eCS', 'eBS');
  c.get('invT').simd(SIMD.f32x4_splat).set('vinvT');
  c.get('sT').simd(SIMD.f32x4_splat).set('vsT');
  c.get('lo').simd(SIMD.f32x4_splat).set('vlo');
  c.get('scale').simd(SIMD.f32x4_splat).set('vscale');
  c.get('last').simd(SIMD.i32x4_splat).set('vlast');
  c.get('T').simd(SIMD.f32x4_splat).set('vT');
  // Lane 0 counts into the first pair table, lane 2 into the second (lanes 1 and 3 unused).
  c.get('countsP').simd(SIMD.i32x4_splat).v128const([0, 0, PAIR_TABLE_BYTES, 0]).simd(SIMD.i32x4_add).set('vbases');
  // Scalar tails count into the single-bin table after the two pair tables.
  c.get('countsP').i32(2 * PAIR_TABLE_BYTES).op(OP.i32_add).set('stride');
}

/** |x| ≥ T → colP[cnt] = |x| (while cnt < cap); cnt++. The value is on the stack. */
function collect(c: Code): void {
  c.tee('ax').get('T').op(OP.f32_ge).if(() => {
    c.get('cnt').get('cap').op(OP.i32_lt_s).if(() => {
      addr(c, 'colP', 'cnt').get('ax').mem(OP.f32_store, 0);
    });
    c.get('cnt').i32(1).op(OP.i32_add).set('cnt');
  });
}

/** The per-vector work of pass 2 on local `v`: three errors, histogram, collection. */
function pass2Vector(c: Code, invC: () => void, sC: () => void, invB: () => void, sB: () => void): void {
  quantErr(c, 'v', () => c.get('vinvT'), () => c.get('vsT'), 'aT', 'd');
  quantErr(c, 'v', invC, sC, 'aC', 'd');
  quantErr(c, 'v', invB, sB, 'aB', 'd');
  // Histogram, as two joint histograms of lane pairs (0, 1) and (2, 3): one increment per pair,
  // at pair index bin_a·128 + bin_b (the caller sums rows and columns), in two tables so the two
  // increments never wait on each other.
  // The bin number as an integer without i32x4.trunc_sat (a long sequence on x64): floor, then
  // add 2^23 so the integer sits in the low mantissa bits, and subtract 2^23's bit pattern.
  c.get('v').get('vlo').simd(SIMD.f32x4_sub).get('vscale').simd(SIMD.f32x4_mul).simd(SIMD.f32x4_floor).get('vMagic').simd(SIMD.f32x4_add);
  c.get('vMagicBits').simd(SIMD.i32x4_sub);
  c.get('vlast').simd(SIMD.i32x4_min_s).tee('idx');
  c.i32(PAIR_SHIFT).simd(SIMD.i32x4_shl).get('idx').get('idx').shuffle(NEXT_LANE).simd(SIMD.i32x4_add);
  c.i32(2).simd(SIMD.i32x4_shl).get('vbases').simd(SIMD.i32x4_add).set('idx');
  for (const l of [0, 2]) {
    c.get('idx').simd(SIMD.i32x4_extract_lane, l).tee('a');
    c.get('a').mem(OP.i32_load, 2).i32(1).op(OP.i32_add).mem(OP.i32_store, 2);
  }
  c.get('v').simd(SIMD.f32x4_abs).tee('av').get('vT').simd(SIMD.f32x4_ge).simd(SIMD.v128_any_true).if(() => {
    for (let l = 0; l < 4; l++) {
      c.get('av').simd(SIMD.f32x4_extract_lane, l);
      collect(c);
    }
  });
}

/** The per-element work of pass 2 on local `x` (tails). */
function pass2Scalar(c: Code, invC: () => void, sC: () => void, invB: () => void, sB: () => void): void {
  quantErrScalar(c, 'x', () => c.get('invT'), () => c.get('sT'), 'eTS', 'dx');
  quantErrScalar(c, 'x', invC, sC, 'eCS', 'dx');
  quantErrScalar(c, 'x', invB, sB, 'eBS', 'dx');
  c.get('x').get('lo').op(OP.f32_sub).get('scale').op(OP.f32_mul).truncSatF32().set('b');
  c.get('b').get('last').get('b').get('last').op(OP.i32_lt_s).op(OP.select).set('b');
  c.get('stride').get('b').i32(2).op(OP.i32_shl).op(OP.i32_add).tee('a');
  c.get('a').mem(OP.i32_load, 2).i32(1).op(OP.i32_add).mem(OP.i32_store, 2);
  c.get('x').op(OP.f32_abs);
  collect(c);
}

function pass2Flush(c: Code): void {
  flush(c, 'aT', 'eT64');
  flush(c, 'aC', 'eC64');
  flush(c, 'aB', 'eB64');
  c.get('vZeroF').set('aT').get('vZeroF').set('aC').get('vZeroF').set('aB');
}

function pass2Epilogue(c: Code): void {
  const store = (acc: string, tail: string, offset: number) => {
    c.get('out');
    hsum64(c, acc);
    c.get(tail).op(OP.f64_add).mem(OP.f64_store, 0, offset);
  };
  store('eT64', 'eTS', 0);
  store('eC64', 'eCS', 8);
  store('eB64', 'eBS', 16);
  c.get('out').get('cnt').mem(OP.i32_store, 2, 24);
}

/**
 * pass2_spans(p, spans, len, invP, sP, …common, out): for `spans` runs of `len` values (run k is
 * channel k, scale sP[k], 1/scale invP[k]; int4 blocks of bs along the run): squared errors per
 * tensor, per channel and per block; the histogram (bin = min(floor((x − lo)·scale), last), last <
 * HIST_BINS) as two i32 pair tables and a tail table at countsP (HIST_AREA_BYTES, see pass2Vector);
 * every |x| ≥ T into colP (at most cap).
 * out: f64 errT, f64 errC, f64 errB, i32 count of |x| ≥ T.
 */
const pass2Spans: FunctionDef = {
  name: 'pass2_spans',
  params: [['p', 'i32'], ['spans', 'i32'], ['len', 'i32'], ['invP', 'i32'], ['sP', 'i32'], ...PASS2_COMMON, ['out', 'i32']],
  results: [],
  body: (c) => {
    pass2Prologue(c);
    c.local('i32', 'k', 'i', 'k0', 'k1', 'k4', 'base', 'fill');
    c.local('v128', 'vinvC', 'vsC', 'vinvB', 'vsB', 'vmax', 'vqmax', 'vMinN', 'vOne');
    c.local('f32', 'invC', 'sC', 'invB', 'sB', 'amax');
    c.get('qmaxB').simd(SIMD.f32x4_splat).set('vqmax');
    c.f32(MIN_NORMAL).simd(SIMD.f32x4_splat).set('vMinN');
    c.f32(1).simd(SIMD.f32x4_splat).set('vOne');
    c.i32(0).set('k');
    whileLt(c, 'k', 'spans', 1, () => {
      c.get('p').get('k').get('len').op(OP.i32_mul).i32(2).op(OP.i32_shl).op(OP.i32_add).set('base');
      addr(c, 'invP', 'k').mem(OP.f32_load, 0).tee('invC').simd(SIMD.f32x4_splat).set('vinvC');
      addr(c, 'sP', 'k').mem(OP.f32_load, 0).tee('sC').simd(SIMD.f32x4_splat).set('vsC');
      c.i32(0).set('k0');
      whileLt(c, 'k0', 'len', 0, () => {
        minEnd(c, 'k1', 'k0', 'bs', 'len');
        c.get('k0').get('k1').get('k0').op(OP.i32_sub).i32(-4).op(OP.i32_and).op(OP.i32_add).set('k4');
        // Block scale from the block's absmax, kept in vector form (every lane the same).
        c.get('vZeroF').set('vmax');
        c.get('k0').set('i');
        whileLt(c, 'i', 'k4', 4, () => {
          addr(c, 'base', 'i').v128load().simd(SIMD.f32x4_abs).get('vmax').simd(SIMD.f32x4_pmax).set('vmax');
        });
        c.get('vmax').get('vmax').get('vmax').shuffle(SWAP_PAIRS).simd(SIMD.f32x4_pmax);
        c.tee('vmax').get('vmax').get('vmax').shuffle(SWAP_LANES).simd(SIMD.f32x4_pmax).set('vmax');
        c.get('i').get('k1').op(OP.i32_lt_s).if(() => {
          c.get('vmax').simd(SIMD.f32x4_extract_lane, 0).set('amax');
          whileLt(c, 'i', 'k1', 1, () => {
            c.get('amax');
            addr(c, 'base', 'i').mem(OP.f32_load, 0).op(OP.f32_abs).op(OP.f32_max).set('amax');
          });
          c.get('amax').simd(SIMD.f32x4_splat).set('vmax');
        });
        c.get('vmax').get('vqmax').simd(SIMD.f32x4_div).set('vsB');
        c.get('vsB').get('vOne').get('vsB').get('vMinN').simd(SIMD.f32x4_ge).simd(SIMD.v128_bitselect).tee('vsB');
        c.simd(SIMD.f32x4_extract_lane, 0).set('sB');
        c.get('vOne').get('vsB').simd(SIMD.f32x4_div).tee('vinvB').simd(SIMD.f32x4_extract_lane, 0).set('invB');
        // The block's values.
        c.get('k0').set('i');
        whileLt(c, 'i', 'k4', 4, () => {
          addr(c, 'base', 'i').v128load().set('v');
          pass2Vector(c, () => c.get('vinvC'), () => c.get('vsC'), () => c.get('vinvB'), () => c.get('vsB'));
        });
        whileLt(c, 'i', 'k1', 1, () => {
          addr(c, 'base', 'i').mem(OP.f32_load, 0).set('x');
          pass2Scalar(c, () => c.get('invC'), () => c.get('sC'), () => c.get('invB'), () => c.get('sB'));
        });
        // Float32 partial sums go to float64 every FLUSH_ELEMENTS values.
        c.get('fill').get('k1').get('k0').op(OP.i32_sub).op(OP.i32_add).tee('fill').i32(FLUSH_ELEMENTS).op(OP.i32_ge_s).if(() => {
          pass2Flush(c);
          c.i32(0).set('fill');
        });
        c.get('k1').set('k0');
      });
    });
    pass2Flush(c);
    pass2Epilogue(c);
  },
};

/**
 * pass2_cols(p, rows, n, invP, sP, …common, amaxP, sbP, ibP, out): pass2_spans for a [rows, n]
 * block whose channels are the columns (sP[j], invP[j]) and whose int4 blocks run down the columns
 * (bs rows each, from row 0; amaxP, sbP, ibP are n-float scratch arrays).
 */
const pass2Cols: FunctionDef = {
  name: 'pass2_cols',
  params: [['p', 'i32'], ['rows', 'i32'], ['n', 'i32'], ['invP', 'i32'], ['sP', 'i32'], ...PASS2_COMMON, ['amaxP', 'i32'], ['sbP', 'i32'], ['ibP', 'i32'], ['out', 'i32']],
  results: [],
  body: (c) => {
    pass2Prologue(c);
    c.local('i32', 'r0', 'r1', 'r', 'j', 'n4', 'row', 'end');
    c.local('v128', 'vs', 'vqmax', 'vMinN', 'vOne');
    c.local('f32', 's');
    c.get('qmaxB').simd(SIMD.f32x4_splat).set('vqmax');
    c.f32(MIN_NORMAL).simd(SIMD.f32x4_splat).set('vMinN');
    c.f32(1).simd(SIMD.f32x4_splat).set('vOne');
    c.get('n').i32(-4).op(OP.i32_and).set('n4');
    c.i32(0).set('r0');
    whileLt(c, 'r0', 'rows', 0, () => {
      minEnd(c, 'r1', 'r0', 'bs', 'rows');
      c.i32(0).set('j');
      whileLt(c, 'j', 'n4', 4, () => {
        addr(c, 'amaxP', 'j').get('vZeroF').v128store();
      });
      whileLt(c, 'j', 'n', 1, () => {
        addr(c, 'amaxP', 'j').f32(0).mem(OP.f32_store, 0);
      });
      c.get('r0').set('r');
      whileLt(c, 'r', 'r1', 1, () => {
        c.get('p').get('r').get('n').op(OP.i32_mul).i32(2).op(OP.i32_shl).op(OP.i32_add).set('row');
        c.i32(0).set('j');
        whileLt(c, 'j', 'n4', 4, () => {
          addr(c, 'amaxP', 'j').tee('a');
          addr(c, 'row', 'j').v128load().simd(SIMD.f32x4_abs).get('a').v128load().simd(SIMD.f32x4_pmax).v128store();
        });
        whileLt(c, 'j', 'n', 1, () => {
          addr(c, 'amaxP', 'j').tee('a').get('a').mem(OP.f32_load, 0);
          addr(c, 'row', 'j').mem(OP.f32_load, 0).op(OP.f32_abs).op(OP.f32_max).mem(OP.f32_store, 0);
        });
      });
      c.i32(0).set('j');
      whileLt(c, 'j', 'n4', 4, () => {
        addr(c, 'amaxP', 'j').v128load().get('vqmax').simd(SIMD.f32x4_div).set('vs');
        c.get('vs').get('vOne').get('vs').get('vMinN').simd(SIMD.f32x4_ge).simd(SIMD.v128_bitselect).set('vs');
        addr(c, 'sbP', 'j').get('vs').v128store();
        addr(c, 'ibP', 'j').get('vOne').get('vs').simd(SIMD.f32x4_div).v128store();
      });
      whileLt(c, 'j', 'n', 1, () => {
        addr(c, 'amaxP', 'j').mem(OP.f32_load, 0).get('qmaxB').op(OP.f32_div).tee('s').f32(1).get('s').f32(MIN_NORMAL).op(OP.f32_ge).op(OP.select).set('s');
        addr(c, 'sbP', 'j').get('s').mem(OP.f32_store, 0);
        addr(c, 'ibP', 'j').f32(1).get('s').op(OP.f32_div).mem(OP.f32_store, 0);
      });
      c.get('r0').set('r');
      whileLt(c, 'r', 'r1', 1, () => {
        c.get('p').get('r').get('n').op(OP.i32_mul).i32(2).op(OP.i32_shl).op(OP.i32_add).set('row');
        c.i32(0).set('j');
        whileLt(c, 'j', 'n4', 0, () => {
          minEnd(c, 'end', 'j', FLUSH_ELEMENTS, 'n4');
          whileLt(c, 'j', 'end', 4, () => {
            addr(c, 'row', 'j').v128load().set('v');
            pass2Vector(
              c,
              () => addr(c, 'invP', 'j').v128load(),
              () => addr(c, 'sP', 'j').v128load(),
              () => addr(c, 'ibP', 'j').v128load(),
              () => addr(c, 'sbP', 'j').v128load(),
            );
          });
          pass2Flush(c);
        });
        whileLt(c, 'j', 'n', 1, () => {
          addr(c, 'row', 'j').mem(OP.f32_load, 0).set('x');
          const ld = (base: string) => () => addr(c, base, 'j').mem(OP.f32_load, 0);
          pass2Scalar(c, ld('invP'), ld('sP'), ld('ibP'), ld('sbP'));
        });
      });
      c.get('r1').set('r0');
    });
    pass2Epilogue(c);
  },
};

export interface Kernels {
  memory: WebAssembly.Memory;
  stats_spans(p: number, spans: number, len: number, minP: number, maxP: number, out: number): void;
  stats_cols(p: number, rows: number, n: number, minP: number, maxP: number, out: number): void;
  pass2_spans(
    p: number, spans: number, len: number, invP: number, sP: number,
    invT: number, sT: number, bs: number, qmaxB: number, lo: number, scale: number, last: number, countsP: number, T: number, colP: number, cap: number,
    out: number,
  ): void;
  pass2_cols(
    p: number, rows: number, n: number, invP: number, sP: number,
    invT: number, sT: number, bs: number, qmaxB: number, lo: number, scale: number, last: number, countsP: number, T: number, colP: number, cap: number,
    amaxP: number, sbP: number, ibP: number, out: number,
  ): void;
}

let compiled: WebAssembly.Module | null | undefined;

/**
 * V8 first runs WebAssembly through its baseline compiler and moves hot functions to the optimizing
 * one for later calls (no on-stack replacement): a model's first big tensors would run at baseline
 * speed. One run of every kernel over a throw-away megabyte makes them hot at once (the optimized
 * code then compiles in the background, while the model file is read).
 */
function warmUp(m: WebAssembly.Module): void {
  const memory = new WebAssembly.Memory({ initial: 24 });
  const k = kernelsFor(memory, m);
  if (!k) return;
  const n = 1 << 18;
  const f32 = new Float32Array(memory.buffer, 0, n);
  for (let i = 0; i < n; i++) f32[i] = Math.sin(i) * 0.02;
  const scratch = 4 * n;
  k.stats_spans(0, 256, 1024, scratch, scratch + 4096, scratch + 8192);
  k.stats_cols(0, 1024, 256, scratch, scratch + 4096, scratch + 8192);
  const hist = scratch + 16384;
  const col = hist + HIST_AREA_BYTES;
  k.pass2_spans(0, 256, 1024, scratch, scratch + 4096, 50, 0.02, 32, 7, -0.02, 6400, HIST_BINS - 1, hist, 0.019, col, 1024, scratch + 8192);
  k.pass2_cols(0, 1024, 256, scratch, scratch + 4096, 50, 0.02, 32, 7, -0.02, 6400, HIST_BINS - 1, hist, 0.019, col, 1024, scratch + 8192, scratch + 9216, scratch + 10240, scratch + 12288);
}

function kernelModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  try {
    compiled = new WebAssembly.Module(assemble([statsSpans, statsCols, pass2Spans, pass2Cols], 1));
    warmUp(compiled);
  } catch (err) {
    if (process.env.ONNX_QUANT_DEBUG_WASM) process.stderr.write(`weight kernels unavailable: ${String(err)}\n`);
    compiled = null;
  }
  return compiled;
}

/** The kernels over a given memory, or null when this runtime has no WebAssembly SIMD. */
export function kernelsFor(memory: WebAssembly.Memory, module?: WebAssembly.Module): Kernels | null {
  const m = module ?? kernelModule();
  if (!m) return null;
  const instance = new WebAssembly.Instance(m, { env: { memory } });
  return { memory, ...(instance.exports as unknown as Omit<Kernels, 'memory'>) };
}

let kernels: Kernels | null | undefined;

/** The process's kernels with their own (growable) memory, for data copied in chunk by chunk. */
export function weightKernels(): Kernels | null {
  if (kernels === undefined) kernels = kernelsFor(new WebAssembly.Memory({ initial: 1 }));
  return kernels;
}

/** Grows the kernels' memory to at least `bytes`. Views of the old buffer are invalid afterwards. */
export function ensureMemory(k: Kernels, bytes: number): void {
  const have = k.memory.buffer.byteLength;
  if (bytes > have) k.memory.grow(Math.ceil((bytes - have) / 65536));
}

/**
 * A fixed-size memory holding data the kernels read in place (a model file, see loadModelBytes)
 * plus a scratch area from `scratch` to the end. It never grows: growing would detach every view
 * of the data.
 */
export interface KernelHeap {
  kernels: Kernels;
  scratch: number;
  end: number;
}

const heaps = new WeakMap<ArrayBufferLike, KernelHeap>();

/** The heap whose memory backs `buffer`, if any. */
export function heapOf(buffer: ArrayBufferLike): KernelHeap | undefined {
  return heaps.get(buffer);
}

/**
 * `size` bytes of WebAssembly memory (a view returned, to fill) followed by `scratchBytes` of
 * scratch for the kernels. Pages are reserved, not touched: unused scratch costs no RSS.
 * Undefined without WebAssembly SIMD or when the size passes the 4 GB wasm32 limit.
 */
export function allocateHeap(size: number, scratchBytes: number): { bytes: Uint8Array; heap: KernelHeap } | undefined {
  const scratch = (size + 15) & ~15;
  const total = scratch + scratchBytes;
  const pages = Math.ceil(total / 65536);
  if (pages > 65536 || !kernelModule()) return undefined;
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  } catch {
    return undefined;
  }
  const kernels = kernelsFor(memory);
  if (!kernels) return undefined;
  const heap: KernelHeap = { kernels, scratch, end: pages * 65536 };
  heaps.set(memory.buffer, heap);
  return { bytes: new Uint8Array(memory.buffer, 0, size), heap };
}
