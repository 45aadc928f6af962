/**
 * Multiply-adds of the compute ops (Conv, ConvTranspose, MatMul, Gemm) from the shapes one run
 * produced, and the share of them that integer kernels would carry. Quantized activations exist
 * to feed integer kernels; when those carry a small share of the work, no integer speed-up can
 * pay for the activations' rounding error (see ActivationQdq 'auto').
 */
import type { NodeProto } from '../../onnx/proto';

export const COMPUTE_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']);

/** Dims of a tensor as seen in a run (or of a constant); undefined when unknown. */
export type ShapeOf = (tensor: string) => readonly number[] | undefined;

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

function attrInt(n: NodeProto, name: string, dflt: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a?.i !== undefined ? Number(a.i) : dflt;
}

/**
 * Multiply-adds of one compute node, or undefined when a shape it needs is unknown.
 * - Conv: each output element sums C_in/group × kernel taps (the weight is [C_out, C_in/group, k…]).
 * - ConvTranspose: each input element scatters into C_out/group × kernel taps (weight [C_in, C_out/group, k…]).
 * - MatMul: each output element sums K = A's last dim (A's only dim when A is 1-D).
 * - Gemm: K = A's second dim, its first with transA.
 */
export function multiplyAdds(node: NodeProto, shapeOf: ShapeOf): number | undefined {
  const a = shapeOf(node.input[0] ?? '');
  const w = shapeOf(node.input[1] ?? '');
  const y = shapeOf(node.output[0] ?? '');
  switch (node.opType) {
    case 'Conv':
      return y && w && w.length >= 2 ? product(y) * product(w.slice(1)) : undefined;
    case 'ConvTranspose':
      return a && w && w.length >= 2 ? product(a) * product(w.slice(1)) : undefined;
    case 'MatMul':
      return y && a && a.length >= 1 ? product(y) * a[a.length - 1]! : undefined;
    case 'Gemm':
      return y && a && a.length === 2 ? product(y) * a[attrInt(node, 'transA', 0) ? 0 : 1]! : undefined;
    default:
      return undefined;
  }
}

export interface ComputeWork {
  name: string;
  opType: string;
  macs: number;
  /** Runs as an integer kernel in onnxruntime. */
  integer: boolean;
}

export interface IntegerShare {
  work: ComputeWork[];
  totalMacs: number;
  integerMacs: number;
  /** integerMacs / totalMacs; undefined when no compute op's size is known. */
  share: number | undefined;
}

/**
 * How the compute ops' multiply-adds split between integer kernels (`isInteger`, see
 * float-kernels.ts integerKernels) and float ones. Nodes whose shapes are unknown are left out.
 */
export function integerKernelShare(nodes: readonly NodeProto[], isInteger: (n: NodeProto) => boolean, shapeOf: ShapeOf): IntegerShare {
  const work: ComputeWork[] = [];
  let totalMacs = 0;
  let integerMacs = 0;
  for (const n of nodes) {
    if (!COMPUTE_OPS.has(n.opType)) continue;
    const macs = multiplyAdds(n, shapeOf);
    if (macs === undefined) continue;
    const integer = isInteger(n);
    work.push({ name: n.name, opType: n.opType, macs, integer });
    totalMacs += macs;
    if (integer) integerMacs += macs;
  }
  return { work, totalMacs, integerMacs, share: totalMacs > 0 ? integerMacs / totalMacs : undefined };
}
