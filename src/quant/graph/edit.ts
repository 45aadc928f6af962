/**
 * Helpers for rewriting a model's graphs. Transforms work on a structural copy of the model
 * (`cloneModel`) so the loaded model, whose tensors are views into the file buffer, stays intact.
 */
import { DataType } from '../../onnx/dtypes';
import { isExternal } from '../../onnx/external-data';
import { constantTensor, OnnxModel, walkGraphs } from '../../onnx/model';
import {
  AttributeProto,
  AttributeType,
  emptyNode,
  GraphProto,
  ModelProto,
  NodeProto,
  TensorProto,
  ValueInfoProto,
} from '../../onnx/proto';
import { makeAttribute, AttrValue } from '../../onnx/builder';
import { makeTensor, tensorToFloat32, TensorValues, tensorValues, TensorValuesInput } from '../../onnx/tensor-data';

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
const FLOAT_ELEMENT_TYPES: readonly number[] = [DataType.FLOAT, DataType.FLOAT16, DataType.DOUBLE, DataType.BFLOAT16];

/** A graph's float inputs that are real inputs (not initializers listed as inputs, as IR < 4 does). */
export function floatGraphInputs(graph: GraphProto): ValueInfoProto[] {
  const initializers = new Set(graph.initializer.map((t) => t.name));
  return graph.input.filter((i) => !initializers.has(i.name) && FLOAT_ELEMENT_TYPES.includes(i.type?.tensorType?.elemType ?? -1));
}

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

// ---------------------------------------------------------------------------------------------
// Shared by the graph transforms (dynamic, weight-only, fp16, BatchNormalization folding): their
// result shape, the scope tree of a model, constant lookup through scopes, and clean-up.

/** A node a transform rewrote, with what it did in words. */
export interface TransformedNode {
  name: string;
  opType: string;
  detail: string;
}

/** A candidate node a transform left alone, with why. */
export interface SkippedNode {
  name: string;
  opType: string;
  reason: string;
}

export interface TransformResult {
  model: ModelProto;
  quantized: TransformedNode[];
  skipped: SkippedNode[];
}

/** Reads a tensor's raw bytes (inline or external); undefined when they are in typed fields. */
export type RawReader = (t: TensorProto) => Uint8Array | undefined;

/**
 * The proto of a model and a reader for its tensors. A bare ModelProto cannot resolve external
 * data (it has no folder), so its external tensors read as undefined and are skipped by callers.
 */
export function modelSource(model: OnnxModel | ModelProto): { proto: ModelProto; read: RawReader } {
  if (model instanceof OnnxModel) return { proto: model.proto, read: (t) => model.rawBytes(t) };
  return { proto: model, read: (t) => (isExternal(t) ? undefined : t.rawData) };
}

/** A graph and the graphs around it: names not defined here resolve in `parent`. */
export interface Scope {
  graph: GraphProto;
  parent: Scope | undefined;
  /** The If/Loop/Scan node holding this graph; undefined for the main graph. */
  owner: NodeProto | undefined;
}

/** Every graph of a model as a scope, parents before their subgraphs. */
export function modelScopes(model: ModelProto): Scope[] {
  const out: Scope[] = [];
  const visit = (graph: GraphProto, parent: Scope | undefined, owner: NodeProto | undefined) => {
    const scope: Scope = { graph, parent, owner };
    out.push(scope);
    for (const n of graph.node) {
      for (const a of n.attribute) {
        if (a.g) visit(a.g, scope, n);
        for (const g of a.graphs) visit(g, scope, n);
      }
    }
  };
  if (model.graph) visit(model.graph, undefined, undefined);
  return out;
}

/**
 * How often each name is read: node inputs in every graph (subgraphs included) and graph outputs.
 * ONNX names are unique across a model's nested graphs, so one map serves all scopes.
 */
export function useCounts(model: ModelProto): Map<string, number> {
  const uses = new Map<string, number>();
  const add = (name: string) => {
    if (name) uses.set(name, (uses.get(name) ?? 0) + 1);
  };
  if (!model.graph) return uses;
  for (const g of walkGraphs(model.graph)) {
    for (const n of g.node) for (const i of n.input) add(i);
    for (const o of g.output) add(o.name);
  }
  return uses;
}

/** Every node reading each name, in any graph, with the graph it sits in. */
export function consumerMap(model: ModelProto): Map<string, { node: NodeProto; graph: GraphProto }[]> {
  const out = new Map<string, { node: NodeProto; graph: GraphProto }[]>();
  if (!model.graph) return out;
  for (const graph of walkGraphs(model.graph)) {
    for (const node of graph.node) {
      for (const i of new Set(node.input)) {
        if (!i) continue;
        const list = out.get(i);
        if (list) list.push({ node, graph });
        else out.set(i, [{ node, graph }]);
      }
    }
  }
  return out;
}

export function isDefaultDomain(node: NodeProto): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}

/** The value of an INT attribute, or `fallback`. */
export function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a?.i !== undefined ? Number(a.i) : fallback;
}

/** The value of a FLOAT attribute, or `fallback`. */
export function floatAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a?.f !== undefined ? a.f : fallback;
}

/** The value of an INTS attribute, or undefined when absent. */
export function intsAttr(node: NodeProto, name: string): number[] | undefined {
  const a = node.attribute.find((x) => x.name === name);
  return a && (a.ints.length > 0 || a.type === AttributeType.Ints) ? a.ints.map(Number) : undefined;
}

/** A constant found behind a value name. */
export interface ResolvedConstant {
  /** The stored tensor, or one computed by folding data-movement nodes (Reshape, Slice, …). */
  tensor: TensorProto;
  /** The scope that defines `name`'s stored tensor (for folded values: the scope asked from). */
  scope: Scope;
  /** Where the values are stored; 'folded' when computed from other constants. */
  kind: 'initializer' | 'constant' | 'folded';
}

/** Data-movement ops whose output is a constant when their inputs are (values unchanged, only moved). */
const FOLDABLE = new Set(['Identity', 'Reshape', 'Unsqueeze', 'Squeeze', 'Flatten', 'Slice', 'Concat', 'Transpose']);

/** True for the data-movement ops ConstantResolver folds through. */
export function isFoldableOp(node: NodeProto): boolean {
  return isDefaultDomain(node) && FOLDABLE.has(node.opType);
}

interface ScopeIndex {
  initializers: Map<string, TensorProto>;
  producers: Map<string, NodeProto>;
  inputs: Set<string>;
}

/**
 * Finds the constant behind a value name as seen from a scope: an initializer or Constant node of
 * that graph or an enclosing one, possibly through data-movement nodes (Identity, Reshape,
 * (Un)Squeeze, Flatten, Slice, Concat, Transpose), as exporters emit for LSTM weights. Initializers
 * that are also main-graph inputs (IR ≥ 4) can be overridden at run time and are not constants.
 * Indexes each graph once: look up names that existed before the caller's edits only.
 */
export class ConstantResolver {
  private readonly index = new Map<GraphProto, ScopeIndex>();
  private readonly cache = new Map<Scope, Map<string, ResolvedConstant | null>>();

  constructor(
    private readonly model: ModelProto,
    private readonly read: RawReader,
  ) {}

  private indexOf(g: GraphProto): ScopeIndex {
    let ix = this.index.get(g);
    if (!ix) {
      const producers = new Map<string, NodeProto>();
      for (const n of g.node) for (const o of n.output) if (o) producers.set(o, n);
      ix = { initializers: new Map(g.initializer.map((t) => [t.name, t])), producers, inputs: new Set(g.input.map((v) => v.name)) };
      this.index.set(g, ix);
    }
    return ix;
  }

  /** The node producing `name` in the scope chain, with its scope (undefined for inputs/initializers). */
  producer(scope: Scope, name: string): { node: NodeProto; scope: Scope } | undefined {
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const ix = this.indexOf(s.graph);
      const node = ix.producers.get(name);
      if (node) return { node, scope: s };
      if (ix.initializers.has(name) || ix.inputs.has(name)) return undefined;
    }
    return undefined;
  }

  resolve(scope: Scope, name: string): ResolvedConstant | undefined {
    if (!name) return undefined;
    let memo = this.cache.get(scope);
    if (!memo) this.cache.set(scope, (memo = new Map()));
    const hit = memo.get(name);
    if (hit !== undefined) return hit ?? undefined;
    const found = this.lookup(scope, name, 0);
    memo.set(name, found ?? null);
    return found;
  }

  private lookup(scope: Scope, name: string, depth: number): ResolvedConstant | undefined {
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const ix = this.indexOf(s.graph);
      const init = ix.initializers.get(name);
      if (init) {
        const overridable = s.parent === undefined && ix.inputs.has(name) && this.model.irVersion >= 4;
        return overridable ? undefined : { tensor: init, scope: s, kind: 'initializer' };
      }
      const node = ix.producers.get(name);
      if (node) {
        if (!isDefaultDomain(node)) return undefined;
        if (node.opType === 'Constant') {
          const t = constantTensor(node);
          return t ? { tensor: t, scope: s, kind: 'constant' } : undefined;
        }
        if (!FOLDABLE.has(node.opType) || depth > 16) return undefined;
        const t = this.fold(s, node, depth);
        return t ? { tensor: t, scope, kind: 'folded' } : undefined;
      }
      if (ix.inputs.has(name)) return undefined;
    }
    return undefined;
  }

  private values(scope: Scope, name: string, depth: number): { dims: number[]; dataType: number; values: TensorValues } | undefined {
    const c = this.lookup(scope, name, depth + 1);
    if (!c || isExternal(c.tensor) && !this.read(c.tensor)) return undefined;
    try {
      return { dims: c.tensor.dims, dataType: c.tensor.dataType, values: tensorValues(c.tensor, isExternal(c.tensor) ? this.read(c.tensor) : undefined) };
    } catch {
      return undefined;
    }
  }

  private ints(scope: Scope, name: string, depth: number): number[] | undefined {
    const v = this.values(scope, name, depth);
    if (!v || Array.isArray(v.values)) return undefined;
    return Array.from(v.values as ArrayLike<number | bigint>, (x) => Number(x));
  }

  private fold(scope: Scope, node: NodeProto, depth: number): TensorProto | undefined {
    const data = this.values(scope, node.input[0] ?? '', depth);
    if (!data || Array.isArray(data.values) || data.dataType === DataType.STRING) return undefined;
    const src = data.values;
    const dims = data.dims;
    const out = (newDims: number[], values: TensorValues) => makeTensor(node.output[0] ?? '', data.dataType, newDims, values);
    const rank = dims.length;
    const norm = (a: number, r: number) => (a < 0 ? a + r : a);
    switch (node.opType) {
      case 'Identity':
        return out([...dims], src);
      case 'Reshape': {
        const shape = this.ints(scope, node.input[1] ?? '', depth);
        if (!shape) return undefined;
        const allowZero = intAttr(node, 'allowzero', 0) === 1;
        const total = dims.reduce((a, b) => a * b, 1);
        const target = shape.map((d, i) => (d === 0 && !allowZero ? dims[i]! : d));
        const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        const resolved = target.map((d) => (d === -1 ? total / known : d));
        return resolved.reduce((a, b) => a * b, 1) === total ? out(resolved, src) : undefined;
      }
      case 'Flatten': {
        const axis = norm(intAttr(node, 'axis', 1), rank);
        const a = dims.slice(0, axis).reduce((x, y) => x * y, 1);
        return out([a, dims.slice(axis).reduce((x, y) => x * y, 1)], src);
      }
      case 'Unsqueeze': {
        const axes = intsAttr(node, 'axes') ?? this.ints(scope, node.input[1] ?? '', depth);
        if (!axes) return undefined;
        const r = rank + axes.length;
        const set = new Set(axes.map((a) => norm(a, r)));
        const newDims: number[] = [];
        for (let i = 0, j = 0; i < r; i++) newDims.push(set.has(i) ? 1 : dims[j++]!);
        return out(newDims, src);
      }
      case 'Squeeze': {
        const axes = intsAttr(node, 'axes') ?? (node.input[1] ? this.ints(scope, node.input[1], depth) : undefined);
        const set = axes ? new Set(axes.map((a) => norm(a, rank))) : new Set(dims.flatMap((d, i) => (d === 1 ? [i] : [])));
        return out(dims.filter((_, i) => !set.has(i)), src);
      }
      case 'Transpose': {
        const perm = intsAttr(node, 'perm') ?? dims.map((_, i) => rank - 1 - i);
        const newDims = perm.map((p) => dims[p]!);
        const res = newTyped(src, src.length);
        const inStrides = strides(dims);
        const outStrides = strides(newDims);
        for (let o = 0; o < src.length; o++) {
          let rem = o;
          let i = 0;
          for (let k = 0; k < rank; k++) {
            const c = Math.floor(rem / outStrides[k]!);
            rem -= c * outStrides[k]!;
            i += c * inStrides[perm[k]!]!;
          }
          res[o] = src[i]!;
        }
        return out(newDims, res);
      }
      case 'Concat': {
        const axis = norm(intAttr(node, 'axis', 0), rank);
        const parts = node.input.map((n) => this.values(scope, n, depth));
        if (parts.some((p) => !p || p.dataType !== data.dataType || p.dims.length !== rank)) return undefined;
        const ps = parts as { dims: number[]; values: TensorValues }[];
        const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
        const newDims = [...dims];
        newDims[axis] = ps.reduce((a, p) => a + p.dims[axis]!, 0);
        const res = newTyped(src, newDims.reduce((a, b) => a * b, 1));
        let o = 0;
        for (let i = 0; i < outer; i++) {
          for (const p of ps) {
            const span = p.dims.slice(axis).reduce((a, b) => a * b, 1);
            for (let k = 0; k < span; k++) res[o++] = (p.values as ArrayLike<number | bigint>)[i * span + k]!;
          }
        }
        return out(newDims, res);
      }
      case 'Slice': {
        const starts = intsAttr(node, 'starts') ?? this.ints(scope, node.input[1] ?? '', depth);
        const ends = intsAttr(node, 'ends') ?? this.ints(scope, node.input[2] ?? '', depth);
        if (!starts || !ends) return undefined;
        const axes = intsAttr(node, 'axes') ?? (node.input[3] ? this.ints(scope, node.input[3], depth) : undefined) ?? starts.map((_, i) => i);
        const steps = node.input[4] ? this.ints(scope, node.input[4], depth) : starts.map(() => 1);
        if (!steps || steps.some((s) => s !== 1)) return undefined; // exporters slice weights with step 1
        const lo = dims.map(() => 0);
        const hi = [...dims];
        axes.forEach((a0, i) => {
          const a = norm(a0, rank);
          const d = dims[a]!;
          const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
          lo[a] = clamp(starts[i]!);
          hi[a] = Math.max(lo[a]!, clamp(ends[i]!));
        });
        const newDims = dims.map((_, i) => hi[i]! - lo[i]!);
        const res = newTyped(src, newDims.reduce((a, b) => a * b, 1));
        const inStrides = strides(dims);
        const outStrides = strides(newDims);
        for (let o = 0; o < res.length; o++) {
          let rem = o;
          let i = 0;
          for (let k = 0; k < rank; k++) {
            const c = Math.floor(rem / outStrides[k]!);
            rem -= c * outStrides[k]!;
            i += (c + lo[k]!) * inStrides[k]!;
          }
          res[o] = src[i]!;
        }
        return out(newDims, res);
      }
      default:
        return undefined;
    }
  }

  /** Float32 values of a resolved constant; undefined for other types or unreadable external data. */
  floats(c: ResolvedConstant): Float32Array | undefined {
    if (c.tensor.dataType !== DataType.FLOAT) return undefined;
    const raw = isExternal(c.tensor) ? this.read(c.tensor) : undefined;
    if (isExternal(c.tensor) && !raw) return undefined;
    return tensorToFloat32(c.tensor, raw);
  }
}

function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i]!;
  }
  return s;
}

type NumericValues = Exclude<TensorValues, string[]>;

/** A new typed array of the same kind as `like`. */
function newTyped(like: NumericValues, length: number): { [i: number]: number | bigint; length: number } & NumericValues {
  const C = like.constructor as new (n: number) => NumericValues;
  return new C(length) as { [i: number]: number | bigint; length: number } & NumericValues;
}

/**
 * Removes nodes whose outputs nothing reads any more: Constant nodes, and nodes `prunable` accepts
 * (e.g. the Reshape/Slice chains a transform folded into a quantized weight); then unused
 * initializers, in every graph. Repeats until nothing changes, so whole dead chains go. ONNX ops have
 * no side effects, so a node nothing reads cannot change the outputs. Returns how many nodes went.
 */
export function pruneDeadNodes(model: ModelProto, prunable: (n: NodeProto) => boolean = () => false): number {
  if (!model.graph) return 0;
  let removed = 0;
  for (;;) {
    const uses = useCounts(model);
    let changed = 0;
    for (const g of walkGraphs(model.graph)) {
      const keep = g.node.filter((n) => {
        const dead = (n.opType === 'Constant' && isDefaultDomain(n)) || prunable(n);
        return !dead || n.output.some((o) => o && (uses.get(o) ?? 0) > 0);
      });
      changed += g.node.length - keep.length;
      g.node = keep;
    }
    removed += changed;
    if (changed === 0) break;
  }
  for (const g of walkGraphs(model.graph)) pruneUnusedInitializers(g);
  return removed;
}
