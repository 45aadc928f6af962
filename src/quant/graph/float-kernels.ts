/**
 * Which quantized convolutions of a Q/DQ model onnxruntime will still run in float. Its QDQ
 * fusions turn DequantizeLinear → Conv → QuantizeLinear into one integer kernel (QLinearConv;
 * Gemm and MatMul fuse even with a float output, see INTEGER_ONLY_WITH_QUANTIZED_OUTPUT); a conv
 * whose output is not quantized — it feeds ops with no integer kernel, such as the
 * Mul/Add/HardSigmoid of a HardSwish, and is kept in float for their accuracy — runs as a float
 * kernel. Its int8 weights save size, not time. (By default such a conv reads its input in float
 * too, see ActivationQdq; with 'every-layer' it reads it dequantized.) On PP-OCRv4's detector that
 * is 36 of 64 convs, and the int8 model ran slower than the float one: the report says so, with
 * the readers to blame.
 */
import type { GraphProto, ModelProto, NodeProto } from '../../onnx/proto';
import { isDefaultDomain } from './edit';
import { INTEGER_ONLY_WITH_QUANTIZED_OUTPUT } from './ops';

export interface FloatKernel {
  name: string;
  opType: string;
  /** Op types of the nodes that read its output in float. */
  readers: string[];
}

/** Activations onnxruntime removes or folds into the integer kernel when a QuantizeLinear follows. */
const FOLDED_ACTIVATIONS = new Set(['Relu', 'Clip']);

function isDq(n: NodeProto | undefined): boolean {
  return n?.opType === 'DequantizeLinear';
}

/** Producers, readers and the "every reader quantizes it" test over a Q/DQ model's main graph. */
function qdqGraph(g: GraphProto) {
  const producer = new Map<string, NodeProto>();
  const readers = new Map<string, NodeProto[]>();
  for (const n of g.node) {
    for (const o of n.output) if (o) producer.set(o, n);
    for (const i of n.input) if (i) readers.set(i, [...(readers.get(i) ?? []), n]);
  }
  const graphOutputs = new Set(g.output.map((o) => o.name));
  /** True when every reader of `tensor` quantizes it (through a folded activation too). */
  const quantizedOutput = (tensor: string): boolean => {
    const rs = readers.get(tensor) ?? [];
    if (!rs.length || graphOutputs.has(tensor)) return false;
    return rs.every((r) => r.opType === 'QuantizeLinear' || (FOLDED_ACTIVATIONS.has(r.opType) && quantizedOutput(r.output[0] ?? '')));
  };
  return { producer, readers, graphOutputs, quantizedOutput };
}

/**
 * Quantized Conv/ConvTranspose of the main graph (their weight comes from DequantizeLinear) whose
 * output is read unquantized, and how many quantized ones there are.
 */
export function floatKernels(model: ModelProto): { kernels: FloatKernel[]; quantizedCompute: number } {
  const g: GraphProto | undefined = model.graph;
  if (!g) return { kernels: [], quantizedCompute: 0 };
  const { producer, readers, graphOutputs, quantizedOutput } = qdqGraph(g);
  const out: FloatKernel[] = [];
  let quantizedCompute = 0;
  for (const n of g.node) {
    if (!INTEGER_ONLY_WITH_QUANTIZED_OUTPUT.has(n.opType) || !isDefaultDomain(n)) continue;
    if (!isDq(producer.get(n.input[1] ?? ''))) continue;
    quantizedCompute++;
    const output = n.output[0] ?? '';
    if (quantizedOutput(output)) continue;
    const floatReaders = (readers.get(output) ?? []).filter((r) => r.opType !== 'QuantizeLinear').map((r) => r.opType);
    out.push({ name: n.name, opType: n.opType, readers: graphOutputs.has(output) ? [...floatReaders, 'graph output'] : floatReaders });
  }
  return { kernels: out, quantizedCompute };
}

/**
 * Names of the main graph's Conv, ConvTranspose, MatMul and Gemm nodes onnxruntime runs as
 * integer kernels: quantized weights, a quantized activation input (DequantizeLinear of a
 * QuantizeLinear; either side of an activation × activation MatMul), and for Conv/ConvTranspose a
 * quantized output.
 */
export function integerKernels(model: ModelProto): Set<string> {
  const names = new Set<string>();
  const g = model.graph;
  if (!g) return names;
  const { producer, quantizedOutput } = qdqGraph(g);
  const quantizedActivation = (t: string | undefined) => {
    const dq = producer.get(t ?? '');
    return isDq(dq) && producer.get(dq!.input[0] ?? '')?.opType === 'QuantizeLinear';
  };
  for (const n of g.node) {
    if (!isDefaultDomain(n)) continue;
    const convLike = INTEGER_ONLY_WITH_QUANTIZED_OUTPUT.has(n.opType);
    if (!convLike && n.opType !== 'MatMul' && n.opType !== 'Gemm') continue;
    const weightQuantized = isDq(producer.get(n.input[1] ?? ''));
    const reads = quantizedActivation(n.input[0]) || (n.opType === 'MatMul' && quantizedActivation(n.input[1]));
    if (weightQuantized && reads && (!convLike || quantizedOutput(n.output[0] ?? ''))) names.add(n.name);
  }
  return names;
}

/** One line for the report: how many, which readers, an example. Undefined when there are none. */
export function describeFloatKernels(kernels: readonly FloatKernel[], quantizedCompute: number): string | undefined {
  if (!kernels.length) return undefined;
  const byReader = new Map<string, number>();
  for (const k of kernels) for (const r of new Set(k.readers)) byReader.set(r, (byReader.get(r) ?? 0) + 1);
  const readers = [...byReader].sort((a, b) => b[1] - a[1]).map(([r, c]) => `${r} ×${c}`).join(', ');
  const examples = kernels.slice(0, 3).map((k) => `"${k.name}"`).join(', ');
  return (
    `${kernels.length} of ${quantizedCompute} quantized Conv/ConvTranspose node(s) will run in float in onnxruntime: their outputs feed ops without integer kernels (${readers}), ` +
    `so their int8 weights save size, not time (e.g. ${examples}${kernels.length > 3 ? ', …' : ''})`
  );
}
