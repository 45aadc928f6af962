/**
 * The model summary behind `onnx-quant inspect` and the editor's header: I/O, opsets, node and
 * op-type counts, and where the weights live. Reads no tensor data (external data is only checked
 * for existence and range), so it is fast on models of any size.
 */
import { byteSizeOf, dataTypeName } from './dtypes';
import { Dim, valueTypeOf } from './graph';
import { OnnxModel } from './model';
import { ValueInfoProto } from './proto';
import { elementCount } from './tensor-data';

export interface IoSummary {
  name: string;
  type: string;
  shape: Dim[] | null;
}

export interface WeightsSummary {
  count: number;
  elements: number;
  bytes: number;
  /** Exclusive: tensors in external data count as "external" whatever holds them. */
  byLocation: { initializer: number; constant: number; external: number };
}

export interface ModelSummary {
  file: string;
  fileBytes: number;
  irVersion: number;
  opsets: Record<string, number>;
  producer: string;
  graphName: string;
  inputs: IoSummary[];
  outputs: IoSummary[];
  /** Nodes of the main graph. */
  nodes: number;
  /** Nodes of every graph, subgraphs included. */
  nodesTotal: number;
  subgraphs: number;
  functions: number;
  opTypes: Record<string, number>;
  weights: WeightsSummary;
}

function io(list: ValueInfoProto[]): IoSummary[] {
  return list.map((v) => {
    const t = valueTypeOf(v.type);
    const type = t.kind === 'tensor' ? dataTypeName(t.elemType) : t.kind;
    return { name: v.name, type, shape: t.shape ?? null };
  });
}

export function summarizeModel(model: OnnxModel): ModelSummary {
  const proto = model.proto;
  const graph = model.graph;
  const opsets: Record<string, number> = {};
  for (const o of proto.opsetImport) opsets[o.domain === 'ai.onnx' ? '' : o.domain] = o.version;

  const graphs = model.graphs();
  const opTypes: Record<string, number> = {};
  let nodesTotal = 0;
  for (const g of graphs) {
    for (const n of g.proto.node) {
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
      opTypes[key] = (opTypes[key] ?? 0) + 1;
      nodesTotal++;
    }
  }

  const weights: WeightsSummary = { count: 0, elements: 0, bytes: 0, byLocation: { initializer: 0, constant: 0, external: 0 } };
  for (const w of model.weights()) {
    const n = elementCount(w.tensor.dims);
    weights.count++;
    weights.elements += n;
    if (w.external) {
      weights.bytes += model.checkExternal(w.tensor).length;
      weights.byLocation.external++;
    } else {
      weights.bytes += w.tensor.dataType === 8 ? w.tensor.stringData.reduce((s, b) => s + b.length, 0) : byteSizeOf(w.tensor.dataType, n);
      weights.byLocation[w.kind]++;
    }
  }

  // Before IR 4, initializers were also listed as graph inputs; those are not real inputs.
  const initNames = new Set(graph.proto.initializer.map((t) => t.name));
  const inputs = graph.proto.input.filter((v) => !initNames.has(v.name));

  return {
    file: model.file,
    fileBytes: model.buffer.length,
    irVersion: proto.irVersion,
    opsets,
    producer: [proto.producerName, proto.producerVersion].filter(Boolean).join(' '),
    graphName: graph.name,
    inputs: io(inputs),
    outputs: io(graph.proto.output),
    nodes: graph.proto.node.length,
    nodesTotal,
    subgraphs: graphs.length - 1,
    functions: proto.functions.length,
    opTypes,
    weights,
  };
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

function formatShape(shape: Dim[] | null): string {
  return shape ? `[${shape.join(', ')}]` : '[?]';
}

/** Human-readable form of the summary, for the terminal. */
export function formatSummary(s: ModelSummary): string {
  const lines: string[] = [];
  lines.push(`${s.file} (${formatBytes(s.fileBytes)})`);
  lines.push(`  IR version ${s.irVersion}, opsets ${Object.entries(s.opsets).map(([d, v]) => `${d || 'ai.onnx'} ${v}`).join(', ')}`);
  if (s.producer) lines.push(`  producer: ${s.producer}`);
  lines.push('  inputs:');
  for (const i of s.inputs) lines.push(`    ${i.name}: ${i.type} ${formatShape(i.shape)}`);
  lines.push('  outputs:');
  for (const o of s.outputs) lines.push(`    ${o.name}: ${o.type} ${formatShape(o.shape)}`);
  lines.push(`  nodes: ${s.nodes} in the main graph, ${s.nodesTotal} in all (${s.subgraphs} subgraphs${s.functions ? `, ${s.functions} functions` : ''})`);
  const ops = Object.entries(s.opTypes).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  lines.push(`  op types: ${ops.map(([op, n]) => `${op} ${n}`).join(', ')}`);
  const w = s.weights;
  lines.push(
    `  weights: ${w.count} tensors, ${w.elements.toLocaleString('en-US')} elements, ${formatBytes(w.bytes)} ` +
      `(initializers ${w.byLocation.initializer}, Constant nodes ${w.byLocation.constant}, external ${w.byLocation.external})`,
  );
  return lines.join('\n');
}

export { formatBytes };
