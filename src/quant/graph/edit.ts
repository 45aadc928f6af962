/**
 * Helpers for rewriting a model's graphs. Transforms work on a structural copy of the model
 * (`cloneModel`) so the loaded model, whose tensors are views into the file buffer, stays intact.
 */
import { DataType } from '../../onnx/dtypes';
import { walkGraphs } from '../../onnx/model';
import {
  AttributeProto,
  emptyNode,
  GraphProto,
  ModelProto,
  NodeProto,
  TensorProto,
  ValueInfoProto,
} from '../../onnx/proto';
import { makeAttribute, AttrValue } from '../../onnx/builder';
import { makeTensor, TensorValuesInput } from '../../onnx/tensor-data';

/** Copies graphs, nodes, attribute and value-info lists; tensors (and their bytes) are shared. */
export function cloneModel(model: ModelProto): ModelProto {
  return { ...model, opsetImport: model.opsetImport.map((o) => ({ ...o })), graph: model.graph ? cloneGraph(model.graph) : undefined };
}

export function cloneGraph(g: GraphProto): GraphProto {
  return {
    ...g,
    node: g.node.map(cloneNode),
    initializer: [...g.initializer],
    input: [...g.input],
    output: [...g.output],
    valueInfo: [...g.valueInfo],
  };
}

function cloneNode(n: NodeProto): NodeProto {
  return {
    ...n,
    input: [...n.input],
    output: [...n.output],
    attribute: n.attribute.map((a): AttributeProto => ({
      ...a,
      g: a.g ? cloneGraph(a.g) : undefined,
      graphs: a.graphs.map(cloneGraph),
      floats: [...a.floats],
      ints: [...a.ints],
    })),
  };
}

/** Hands out names that no tensor or node anywhere in the model uses yet. */
export class NameScope {
  private readonly used = new Set<string>();

  constructor(model: ModelProto) {
    if (!model.graph) return;
    for (const g of walkGraphs(model.graph)) {
      for (const v of g.input) this.used.add(v.name);
      for (const v of g.output) this.used.add(v.name);
      for (const v of g.valueInfo) this.used.add(v.name);
      for (const t of g.initializer) this.used.add(t.name);
      for (const n of g.node) {
        this.used.add(n.name);
        for (const o of n.output) this.used.add(o);
        for (const i of n.input) this.used.add(i);
      }
    }
  }

  /** `base` itself if free, else `base_1`, `base_2`, … */
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  name: string,
  attrs: Record<string, AttrValue> = {},
  domain = '',
): NodeProto {
  const n = emptyNode(opType);
  n.input = inputs;
  n.output = outputs;
  n.name = name;
  n.domain = domain;
  n.attribute = Object.entries(attrs).map(([k, v]) => makeAttribute(k, v));
  return n;
}

/** A named initializer tensor from typed values. */
export function initializer(name: string, dataType: DataType, dims: readonly number[], values: TensorValuesInput): TensorProto {
  return makeTensor(name, dataType, dims, values);
}

/** Ensures the model imports `domain` at `version` or newer; returns the version now imported. */
export function requireOpset(model: ModelProto, domain: string, version: number): number {
  const entry = model.opsetImport.find((o) => o.domain === domain || (domain === '' && o.domain === 'ai.onnx'));
  if (!entry) {
    model.opsetImport.push({ domain, version });
    return version;
  }
  if (entry.version < version) entry.version = version;
  return entry.version;
}

/** Replaces every use of tensor `from` by `to` in the given nodes (inputs only) and graph outputs. */
export function renameInputs(nodes: NodeProto[], from: string, to: string): void {
  for (const n of nodes) {
    for (let i = 0; i < n.input.length; i++) if (n.input[i] === from) n.input[i] = to;
  }
}

/**
 * Inserts `newNodes` before the node at `index` in the graph (keeps the topological order when
 * the new nodes only read values available at that point).
 */
export function insertNodesBefore(graph: GraphProto, index: number, newNodes: NodeProto[]): void {
  graph.node.splice(index, 0, ...newNodes);
}

/** The value info of a graph input/output/value_info entry by name, if declared. */
export function findValueInfo(graph: GraphProto, name: string): ValueInfoProto | undefined {
  return graph.input.find((v) => v.name === name) ?? graph.output.find((v) => v.name === name) ?? graph.valueInfo.find((v) => v.name === name);
}

/** Removes initializers that no node (in this graph or its subgraphs) reads any more. */
export function pruneUnusedInitializers(graph: GraphProto): number {
  const used = new Set<string>();
  for (const g of walkGraphs(graph)) {
    for (const n of g.node) for (const i of n.input) used.add(i);
    for (const o of g.output) used.add(o.name);
  }
  const removed = new Set(graph.initializer.filter((t) => !used.has(t.name)).map((t) => t.name));
  if (removed.size === 0) return 0;
  graph.initializer = graph.initializer.filter((t) => !removed.has(t.name));
  // Old models (IR < 4) list initializers as graph inputs too; those entries go with them.
  graph.input = graph.input.filter((v) => !removed.has(v.name));
  return removed.size;
}
