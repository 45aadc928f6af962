/**
 * Plumbing shared by the data-driven refinements: the first N calibration samples, and applying
 * weight edits to a static plan (both protos, keeping them one object when they were one).
 */
import type * as ort from 'onnxruntime-node';
import type { ModelProto } from '../../onnx/proto';
import { applyEdits, nodeKey, WeightEdit } from '../../quant/refine/weights';
import { QuantizationError } from '../../quant/errors';
import type { StaticPlan } from '../quantize-model';
import type { Sample, SampleSource } from '../samples';
import { raceAbort, throwIfAborted } from '../session';

/** Runs fn on the first `limit` samples of `source`, one at a time; returns how many it saw. */
export async function forFirstSamples(source: SampleSource, limit: number, signal: AbortSignal | undefined, what: string, fn: (s: Sample, i: number) => Promise<void>): Promise<number> {
  const it = source.samples(signal)[Symbol.asyncIterator]();
  let n = 0;
  try {
    while (n < limit) {
      throwIfAborted(signal, what);
      const next = await raceAbort(it.next(), signal, what);
      if (next.done) break;
      await fn(next.value, n);
      n++;
    }
  } finally {
    void it.return?.()?.catch(() => undefined);
  }
  return n;
}

/** The plan with the edits applied to the quantized proto and the calibration proto alike. */
export function planWithEdits(plan: StaticPlan, edits: readonly WeightEdit[]): StaticPlan {
  if (!edits.length) return plan;
  const proto = applyEdits(plan.proto, edits);
  const calibProto = plan.calibProto === plan.proto ? proto : applyEdits(plan.calibProto, edits);
  return { ...plan, proto, calibProto };
}

/** A float tensor's values as float32 (onnxruntime may return float16/float64 for some outputs). */
export function floatData(t: ort.Tensor | undefined, name: string): Float32Array {
  if (!t) throw new QuantizationError(`no value for tensor "${name}"`);
  const d = t.data;
  if (d instanceof Float32Array) return d;
  if (d instanceof Float64Array) return Float32Array.from(d);
  throw new QuantizationError(`tensor "${name}" is ${t.type}, not float32`);
}

/** The proto with every main-graph node named by its key, so the transform's report names match edit keys. */
export function named(proto: ModelProto): ModelProto {
  const g = proto.graph!;
  return { ...proto, graph: { ...g, node: g.node.map((n) => (n.name ? n : { ...n, name: nodeKey(n) })) } };
}
