/**
 * A small builder for ONNX models, on top of the proto types and the writer. Tests, benchmarks and
 * the bundled demo model make their models with it instead of committing binaries.
 *
 *   const b = new ModelBuilder({ opset: 17 });
 *   const x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
 *   const y = b.conv(x, 4, 3);            // weights as initializers, seeded random values
 *   b.output(b.relu(y), DataType.FLOAT);
 *   const model = b.build();
 */
import { DataType } from './dtypes';
import {
  AttributeProto,
  AttributeType,
  emptyAttribute,
  emptyGraph,
  emptyModel,
  emptyNode,
  emptyTypeProto,
  emptyValueInfo,
  GraphProto,
  ModelProto,
  TensorProto,
  ValueInfoProto,
} from './proto';
import { makeTensor, TensorValues } from './tensor-data';

/** Explicitly typed attribute values, for when a JS number's type would be ambiguous. */
export class Attr {
  private constructor(readonly build: (name: string) => AttributeProto) {}
  static float(v: number): Attr {
    return new Attr((name) => ({ ...emptyAttribute(name), type: AttributeType.Float, f: v }));
  }
  static floats(v: number[]): Attr {
    return new Attr((name) => ({ ...emptyAttribute(name), type: AttributeType.Floats, floats: [...v] }));
  }
  static int(v: number | bigint): Attr {
    return new Attr((name) => ({ ...emptyAttribute(name), type: AttributeType.Int, i: BigInt(v) }));
  }
  static ints(v: (number | bigint)[]): Attr {
    return new Attr((name) => ({ ...emptyAttribute(name), type: AttributeType.Ints, ints: v.map((x) => BigInt(x)) }));
  }
}

/** Integers become INT(S), other numbers FLOAT(S); strings STRING; tensors TENSOR; graphs GRAPH. */
export type AttrValue = number | bigint | string | number[] | string[] | TensorProto | GraphProto | Attr;

function isGraph(v: object): v is GraphProto {
  return 'node' in v && 'initializer' in v;
}

export function makeAttribute(name: string, v: AttrValue): AttributeProto {
  const a = emptyAttribute(name);
  if (v instanceof Attr) return v.build(name);
  if (typeof v === 'bigint') return { ...a, type: AttributeType.Int, i: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { ...a, type: AttributeType.Int, i: BigInt(v) } : { ...a, type: AttributeType.Float, f: v };
  if (typeof v === 'string') return { ...a, type: AttributeType.String, s: Buffer.from(v, 'utf8') };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { ...a, type: AttributeType.Strings, strings: (v as string[]).map((s) => Buffer.from(s, 'utf8')) };
    const nums = v as number[];
    return nums.every(Number.isInteger) ? { ...a, type: AttributeType.Ints, ints: nums.map((x) => BigInt(x)) } : { ...a, type: AttributeType.Floats, floats: [...nums] };
  }
  if (isGraph(v)) return { ...a, type: AttributeType.Graph, g: v };
  return { ...a, type: AttributeType.Tensor, t: v };
}

export function makeValueInfo(name: string, elemType?: number, shape?: (number | string)[]): ValueInfoProto {
  const v = emptyValueInfo(name);
  if (elemType === undefined) return v;
  const type = emptyTypeProto();
  type.tensorType = { elemType, unknownFields: [] };
  if (shape) {
    type.tensorType.shape = {
      dims: shape.map((d) => (typeof d === 'number' ? { value: d, denotation: '', unknownFields: [] } : { param: d, denotation: '', unknownFields: [] })),
      unknownFields: [],
    };
  }
  v.type = type;
  return v;
}

/** Deterministic pseudo-random numbers (mulberry32), so built models are the same on every run. */
export class Rng {
  private state: number;
  constructor(seed = 1) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  normals(n: number, std = 1, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

export type WeightPlacement = 'initializer' | 'constant';

/** Builds one graph; subgraphs (If/Loop/Scan bodies) are GraphBuilders too. */
export class GraphBuilder {
  readonly graph: GraphProto;
  private counter = 0;
  readonly rng: Rng;
  /** Where conv/gemm/matMul helpers put their weights. */
  weightPlacement: WeightPlacement = 'initializer';

  constructor(name: string, rng: Rng, private readonly names: { used: Set<string> } = { used: new Set() }) {
    this.graph = emptyGraph(name);
    this.rng = rng;
  }

  /** A fresh unique name with the given prefix (unique across the whole model). */
  fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.names.used.has(name));
    this.names.used.add(name);
    return name;
  }

  input(name: string, elemType: number, shape?: (number | string)[]): string {
    this.names.used.add(name);
    this.graph.input.push(makeValueInfo(name, elemType, shape));
    return name;
  }

  output(name: string, elemType?: number, shape?: (number | string)[]): string {
    this.graph.output.push(makeValueInfo(name, elemType, shape));
    return name;
  }

  valueInfo(name: string, elemType: number, shape?: (number | string)[]): void {
    this.graph.valueInfo.push(makeValueInfo(name, elemType, shape));
  }

  initializer(name: string, dataType: number, dims: number[], values: TensorValues): string {
    this.names.used.add(name);
    this.graph.initializer.push(makeTensor(name, dataType, dims, values));
    return name;
  }

  /** A Constant node holding the tensor; returns its output name. */
  constant(name: string, dataType: number, dims: number[], values: TensorValues): string {
    this.names.used.add(name);
    this.node('Constant', [], { value: makeTensor(name, dataType, dims, values) }, { outputs: [name], name: `${name}_const` });
    return name;
  }

  /** A float32 weight in the placement chosen by `weightPlacement`. */
  weight(prefix: string, dims: number[], values: Float32Array): string {
    const name = this.fresh(prefix);
    return this.weightPlacement === 'constant' ? this.constant(name, DataType.FLOAT, dims, values) : this.initializer(name, DataType.FLOAT, dims, values);
  }

  /** Adds a node; returns its first output's name. */
  node(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    opts: { outputs?: string[] | number; name?: string; domain?: string } = {},
  ): string {
    return this.nodeOutputs(opType, inputs, attrs, opts)[0]!;
  }

  /** Adds a node; returns all its output names. */
  nodeOutputs(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    opts: { outputs?: string[] | number; name?: string; domain?: string } = {},
  ): string[] {
    const n = emptyNode(opType);
    n.name = opts.name ?? this.fresh(opType.toLowerCase());
    this.names.used.add(n.name);
    n.input = inputs;
    const outs = opts.outputs ?? 1;
    n.output = typeof outs === 'number' ? Array.from({ length: outs }, () => this.fresh(`${n.name}_out`)) : outs;
    for (const o of n.output) this.names.used.add(o);
    if (opts.domain) n.domain = opts.domain;
    n.attribute = Object.entries(attrs).map(([k, v]) => makeAttribute(k, v));
    this.graph.node.push(n);
    return n.output;
  }

  /** A nested graph for If/Loop/Scan; it may read names of this graph. */
  subgraph(name: string, build: (g: GraphBuilder) => void): GraphProto {
    const g = new GraphBuilder(name, this.rng, this.names);
    g.weightPlacement = this.weightPlacement;
    build(g);
    return g.graph;
  }

  // ---- layer helpers with seeded random weights (He-style scaling keeps activations in range) ----

  conv(
    x: string,
    inChannels: number,
    outChannels: number,
    kernel: number,
    opts: { stride?: number; pad?: number; group?: number; bias?: boolean; name?: string } = {},
  ): string {
    const group = opts.group ?? 1;
    const pad = opts.pad ?? Math.floor(kernel / 2);
    const fanIn = (inChannels / group) * kernel * kernel;
    const w = this.weight('conv_w', [outChannels, inChannels / group, kernel, kernel], this.rng.normals(outChannels * fanIn, Math.sqrt(2 / fanIn)));
    const inputs = [x, w];
    if (opts.bias !== false) inputs.push(this.weight('conv_b', [outChannels], this.rng.normals(outChannels, 0.05)));
    return this.node('Conv', inputs, { kernel_shape: [kernel, kernel], pads: [pad, pad, pad, pad], strides: [opts.stride ?? 1, opts.stride ?? 1], group }, opts.name ? { name: opts.name } : {});
  }

  gemm(x: string, inFeatures: number, outFeatures: number, opts: { transB?: boolean; name?: string } = {}): string {
    const transB = opts.transB ?? true;
    const dims = transB ? [outFeatures, inFeatures] : [inFeatures, outFeatures];
    const w = this.weight('gemm_w', dims, this.rng.normals(inFeatures * outFeatures, Math.sqrt(1 / inFeatures)));
    const b = this.weight('gemm_b', [outFeatures], this.rng.normals(outFeatures, 0.05));
    return this.node('Gemm', [x, w, b], transB ? { transB: 1 } : {}, opts.name ? { name: opts.name } : {});
  }

  matMul(x: string, inFeatures: number, outFeatures: number, opts: { name?: string } = {}): string {
    const w = this.weight('matmul_w', [inFeatures, outFeatures], this.rng.normals(inFeatures * outFeatures, Math.sqrt(1 / inFeatures)));
    return this.node('MatMul', [x, w], {}, opts.name ? { name: opts.name } : {});
  }

  relu(x: string): string {
    return this.node('Relu', [x]);
  }
}

export interface ModelBuilderOptions {
  opset?: number;
  irVersion?: number;
  /** Extra opset imports, e.g. { 'com.microsoft': 1 }. */
  opsets?: Record<string, number>;
  producer?: string;
  seed?: number;
  graphName?: string;
}

/** Builds a model: the main graph plus model-level fields. */
export class ModelBuilder extends GraphBuilder {
  private readonly options: ModelBuilderOptions;
  constructor(options: ModelBuilderOptions = {}) {
    super(options.graphName ?? 'main', new Rng(options.seed ?? 1));
    this.options = options;
  }

  build(): ModelProto {
    const m = emptyModel();
    const opset = this.options.opset ?? 17;
    // The IR version released with each opset (onnx 1.12: 17 → IR 8; 1.15: 20 → 9; 1.17: 22 → 10).
    m.irVersion = this.options.irVersion ?? (opset <= 17 ? 8 : opset <= 20 ? 9 : opset <= 22 ? 10 : 11);
    m.producerName = this.options.producer ?? 'onnx-quant';
    m.producerVersion = 'builder';
    m.opsetImport = [{ domain: '', version: opset }];
    for (const [domain, version] of Object.entries(this.options.opsets ?? {})) m.opsetImport.push({ domain, version });
    m.graph = this.graph;
    return m;
  }
}
