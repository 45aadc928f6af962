/**
 * A loaded ONNX model: the decoded protobuf (lazy, zero-copy over the file's bytes), its graphs,
 * its weights wherever they live, and lazy access to tensor bytes, inline or external.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeModel } from './decode';
import { OnnxFormatError } from './errors';
import { ExternalDataReader, isExternal } from './external-data';
import { GraphView } from './graph';
import { AttributeProto, AttributeType, emptyTensor, GraphProto, ModelProto, NodeProto, TensorProto } from './proto';
import { elementCount } from './tensor-data';

export type WeightKind = 'initializer' | 'constant';

/** A weight tensor: a graph initializer or the value of a Constant node, in any graph. */
export interface WeightRef {
  /** The tensor's name in the graph: the initializer name or the Constant node's output. */
  name: string;
  tensor: TensorProto;
  kind: WeightKind;
  /** True when the bytes live in an external data file. */
  external: boolean;
  graph: GraphView;
  /** The Constant node, for constant weights. */
  node?: NodeProto;
}

/** Largest file we read whole; a single ModelProto cannot exceed protobuf's 2 GB limit anyway. */
const MAX_MODEL_FILE_BYTES = 2 ** 31;

export class OnnxModel {
  readonly file: string;
  readonly dir: string;
  readonly proto: ModelProto;
  /** The serialized model. Tensors and byte strings in `proto` are views into it. */
  readonly buffer: Uint8Array;
  private mainGraph?: GraphView;
  private external?: ExternalDataReader;

  private constructor(file: string, buffer: Uint8Array, proto: ModelProto) {
    this.file = file;
    this.dir = path.dirname(path.resolve(file));
    this.buffer = buffer;
    this.proto = proto;
  }

  /** Reads and decodes a model file. Throws OnnxFormatError naming the file for bad input. */
  static load(file: string): OnnxModel {
    let size: number;
    try {
      const st = fs.statSync(file);
      if (!st.isFile()) throw new OnnxFormatError(`${file}: not a file`, { file });
      size = st.size;
    } catch (err) {
      if (err instanceof OnnxFormatError) throw err;
      throw new OnnxFormatError(`${file}: cannot read: ${(err as Error).message}`, { file });
    }
    if (size > MAX_MODEL_FILE_BYTES) {
      throw new OnnxFormatError(`${file}: ${size} bytes is over protobuf's 2 GB limit; large models keep weights in external data`, { file });
    }
    return OnnxModel.fromBuffer(fs.readFileSync(file), file);
  }

  /** Decodes a model held in memory; `file` names it in errors and anchors external data. */
  static fromBuffer(buffer: Uint8Array, file = '<memory>'): OnnxModel {
    if (buffer.length === 0) throw new OnnxFormatError(`${file}: empty file, not an ONNX model`, { file, offset: 0 });
    const proto = decodeModel(buffer, file);
    if (!proto.graph || proto.irVersion <= 0) {
      throw new OnnxFormatError(`${file}: not an ONNX model (no ${!proto.graph ? 'graph' : 'IR version'} found)`, { file });
    }
    const model = new OnnxModel(file, buffer, proto);
    // Dims that are negative or multiply past 2^53 make every size computed from them meaningless:
    // refuse them here, with the file and tensor named, rather than wherever a size is first needed.
    for (const w of model.weights()) elementCount(w.tensor.dims, w.tensor.name || w.name, file);
    return model;
  }

  /** Wraps a model built or transformed in memory. */
  static fromProto(proto: ModelProto, file = '<memory>'): OnnxModel {
    return new OnnxModel(file, new Uint8Array(0), proto);
  }

  get graph(): GraphView {
    if (!this.mainGraph) this.mainGraph = new GraphView(this.proto.graph!);
    return this.mainGraph;
  }

  /** The main graph and every subgraph, depth first. */
  graphs(): GraphView[] {
    return [this.graph, ...this.graph.descendants()];
  }

  /** Opset version imported for a domain ('' and 'ai.onnx' are the default domain). */
  opset(domain = ''): number | undefined {
    const want = domain === 'ai.onnx' ? '' : domain;
    return this.proto.opsetImport.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === want)?.version;
  }

  /** Every weight tensor, in initializers and Constant nodes, in every graph. */
  weights(): WeightRef[] {
    const out: WeightRef[] = [];
    for (const graph of this.graphs()) {
      for (const t of graph.proto.initializer) {
        out.push({ name: t.name, tensor: t, kind: 'initializer', external: isExternal(t), graph });
      }
      for (const node of graph.proto.node) {
        if (node.opType !== 'Constant' || (node.domain !== '' && node.domain !== 'ai.onnx')) continue;
        const tensor = constantTensor(node);
        if (!tensor) continue;
        out.push({ name: node.output[0] ?? '', tensor, kind: 'constant', external: isExternal(tensor), graph, node });
      }
    }
    return out;
  }

  /**
   * The bytes of a tensor's raw data: a view of the model file for inline raw_data, or read from
   * the external data file. Undefined for tensors whose values sit in typed fields (float_data, …).
   */
  rawBytes(t: TensorProto): Uint8Array | undefined {
    if (isExternal(t)) {
      if (!this.external) this.external = new ExternalDataReader(this.dir, this.file);
      return this.external.read(t);
    }
    return t.rawData;
  }

  /** Checks that an external tensor's data exists and is in range, without reading it. */
  checkExternal(t: TensorProto): { path: string; offset: number; length: number } {
    if (!this.external) this.external = new ExternalDataReader(this.dir, this.file);
    return this.external.range(t);
  }

  /** Releases external data file descriptors. */
  close(): void {
    this.external?.close();
    this.external = undefined;
  }
}

function scalarRaw(bytes: ArrayBufferView): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The tensor a Constant node holds, materialized from whichever attribute carries it
 * (value, value_float(s), value_int(s), value_string(s)). Sparse values are not weights here.
 */
export function constantTensor(node: NodeProto): TensorProto | undefined {
  const a: AttributeProto | undefined = node.attribute[0];
  if (!a || node.attribute.length !== 1) return undefined;
  const name = node.output[0] ?? '';
  if (a.name === 'value' && a.t) return a.t;
  const t = emptyTensor(name);
  switch (a.name) {
    case 'value_float':
      if (a.f === undefined) return undefined;
      t.dataType = 1;
      t.rawData = scalarRaw(new Float32Array([a.f]));
      return t;
    case 'value_floats':
      t.dataType = 1;
      t.dims = [a.floats.length];
      t.rawData = scalarRaw(new Float32Array(a.floats));
      return t;
    case 'value_int':
      if (a.i === undefined) return undefined;
      t.dataType = 7;
      t.rawData = scalarRaw(new BigInt64Array([a.i]));
      return t;
    case 'value_ints':
      t.dataType = 7;
      t.dims = [a.ints.length];
      t.rawData = scalarRaw(BigInt64Array.from(a.ints));
      return t;
    case 'value_string':
      if (a.s === undefined) return undefined;
      t.dataType = 8;
      t.stringData = [a.s];
      return t;
    case 'value_strings':
      if (a.type !== AttributeType.Strings && a.strings.length === 0) return undefined;
      t.dataType = 8;
      t.dims = [a.strings.length];
      t.stringData = [...a.strings];
      return t;
    default:
      return undefined;
  }
}

/** Every graph of a raw GraphProto tree, for code that works on protos without a model. */
export function* walkGraphs(g: GraphProto): Generator<GraphProto> {
  yield g;
  for (const n of g.node) for (const sub of nodeSubgraphs(n)) yield* walkGraphs(sub);
}

/** The subgraphs a node's attributes hold (If branches, Loop/Scan bodies), not nested ones. */
export function nodeSubgraphs(n: NodeProto): GraphProto[] {
  return n.attribute.flatMap((a) => (a.g ? [a.g, ...a.graphs] : a.graphs));
}
