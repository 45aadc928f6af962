/**
 * Graph API over the decoded protobuf: nodes in topological order, producers and consumers of each
 * tensor, name lookup that walks out through enclosing scopes (subgraphs of If/Loop/Scan may use
 * names of the graphs around them), and value types and shapes from inputs/outputs/value_info.
 */
import { AttributeType, GraphProto, NodeProto, TensorProto, TypeProto, ValueInfoProto } from './proto';

export type Dim = number | string;

export interface ValueType {
  /** ONNX element type (TensorProto.DataType); 0 when unknown or not a tensor. */
  elemType: number;
  /** Undefined when the rank is unknown. Symbolic dims are strings; unnamed ones are "?". */
  shape: Dim[] | undefined;
  kind: 'tensor' | 'sparse_tensor' | 'sequence' | 'map' | 'optional' | 'unknown';
}

export function valueTypeOf(type: TypeProto | undefined): ValueType {
  if (!type) return { elemType: 0, shape: undefined, kind: 'unknown' };
  const t = type.tensorType ?? type.sparseTensorType;
  if (t) {
    const shape = t.shape?.dims.map((d): Dim => (d.value !== undefined ? d.value : d.param ? d.param : '?'));
    return { elemType: t.elemType, shape, kind: type.tensorType ? 'tensor' : 'sparse_tensor' };
  }
  if (type.sequenceType) return { elemType: 0, shape: undefined, kind: 'sequence' };
  if (type.mapType) return { elemType: 0, shape: undefined, kind: 'map' };
  if (type.optionalType) return { elemType: 0, shape: undefined, kind: 'optional' };
  return { elemType: 0, shape: undefined, kind: 'unknown' };
}

/** A subgraph held by a node attribute (If's then/else branches, Loop and Scan bodies). */
export interface SubgraphRef {
  attribute: string;
  graph: GraphView;
}

export class GraphView {
  readonly proto: GraphProto;
  readonly parent: GraphView | undefined;
  /** The node whose attribute holds this graph; undefined for the main graph. */
  readonly owner: NodeProto | undefined;
  /** Nesting depth: 0 for the main graph. */
  readonly depth: number;

  private producers?: Map<string, NodeProto>;
  private consumerMap?: Map<string, NodeProto[]>;
  private initializerMap?: Map<string, TensorProto>;
  private valueInfoMap?: Map<string, ValueInfoProto>;
  private sorted?: NodeProto[];
  private subgraphCache?: Map<NodeProto, SubgraphRef[]>;
  private outerRefs?: Set<string>;

  constructor(proto: GraphProto, parent?: GraphView, owner?: NodeProto) {
    this.proto = proto;
    this.parent = parent;
    this.owner = owner;
    this.depth = parent ? parent.depth + 1 : 0;
  }

  get name(): string {
    return this.proto.name;
  }

  private index(): void {
    const producers = new Map<string, NodeProto>();
    const consumers = new Map<string, NodeProto[]>();
    for (const node of this.proto.node) {
      for (const out of node.output) if (out) producers.set(out, node);
      for (const inp of node.input) {
        if (!inp) continue;
        const list = consumers.get(inp);
        if (list) {
          if (list[list.length - 1] !== node) list.push(node);
        } else consumers.set(inp, [node]);
      }
      // A subgraph's references to outer names make this node a consumer of them too.
      for (const sub of this.subgraphsOf(node)) {
        for (const name of sub.graph.outerReferences()) {
          const list = consumers.get(name);
          if (list) {
            if (list[list.length - 1] !== node) list.push(node);
          } else consumers.set(name, [node]);
        }
      }
    }
    this.producers = producers;
    this.consumerMap = consumers;
  }

  /** The node in this graph that outputs `name` (not looking into enclosing graphs). */
  producer(name: string): NodeProto | undefined {
    if (!this.producers) this.index();
    return this.producers!.get(name);
  }

  /** Nodes of this graph that read `name`, directly or from inside one of their subgraphs. */
  consumers(name: string): readonly NodeProto[] {
    if (!this.consumerMap) this.index();
    return this.consumerMap!.get(name) ?? [];
  }

  initializer(name: string): TensorProto | undefined {
    if (!this.initializerMap) this.initializerMap = new Map(this.proto.initializer.map((t) => [t.name, t]));
    return this.initializerMap.get(name);
  }

  /** Initializer lookup that walks out through enclosing scopes. */
  findInitializer(name: string): TensorProto | undefined {
    for (let g: GraphView | undefined = this; g; g = g.parent) {
      const t = g.initializer(name);
      if (t) return t;
      if (g.producer(name) || g.isGraphInput(name)) return undefined; // shadowed by a computed value
    }
    return undefined;
  }

  isGraphInput(name: string): boolean {
    return this.proto.input.some((v) => v.name === name);
  }

  /** Declared type of a value: graph input/output or value_info, then initializers, walking outwards. */
  valueType(name: string): ValueType | undefined {
    for (let g: GraphView | undefined = this; g; g = g.parent) {
      if (!g.valueInfoMap) {
        const m = new Map<string, ValueInfoProto>();
        for (const v of g.proto.valueInfo) m.set(v.name, v);
        for (const v of g.proto.output) m.set(v.name, v);
        for (const v of g.proto.input) m.set(v.name, v);
        g.valueInfoMap = m;
      }
      const info = g.valueInfoMap.get(name);
      if (info) return valueTypeOf(info.type);
      const init = g.initializer(name);
      if (init) return { elemType: init.dataType, shape: [...init.dims], kind: 'tensor' };
    }
    return undefined;
  }

  /** Subgraphs held by a node's attributes (GRAPH and GRAPHS attributes). */
  subgraphsOf(node: NodeProto): SubgraphRef[] {
    if (!this.subgraphCache) this.subgraphCache = new Map();
    let subs = this.subgraphCache.get(node);
    if (!subs) {
      subs = [];
      for (const a of node.attribute) {
        if (a.g && (a.type === AttributeType.Graph || a.type === AttributeType.Undefined)) {
          subs.push({ attribute: a.name, graph: new GraphView(a.g, this, node) });
        }
        for (const g of a.graphs) subs.push({ attribute: a.name, graph: new GraphView(g, this, node) });
      }
      this.subgraphCache.set(node, subs);
    }
    return subs;
  }

  /** Every graph nested in this one, depth first (not including this one). */
  *descendants(): Generator<GraphView> {
    for (const node of this.proto.node) {
      for (const sub of this.subgraphsOf(node)) {
        yield sub.graph;
        yield* sub.graph.descendants();
      }
    }
  }

  /** Names this graph (or its subgraphs) reads that are defined in an enclosing scope. */
  outerReferences(): ReadonlySet<string> {
    if (this.outerRefs) return this.outerRefs;
    const defined = new Set<string>();
    for (const v of this.proto.input) defined.add(v.name);
    for (const t of this.proto.initializer) defined.add(t.name);
    for (const n of this.proto.node) for (const o of n.output) if (o) defined.add(o);
    const outer = new Set<string>();
    for (const n of this.proto.node) {
      for (const i of n.input) if (i && !defined.has(i)) outer.add(i);
      for (const sub of this.subgraphsOf(n)) for (const name of sub.graph.outerReferences()) if (!defined.has(name)) outer.add(name);
    }
    for (const v of this.proto.output) if (v.name && !defined.has(v.name)) outer.add(v.name);
    return (this.outerRefs = outer);
  }

  /**
   * Nodes in topological order. Keeps the file's order where it is already valid (the common case)
   * and places a node after its producers otherwise; nodes in a cycle keep their file order at the end.
   */
  topologicalNodes(): readonly NodeProto[] {
    if (this.sorted) return this.sorted;
    const nodes = this.proto.node;
    const available = new Set<string>();
    for (const v of this.proto.input) available.add(v.name);
    for (const t of this.proto.initializer) available.add(t.name);
    const localOutputs = new Set<string>();
    for (const n of nodes) for (const o of n.output) if (o) localOutputs.add(o);
    // Names not produced in this graph come from outer scopes (or are missing): treat them as ready.
    const ready = (name: string) => !name || available.has(name) || !localOutputs.has(name);
    const inputsOf = (n: NodeProto): string[] => {
      const names = [...n.input];
      for (const sub of this.subgraphsOf(n)) names.push(...sub.graph.outerReferences());
      return names;
    };

    let inOrder = true;
    for (const n of nodes) {
      if (!inputsOf(n).every(ready)) {
        inOrder = false;
        break;
      }
      for (const o of n.output) if (o) available.add(o);
    }
    if (inOrder) return (this.sorted = nodes);

    // Kahn's algorithm, stable with respect to the file order.
    const pending = new Map<NodeProto, number>();
    const waiting = new Map<string, NodeProto[]>();
    available.clear();
    for (const v of this.proto.input) available.add(v.name);
    for (const t of this.proto.initializer) available.add(t.name);
    const queue: NodeProto[] = [];
    for (const n of nodes) {
      const missing = new Set(inputsOf(n).filter((name) => !ready(name)));
      pending.set(n, missing.size);
      for (const name of missing) {
        const list = waiting.get(name);
        if (list) list.push(n);
        else waiting.set(name, [n]);
      }
      if (missing.size === 0) queue.push(n);
    }
    const order: NodeProto[] = [];
    const done = new Set<NodeProto>();
    for (let i = 0; i < queue.length; i++) {
      const n = queue[i]!;
      order.push(n);
      done.add(n);
      for (const o of n.output) {
        if (!o || available.has(o)) continue;
        available.add(o);
        for (const w of waiting.get(o) ?? []) {
          const left = pending.get(w)! - 1;
          pending.set(w, left);
          if (left === 0) queue.push(w);
        }
      }
    }
    for (const n of nodes) if (!done.has(n)) order.push(n);
    return (this.sorted = order);
  }
}
