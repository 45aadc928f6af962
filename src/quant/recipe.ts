/**
 * Recipe files: every `quantize` option plus per-node overrides, as JSON. The JSON schema
 * (schemas/recipe.schema.json, published with the extension) is generated from the same tables
 * the validator below uses, so the two cannot drift apart (a test compares them).
 */
import type { NodeOverride, QuantConfig } from './config';

export class RecipeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecipeError';
  }
}

export const RECIPE_VERSION = 1;

type FieldSpec =
  | { kind: 'enum'; values: readonly string[]; description: string }
  | { kind: 'boolean'; description: string }
  | { kind: 'number'; minimum: number; maximum: number; integer?: boolean; description: string; orWords?: readonly string[] }
  | { kind: 'strings'; description: string };

const ACTIVATION_TYPES = ['uint8', 'int8', 'uint16', 'int16'] as const;
const WEIGHT_TYPES = ['int8', 'uint8', 'int4', 'uint4'] as const;

/** Global fields of a recipe, keyed as in QuantConfig. */
const GLOBAL_FIELDS: Readonly<Record<string, FieldSpec>> = {
  mode: { kind: 'enum', values: ['static', 'dynamic', 'weight-only', 'fp16'], description: 'Quantization mode.' },
  method: { kind: 'enum', values: ['minmax', 'percentile', 'entropy', 'mse'], description: 'How activation ranges are chosen from calibration data.' },
  histogramValues: { kind: 'number', minimum: 0, maximum: 1073741824, integer: true, description: 'Histogram methods: at most this many values of each activation per sample are binned (an evenly strided subset; min and max stay exact); 0 bins every value.' },
  percentile: { kind: 'number', minimum: 50, maximum: 100, description: 'Percentile kept by method "percentile" (e.g. 99.99).' },
  perChannel: { kind: 'boolean', description: 'One weight scale per output channel.' },
  activationType: { kind: 'enum', values: ACTIVATION_TYPES, description: 'Integer type of activations.' },
  weightType: { kind: 'enum', values: WEIGHT_TYPES, description: 'Integer type of weights.' },
  symmetricActivations: { kind: 'boolean', description: 'Symmetric activation ranges (zero point at the middle).' },
  symmetricWeights: { kind: 'boolean', description: 'Symmetric weight ranges (zero point at the middle).' },
  blockSize: { kind: 'enum', values: ['32', '64', '128'], description: 'Block size of int4/uint4 weight-only quantization.' },
  exclude: { kind: 'strings', description: 'Node names or op types kept in float.' },
  samples: { kind: 'number', minimum: 1, maximum: 1_000_000, integer: true, description: 'Calibration samples to use (at most).' },
  target: { kind: 'enum', values: ['cpu-x86', 'cpu-arm', 'gpu-tensorrt', 'npu'], description: 'Backend preset: types and symmetry it needs.' },
  foldBatchNorm: { kind: 'boolean', description: 'Fold BatchNormalization into the preceding Conv/Gemm first.' },
  crossLayerEqualization: { kind: 'boolean', description: 'Static: cross-layer equalization of Conv→activation→Conv chains (the float model computes the same function).' },
  depthwiseEqualization: { kind: 'boolean', description: 'Static: equalize depthwise Conv input channels (X/s, filters × s; the float model computes the same function) when one channel is much wider than the rest.' },
  biasCorrection: { kind: 'boolean', description: 'Static: shift quantized layers’ biases by their mean output error on calibration data.' },
  smoothQuant: { kind: 'boolean', description: 'Static: SmoothQuant — move activation outlier scale into MatMul/Gemm weights.' },
  smoothQuantAlpha: { kind: 'number', minimum: 0, maximum: 1, orWords: ['auto'], description: 'SmoothQuant migration strength α (0..1), or "auto" to search it per layer.' },
  adaround: { kind: 'boolean', description: 'Static: learned rounding (AdaRound-style) — round each weight up or down to minimize its layer’s output error on calibration data.' },
  kernelSumRounding: { kind: 'boolean', description: 'Conv/ConvTranspose weights: round so that each kernel keeps its float sum (its response to a constant input) within half a step.' },
  activationQdq: { kind: 'enum', values: ['auto', 'integer-kernels', 'every-layer', 'none'], description: 'Static: which activations get a Q/DQ pair. "auto" (default): "integer-kernels" when integer kernels would carry at least 1/8 of the model\'s multiply-adds, else "none"; "integer-kernels": only where onnxruntime can run an integer kernel (a layer whose output only float ops read runs in float and reads its input in float); "every-layer": every quantized layer\'s input (TensorRT, NPU compilers); "none": no activation, only the weights (every layer runs in float on dequantized weights).' },
  floatKernelWeights: { kind: 'number', minimum: 0, maximum: 8, description: 'Static, "integer-kernels": convolutions that onnxruntime runs as float kernels keep float weights, smallest first, while the bytes they add stay within this fraction of the quantized weights\' size (0: quantize them all; 3: every one with 8-bit weights stays float).' },
  adaroundSeconds: { kind: 'number', minimum: 1, maximum: 86400, description: 'Time budget of learned rounding in seconds; layers left when it runs out keep nearest rounding.' },
};

const NODE_FIELDS: Readonly<Record<keyof NodeOverride, FieldSpec>> = {
  exclude: { kind: 'boolean', description: 'Keep this node in float.' },
  activationType: { kind: 'enum', values: ACTIVATION_TYPES, description: 'Integer type of this node’s activations.' },
  weightType: { kind: 'enum', values: WEIGHT_TYPES, description: 'Integer type of this node’s weights.' },
  symmetricWeights: { kind: 'boolean', description: 'Symmetric weights for this node.' },
  symmetricActivations: { kind: 'boolean', description: 'Symmetric activations for this node.' },
  perChannel: { kind: 'boolean', description: 'Per-channel weights for this node.' },
};

function fieldSchema(f: FieldSpec): Record<string, unknown> {
  switch (f.kind) {
    case 'enum':
      return f.values.every((v) => /^\d+$/.test(v)) ? { enum: f.values.map(Number), description: f.description } : { enum: [...f.values], description: f.description };
    case 'boolean':
      return { type: 'boolean', description: f.description };
    case 'number': {
      const n = { type: f.integer ? 'integer' : 'number', minimum: f.minimum, maximum: f.maximum };
      return f.orWords ? { oneOf: [n, { enum: [...f.orWords] }], description: f.description } : { ...n, description: f.description };
    }
    case 'strings':
      return { type: 'array', items: { type: 'string' }, description: f.description };
  }
}

/** The published JSON schema of recipe files. */
export function recipeJsonSchema(): Record<string, unknown> {
  const props: Record<string, unknown> = {
    $schema: { type: 'string' },
    version: { const: RECIPE_VERSION, description: 'Recipe format version.' },
    model: { type: 'string', description: 'The model this recipe was made for (informational).' },
    notes: { type: 'array', items: { type: 'string' }, description: 'Why each choice was made (written by analyze / the accuracy loop).' },
  };
  for (const [k, f] of Object.entries(GLOBAL_FIELDS)) props[k] = fieldSchema(f);
  const nodeProps: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(NODE_FIELDS)) nodeProps[k] = fieldSchema(f);
  props.nodes = {
    type: 'object',
    description: 'Per-node overrides, keyed by node name.',
    additionalProperties: { type: 'object', properties: nodeProps, additionalProperties: false },
  };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'onnx-quant-recipe.schema.json',
    title: 'onnx-quant quantization recipe',
    type: 'object',
    properties: props,
    additionalProperties: false,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkField(path: string, f: FieldSpec, v: unknown): unknown {
  const bad = (what: string) => new RecipeError(`${path}: ${what}`);
  switch (f.kind) {
    case 'enum': {
      const s = typeof v === 'number' ? String(v) : v;
      if (typeof s !== 'string' || !f.values.includes(s)) throw bad(`must be one of ${f.values.join(', ')} (got ${JSON.stringify(v)})`);
      return f.values.every((x) => /^\d+$/.test(x)) ? Number(s) : s;
    }
    case 'boolean':
      if (typeof v !== 'boolean') throw bad(`must be true or false (got ${JSON.stringify(v)})`);
      return v;
    case 'number':
      if (typeof v === 'string' && f.orWords?.includes(v)) return v;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < f.minimum || v > f.maximum || (f.integer && !Number.isInteger(v))) {
        throw bad(`must be a${f.integer ? 'n integer' : ' number'} from ${f.minimum} to ${f.maximum}${f.orWords ? ` or ${f.orWords.map((w) => JSON.stringify(w)).join(', ')}` : ''} (got ${JSON.stringify(v)})`);
      }
      return v;
    case 'strings':
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad('must be a list of strings');
      return [...v];
  }
}

export interface Recipe {
  settings: Partial<QuantConfig>;
  model?: string;
  notes: string[];
}

/** Validates a parsed recipe; errors name the file and the JSON path. */
export function parseRecipe(value: unknown, file: string): Recipe {
  try {
    if (!isObject(value)) throw new RecipeError('a recipe must be a JSON object');
    const settings: Record<string, unknown> = {};
    let model: string | undefined;
    let notes: string[] = [];
    for (const [key, v] of Object.entries(value)) {
      if (key === '$schema') continue;
      if (key === 'version') {
        if (v !== RECIPE_VERSION) throw new RecipeError(`version: this onnx-quant reads recipe version ${RECIPE_VERSION} (got ${JSON.stringify(v)})`);
        continue;
      }
      if (key === 'model') {
        if (typeof v !== 'string') throw new RecipeError('model: must be a string');
        model = v;
        continue;
      }
      if (key === 'notes') {
        notes = checkField('notes', { kind: 'strings', description: '' }, v) as string[];
        continue;
      }
      if (key === 'nodes') {
        if (!isObject(v)) throw new RecipeError('nodes: must be an object keyed by node name');
        const nodes: Record<string, NodeOverride> = {};
        for (const [name, o] of Object.entries(v)) {
          if (!isObject(o)) throw new RecipeError(`nodes.${name}: must be an object`);
          const override: Record<string, unknown> = {};
          for (const [k, x] of Object.entries(o)) {
            const spec = (NODE_FIELDS as Record<string, FieldSpec>)[k];
            if (!spec) throw new RecipeError(`nodes.${name}.${k}: unknown field (known: ${Object.keys(NODE_FIELDS).join(', ')})`);
            override[k] = checkField(`nodes.${name}.${k}`, spec, x);
          }
          // Own properties only: a node named "__proto__" must not reach Object.prototype.
          Object.defineProperty(nodes, name, { value: override as NodeOverride, enumerable: true, writable: true, configurable: true });
        }
        settings.nodes = nodes;
        continue;
      }
      const spec = GLOBAL_FIELDS[key];
      if (!spec) throw new RecipeError(`${key}: unknown field (known: version, model, notes, nodes, ${Object.keys(GLOBAL_FIELDS).join(', ')})`);
      settings[key] = checkField(key, spec, v);
    }
    return { settings: settings as Partial<QuantConfig>, model, notes };
  } catch (err) {
    if (err instanceof RecipeError) throw new RecipeError(`${file}: ${err.message}`);
    throw err;
  }
}

/** Parses recipe text (JSON); syntax errors name the file. */
export function parseRecipeText(text: string, file: string): Recipe {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RecipeError(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  return parseRecipe(value, file);
}

/** A recipe object for the given settings (what analyze and the accuracy loop write). */
export function makeRecipe(settings: Partial<QuantConfig>, extra: { model?: string; notes?: string[] } = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { $schema: './onnx-quant-recipe.schema.json', version: RECIPE_VERSION };
  if (extra.model) out.model = extra.model;
  for (const key of Object.keys(GLOBAL_FIELDS)) {
    const v = (settings as Record<string, unknown>)[key];
    if (v !== undefined) out[key] = v;
  }
  if (settings.nodes && Object.keys(settings.nodes).length) out.nodes = settings.nodes;
  if (extra.notes?.length) out.notes = extra.notes;
  return out;
}
