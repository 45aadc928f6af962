/**
 * The channel pass and local sensitivity: one pass over the samples in which the float model runs
 * with every layer's input and output exposed (the output: the tensor the quantized layer writes,
 * after the Relu/Clip the static transform folds into it). Per sample, those float tensors are the cache: they
 * feed the per-channel peaks (dead channels, tensor shapes for MAC counts) and, for local
 * sensitivity, one side-by-side "local model" holding, for every layer, copies of the node whose
 * inputs are graph inputs:
 *
 *   <layer>::int8    static QDQ with the analysis settings (weights and input activation quantized)
 *   <layer>::int16   the same with 16-bit activations (uint16, recipe override activationType)
 *   <layer>::int4    MatMul/Gemm with int4 blockwise weight-only weights (MatMulNBits, float compute)
 *
 * built with the project's own transforms (src/quant/graph/qdq.ts, weight-only.ts). Its outputs,
 * compared with the node's float output, give each layer's SQNR when only that layer (its weights
 * and its input) is quantized.
 * Cost: the float model plus about one layer-sized run per layer and precision, per sample.
 */
import type * as ort from 'onnxruntime-node';
import { DataType } from '../onnx/dtypes';
import { isExternal } from '../onnx/external-data';
import { makeValueInfo } from '../onnx/builder';
import { OnnxModel } from '../onnx/model';
import { defaultOpset } from '../onnx/opset-upgrade';
import { emptyGraph, emptyModel, type ModelProto, type NodeProto, type TensorProto } from '../onnx/proto';
import { tensorToFloat32 } from '../onnx/tensor-data';
import type { QuantConfig, NodeOverride } from '../quant/config';
import { ConstantResolver, modelScopes, type RawReader } from '../quant/graph/edit';
import { quantizeStaticQdq } from '../quant/graph/qdq';
import { quantizeWeightOnly } from '../quant/graph/weight-only';
import { MetricAccumulator } from '../quant/metrics';
import type { FloatRange } from '../quant/types';
import { withExtraOutputs } from '../runtime/calibrate';
import type { Sample, SampleSource } from '../runtime/samples';
import { createSession, forEachSample, runSession, throwIfAborted } from '../runtime/session';
import { ChannelPeaks, type ChannelUsage } from './activation-stats';

export type Precision = 'int8' | 'int16' | 'int4';

/** What the runtime phases need to know about a layer (from the prepared model). */
export interface RuntimeLayer {
  name: string;
  opType: string;
  node: NodeProto;
  input: string;
  /** The tensor the quantized layer writes: its output, or that of the Relu/Clip folded into it. */
  output: string;
  /** The layer node's own output (before a folded activation). */
  nodeOutput: string;
  /** A Relu/Clip right after the layer, the only reader of its output: quantization folds it in. */
  activation?: NodeProto;
  staticQuantizable: boolean;
  weightOnly: boolean;
}

/** The Relu/Clip that reads a layer's output and nothing else does (what the static transform folds). */
export function foldedActivation(graph: { node: NodeProto[]; output: { name: string }[] }, layerOutput: string): NodeProto | undefined {
  const readers = graph.node.filter((n) => n.input.includes(layerOutput));
  const a = readers[0];
  if (readers.length !== 1 || !a || (a.opType !== 'Relu' && a.opType !== 'Clip') || (a.domain !== '' && a.domain !== 'ai.onnx')) return undefined;
  if (a.input[0] !== layerOutput || graph.output.some((o) => o.name === layerOutput)) return undefined;
  return a;
}

export interface TensorShapeInfo {
  dims: number[];
  channels?: ChannelUsage;
}

export interface LocalLayerResult {
  input?: TensorShapeInfo;
  output?: TensorShapeInfo;
  /** SQNR (dB) of the layer's output when only it is quantized, per precision it supports. */
  sqnrDb: Partial<Record<Precision, number>>;
}

export interface LocalPassOptions {
  /** The loaded model: its file names the sessions, its folder holds external data. */
  model: OnnxModel;
  /** The prepared float model (BatchNormalization folded). */
  prepared: ModelProto;
  layers: readonly RuntimeLayer[];
  /** Calibrated activation ranges (the analysis method's choice). */
  ranges: ReadonlyMap<string, FloatRange>;
  config: QuantConfig;
  /** Build and run the local model (else only the channel statistics). */
  sensitivity: boolean;
  source: SampleSource;
  signal?: AbortSignal;
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface LocalPassResult {
  layers: Map<string, LocalLayerResult>;
  /** Why some layers or precisions have no local sensitivity. */
  notes: string[];
  samples: number;
}

const VARIANT_SEP = '::';

function floatReader(model: OnnxModel): (t: TensorProto) => Float32Array {
  return (t) => tensorToFloat32(t, isExternal(t) ? model.rawBytes(t) : undefined, model.file);
}

/** The side-by-side local model; undefined when no layer qualifies. */
export function buildLocalModel(
  model: OnnxModel,
  prepared: ModelProto,
  layers: readonly RuntimeLayer[],
  ranges: ReadonlyMap<string, FloatRange>,
  config: QuantConfig,
): { proto: ModelProto; variants: Map<string, Partial<Record<Precision, string>>>; notes: string[] } | undefined {
  const read: RawReader = (t) => model.rawBytes(t);
  const resolver = new ConstantResolver(prepared, read);
  const main = modelScopes(prepared)[0]!;
  const g = emptyGraph('local-sensitivity');
  const inputs = new Set<string>();
  const inits = new Set<string>();
  const variants = new Map<string, Partial<Record<Precision, string>>>();
  const notes: string[] = [];
  const nodes: Record<string, NodeOverride> = {};
  const int4Nodes: string[] = [];
  const staticNodes: string[] = [];
  const localRanges = new Map<string, FloatRange>();
  const addInput = (name: string) => {
    if (inputs.has(name)) return;
    inputs.add(name);
    g.input.push(makeValueInfo(name, DataType.FLOAT));
  };
  for (const l of layers) {
    const x = l.input;
    const rest = l.node.input.slice(1);
    let isolated = true;
    const constants: TensorProto[] = [];
    for (const name of rest) {
      if (!name) continue;
      const c = resolver.resolve(main, name);
      if (!c) {
        isolated = false;
        break;
      }
      constants.push({ ...c.tensor, name });
    }
    if (!isolated) {
      notes.push(`${l.name}: an input other than the activation is computed at run time; no local sensitivity`);
      continue;
    }
    const wanted: Precision[] = [];
    const range = ranges.get(x);
    if (l.staticQuantizable) {
      if (range) wanted.push('int8', 'int16');
      else notes.push(`${l.name}: no calibrated range for its input "${x}"; no local int8/int16 sensitivity`);
    }
    if (l.weightOnly) wanted.push('int4');
    if (wanted.length === 0) continue;
    for (const t of constants) {
      if (inits.has(t.name)) continue;
      inits.add(t.name);
      g.initializer.push(t);
    }
    const v: Partial<Record<Precision, string>> = {};
    for (const p of wanted) {
      const input = p === 'int16' ? `${x}${VARIANT_SEP}a16` : x;
      addInput(input);
      if (range) localRanges.set(input, range);
      const name = `${l.name}${VARIANT_SEP}${p}`;
      const out = `${l.nodeOutput}${VARIANT_SEP}${p}`;
      g.node.push({ ...l.node, name, input: [input, ...rest], output: [out], attribute: l.node.attribute });
      g.output.push(makeValueInfo(out, DataType.FLOAT));
      v[p] = out;
      if (p === 'int4') int4Nodes.push(name);
      else staticNodes.push(name);
      if (p === 'int16') nodes[name] = { activationType: 'uint16' };
    }
    variants.set(l.name, v);
  }
  if (variants.size === 0) return undefined;
  const proto = emptyModel();
  proto.irVersion = Math.max(prepared.irVersion, 10);
  proto.producerName = 'onnx-quant analyze';
  // Conv, ConvTranspose, Gemm and MatMul mean the same from opset 13 to 21; 21 allows 16-bit Q/DQ.
  proto.opsetImport = [
    { domain: '', version: Math.max(21, defaultOpset(prepared) ?? 21) },
    { domain: 'com.microsoft', version: 1 },
  ];
  proto.graph = g;

  const readWeight = floatReader(model);
  // Every copy's output is a graph output: with 'integer-kernels' a conv there would read its
  // input unquantized, and local sensitivity is the error of the layer's weights and input.
  const staticConfig: QuantConfig = { ...config, mode: 'static', exclude: int4Nodes, nodes, activationQdq: 'every-layer' };
  const qdq = quantizeStaticQdq(proto, { config: staticConfig, ranges: localRanges, readWeight, domain: '' });
  const dropped = new Set<string>();
  const variantNodes = new Set(staticNodes);
  for (const s of qdq.skipped) {
    if (!variantNodes.has(s.name)) continue;
    dropped.add(s.name);
    notes.push(`${s.name}: ${s.reason}`);
  }
  let result = qdq.model;
  if (int4Nodes.length) {
    const woConfig: QuantConfig = { ...config, mode: 'weight-only', weightType: 'int4', exclude: staticNodes, nodes: {} };
    const wo = quantizeWeightOnly(OnnxModel.fromProto(result, model.file), woConfig, { format: 'matmulnbits' });
    for (const s of wo.skipped) {
      if (!int4Nodes.includes(s.name)) continue;
      dropped.add(s.name);
      notes.push(`${s.name}: ${s.reason}`);
    }
    result = wo.model;
  }
  for (const [layer, v] of variants) {
    for (const p of Object.keys(v) as Precision[]) if (dropped.has(`${layer}${VARIANT_SEP}${p}`)) delete v[p];
  }
  return { proto: result, variants, notes };
}

function asFloat32(t: ort.Tensor | undefined): Float32Array | undefined {
  return t && t.type === 'float32' && t.data instanceof Float32Array ? t.data : undefined;
}

/** Runs the channel pass (and local sensitivity when asked) over every sample of the source. */
export async function localPass(o: LocalPassOptions): Promise<LocalPassResult> {
  const { model, prepared, layers, signal } = o;
  const what = 'analysis';
  throwIfAborted(signal, what);
  const mainGraph = prepared.graph!;
  const produced = new Set<string>();
  for (const n of mainGraph.node) for (const out of n.output) if (out) produced.add(out);
  const graphInputs = new Set(mainGraph.input.map((v) => v.name));
  const fetches = [...new Set(layers.flatMap((l) => [l.input, l.output, l.nodeOutput]).filter((t) => produced.has(t)))];
  const sessionOptions = { threads: o.threads, name: model.file, externalDataDir: model.dir };
  const notes: string[] = [];

  const local = o.sensitivity ? buildLocalModel(model, prepared, layers, o.ranges, o.config) : undefined;
  if (local) notes.push(...local.notes);
  const floatSession = await createSession(withExtraOutputs(prepared, fetches), sessionOptions);
  let localSession: ort.InferenceSession | undefined;
  try {
    if (local) localSession = await createSession(local.proto, { ...sessionOptions, name: `${model.file} (local sensitivity model)` });
    const peaks = new Map<string, ChannelPeaks>();
    const dims = new Map<string, number[]>();
    const metrics = new Map<string, MetricAccumulator>();
    const localInputs = localSession ? localSession.inputNames : [];
    const samples = await forEachSample(o.source, signal, what, async (sample, index) => {
      const context = `analysis sample ${index + 1}`;
      const outs = fetches.length ? await runSession(floatSession, sample, fetches, model.file, context) : {};
      const tensorOf = (name: string): ort.Tensor | undefined => outs[name] ?? (graphInputs.has(name) ? sample[name] : undefined);
      for (const name of new Set(layers.flatMap((l) => [l.input, l.output]))) {
        const t = tensorOf(name);
        const data = asFloat32(t);
        if (!t || !data) continue;
        if (!dims.has(name)) dims.set(name, [...t.dims]);
        let p = peaks.get(name);
        if (!p) peaks.set(name, (p = new ChannelPeaks()));
        p.update(data, t.dims);
      }
      if (localSession && local) {
        const feeds: Sample = {};
        let complete = true;
        for (const name of localInputs) {
          const src = name.endsWith(`${VARIANT_SEP}a16`) ? name.slice(0, -`${VARIANT_SEP}a16`.length) : name;
          const t = tensorOf(src);
          if (!t || !asFloat32(t)) {
            complete = false;
            break;
          }
          feeds[name] = t;
        }
        if (complete) {
          const q = await runSession(localSession, feeds, undefined, `${model.file} (local sensitivity model)`, context);
          for (const l of layers) {
            const v = local.variants.get(l.name);
            const ref = asFloat32(tensorOf(l.nodeOutput));
            if (!v || !ref) continue;
            for (const [p, out] of Object.entries(v) as [Precision, string][]) {
              const test = asFloat32(q[out]);
              if (!test || test.length !== ref.length) continue;
              const key = `${l.name}${VARIANT_SEP}${p}`;
              let m = metrics.get(key);
              if (!m) metrics.set(key, (m = new MetricAccumulator()));
              m.add(ref, test);
            }
          }
          for (const t of Object.values(q)) t.dispose();
        } else if (index === 0) {
          notes.push('local sensitivity: some layer inputs are not float32 tensors the float model exposes; skipped');
        }
      }
      for (const t of Object.values(outs)) t.dispose();
      o.onProgress?.(index + 1, o.source.count);
    });
    const result = new Map<string, LocalLayerResult>();
    const shape = (name: string): TensorShapeInfo | undefined => {
      const d = dims.get(name);
      return d ? { dims: d, channels: peaks.get(name)?.usage() } : undefined;
    };
    for (const l of layers) {
      const sqnrDb: Partial<Record<Precision, number>> = {};
      for (const p of ['int8', 'int16', 'int4'] as const) {
        const m = metrics.get(`${l.name}${VARIANT_SEP}${p}`);
        if (m && m.samples > 0) sqnrDb[p] = m.result().sqnrDb;
      }
      result.set(l.name, { input: shape(l.input), output: shape(l.output), sqnrDb });
    }
    return { layers: result, notes, samples };
  } finally {
    await localSession?.release();
    await floatSession.release();
  }
}
