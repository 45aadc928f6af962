/**
 * If branches and calibration. onnxruntime only returns tensors of the main graph, so tensors in an
 * If's branches cannot be observed where they are. Exporters often wrap the whole network in an
 * If on an input that calibration data keeps fixed (a sample rate, a batch-size check): then every
 * sample takes the same branch. We find out which (one cheap pass exposing the conditions), and for
 * calibration only, inline that branch into the main graph so its tensors can be observed. The
 * quantized model keeps the If: the taken branch is quantized in place, the other stays in float.
 */
import { OnnxModel } from '../onnx/model';
import { GraphProto, ModelProto, NodeProto } from '../onnx/proto';
import { walkGraphs } from '../onnx/model';
import { makeNode } from '../quant/graph/edit';
import { WEIGHTED_OPS } from '../quant/graph/ops';
import { withExtraOutputs } from './calibrate';
import { SampleSource } from './samples';
import { createSession, raceAbort, runSession, throwIfAborted } from './session';

export type Branch = 'then_branch' | 'else_branch';

/** Marks the Identity nodes that stand for an inlined If's outputs. */
export const INLINED_OUTPUT_TAG = '__onnx_quant_inlined_output_';

function hasWeightedOps(g: GraphProto): boolean {
  for (const sub of walkGraphs(g)) if (sub.node.some((n) => n.opType in WEIGHTED_OPS)) return true;
  return false;
}

/** If nodes of the main graph whose branches hold layers worth quantizing. */
export function quantizableIfNodes(proto: ModelProto): NodeProto[] {
  return proto.graph!.node.filter((n) => n.opType === 'If' && n.attribute.some((a) => a.g && hasWeightedOps(a.g)));
}

/**
 * For each such If, the branch every sample takes; Ifs whose condition varies across samples (or
 * could not be read) are left out, and their branches stay in float.
 */
export async function observeTakenBranches(
  model: OnnxModel,
  proto: ModelProto,
  source: SampleSource,
  options: { signal?: AbortSignal; threads?: number } = {},
): Promise<{ taken: Map<string, Branch>; varying: string[] }> {
  const ifs = quantizableIfNodes(proto);
  const taken = new Map<string, Branch>();
  const varying: string[] = [];
  if (ifs.length === 0) return { taken, varying };
  const conds = [...new Set(ifs.map((n) => n.input[0]!))];
  const session = await createSession(withExtraOutputs(proto, conds), { threads: options.threads, name: model.file, externalDataDir: model.dir, optimization: 'basic' });
  const seen = new Map<string, Set<boolean>>(conds.map((c) => [c, new Set<boolean>()]));
  try {
    for await (const sample of source.samples(options.signal)) {
      throwIfAborted(options.signal, 'calibration');
      const out = await raceAbort(runSession(session, sample, conds, model.file), options.signal, 'calibration');
      for (const c of conds) {
        const d = out[c]?.data;
        if (d && (d instanceof Uint8Array || Array.isArray(d)) && d.length === 1) seen.get(c)!.add(Boolean(d[0]));
      }
    }
  } finally {
    await session.release();
  }
  for (const n of ifs) {
    const values = seen.get(n.input[0]!)!;
    if (values.size === 1) taken.set(n.name, values.has(true) ? 'then_branch' : 'else_branch');
    else varying.push(n.name);
  }
  return { taken, varying };
}

/**
 * A copy of the model for calibration, with each taken branch's nodes in place of its If (an
 * Identity per If output keeps the outer names). A branch whose names collide with the main
 * graph's is left as it is.
 */
export function inlineTakenBranches(proto: ModelProto, taken: ReadonlyMap<string, Branch>): { model: ModelProto; inlined: string[] } {
  const main = proto.graph!;
  const defined = new Set<string>([...main.input.map((v) => v.name), ...main.initializer.map((t) => t.name)]);
  for (const n of main.node) for (const o of n.output) defined.add(o);
  const nodes: NodeProto[] = [];
  const initializers = [...main.initializer];
  const inlined: string[] = [];
  for (const n of main.node) {
    const branch = taken.get(n.name);
    const g = branch ? n.attribute.find((a) => a.name === branch)?.g : undefined;
    const names = g ? [...g.node.flatMap((b) => b.output), ...g.initializer.map((t) => t.name)] : [];
    if (!g || names.some((x) => x && defined.has(x)) || g.output.length !== n.output.length) {
      nodes.push(n);
      continue;
    }
    for (const x of names) defined.add(x);
    nodes.push(...g.node);
    initializers.push(...g.initializer);
    g.output.forEach((o, i) => nodes.push(makeNode('Identity', [o.name], [n.output[i]!], `${n.name}${INLINED_OUTPUT_TAG}${i}`)));
    inlined.push(n.name);
  }
  return { model: { ...proto, graph: { ...main, node: nodes, initializer: initializers } }, inlined };
}
