/**
 * Calibration scans and bins every value of every observed activation of every sample; plain
 * JavaScript does that at 1.3 ns (scan) and 2.4 ns (histogram) per value, comparable to a light
 * network's whole inference. The kernels below do the same work four float32 lanes at a time on
 * data copied into their memory in chunks (the copy costs ~0.1 ns per value), with results
 * identical to the JavaScript loops: the exceptional values (NaN, ±Inf, a new extreme, a value
 * outside the histogram grid) are left to JavaScript, which handles them exactly as before.
 */
import { assemble, FunctionDef, OP, SIMD, whileLt } from './asm';

/** Batches from this size on take the kernels (below it the chunk copy and merge do not pay). */
export const WASM_MIN_VALUES = 4096;
/** Values copied into the kernels' memory at a time (256 KB: the copy stays in L2 for the kernel). */
export const KERNEL_CHUNK_VALUES = 1 << 16;
/** Kernels' memory: scan results at 0, the data chunk at DATA_OFFSET, histogram scratch after it. */
const DATA_OFFSET = 64;
const SCRATCH_OFFSET = DATA_OFFSET + 4 * KERNEL_CHUNK_VALUES;

/** i8x16.shuffle: lanes 2, 3 to 0, 1 (so f64x2.promote_low reaches them). */
const HIGH_PAIR = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
/** i8x16.shuffle of two i32x4: lanes 0, 1 of the first, then lanes 0, 1 of the second. */
const JOIN_LOW_PAIRS = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

/**
 * scan(p, n4, out) → 1 when all values are finite: min and max (f32) of the n4 (a multiple of 4)
 * values at p, written to out and out + 4. When it returns 0 (some NaN or ±Inf), they mean
 * nothing. Two interleaved accumulator pairs; `v − v` is 0 for finite v and NaN otherwise, so
 * their sum flags non-finite values without overflowing.
 */
const scanKernel: FunctionDef = {
  name: 'scan',
  params: [['p', 'i32'], ['n4', 'i32'], ['out', 'i32']],
  results: ['i32'],
  body: (c) => {
    c.local('i32', 'i', 'n8', 'a');
    c.local('v128', 'x', 'y', 'mn0', 'mx0', 'mn1', 'mx1', 'bad');
    c.f32(Infinity).simd(SIMD.f32x4_splat).tee('mn0').set('mn1');
    c.f32(-Infinity).simd(SIMD.f32x4_splat).tee('mx0').set('mx1');
    c.get('n4').i32(-8).op(OP.i32_and).set('n8');
    whileLt(c, 'i', 'n8', 8, () => {
      c.get('p').get('i').i32(2).op(OP.i32_shl).op(OP.i32_add).tee('a').v128load().set('x');
      c.get('a').v128load(16).set('y');
      // pmin(m, x) = x < m ? x : m, pmax(m, x) = m < x ? x : m: one instruction each.
      c.get('mn0').get('x').simd(SIMD.f32x4_pmin).set('mn0');
      c.get('mx0').get('x').simd(SIMD.f32x4_pmax).set('mx0');
      c.get('mn1').get('y').simd(SIMD.f32x4_pmin).set('mn1');
      c.get('mx1').get('y').simd(SIMD.f32x4_pmax).set('mx1');
      c.get('bad').get('x').get('x').simd(SIMD.f32x4_sub).simd(SIMD.f32x4_add).get('y').get('y').simd(SIMD.f32x4_sub).simd(SIMD.f32x4_add).set('bad');
    });
    c.get('i').get('n4').op(OP.i32_lt_s).if(() => {
      c.get('p').get('i').i32(2).op(OP.i32_shl).op(OP.i32_add).v128load().set('x');
      c.get('mn0').get('x').simd(SIMD.f32x4_pmin).set('mn0');
      c.get('mx0').get('x').simd(SIMD.f32x4_pmax).set('mx0');
      c.get('bad').get('x').get('x').simd(SIMD.f32x4_sub).simd(SIMD.f32x4_add).set('bad');
    });
    c.get('mn0').get('mn1').simd(SIMD.f32x4_pmin).set('mn0');
    c.get('mx0').get('mx1').simd(SIMD.f32x4_pmax).set('mx0');
    c.get('out');
    c.get('mn0').simd(SIMD.f32x4_extract_lane, 0);
    for (let l = 1; l < 4; l++) c.get('mn0').simd(SIMD.f32x4_extract_lane, l).op(OP.f32_min);
    c.mem(OP.f32_store, 2, 0);
    c.get('out');
    c.get('mx0').simd(SIMD.f32x4_extract_lane, 0);
    for (let l = 1; l < 4; l++) c.get('mx0').simd(SIMD.f32x4_extract_lane, l).op(OP.f32_max);
    c.mem(OP.f32_store, 2, 4);
    c.get('bad').get('bad').simd(SIMD.f32x4_eq).simd(SIMD.i32x4_all_true);
  },
};

/**
 * bin(p, n4, lo, perUnit, fastLo, fastHi, last, counts, stride) → values consumed: walks the n4
 * values at p four at a time while all four lie in [fastLo, fastHi], adding each to bin
 * min(trunc((v − lo)·perUnit), last) — in float64, exactly HistogramObserver's formula — of its
 * lane's i32 count array (counts + lane·stride), and stops before the first group that does not.
 * Four count arrays: equal values in consecutive lanes (ReLU zeros) do not wait on each other.
 */
const binKernel: FunctionDef = {
  name: 'bin',
  params: [['p', 'i32'], ['n4', 'i32'], ['lo', 'f64'], ['per', 'f64'], ['fastLo', 'f32'], ['fastHi', 'f32'], ['last', 'i32'], ['counts', 'i32'], ['stride', 'i32']],
  results: ['i32'],
  body: (c) => {
    c.local('i32', 'i', 'a');
    c.local('v128', 'v', 'vlo', 'vper', 'vfl', 'vfh', 'vlast', 'vbases', 'idx');
    c.get('lo').simd(SIMD.f64x2_splat).set('vlo');
    c.get('per').simd(SIMD.f64x2_splat).set('vper');
    c.get('fastLo').simd(SIMD.f32x4_splat).set('vfl');
    c.get('fastHi').simd(SIMD.f32x4_splat).set('vfh');
    c.get('last').simd(SIMD.i32x4_splat).set('vlast');
    c.get('counts').simd(SIMD.i32x4_splat).get('stride').simd(SIMD.i32x4_splat).v128const([0, 1, 2, 3]).simd(SIMD.i32x4_mul).simd(SIMD.i32x4_add).set('vbases');
    c.block(() => {
      whileLt(c, 'i', 'n4', 4, () => {
        c.get('p').get('i').i32(2).op(OP.i32_shl).op(OP.i32_add).v128load().set('v');
        // Leave (with i at this group) unless all four lie in [fastLo, fastHi]; NaN compares false.
        c.get('v').get('vfl').simd(SIMD.f32x4_ge).get('v').get('vfh').simd(SIMD.f32x4_le).simd(SIMD.v128_and).simd(SIMD.i32x4_all_true).op(OP.i32_eqz).brIf(2);
        // Lanes 0, 1 and 2, 3 in float64: trunc((v − lo)·perUnit), then min(·, last), as byte offsets into each lane's counts.
        c.get('v').simd(SIMD.f64x2_promote_low_f32x4).get('vlo').simd(SIMD.f64x2_sub).get('vper').simd(SIMD.f64x2_mul).simd(SIMD.i32x4_trunc_sat_f64x2_s_zero);
        c.get('v').get('v').shuffle(HIGH_PAIR).simd(SIMD.f64x2_promote_low_f32x4).get('vlo').simd(SIMD.f64x2_sub).get('vper').simd(SIMD.f64x2_mul).simd(SIMD.i32x4_trunc_sat_f64x2_s_zero);
        c.shuffle(JOIN_LOW_PAIRS).get('vlast').simd(SIMD.i32x4_min_s).i32(2).simd(SIMD.i32x4_shl).get('vbases').simd(SIMD.i32x4_add).set('idx');
        for (let l = 0; l < 4; l++) c.get('idx').simd(SIMD.i32x4_extract_lane, l).tee('a').get('a').mem(OP.i32_load, 2).i32(1).op(OP.i32_add).mem(OP.i32_store, 2);
      });
    });
    c.get('i');
  },
};

export interface ObserverKernels {
  memory: WebAssembly.Memory;
  scan(p: number, n4: number, out: number): number;
  bin(p: number, n4: number, lo: number, perUnit: number, fastLo: number, fastHi: number, last: number, counts: number, stride: number): number;
  /** Views of the memory (renewed when it grows). */
  f32: Float32Array;
  i32: Int32Array;
}

let kernels: ObserverKernels | null | undefined;
let kernelsEnabled = true;

/**
 * Turns the kernels off (the JavaScript loops run) or back on; returns the previous setting. For
 * tests and benchmarks that compare the two paths.
 */
export function useObserverKernels(on: boolean): boolean {
  const was = kernelsEnabled;
  kernelsEnabled = on;
  return was;
}

/** The process's observer kernels, or null when this runtime has no WebAssembly SIMD (or they are turned off). */
export function observerKernels(): ObserverKernels | null {
  if (!kernelsEnabled) return null;
  if (kernels !== undefined) return kernels;
  try {
    const memory = new WebAssembly.Memory({ initial: Math.ceil((SCRATCH_OFFSET + 4 * 4 * 2048) / 65536) });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(assemble([scanKernel, binKernel], 1)), { env: { memory } });
    const e = instance.exports as unknown as Pick<ObserverKernels, 'scan' | 'bin'>;
    kernels = { memory, scan: e.scan, bin: e.bin, f32: new Float32Array(memory.buffer), i32: new Int32Array(memory.buffer) };
    warmUp(kernels);
  } catch {
    kernels = null;
  }
  return kernels;
}

/**
 * V8 runs WebAssembly through its baseline compiler first and moves hot functions to the optimizing
 * one for later calls: a few calls over a chunk make the kernels hot before real data arrives.
 */
function warmUp(k: ObserverKernels): void {
  const f32 = k.f32;
  for (let i = 0; i < KERNEL_CHUNK_VALUES; i++) f32[(DATA_OFFSET >> 2) + i] = (i % 1000) / 1000;
  for (let r = 0; r < 4; r++) {
    k.scan(DATA_OFFSET, KERNEL_CHUNK_VALUES, 0);
    k.bin(DATA_OFFSET, KERNEL_CHUNK_VALUES, 0, 1024, 0, 1, 1023, SCRATCH_OFFSET, 4 * 1024);
  }
  k.i32.fill(0, SCRATCH_OFFSET >> 2, (SCRATCH_OFFSET >> 2) + 4 * 1024);
}

/** Grows the kernels' memory so that histogram scratch for `bins` bins fits; returns its offset. */
export function binScratch(k: ObserverKernels, bins: number): number {
  const need = SCRATCH_OFFSET + 16 * bins;
  const have = k.memory.buffer.byteLength;
  if (need > have) {
    k.memory.grow(Math.ceil((need - have) / 65536));
    k.f32 = new Float32Array(k.memory.buffer);
    k.i32 = new Int32Array(k.memory.buffer);
  }
  return SCRATCH_OFFSET;
}

/** Copies batch[start, start + len) (len ≤ KERNEL_CHUNK_VALUES) into the kernels' data area; returns its offset. */
export function loadChunk(k: ObserverKernels, batch: Float32Array, start: number, len: number): number {
  k.f32.set(batch.subarray(start, start + len), DATA_OFFSET >> 2);
  return DATA_OFFSET;
}
