/**
 * Bit-level conversions between JS numbers and the small float formats ONNX stores: float16,
 * bfloat16, the four float8 variants, float8e8m0 and float4e2m1.
 *
 * Narrowing rounds to nearest, ties to even (RNE). float8/float4 follow the ONNX Cast rules:
 * with `saturate` (the Cast default) out-of-range values and ±Inf become ±max finite; without it
 * they become Inf where the format has one (e5m2) and NaN otherwise.
 * Checked against onnxruntime's Cast: identical for float16, bfloat16 and saturating float8. Two
 * deliberate differences: (1) the Cast-19 doc table says Inf → NaN for FNUZ types even when
 * saturating; like onnxruntime and the ONNX reference we clamp to ±max. (2) Without saturation,
 * onnxruntime turns e4m3fn values in [480, 496) into 448 and e5m2 values that round past 57344
 * into NaN; we follow the Cast table (NaN, and Inf respectively).
 * float16/bfloat16 narrow through float32; that double rounding is harmless because float32 keeps
 * at least 2p+2 significand bits of either target.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

// ---- float16 (IEEE binary16) ----

export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (0x400 + mant) * 2 ** (exp - 25);
}

/** RNE; overflow → ±Inf; NaN stays NaN (quiet, top payload bits kept). */
export function float32ToFloat16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | (mant ? 0x7e00 | (mant >>> 13) : 0x7c00);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): the significand with its implicit bit, shifted to units of 2^-24.
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000;
    const shift = 14 - e;
    let q = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && q & 1)) q++; // may carry into the smallest normal: still right
    return sign | q;
  }
  let q = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && q & 1)) q++; // a carry into the exponent rounds up to Inf
  return sign | q;
}

let float16Table: Float32Array | undefined;

/** All 65536 float16 values as float32, built on first use (256 KB) for bulk decoding. */
export function float16ToFloat32Table(): Float32Array {
  if (!float16Table) {
    float16Table = new Float32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) float16Table[h] = float16BitsToFloat32(h);
  }
  return float16Table;
}

// ---- bfloat16 (the top half of a float32) ----

export function bfloat16BitsToFloat32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** RNE; overflow → ±Inf; NaN stays a quiet NaN. */
export function float32ToBfloat16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return (b >>> 16) | 0x40;
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

// ---- minifloats: float8 variants and float4e2m1 ----

/** The float formats narrower than 16 bits, by ONNX name. */
export type MiniFloatFormat = 'e4m3fn' | 'e4m3fnuz' | 'e5m2' | 'e5m2fnuz' | 'e2m1';

interface MiniFloatSpec {
  manBits: number;
  bias: number;
  /** Bit pattern of the sign (1 << (total bits - 1)). */
  signBit: number;
  /** Largest finite value and its code. */
  max: number;
  maxCode: number;
  /** Code of +Inf, if the format has infinities. */
  infCode?: number;
  /** Canonical NaN code (positive); undefined if the format has no NaN. */
  nanCode?: number;
  /** NaN/Inf codes are recognised by `special`, which returns undefined for ordinary codes. */
  special: (code: number) => number | undefined;
  /** FNUZ formats have a single zero; 0x80 is NaN there. */
  unsignedZero: boolean;
  /** NaN keeps its sign in formats that have a signed NaN. */
  signedNaN: boolean;
}

const SPECS: Readonly<Record<MiniFloatFormat, MiniFloatSpec>> = {
  // S.1111.111 is NaN; no infinities.
  e4m3fn: {
    manBits: 3,
    bias: 7,
    signBit: 0x80,
    max: 448,
    maxCode: 0x7e,
    nanCode: 0x7f,
    special: (c) => ((c & 0x7f) === 0x7f ? NaN : undefined),
    unsignedZero: false,
    signedNaN: true,
  },
  // 0x80 (negative zero) is the only NaN; no infinities.
  e4m3fnuz: {
    manBits: 3,
    bias: 8,
    signBit: 0x80,
    max: 240,
    maxCode: 0x7f,
    nanCode: 0x80,
    special: (c) => (c === 0x80 ? NaN : undefined),
    unsignedZero: true,
    signedNaN: false,
  },
  // IEEE-like: exponent 31 holds Inf (mantissa 0) and NaN.
  e5m2: {
    manBits: 2,
    bias: 15,
    signBit: 0x80,
    max: 57344,
    maxCode: 0x7b,
    infCode: 0x7c,
    nanCode: 0x7f,
    special: (c) => ((c & 0x7c) !== 0x7c ? undefined : c & 0x03 ? NaN : c & 0x80 ? -Infinity : Infinity),
    unsignedZero: false,
    signedNaN: true,
  },
  e5m2fnuz: {
    manBits: 2,
    bias: 16,
    signBit: 0x80,
    max: 57344,
    maxCode: 0x7f,
    nanCode: 0x80,
    special: (c) => (c === 0x80 ? NaN : undefined),
    unsignedZero: true,
    signedNaN: false,
  },
  // 4 bits, every code finite: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and negatives.
  e2m1: {
    manBits: 1,
    bias: 1,
    signBit: 0x8,
    max: 6,
    maxCode: 0x7,
    special: () => undefined,
    unsignedZero: false,
    signedNaN: false,
  },
};

function minifloatValue(s: MiniFloatSpec, code: number): number {
  const special = s.special(code);
  if (special !== undefined) return special;
  const sign = code & s.signBit ? -1 : 1;
  const exp = (code & (s.signBit - 1)) >>> s.manBits;
  const mant = code & ((1 << s.manBits) - 1);
  if (exp === 0) return sign * mant * 2 ** (1 - s.bias - s.manBits);
  return sign * ((1 << s.manBits) + mant) * 2 ** (exp - s.bias - s.manBits);
}

const f64 = new Float64Array(1);
const f64hi = new Uint32Array(f64.buffer, 4, 1); // little-endian: the sign/exponent word

/** Unbiased binary exponent of a finite positive double (floor(log2 x)), read exactly from its bits. */
function exponentOf(x: number): number {
  // Subnormal doubles have exponent field 0; scale them into the normal range first.
  const tiny = x < 2 ** -1000;
  f64[0] = tiny ? x * 2 ** 100 : x;
  return ((f64hi[0]! >>> 20) & 0x7ff) - 1023 - (tiny ? 100 : 0);
}

/** 2^k for every exponent a finite double can have, so the hot loop avoids Math.pow. */
const POW2_BIAS = 1100;
const POW2 = new Float64Array(2 * POW2_BIAS + 1).map((_, i) => 2 ** (i - POW2_BIAS));

function roundHalfEven(r: number): number {
  const fl = Math.floor(r);
  const diff = r - fl;
  if (diff > 0.5) return fl + 1;
  if (diff < 0.5) return fl;
  return fl % 2 === 0 ? fl : fl + 1;
}

/** Code for a value beyond ±max (or ±Inf): ±max when saturating or when the format has no Inf/NaN. */
function overflowCode(s: MiniFloatSpec, sign: number, saturate: boolean): number {
  if (saturate || s.nanCode === undefined) return sign | s.maxCode;
  if (s.infCode !== undefined) return sign | s.infCode;
  return s.signedNaN ? sign | s.nanCode : s.nanCode;
}

function minifloatCode(s: MiniFloatSpec, x: number, saturate: boolean): number {
  if (x !== x) {
    // NaN. Float4 has none: map it to +max like onnxruntime and MLX do.
    return s.nanCode ?? s.maxCode;
  }
  const sign = x < 0 || (x === 0 && 1 / x < 0) ? s.signBit : 0;
  const a = Math.abs(x);
  if (a === Infinity) return overflowCode(s, sign, saturate);
  if (a === 0) return s.unsignedZero ? 0 : sign;
  // Round a to a multiple of the quantum of its binade (or of the subnormal range), ties to even.
  const qExp = Math.max(exponentOf(a), 1 - s.bias) - s.manBits;
  const n = roundHalfEven(a * POW2[POW2_BIAS - qExp]!);
  if (n * POW2[POW2_BIAS + qExp]! > s.max) return overflowCode(s, sign, saturate);
  if (n === 0) return s.unsignedZero ? 0 : sign;
  const implicit = 1 << s.manBits;
  if (n < implicit) return sign | n; // subnormal: exponent field 0
  // n may have carried to 2 × implicit; that is the next binade with mantissa 0.
  const carry = n >= 2 * implicit ? 1 : 0;
  const expField = qExp + s.manBits + carry + s.bias;
  const mant = (carry ? n / 2 : n) - implicit;
  return sign | (expField << s.manBits) | mant;
}

const minifloatTables = new Map<MiniFloatFormat, Float32Array>();

/** Every code of a minifloat format decoded (256 entries; 16 for e2m1), built on first use. */
export function minifloatTable(format: MiniFloatFormat): Float32Array {
  let table = minifloatTables.get(format);
  if (!table) {
    const s = SPECS[format];
    table = new Float32Array(s.signBit * 2);
    for (let c = 0; c < table.length; c++) table[c] = minifloatValue(s, c);
    minifloatTables.set(format, table);
  }
  return table;
}

export function float8E4M3FNBitsToFloat32(bits: number): number {
  return minifloatValue(SPECS.e4m3fn, bits & 0xff);
}
export function float8E4M3FNUZBitsToFloat32(bits: number): number {
  return minifloatValue(SPECS.e4m3fnuz, bits & 0xff);
}
export function float8E5M2BitsToFloat32(bits: number): number {
  return minifloatValue(SPECS.e5m2, bits & 0xff);
}
export function float8E5M2FNUZBitsToFloat32(bits: number): number {
  return minifloatValue(SPECS.e5m2fnuz, bits & 0xff);
}
export function float4E2M1BitsToFloat32(bits: number): number {
  return minifloatValue(SPECS.e2m1, bits & 0xf);
}

export function float32ToFloat8E4M3FNBits(x: number, saturate = true): number {
  return minifloatCode(SPECS.e4m3fn, x, saturate);
}
export function float32ToFloat8E4M3FNUZBits(x: number, saturate = true): number {
  return minifloatCode(SPECS.e4m3fnuz, x, saturate);
}
export function float32ToFloat8E5M2Bits(x: number, saturate = true): number {
  return minifloatCode(SPECS.e5m2, x, saturate);
}
export function float32ToFloat8E5M2FNUZBits(x: number, saturate = true): number {
  return minifloatCode(SPECS.e5m2fnuz, x, saturate);
}
/** float4e2m1 has neither Inf nor NaN: out-of-range values and ±Inf clamp to ±6, NaN becomes +6. */
export function float32ToFloat4E2M1Bits(x: number): number {
  return minifloatCode(SPECS.e2m1, x, true);
}

// ---- float8e8m0: an unsigned power of two, 2^(code - 127); 0xFF is NaN ----

export function float8E8M0BitsToFloat32(bits: number): number {
  const code = bits & 0xff;
  return code === 0xff ? NaN : 2 ** (code - 127);
}

let e8m0Table: Float32Array | undefined;

export function float8E8M0Table(): Float32Array {
  if (!e8m0Table) {
    e8m0Table = new Float32Array(256);
    for (let c = 0; c < 256; c++) e8m0Table[c] = float8E8M0BitsToFloat32(c);
  }
  return e8m0Table;
}

/** Rounding of the Cast `round_mode` attribute (opset 24), used only for float8e8m0. */
export type E8M0RoundMode = 'up' | 'down' | 'nearest';

/**
 * The Cast default is round 'up' (a scale never shrinks). The format has no zero or sign: 0 and
 * values below 2^-127 give the smallest code; negatives and NaN give NaN. Out of range: 2^127 when
 * saturating, NaN otherwise.
 */
export function float32ToFloat8E8M0Bits(x: number, saturate = true, round: E8M0RoundMode = 'up'): number {
  if (Number.isNaN(x) || x < 0) return 0xff;
  if (x === Infinity) return saturate ? 0xfe : 0xff;
  if (x < 2 ** -127) return 0;
  const e = exponentOf(x);
  const frac = x / 2 ** e - 1; // exact: in [0, 1)
  let code = e + 127;
  if (frac > 0) {
    if (round === 'up') code++;
    else if (round === 'nearest' && (frac > 0.5 || (frac === 0.5 && code % 2 === 1))) code++;
  }
  if (code > 0xfe) return saturate ? 0xfe : 0xff;
  return Math.max(code, 0);
}
