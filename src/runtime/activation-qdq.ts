/**
 * Resolves ActivationQdq 'auto' (the default): quantize activations only when the integer kernels
 * they feed carry enough of the model's work to pay for their rounding error.
 *
 * One float run on the first calibration sample gives every compute op's shapes; the model
 * 'integer-kernels' would build says which of them onnxruntime runs as integer kernels. When those carry
 * less than MIN_INTEGER_SHARE of the multiply-adds, even integer kernels 4× faster than float ones
 * would save under a tenth of the time, so the activations stay float and only the weights are
 * int8. Measured on PP-OCRv4's recognizer: 7.8% of 702 M multiply-adds in integer kernels (its
 * HardSwish convs run in float), the int8-activation model ran at 1.02–1.04× float and the
 * float-activation one at 1.03×, and float activations decoded 784–789 instead of 775–779 of 800
 * lines identically. Its detector (62%), angle classifier (35%) and a ResNet-style CNN (all of its
 * convs) keep quantized activations.
 */
import { OnnxModel } from '../onnx/model';
import type { ModelProto, TensorProto } from '../onnx/proto';
import type { QuantConfig } from '../quant/config';
import { COMPUTE_OPS, integerKernelShare, type IntegerShare } from '../quant/graph/multiply-adds';
import { integerKernels } from '../quant/graph/float-kernels';
import { quantizeStaticQdq } from '../quant/graph/qdq';
import { graphConstants } from '../quant/refine/weights';
import { withExtraOutputs } from './calibrate';
import type { SampleSource } from './samples';
import { createSession, runSession, throwIfAborted } from './session';

/** Below this share of multiply-adds in integer kernels, activations stay float. */
export const MIN_INTEGER_SHARE = 1 / 8;

export interface ActivationQdqChoice {
  activationQdq: 'integer-kernels' | 'none';
  share: IntegerShare;
  /** One line for the report. */
  note: string;
}

export interface ChooseOptions {
  readWeight: (t: TensorProto) => Float32Array;
  /** The model's file: where its external data, if any, lives. */
  file: string;
  /** Q/DQ domain of the placement ('' standard, or onnxruntime's contrib ops). */
  domain: '' | 'com.microsoft';
  threads?: number;
  signal?: AbortSignal;
}

/** See the header. `proto` is the model calibration runs (taken If branches inlined). */
export async function chooseActivationQdq(proto: ModelProto, config: QuantConfig, calib: SampleSource, opts: ChooseOptions): Promise<ActivationQdqChoice> {
  throwIfAborted(opts.signal, 'quantization');
  const named = withComputeNodeNames(proto);
  const graph = named.graph!;
  // The placement 'integer-kernels' gives, with ranges that let every Relu/Clip fold (as real
  // ranges of their outputs do): the ranges' values change no structure.
  const probe = quantizeStaticQdq(named, { config: { ...config, activationQdq: 'integer-kernels' }, ranges: () => ({ min: 0, max: 1 }), readWeight: opts.readWeight, domain: opts.domain });
  const integer = integerKernels(probe.model);
  const shapes = new Map<string, readonly number[]>();
  for (const [name, t] of graphConstants(graph)) shapes.set(name, t.dims.map(Number));
  const compute = graph.node.filter((n) => COMPUTE_OPS.has(n.opType));
  const wanted = [...new Set(compute.flatMap((n) => [n.input[0], n.input[1], n.output[0]]).filter((t): t is string => !!t && !shapes.has(t)))];
  if (wanted.length) {
    const session = await createSession(OnnxModel.fromProto(withExtraOutputs(named, wanted), opts.file), { threads: opts.threads, name: opts.file });
    try {
      // The first sample's shapes: the sizes calibration will see.
      for await (const sample of calib.samples(opts.signal)) {
        const out = await runSession(session, sample, wanted, opts.file, 'the first calibration sample');
        for (const [name, t] of Object.entries(out)) shapes.set(name, t.dims.map(Number));
        break;
      }
    } finally {
      await session.release();
    }
  }
  const share = integerKernelShare(compute, (n) => integer.has(n.name), (t) => shapes.get(t));
  const macs = `${(share.totalMacs / 1e6).toFixed(1)} M`;
  if (share.share === undefined) return { activationQdq: 'integer-kernels', share, note: 'activations quantized where an integer kernel reads them (no compute op of known size to weigh)' };
  const pct = `${(100 * share.share).toFixed(1)}%`;
  if (share.share < MIN_INTEGER_SHARE) {
    return {
      activationQdq: 'none',
      share,
      note:
        `activations stay float, weights int8: integer kernels would carry only ${pct} of the ${macs} multiply-adds (the rest run as float kernels), ` +
        `so even 4× faster ones would save under a tenth of the time and cost the activations' rounding error (--activation-qdq integer-kernels quantizes them anyway)`,
    };
  }
  return { activationQdq: 'integer-kernels', share, note: `activations quantized where an integer kernel reads them: integer kernels carry ${pct} of the ${macs} multiply-adds (--activation-qdq none keeps them float)` };
}

/** A copy whose unnamed compute nodes have unique names (the probe transform is matched by name). */
function withComputeNodeNames(proto: ModelProto): ModelProto {
  const g = proto.graph!;
  if (g.node.every((n) => n.name || !COMPUTE_OPS.has(n.opType))) return proto;
  const used = new Set(g.node.map((n) => n.name));
  let k = 0;
  const node = g.node.map((n) => {
    if (n.name || !COMPUTE_OPS.has(n.opType)) return n;
    let name: string;
    do name = `${n.opType}_${k++}`;
    while (used.has(name));
    used.add(name);
    return { ...n, name };
  });
  return { ...proto, graph: { ...g, node } };
}
