/**
 * Shared plumbing of the post-training refinements: finding a layer's constant weight, and applying
 * weight edits to a model by node key. The static pipeline keeps two protos of one float model (the
 * one it quantizes, and the calibration copy with If branches inlined); refinements compute edits
 * once, on the calibration copy, and apply them to both by key, so the two cannot drift apart.
 */
import { DataType } from '../../onnx/dtypes';
import { constantTensor, walkGraphs } from '../../onnx/model';
import { GraphProto, ModelProto, NodeProto, TensorProto } from '../../onnx/proto';
import { cloneModel, initializer, makeNode, NameScope, pruneDeadNodes } from '../graph/edit';

/** A stable identity for a node: its name, or its first output when it has none (outputs are unique). */
export function nodeKey(n: NodeProto): string {
  return n.name || `#${n.output[0] ?? ''}`;
}

/** Float constants of a graph (initializers and Constant nodes) that are not graph inputs. */
export function graphConstants(g: GraphProto, outer?: ReadonlyMap<string, TensorProto>): Map<string, TensorProto> {
  const out = new Map(outer ?? []);
  const inputs = new Set(g.input.map((v) => v.name));
  for (const t of g.initializer) if (!inputs.has(t.name)) out.set(t.name, t);
  for (const n of g.node) {
    if (n.opType !== 'Constant' || (n.domain !== '' && n.domain !== 'ai.onnx')) continue;
    const t = constantTensor(n);
    if (t && n.output[0]) out.set(n.output[0], t);
  }
  return out;
}

/** A float32 constant's values and shape. */
export interface FloatConst {
  dims: number[];
  values: Float32Array;
}

/** Reads float32 constants of one graph (undefined for anything else: inputs, computed values, other types). */
export class ConstReader {
  readonly constants: Map<string, TensorProto>;
  constructor(
    graph: GraphProto,
    private readonly read: (t: TensorProto) => Float32Array,
    outer?: ReadonlyMap<string, TensorProto>,
  ) {
    this.constants = graphConstants(graph, outer);
  }

  get(name: string | undefined): FloatConst | undefined {
    if (!name) return undefined;
    const t = this.constants.get(name);
    if (!t || t.dataType !== DataType.FLOAT) return undefined;
    return { dims: t.dims.map(Number), values: this.read(t) };
  }
}

/** Replace input `input` of node `node` (a key) by a new float32 initializer. */
export interface ReplaceEdit {
  kind: 'replace';
  node: string;
  input: number;
  dims: number[];
  values: Float32Array;
  /** Suffix of the new initializer's name, e.g. "cle". */
  tag: string;
}

/** Divide input `input` of node `node` by `divisor` (broadcast on the last axis) with an inserted Div node. */
export interface DivideEdit {
  kind: 'divide';
  node: string;
  input: number;
  divisor: Float32Array;
  tag: string;
}

export type WeightEdit = ReplaceEdit | DivideEdit;

/**
 * A copy of `proto` with the edits applied to the nodes they name, wherever those sit (main graph or
 * a subgraph). Nodes are replaced, not mutated, so protos sharing node objects stay independent.
 * Edits naming nodes the model does not have are ignored (e.g. a node of an inlined branch that is
 * not in the main graph of the other copy under that key).
 */
export function applyEdits(proto: ModelProto, edits: readonly WeightEdit[]): ModelProto {
  if (!edits.length) return proto;
  const out = cloneModel(proto);
  const names = new NameScope(out);
  const byNode = new Map<string, WeightEdit[]>();
  for (const e of edits) byNode.set(e.node, [...(byNode.get(e.node) ?? []), e]);
  for (const g of walkGraphs(out.graph!)) {
    const nodes: NodeProto[] = [];
    for (const n of g.node) {
      const mine = byNode.get(nodeKey(n));
      if (!mine) {
        nodes.push(n);
        continue;
      }
      const input = [...n.input];
      for (const e of mine) {
        while (input.length <= e.input) input.push('');
        const base = input[e.input] || `${input[1] || nodeKey(n)}_bias`;
        if (e.kind === 'replace') {
          const name = names.fresh(`${base}_${e.tag}`);
          g.initializer.push(initializer(name, DataType.FLOAT, e.dims, e.values));
          input[e.input] = name;
        } else {
          const d = names.fresh(`${base}_${e.tag}_divisor`);
          const y = names.fresh(`${base}_${e.tag}`);
          g.initializer.push(initializer(d, DataType.FLOAT, [e.divisor.length], e.divisor));
          nodes.push(makeNode('Div', [input[e.input]!, d], [y], names.fresh(`${nodeKey(n)}_${e.tag}_Div`)));
          input[e.input] = y;
        }
      }
      nodes.push({ ...n, input });
    }
    g.node = nodes;
  }
  // The replaced float weights would otherwise ship in the quantized file.
  pruneDeadNodes(out);
  return out;
}

/** Node of the main graph by key. */
export function mainNodes(proto: ModelProto): Map<string, NodeProto> {
  return new Map(proto.graph!.node.map((n) => [nodeKey(n), n]));
}
