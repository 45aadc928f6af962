/** Layer names in recipe text (src/quant/recipe-names.ts): which are unknown, and where they are. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { recipeNames, unknownNameMessage, unknownRecipeNames } from '../../src/quant/recipe-names';

const TEXT = `{
  "version": 1,
  "model": "cls.onnx",
  "exclude": ["Softmax", "conv_typo", 3, "conv\\u0031"],
  "notes": ["nodes: not a node"],
  "nodes": {
    "conv1": { "exclude": true },
    "missing \\"quoted\\"": { "activationType": "uint16", "nested": {"a": [1, {"b": null}]} }
  }
}`;

describe('recipe names', () => {
  it('finds nodes keys and exclude entries with their offsets', () => {
    const r = recipeNames(TEXT);
    assert.ok(r);
    assert.equal(r.model, 'cls.onnx');
    assert.deepEqual(r.refs.map((x) => [x.where, x.name]), [
      ['exclude', 'Softmax'],
      ['exclude', 'conv_typo'],
      ['exclude', 'conv1'],
      ['nodes', 'conv1'],
      ['nodes', 'missing "quoted"'],
    ]);
    for (const ref of r.refs) assert.equal(JSON.parse(TEXT.slice(ref.start, ref.end)), ref.name, 'offsets cover the string token');
  });

  it('reports names that are neither nodes nor (for exclude) op types', () => {
    const r = recipeNames(TEXT)!;
    const unknown = unknownRecipeNames(r, new Set(['conv1', 'fc']), new Set(['Conv', 'Softmax']));
    assert.deepEqual(unknown.map((u) => u.name), ['conv_typo', 'missing "quoted"']);
    assert.match(unknownNameMessage(unknown[0]!, 'cls.onnx'), /"conv_typo" is neither a node name nor an op type of cls\.onnx/);
    assert.match(unknownNameMessage(unknown[1]!, 'cls.onnx'), /no node named "missing "quoted"" in cls\.onnx/);
    // An op type in `nodes` is still unknown: nodes are addressed by name only.
    assert.deepEqual(unknownRecipeNames(recipeNames('{"nodes": {"Conv": {}}}')!, new Set(), new Set(['Conv'])).map((u) => u.name), ['Conv']);
  });

  it('gives up quietly on text that is not a JSON object', () => {
    for (const bad of ['', '[]', '{"nodes": {', '{"a": tru}', '{"a" 1}', '{"a": "x\n', 'null']) assert.equal(recipeNames(bad), undefined, JSON.stringify(bad));
    assert.deepEqual(recipeNames('{}'), { refs: [] });
  });
});
