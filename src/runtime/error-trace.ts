/**
 * Error trace: where in the network a quantized model departs from the float one. Both models run
 * on the same samples with every layer's output exposed; each layer gets the SQNR of its output
 * (the quantized model's value as the next layer sees it: after its Q/DQ pair when it has one) and
 * the drop from its inputs' SQNR, which is the error that layer itself adds. Sensitivity analysis
 * asks "what if this layer alone were quantized"; the trace measures the model you have, so it
 * also shows error that only appears in combination, and where a refinement or a raised layer
 * actually helped.
 *
 * Memory: per sample, the traced tensors of both models are held once (as onnxruntime returns them);
 * across samples only two sums per tensor are kept.
 */
import type * as ort from 'onnxruntime-node';
import { encodeModel } from '../onnx/encode';
import { OnnxModel } from '../onnx/model';
import type { GraphProto, NodeProto } from '../onnx/proto';
import { withExtraOutputs } from './calibrate';
import { QuantizedModelError } from './evaluate';
import type { SampleSource } from './samples';
import { createSession, forEachSample, ModelLoadError, ModelRunError, runSession } from './session';

/** Ops traced by default: the layers that carry weights, and pooling/resampling between them. */
export const TRACED_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'Attention', 'LSTM', 'GRU', 'Resize', 'Softmax', 'Sigmoid']);

export interface LayerTrace {
  node: string;
  opType: string;
  /** The node's first output in the float model (its Relu/Clip's when the quantized model folded that in). */
  tensor: string;
  /** SQNR of that output over all samples (dB; +Infinity when identical). */
  sqnrDb: number;
  /** SQNR of the nearest traced tensors feeding this layer (their minimum); +Infinity for graph inputs. */
  inputSqnrDb: number;
  /** inputSqnrDb − sqnrDb (dB; may be negative when the layer averages noise out). */
  dropDb: number;
  /**
   * The error this layer adds, as the SQNR it would have alone: −10·log10(noise out − noise in),
   * noise as a fraction of signal power. +Infinity when it adds none. Ranks layers fairly whether
   * they sit behind exact graph inputs or behind noisy layers.
   */
  addedSqnrDb: number;
}

export interface TraceOptions {
  ops?: ReadonlySet<string>;
  signal?: AbortSignal;
  threads?: number;
  /** Samples to run (default all of `source`). */
  maxSamples?: number;
}

export interface TraceResult {
  layers: LayerTrace[];
  samples: number;
  /** Float-model layers the quantized model has no tensor for (renamed or removed by its tool). */
  untraced: number;
}

/** For each traced tensor, the traced tensors nearest upstream (through untraced nodes). */
function nearestTracedInputs(g: GraphProto, traced: ReadonlySet<string>): Map<string, string[]> {
  const producer = new Map<string, NodeProto>();
  for (const n of g.node) for (const o of n.output) if (o) producer.set(o, n);
  const out = new Map<string, string[]>();
  for (const t of traced) {
    const found = new Set<string>();
    const seen = new Set<string>();
    const stack = [...(producer.get(t)?.input ?? [])];
    while (stack.length) {
      const x = stack.pop()!;
      if (!x || seen.has(x)) continue;
      seen.add(x);
      if (traced.has(x)) {
        found.add(x);
        continue;
      }
      const p = producer.get(x);
      if (p) stack.push(...p.input);
    }
    out.set(t, [...found]);
  }
  return out;
}

const FOLDED_ACTIVATIONS = new Set(['Relu', 'Clip', 'LeakyRelu']);

/**
 * The quantized model's value of a float tensor as the next layer sees it: the output of the
 * DequantizeLinear fed by a QuantizeLinear of it (whatever the tool named them), else the tensor.
 */
function quantAliases(g: GraphProto): (tensor: string) => string | undefined {
  const produced = new Set<string>();
  const dqOf = new Map<string, string>();
  const quantizerOf = new Map<string, string>();
  for (const n of g.node) {
    for (const o of n.output) if (o) produced.add(o);
    if (n.opType === 'QuantizeLinear' && n.input[0] && n.output[0]) quantizerOf.set(n.output[0], n.input[0]);
  }
  for (const n of g.node) {
    const x = n.opType === 'DequantizeLinear' && n.input[0] ? quantizerOf.get(n.input[0]) : undefined;
    if (x && n.output[0] && !dqOf.has(x)) dqOf.set(x, n.output[0]);
  }
  return (t) => dqOf.get(t) ?? (produced.has(t) ? t : undefined);
}

const asFloat = (t: ort.Tensor): Float32Array | undefined => (t.data instanceof Float32Array ? t.data : undefined);

export async function traceErrors(floatFile: string, quantFile: string, source: SampleSource, opts: TraceOptions = {}): Promise<TraceResult> {
  const ops = opts.ops ?? TRACED_OPS;
  const floatModel = OnnxModel.load(floatFile);
  const quantModel = OnnxModel.load(quantFile);
  let floatSession: ort.InferenceSession | undefined;
  let quantSession: ort.InferenceSession | undefined;
  try {
    const fg = floatModel.proto.graph!;
    const qg = quantModel.proto.graph!;
    const aliasOf = quantAliases(qg);
    const consumers = new Map<string, NodeProto[]>();
    for (const n of fg.node) for (const i of n.input) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
    const candidates = fg.node.filter((n) => ops.has(n.opType) && n.output[0]);
    const pairs = candidates.map((n) => {
      const own = n.output[0]!;
      const alias = aliasOf(own);
      if (alias) return { node: n, tensor: own, alias };
      // Quantizers fold a Relu/Clip into the layer's output quantization, removing the layer's
      // own output: trace the activation's output instead (in both models).
      const only = consumers.get(own);
      const act = only?.length === 1 && FOLDED_ACTIVATIONS.has(only[0]!.opType) ? only[0]!.output[0] : undefined;
      return { node: n, tensor: act ?? own, alias: act ? aliasOf(act) : undefined };
    });
    const traced = pairs.filter((p): p is typeof p & { alias: string } => p.alias !== undefined);
    const tensors = traced.map((p) => p.tensor);
    const aliases = [...new Set(traced.map((p) => p.alias))];
    floatSession = await createSession(encodeModel(withExtraOutputs(floatModel.proto, tensors)), { threads: opts.threads, name: floatFile, externalDataDir: floatModel.dir });
    try {
      quantSession = await createSession(encodeModel(withExtraOutputs(quantModel.proto, aliases)), { threads: opts.threads, name: quantFile, externalDataDir: quantModel.dir });
    } catch (err) {
      if (err instanceof ModelLoadError) throw new QuantizedModelError(quantFile, `onnxruntime cannot load it: ${err.ortMessage}`, { cause: err });
      throw err;
    }
    const sums = new Map<string, { signal: number; error: number }>(tensors.map((t) => [t, { signal: 0, error: 0 }]));
    const limit = opts.maxSamples ?? Infinity;
    let samples = 0;
    await forEachSample(source, opts.signal, 'error trace', async (sample, index) => {
      if (index >= limit) return;
      const context = `sample ${index + 1}`;
      const a = await runSession(floatSession!, sample, tensors, floatFile, context);
      let b: Record<string, ort.Tensor>;
      try {
        b = await runSession(quantSession!, sample, aliases, quantFile, context);
      } catch (err) {
        if (err instanceof ModelRunError) throw new QuantizedModelError(quantFile, `onnxruntime failed to run it on ${context}: ${err.ortMessage}`, { cause: err });
        throw err;
      }
      for (const p of traced) {
        const x = a[p.tensor] && asFloat(a[p.tensor]!);
        const y = b[p.alias] && asFloat(b[p.alias]!);
        if (!x || !y || x.length !== y.length) continue;
        const s = sums.get(p.tensor)!;
        for (let i = 0; i < x.length; i++) {
          const d = x[i]! - y[i]!;
          s.signal += x[i]! * x[i]!;
          s.error += d * d;
        }
      }
      samples++;
    });
    const db = (t: string) => {
      const s = sums.get(t)!;
      return s.error === 0 ? Infinity : 10 * Math.log10(s.signal / s.error);
    };
    const upstream = nearestTracedInputs(fg, new Set(tensors));
    const layers = traced.map((p): LayerTrace => {
      const sqnrDb = db(p.tensor);
      const inputs = upstream.get(p.tensor)!;
      const inputSqnrDb = inputs.length ? Math.min(...inputs.map(db)) : Infinity;
      const added = 10 ** (-sqnrDb / 10) - 10 ** (-inputSqnrDb / 10);
      return {
        node: p.node.name,
        opType: p.node.opType,
        tensor: p.tensor,
        sqnrDb,
        inputSqnrDb,
        dropDb: inputSqnrDb === sqnrDb ? 0 : inputSqnrDb - sqnrDb,
        addedSqnrDb: added > 0 ? -10 * Math.log10(added) : Infinity,
      };
    });
    return { layers, samples, untraced: pairs.length - traced.length };
  } finally {
    await floatSession?.release();
    await quantSession?.release();
    floatModel.close();
    quantModel.close();
  }
}

/** The n layers that add the most error (lowest addedSqnrDb first). */
export function worstLayers(trace: TraceResult, n: number): LayerTrace[] {
  return trace.layers.filter((l) => Number.isFinite(l.addedSqnrDb)).sort((a, b) => a.addedSqnrDb - b.addedSqnrDb).slice(0, n);
}

