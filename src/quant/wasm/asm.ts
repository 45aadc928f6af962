/**
 * A minimal WebAssembly binary writer: enough to assemble the SIMD kernels of the weight statistics
 * (analysis/weight-kernels.ts) and of the calibration observers (quant/wasm/observer-kernels.ts) at
 * run time (no toolchain, nothing to build or ship). One imported memory ("env"."memory"), a list
 * of exported functions, structured control flow. Opcodes are from the WebAssembly core spec 2.0
 * (SIMD is the 0xfd-prefixed set, standard in Node ≥ 16.4).
 */

export type ValType = 'i32' | 'f32' | 'f64' | 'v128';

const VALTYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b };

function uleb(out: number[], n: number): void {
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
}

function sleb(out: number[], n: number): void {
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

/** SIMD opcodes used by the kernels (after the 0xfd prefix). */
export const SIMD = {
  load: 0x00,
  store: 0x0b,
  shuffle: 0x0d,
  i32x4_splat: 0x11,
  f32x4_splat: 0x13,
  f64x2_splat: 0x14,
  i32x4_extract_lane: 0x1b,
  f32x4_extract_lane: 0x1f,
  f64x2_extract_lane: 0x21,
  f32x4_eq: 0x41,
  f32x4_lt: 0x43,
  f32x4_le: 0x45,
  f32x4_ge: 0x46,
  v128_and: 0x4e,
  v128_bitselect: 0x52,
  v128_any_true: 0x53,
  f64x2_promote_low_f32x4: 0x5f,
  f32x4_floor: 0x68,
  f32x4_nearest: 0x6a,
  i32x4_shl: 0xab,
  i32x4_all_true: 0xa3,
  i32x4_add: 0xae,
  i32x4_mul: 0xb5,
  i32x4_sub: 0xb1,
  i32x4_min_s: 0xb6,
  i32x4_max_s: 0xb8,
  f32x4_abs: 0xe0,
  f32x4_add: 0xe4,
  f32x4_sub: 0xe5,
  f32x4_mul: 0xe6,
  f32x4_div: 0xe7,
  f32x4_min: 0xe8,
  f32x4_max: 0xe9,
  f32x4_pmin: 0xea,
  f32x4_pmax: 0xeb,
  f64x2_add: 0xf0,
  f64x2_sub: 0xf1,
  f64x2_mul: 0xf2,
  i32x4_trunc_sat_f32x4_s: 0xf8,
  i32x4_trunc_sat_f64x2_s_zero: 0xfc,
} as const;

/** Plain opcodes used by the kernels. */
export const OP = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  br_if: 0x0d,
  return: 0x0f,
  call: 0x10,
  drop: 0x1a,
  select: 0x1b,
  local_get: 0x20,
  local_set: 0x21,
  local_tee: 0x22,
  i32_load: 0x28,
  f32_load: 0x2a,
  f64_load: 0x2b,
  i32_store: 0x36,
  f32_store: 0x38,
  f64_store: 0x39,
  i32_const: 0x41,
  f32_const: 0x43,
  f64_const: 0x44,
  i32_eqz: 0x45,
  i32_eq: 0x46,
  i32_ne: 0x47,
  i32_lt_s: 0x48,
  i32_gt_s: 0x4a,
  i32_le_s: 0x4c,
  i32_ge_s: 0x4e,
  f32_eq: 0x5b,
  f32_lt: 0x5d,
  f32_gt: 0x5e,
  f32_ge: 0x60,
  i32_add: 0x6a,
  i32_sub: 0x6b,
  i32_mul: 0x6c,
  i32_and: 0x71,
  i32_shl: 0x74,
  f32_abs: 0x8b,
  f32_nearest: 0x90,
  f32_add: 0x92,
  f32_sub: 0x93,
  f32_mul: 0x94,
  f32_div: 0x95,
  f32_min: 0x96,
  f32_max: 0x97,
  f64_add: 0xa0,
  f64_mul: 0xa2,
  i32_trunc_sat_f32_s: 0x00, // after the 0xfc prefix
  f64_promote_f32: 0xbb,
} as const;

/** Instruction emitter for one function body, with named locals. */
export class Code {
  readonly bytes: number[] = [];
  private readonly names = new Map<string, number>();
  readonly locals: ValType[] = [];

  constructor(params: readonly [string, ValType][]) {
    params.forEach(([n], i) => this.names.set(n, i));
    this.paramCount = params.length;
  }

  readonly paramCount: number;

  /** Declares local variables (after the parameters). */
  local(type: ValType, ...names: string[]): this {
    for (const n of names) {
      this.names.set(n, this.paramCount + this.locals.length);
      this.locals.push(type);
    }
    return this;
  }

  private idx(name: string): number {
    const i = this.names.get(name);
    if (i === undefined) throw new Error(`wasm asm: unknown local "${name}"`);
    return i;
  }

  op(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }

  get(name: string): this {
    this.bytes.push(OP.local_get);
    uleb(this.bytes, this.idx(name));
    return this;
  }

  set(name: string): this {
    this.bytes.push(OP.local_set);
    uleb(this.bytes, this.idx(name));
    return this;
  }

  tee(name: string): this {
    this.bytes.push(OP.local_tee);
    uleb(this.bytes, this.idx(name));
    return this;
  }

  i32(n: number): this {
    this.bytes.push(OP.i32_const);
    sleb(this.bytes, n | 0);
    return this;
  }

  f32(x: number): this {
    this.bytes.push(OP.f32_const, ...new Uint8Array(new Float32Array([x]).buffer));
    return this;
  }

  f64(x: number): this {
    this.bytes.push(OP.f64_const, ...new Uint8Array(new Float64Array([x]).buffer));
    return this;
  }

  /** A memory instruction with alignment (log2) and offset. */
  mem(opcode: number, align: number, offset = 0): this {
    this.bytes.push(opcode);
    uleb(this.bytes, align);
    uleb(this.bytes, offset);
    return this;
  }

  simd(opcode: number, ...immediates: number[]): this {
    this.bytes.push(0xfd);
    uleb(this.bytes, opcode);
    this.bytes.push(...immediates);
    return this;
  }

  v128load(offset = 0): this {
    this.bytes.push(0xfd);
    uleb(this.bytes, SIMD.load);
    uleb(this.bytes, 0); // alignment hint 1: data need not be 16-byte aligned
    uleb(this.bytes, offset);
    return this;
  }

  v128store(offset = 0): this {
    this.bytes.push(0xfd);
    uleb(this.bytes, SIMD.store);
    uleb(this.bytes, 0);
    uleb(this.bytes, offset);
    return this;
  }

  /** v128.const of four i32 lanes. */
  v128const(lanes: readonly [number, number, number, number]): this {
    this.bytes.push(0xfd);
    uleb(this.bytes, 0x0c);
    this.bytes.push(...new Uint8Array(Int32Array.from(lanes).buffer));
    return this;
  }

  /** i8x16.shuffle with 16 lane indices. */
  shuffle(lanes: readonly number[]): this {
    return this.simd(SIMD.shuffle, ...lanes);
  }

  /** `block … end` (no result); `br 0` inside jumps to its end. */
  block(body: () => void): this {
    this.bytes.push(OP.block, 0x40);
    body();
    this.bytes.push(OP.end);
    return this;
  }

  /** `loop … end` (no result); `br 0` inside jumps back to its start. */
  loop(body: () => void): this {
    this.bytes.push(OP.loop, 0x40);
    body();
    this.bytes.push(OP.end);
    return this;
  }

  /** `if … [else …] end` on the i32 on the stack. */
  if(then: () => void, otherwise?: () => void): this {
    this.bytes.push(OP.if, 0x40);
    then();
    if (otherwise) {
      this.bytes.push(OP.else);
      otherwise();
    }
    this.bytes.push(OP.end);
    return this;
  }

  br(depth: number): this {
    this.bytes.push(OP.br);
    uleb(this.bytes, depth);
    return this;
  }

  brIf(depth: number): this {
    this.bytes.push(OP.br_if);
    uleb(this.bytes, depth);
    return this;
  }

  /** i32.trunc_sat_f32_s (0xfc 0x00). */
  truncSatF32(): this {
    this.bytes.push(0xfc, OP.i32_trunc_sat_f32_s);
    return this;
  }
}

export interface FunctionDef {
  name: string;
  params: readonly [string, ValType][];
  results: readonly ValType[];
  body: (c: Code) => void;
}

function section(out: number[], id: number, content: number[]): void {
  out.push(id);
  uleb(out, content.length);
  out.push(...content);
}

function vec(out: number[], items: number[][]): void {
  uleb(out, items.length);
  for (const it of items) out.push(...it);
}

function name(s: string): number[] {
  const b = [...Buffer.from(s, 'utf8')];
  const out: number[] = [];
  uleb(out, b.length);
  return [...out, ...b];
}

/** Assembles a module importing memory "env"."memory" (min `pages`) and exporting every function. */
export function assemble(functions: readonly FunctionDef[], pages: number): Uint8Array<ArrayBuffer> {
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  // Types: one per function, kept simple.
  const types = functions.map((f) => {
    const t: number[] = [0x60];
    uleb(t, f.params.length);
    for (const [, v] of f.params) t.push(VALTYPE[v]);
    uleb(t, f.results.length);
    for (const v of f.results) t.push(VALTYPE[v]);
    return t;
  });
  const typeSec: number[] = [];
  vec(typeSec, types);
  section(out, 1, typeSec);

  const imp: number[] = [];
  const mem: number[] = [...name('env'), ...name('memory'), 0x02, 0x00];
  uleb(mem, pages);
  vec(imp, [mem]);
  section(out, 2, imp);

  const funcSec: number[] = [];
  vec(
    funcSec,
    functions.map((_, i) => {
      const t: number[] = [];
      uleb(t, i);
      return t;
    }),
  );
  section(out, 3, funcSec);

  const exp: number[] = [];
  vec(
    exp,
    functions.map((f, i) => {
      const e = [...name(f.name), 0x00];
      uleb(e, i);
      return e;
    }),
  );
  section(out, 7, exp);

  const bodies = functions.map((f) => {
    const c = new Code(f.params);
    f.body(c);
    const b: number[] = [];
    // Locals, one entry per local (simple, and the counts are small).
    uleb(b, c.locals.length);
    for (const t of c.locals) {
      b.push(0x01, VALTYPE[t]);
    }
    b.push(...c.bytes, OP.end);
    const sized: number[] = [];
    uleb(sized, b.length);
    return [...sized, ...b];
  });
  const codeSec: number[] = [];
  vec(codeSec, bodies);
  section(out, 10, codeSec);
  const bytes = new Uint8Array(out.length);
  bytes.set(out);
  return bytes;
}

/** `while (i < end) { body; i += step }` with `i`, `end` locals. */
export function whileLt(c: Code, i: string, end: string, step: number, body: () => void): void {
  c.block(() =>
    c.loop(() => {
      c.get(i).get(end).op(OP.i32_ge_s).brIf(1);
      body();
      c.get(i).i32(step).op(OP.i32_add).set(i);
      c.br(0);
    }),
  );
}
