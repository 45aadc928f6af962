/** Recipe files: validation errors naming file and path, and the published schema kept in sync. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeRecipe, parseRecipe, parseRecipeText, recipeJsonSchema } from '../../src/quant/recipe';

describe('recipes', () => {
  it('the committed schema is the generated one (run scripts/write-schema.ts after changing recipe.ts)', () => {
    const committed = JSON.parse(fs.readFileSync(path.join(__dirname, '../../schemas/recipe.schema.json'), 'utf8'));
    assert.deepEqual(committed, recipeJsonSchema());
  });

  it('reads every field and per-node overrides', () => {
    const r = parseRecipe(
      {
        $schema: './x.json',
        version: 1,
        model: 'm.onnx',
        mode: 'static',
        method: 'entropy',
        percentile: 99.9,
        perChannel: false,
        activationType: 'int8',
        weightType: 'int4',
        symmetricActivations: true,
        symmetricWeights: false,
        blockSize: 64,
        exclude: ['Softmax'],
        samples: 10,
        target: 'npu',
        foldBatchNorm: false,
        nodes: { conv1: { exclude: true }, conv2: { activationType: 'uint16', perChannel: true } },
        notes: ['why'],
      },
      'r.json',
    );
    assert.equal(r.model, 'm.onnx');
    assert.deepEqual(r.notes, ['why']);
    assert.equal(r.settings.blockSize, 64);
    assert.deepEqual(r.settings.nodes, { conv1: { exclude: true }, conv2: { activationType: 'uint16', perChannel: true } });
    // Round trip through makeRecipe.
    assert.deepEqual(parseRecipe(makeRecipe(r.settings, { model: r.model, notes: r.notes }), 'again.json'), r);
  });

  it('errors name the file and the field', () => {
    assert.throws(() => parseRecipeText('{', 'bad.json'), /^RecipeError: bad\.json: not valid JSON/);
    assert.throws(() => parseRecipe({ mode: 'turbo' }, 'r.json'), /r\.json: mode: must be one of static, dynamic, weight-only, fp16 \(got "turbo"\)/);
    assert.throws(() => parseRecipe({ samples: 1.5 }, 'r.json'), /r\.json: samples: must be an integer/);
    assert.throws(() => parseRecipe({ nodes: { c1: { bits: 4 } } }, 'r.json'), /r\.json: nodes\.c1\.bits: unknown field/);
    assert.throws(() => parseRecipe({ version: 2 }, 'r.json'), /reads recipe version 1/);
    assert.throws(() => parseRecipe([], 'r.json'), /must be a JSON object/);
  });

  it('a node named __proto__ stays an own property', () => {
    const r = parseRecipe(JSON.parse('{"nodes": {"__proto__": {"exclude": true}}}'), 'r.json');
    assert.equal(Object.getPrototypeOf(r.settings.nodes), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(r.settings.nodes, '__proto__')?.value, { exclude: true });
    assert.equal(({} as Record<string, unknown>).exclude, undefined);
  });
});
