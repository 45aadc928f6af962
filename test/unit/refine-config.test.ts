/** The refinement settings: command-line flags, recipe fields (α as a number or "auto"), and the report lines. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CliUsageError, formatQuantizeReport, resolveConfig } from '../../src/cli/quantize';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { parseRecipe, RecipeError } from '../../src/quant/recipe';
import type { QuantizeReport } from '../../src/runtime/quantize-model';

describe('refinement settings', () => {
  it('maps the command-line flags, the command line winning over a recipe', () => {
    const c = resolveConfig({ cle: true, 'no-bias-correction': true, smoothquant: true, 'smoothquant-alpha': 'auto', recipe: 'r.json' }, () => JSON.stringify({ biasCorrection: true, smoothQuantAlpha: 0.7 }));
    assert.equal(c.crossLayerEqualization, true);
    assert.equal(c.biasCorrection, false);
    assert.equal(c.smoothQuant, true);
    assert.equal(c.smoothQuantAlpha, 'auto');
    assert.equal(resolveConfig({ 'smoothquant-alpha': '0.65' }).smoothQuantAlpha, 0.65);
    assert.equal(resolveConfig({}).crossLayerEqualization, DEFAULT_CONFIG.crossLayerEqualization);
    assert.throws(() => resolveConfig({ cle: true, 'no-cle': true }), CliUsageError);
    assert.throws(() => resolveConfig({ 'smoothquant-alpha': '1.5' }), /--smoothquant-alpha/);
    const ar = resolveConfig({ 'no-adaround': true, 'adaround-seconds': '15', recipe: 'r.json' }, () => JSON.stringify({ adaround: true, adaroundSeconds: 90 }));
    assert.equal(ar.adaround, false);
    assert.equal(ar.adaroundSeconds, 15);
    assert.equal(resolveConfig({}).adaround, DEFAULT_CONFIG.adaround);
    assert.throws(() => resolveConfig({ adaround: true, 'no-adaround': true }), CliUsageError);
    assert.throws(() => resolveConfig({ 'adaround-seconds': '0' }), /--adaround-seconds/);
    assert.throws(() => parseRecipe({ adaroundSeconds: 'long' }, 'r.json'), RecipeError);
    // Depthwise equalization and learned rounding are on by default; each flag turns its own off.
    assert.equal(resolveConfig({}).depthwiseEqualization, true);
    assert.equal(resolveConfig({}).adaround, true);
    assert.equal(resolveConfig({ 'no-dw-equalization': true }).depthwiseEqualization, false);
    assert.equal(resolveConfig({ 'dw-equalization': true, recipe: 'r.json' }, () => JSON.stringify({ depthwiseEqualization: false })).depthwiseEqualization, true);
    assert.equal(parseRecipe({ depthwiseEqualization: false }, 'r.json').settings.depthwiseEqualization, false);
    assert.throws(() => resolveConfig({ 'dw-equalization': true, 'no-dw-equalization': true }), CliUsageError);
    // Histogram subsets: 16384 values per activation per sample by default; 0 bins every value.
    assert.equal(resolveConfig({}).histogramValues, 16384);
    assert.equal(resolveConfig({ 'histogram-values': '0' }).histogramValues, 0);
    assert.equal(resolveConfig({ 'histogram-values': '4096', recipe: 'r.json' }, () => JSON.stringify({ histogramValues: 0 })).histogramValues, 4096);
    assert.equal(resolveConfig({ recipe: 'r.json' }, () => JSON.stringify({ histogramValues: 0 })).histogramValues, 0);
    assert.throws(() => resolveConfig({ 'histogram-values': '1.5' }), /--histogram-values/);
    assert.throws(() => parseRecipe({ histogramValues: -1 }, 'r.json'), RecipeError);
  });

  it('--activation-qdq: auto by default, every-layer from the TensorRT and NPU presets; the command line and recipes win', () => {
    assert.equal(resolveConfig({}).activationQdq, 'auto');
    assert.equal(resolveConfig({ target: 'cpu-x86' }).activationQdq, 'auto');
    assert.equal(resolveConfig({ 'activation-qdq': 'integer-kernels' }).activationQdq, 'integer-kernels');
    assert.equal(resolveConfig({ target: 'npu' }).activationQdq, 'every-layer');
    assert.equal(resolveConfig({ target: 'gpu-tensorrt' }).activationQdq, 'every-layer');
    assert.equal(resolveConfig({ target: 'npu', 'activation-qdq': 'integer-kernels' }).activationQdq, 'integer-kernels');
    assert.equal(resolveConfig({ recipe: 'r.json' }, () => JSON.stringify({ activationQdq: 'every-layer' })).activationQdq, 'every-layer');
    assert.equal(resolveConfig({ 'activation-qdq': 'integer-kernels', recipe: 'r.json' }, () => JSON.stringify({ activationQdq: 'every-layer' })).activationQdq, 'integer-kernels');
    assert.equal(resolveConfig({ 'activation-qdq': 'none' }).activationQdq, 'none');
    assert.equal(resolveConfig({ recipe: 'r.json' }, () => JSON.stringify({ activationQdq: 'none' })).activationQdq, 'none');
    assert.throws(() => resolveConfig({ 'activation-qdq': 'some' }), (e: Error) => e instanceof CliUsageError && /--activation-qdq/.test(e.message));
    assert.throws(() => parseRecipe({ activationQdq: 'all' }, 'r.json'), (e: Error) => e instanceof RecipeError && /activationQdq/.test(e.message));
  });

  it('--float-kernel-weights: 0.125 by default; the command line beats the recipe; out of range is refused', () => {
    assert.equal(resolveConfig({}).floatKernelWeights, 0.125);
    assert.equal(resolveConfig({ 'float-kernel-weights': '0' }).floatKernelWeights, 0);
    assert.equal(resolveConfig({ recipe: 'r.json' }, () => JSON.stringify({ floatKernelWeights: 3 })).floatKernelWeights, 3);
    assert.equal(resolveConfig({ 'float-kernel-weights': '0.5', recipe: 'r.json' }, () => JSON.stringify({ floatKernelWeights: 3 })).floatKernelWeights, 0.5);
    assert.throws(() => resolveConfig({ 'float-kernel-weights': '9' }), (e: Error) => e instanceof CliUsageError && /--float-kernel-weights/.test(e.message));
    assert.throws(() => parseRecipe({ floatKernelWeights: -1 }, 'r.json'), (e: Error) => e instanceof RecipeError && /floatKernelWeights/.test(e.message));
  });

  it('validates recipe fields', () => {
    assert.equal(parseRecipe({ smoothQuantAlpha: 'auto' }, 'r.json').settings.smoothQuantAlpha, 'auto');
    assert.equal(parseRecipe({ smoothQuantAlpha: 0.3, crossLayerEqualization: true }, 'r.json').settings.smoothQuantAlpha, 0.3);
    assert.throws(() => parseRecipe({ smoothQuantAlpha: 'max' }, 'r.json'), (e: Error) => e instanceof RecipeError && /smoothQuantAlpha: must be a number from 0 to 1 or "auto"/.test(e.message));
    assert.throws(() => parseRecipe({ biasCorrection: 'yes' }, 'r.json'), RecipeError);
  });

  it('prints what each refinement did', () => {
    const r = {
      output: 'q.onnx',
      mode: 'static',
      quantizedNodes: 3,
      skippedNodes: [],
      sizeBytes: { before: 4000, after: 1000, ratio: 4 },
      preprocessing: [],
      refinements: [{ name: 'cross-layer equalization', summary: '2 Conv pair(s) equalized', layers: ['a', 'b', 'c', 'd'], seconds: 0.25 }],
      calibration: null,
      eval: { outputs: [], latencyMs: null, samples: 1, synthetic: false, source: 's' },
      warnings: [],
    } as unknown as QuantizeReport;
    assert.match(formatQuantizeReport(r), /refinement cross-layer equalization: 2 Conv pair\(s\) equalized \(a, b, c, …\), 0\.3 s/);
  });
});
