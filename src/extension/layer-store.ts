/**
 * The layer table of one loaded model, on the host: every node (rows), the values the analysis has
 * delivered so far (columns), and the full per-layer reports behind the details view. Analysis
 * events and the final report update it; `takePatch` hands the changed rows to the webviews.
 * Free of `vscode` so plain Node tests run it.
 */
import type { AnalysisEvent } from '../analysis/analyze';
import type { Finding } from '../analysis/findings';
import type { ActivationTensorReport, AnalysisReport, LayerReport, WeightReport } from '../analysis/report';
import { modelScopes } from '../quant/graph/edit';
import type { ModelProto } from '../onnx/proto';
import {
  ActivationDetails,
  AnalysisStatus,
  Histogram,
  LayerColumns,
  LayerDetails,
  LayerPatch,
  LayerTable,
  SEVERITY_RANK,
  WeightDetails,
} from '../shared/protocol';

export interface NodeRows {
  names: string[];
  opTypes: string[];
  graphs: string[];
  inputs: string[][];
  outputs: string[][];
}

function graphPath(scope: ReturnType<typeof modelScopes>[number], names: Map<object, string>): string {
  const chain: string[] = [];
  for (let s = scope; s.owner && s.parent; s = s.parent) chain.unshift(names.get(s.owner) ?? s.owner.name);
  return chain.join('/');
}

/**
 * Every node of every graph, named as the analysis names them (src/analysis/layers.ts
 * withNodeNames: unnamed nodes become `<OpType>_<k>`, skipping taken names) so that analysis
 * results find their row; computed without cloning the model.
 */
export function listNodes(proto: ModelProto): NodeRows {
  const scopes = modelScopes(proto);
  const used = new Set<string>();
  for (const s of scopes) for (const n of s.graph.node) if (n.name) used.add(n.name);
  const counters = new Map<string, number>();
  const names = new Map<object, string>();
  for (const s of scopes) {
    for (const n of s.graph.node) {
      if (n.name) {
        names.set(n, n.name);
        continue;
      }
      let k = counters.get(n.opType) ?? 0;
      let name: string;
      do name = `${n.opType}_${k++}`;
      while (used.has(name));
      counters.set(n.opType, k);
      used.add(name);
      names.set(n, name);
    }
  }
  const rows: NodeRows = { names: [], opTypes: [], graphs: [], inputs: [], outputs: [] };
  for (const s of scopes) {
    const graph = graphPath(s, names);
    for (const n of s.graph.node) {
      rows.names.push(names.get(n)!);
      // As the summary counts them: ops of other domains as "domain.Op".
      rows.opTypes.push(n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType);
      rows.graphs.push(graph);
      rows.inputs.push([...n.input]);
      rows.outputs.push([...n.output]);
    }
  }
  return rows;
}

function emptyColumns(n: number): LayerColumns {
  return {
    weightMin: new Float32Array(n).fill(NaN),
    weightMax: new Float32Array(n).fill(NaN),
    actMin: new Float32Array(n).fill(NaN),
    actMax: new Float32Array(n).fill(NaN),
    sensitivityDb: new Float32Array(n).fill(NaN),
    bits: new Uint8Array(n),
    findings: new Uint16Array(n),
    severity: new Uint8Array(n),
  };
}

/** JSON carries non-finite numbers as null: NaN for the table. */
function num(v: number | null | undefined): number {
  return typeof v === 'number' ? v : NaN;
}

function finiteOrNull(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export function emptyStatus(generation: number): AnalysisStatus {
  return { generation, state: 'idle', phase: '', done: 0, total: 0, data: '', modelFindings: [] };
}

export class LayerStore {
  readonly columns: LayerColumns;
  private readonly index = new Map<string, number>();
  private readonly weights = new Map<number, WeightReport>();
  private readonly activations = new Map<number, LayerReport['activation']>();
  private readonly reports = new Map<number, LayerReport>();
  private readonly findings = new Map<number, Finding[]>();
  private modelFindings: Finding[] = [];
  private readonly dirty = new Set<number>();

  constructor(
    readonly generation: number,
    readonly rows: NodeRows,
  ) {
    this.columns = emptyColumns(rows.names.length);
    // ONNX names are unique; should a broken model repeat one, results go to its first node.
    rows.names.forEach((name, i) => {
      if (!this.index.has(name)) this.index.set(name, i);
    });
  }

  get size(): number {
    return this.rows.names.length;
  }

  rowOf(name: string): number | undefined {
    return this.index.get(name);
  }

  table(status: AnalysisStatus): LayerTable {
    const c = this.columns;
    return {
      generation: this.generation,
      names: this.rows.names,
      opTypes: this.rows.opTypes,
      graphs: this.rows.graphs,
      // Copies: postMessage clones them anyway, and later patches must not race a send.
      columns: {
        weightMin: c.weightMin.slice(),
        weightMax: c.weightMax.slice(),
        actMin: c.actMin.slice(),
        actMax: c.actMax.slice(),
        sensitivityDb: c.sensitivityDb.slice(),
        bits: c.bits.slice(),
        findings: c.findings.slice(),
        severity: c.severity.slice(),
      },
      status: { ...status, modelFindings: this.modelFindings },
    };
  }

  get modelLevelFindings(): Finding[] {
    return this.modelFindings;
  }

  /** Applies one streamed analysis event; returns whether a row changed. */
  applyEvent(e: AnalysisEvent): boolean {
    if (e.event !== 'layer') return false;
    const row = this.index.get(e.name);
    if (row === undefined) return false;
    if (e.phase === 'weights') {
      if (!e.weight) return false;
      this.setWeight(row, e.weight);
    } else if (e.phase === 'activations') {
      this.setActivation(row, e.activation);
      this.columns.sensitivityDb[row] = num(e.localSqnrDb);
    } else {
      this.columns.sensitivityDb[row] = num(e.globalSqnrDb);
    }
    this.dirty.add(row);
    return true;
  }

  private setWeight(row: number, w: WeightReport): void {
    this.weights.set(row, w);
    this.columns.weightMin[row] = num(w.min);
    this.columns.weightMax[row] = num(w.max);
  }

  private setActivation(row: number, a: LayerReport['activation']): void {
    this.activations.set(row, a);
    const t = a?.input ?? a?.output;
    this.columns.actMin[row] = num(t?.min);
    this.columns.actMax[row] = num(t?.max);
  }

  /** Applies the finished analysis: every layer's final values and the findings. */
  applyReport(r: AnalysisReport): void {
    for (const l of r.layers) {
      const row = this.index.get(l.name);
      if (row === undefined) continue;
      this.reports.set(row, l);
      if (l.weight) this.setWeight(row, l.weight);
      if (l.activation) this.setActivation(row, l.activation);
      this.columns.sensitivityDb[row] = num(l.sensitivity.globalSqnrDb ?? l.sensitivity.localSqnrDb);
      this.columns.bits[row] = l.suggestedBits ?? 0;
      this.dirty.add(row);
    }
    this.setFindings(r.findings);
  }

  /** Replaces the findings (each analysis run reports all of them). */
  setFindings(findings: readonly Finding[]): void {
    for (const row of this.findings.keys()) {
      this.columns.findings[row] = 0;
      this.columns.severity[row] = 0;
      this.dirty.add(row);
    }
    this.findings.clear();
    this.modelFindings = [];
    for (const f of findings) {
      const row = f.node === null ? undefined : this.index.get(f.node);
      if (row === undefined) {
        this.modelFindings.push(f);
        continue;
      }
      const list = this.findings.get(row) ?? [];
      list.push(f);
      this.findings.set(row, list);
      this.columns.findings[row] = Math.min(list.length, 0xffff);
      this.columns.severity[row] = Math.max(this.columns.severity[row]!, SEVERITY_RANK[f.severity]);
      this.dirty.add(row);
    }
  }

  /** The rows changed since the last call, or undefined when none did. */
  takePatch(): LayerPatch | undefined {
    if (this.dirty.size === 0) return undefined;
    const rows = Uint32Array.from([...this.dirty].sort((a, b) => a - b));
    this.dirty.clear();
    const c = this.columns;
    const f32 = (src: Float32Array) => Float32Array.from(rows, (r) => src[r]!);
    const values: LayerColumns = {
      weightMin: f32(c.weightMin),
      weightMax: f32(c.weightMax),
      actMin: f32(c.actMin),
      actMax: f32(c.actMax),
      sensitivityDb: f32(c.sensitivityDb),
      bits: Uint8Array.from(rows, (r) => c.bits[r]!),
      findings: Uint16Array.from(rows, (r) => c.findings[r]!),
      severity: Uint8Array.from(rows, (r) => c.severity[r]!),
    };
    return { generation: this.generation, rows, values };
  }

  details(name: string): LayerDetails | null {
    const row = this.index.get(name);
    if (row === undefined) return null;
    const report = this.reports.get(row);
    const weight = report?.weight ?? this.weights.get(row) ?? null;
    const activation = report?.activation ?? this.activations.get(row) ?? null;
    const s = report?.sensitivity;
    const local = s?.local ?? {};
    return {
      generation: this.generation,
      index: row,
      name,
      opType: this.rows.opTypes[row]!,
      graph: this.rows.graphs[row]!,
      inputs: this.rows.inputs[row]!,
      outputs: this.rows.outputs[row]!,
      weight: weight ? weightDetails(weight) : null,
      activation: activation
        ? { synthetic: activation.synthetic, input: activationDetails(activation.input), output: activationDetails(activation.output), ...(activation.note ? { note: activation.note } : {}) }
        : null,
      sensitivity: {
        local: Object.fromEntries(Object.entries(local).filter(([, v]) => typeof v === 'number')),
        globalDb: finiteOrNull(s?.globalSqnrDb),
        rank: s?.rank ?? null,
        ...(s?.note ? { note: s.note } : {}),
      },
      suggestedBits: report?.suggestedBits ?? null,
      suggestion: report?.suggestion ?? null,
      reason: report?.reason ?? '',
      findings: this.findings.get(row) ?? [],
    };
  }
}

function histogram(h: { min: number; max: number; counts: number[] }): Histogram {
  return { min: num(h.min), max: num(h.max), counts: Float64Array.from(h.counts, (v) => (typeof v === 'number' ? v : 0)) };
}

function weightDetails(w: WeightReport): WeightDetails {
  const d: WeightDetails = {
    input: w.input,
    dims: w.dims,
    elements: w.elements,
    min: num(w.min),
    max: num(w.max),
    mean: num(w.mean),
    std: num(w.std),
    zeros: w.zeros,
    histogram: histogram(w.histogram),
    perChannel: { axis: w.perChannel.axis, min: Float32Array.from(w.perChannel.min, num), max: Float32Array.from(w.perChannel.max, num) },
    sqnrDb: { int8: finiteOrNull(w.sqnrDb.int8), int8PerChannel: finiteOrNull(w.sqnrDb.int8PerChannel), int4: finiteOrNull(w.sqnrDb.int4) },
  };
  if (w.foldedBatchNorm) d.foldedBatchNorm = w.foldedBatchNorm;
  return d;
}

function activationDetails(a: ActivationTensorReport | null): ActivationDetails | null {
  if (!a) return null;
  return {
    tensor: a.tensor,
    dims: a.dims,
    min: num(a.min),
    max: num(a.max),
    histogram: histogram(a.histogram),
    percentiles: a.percentiles,
    deadChannels: a.deadChannels.length,
    channels: a.channels,
  };
}
