/**
 * Learned rounding (AdaRound-style, Nagel et al. 2020), the arithmetic. Quantizing one output
 * channel's weights w (K values) with scale s changes the layer's output on input patch x by
 * s·(r − u)ᵀx, with u = w/s and r the chosen integers; over the calibration data the squared error
 * is s²·(r − u)ᵀ H (r − u), H = E[x xᵀ]. Nearest rounding minimizes each term alone, not the sum:
 * correlated inputs let errors of different weights cancel. Here each r_k stays floor(u_k) or
 * ceil(u_k) and a greedy coordinate descent, started at nearest rounding, flips single weights while
 * that lowers the quadratic form — so the result is never worse than nearest rounding on it.
 * The measurement of H is in src/runtime/refine/layer-inputs.ts, the orchestration in
 * src/runtime/refine/adaround.ts.
 */
import { roundHalfToEven } from '../round';

export interface RoundingResult {
  /** Chosen integers in the zero-point-shifted domain (q − zero point), one per weight. */
  r: Int32Array;
  /** (r − u)ᵀ H (r − u) with nearest rounding, and with the chosen integers. */
  before: number;
  after: number;
  flips: number;
}

export interface RoundingOptions {
  /** Smallest and largest integer of the shifted domain (qmin − z, qmax − z). */
  lo: number;
  hi: number;
  /** Most full passes over the K weights (default 6). */
  sweeps?: number;
  /**
   * The integers to start from, each floor or ceil of its u (default: nearest rounding): the
   * transform's own integers, so the result is never worse than what the transform would write.
   */
  start?: ArrayLike<number>;
}

/** (r − u)ᵀ H (r − u) for a K×K row-major H starting at `offset` (grouped layers share one array). */
export function quadraticError(r: ArrayLike<number>, u: ArrayLike<number>, h: ArrayLike<number>, k: number, offset = 0): number {
  let f = 0;
  for (let i = 0; i < k; i++) {
    const di = r[i]! - u[i]!;
    if (di === 0) continue;
    let row = 0;
    const base = offset + i * k;
    for (let j = 0; j < k; j++) row += h[base + j]! * (r[j]! - u[j]!);
    f += di * row;
  }
  return f;
}

/**
 * The integers for one channel: `u` are the weights in units of the scale, already as the
 * transform computes them (fround(w/s), clamped to [lo, hi]); `h` the symmetric K×K Gram matrix of
 * the channel's inputs. A weight only moves to floor/ceil of u, and never onto lo or hi unless
 * nearest rounding put it there: the extreme weights define the scale (and zero point), which must
 * not change when the rounded weights are quantized again (the channel's smallest and largest
 * weight keep their values for the same reason).
 */
export function roundChannel(u: ArrayLike<number>, h: ArrayLike<number>, k: number, opts: RoundingOptions, offset = 0): RoundingResult {
  const { lo, hi } = opts;
  const r = new Int32Array(k);
  const delta = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    const s = opts.start?.[i];
    r[i] = s !== undefined && Math.abs(s - u[i]!) < 1 ? s : Math.min(hi, Math.max(lo, roundHalfToEven(u[i]!)));
    delta[i] = r[i]! - u[i]!;
  }
  // g = H·Δ, kept up to date as weights flip (one row of H per flip).
  const g = new Float64Array(k);
  let f = 0;
  for (let i = 0; i < k; i++) {
    let s = 0;
    const base = offset + i * k;
    for (let j = 0; j < k; j++) s += h[base + j]! * delta[j]!;
    g[i] = s;
    f += delta[i]! * s;
  }
  const before = f;
  // The channel's smallest and largest weight set its range (scale, zero point): they stay put.
  let iMin = 0;
  let iMax = 0;
  for (let i = 1; i < k; i++) {
    if (u[i]! < u[iMin]!) iMin = i;
    if (u[i]! > u[iMax]!) iMax = i;
  }
  let flips = 0;
  const sweeps = opts.sweeps ?? 6;
  // Changes below this are float noise; accepting them could cycle.
  const eps = 1e-12 * Math.max(1e-30, Math.abs(f));
  for (let sweep = 0; sweep < sweeps; sweep++) {
    let flipped = 0;
    for (let i = 0; i < k; i++) {
      const ui = u[i]!;
      const fl = Math.floor(ui);
      if (fl === ui || i === iMin || i === iMax) continue; // an integer has one choice
      const alt = r[i] === fl ? fl + 1 : fl;
      if (alt <= lo || alt >= hi || (r[i] !== fl && r[i] !== fl + 1)) continue;
      const d = alt - r[i]!;
      const hii = h[offset + i * k + i]!;
      const change = 2 * d * g[i]! + hii; // d² = 1
      if (!(change < -eps)) continue;
      r[i] = alt;
      delta[i] = delta[i]! + d;
      const base = offset + i * k;
      for (let j = 0; j < k; j++) g[j] = g[j]! + d * h[base + j]!;
      f += change;
      flipped++;
    }
    flips += flipped;
    if (!flipped) break;
  }
  return { r, before, after: flips ? quadraticError(r, u, h, k, offset) : before, flips };
}

/**
 * Shrinks the off-diagonal of an estimated Gram matrix towards zero by γ = K/(K+P) (P input
 * patches behind it): with few patches per dimension the estimate is noisy, and a noisy H would buy
 * flips that only fit the noise. A diagonal H makes nearest rounding optimal, so the shrinkage
 * leans towards it. In place, for each of `groups` consecutive K×K blocks.
 */
export function shrinkGram(h: Float64Array, k: number, groups: number, patches: number): number {
  const gamma = k / (k + Math.max(1, patches));
  for (let g = 0; g < groups; g++) {
    const base = g * k * k;
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) if (i !== j) h[base + i * k + j] = h[base + i * k + j]! * (1 - gamma);
  }
  return gamma;
}

/** Where weight (channel c, reduction index j) sits in a weight tensor. */
export type WeightLayout = { kind: 'rows'; k: number } | { kind: 'columns'; k: number; channels: number };

export function weightIndex(layout: WeightLayout, c: number, j: number): number {
  return layout.kind === 'rows' ? c * layout.k + j : j * layout.channels + c;
}
