/**
 * The suggestion, end to end through the command line: `analyze --target-sqnr T --write-recipe`
 * on a target plain int8 misses, then `quantize --recipe` with the same data options: the recipe is
 * accepted and the quantized model meets the target. Same for a size budget.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeModel } from '../../src/analysis/analyze';
import type { AnalysisReport } from '../../src/analysis/report';
import { runAnalyze } from '../../src/cli/analyze';
import { runQuantize } from '../../src/cli/quantize';
import { buildDemoModel } from '../../src/cli/demo-model';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { parseRecipeText } from '../../src/quant/recipe';
import { syntheticSource } from '../../src/runtime/data';
import { tempDir } from '../helpers/ort';

const quiet = { out: () => undefined, err: () => undefined };

describe('suggested bit widths', () => {
  const tmp = tempDir();
  const file = path.join(tmp.dir, 'demo.onnx');
  let int8Db: number;
  let int8Bytes: number;

  before(async () => {
    saveModel(buildDemoModel(), file);
    // Where plain int8 lands on the CLI's data with --samples 8 (synthetic: 8 calibration, 8 evaluation samples).
    const m = OnnxModel.load(file);
    const r = await analyzeModel({
      model: file,
      calib: syntheticSource(m, { count: 8, seed: 1 }),
      eval: syntheticSource(m, { count: 8, seed: 2 }),
      sensitivity: 'local',
      targetSqnrDb: -100,
    });
    int8Db = r.suggestion!.achievedSqnrDb;
    int8Bytes = r.suggestion!.sizeBytes;
    assert.ok(Number.isFinite(int8Db));
  });
  after(() => tmp.cleanup());

  it('a target above plain int8: the written recipe, given to quantize, meets it', async () => {
    const target = Math.round(int8Db + 3);
    const recipe = path.join(tmp.dir, 'recipe.json');
    const report: AnalysisReport = await runAnalyze([file, '--samples', '8', '--sensitivity', 'global', '--workers', '2', '--target-sqnr', String(target), '--write-recipe', recipe, '--json'], quiet);
    const s = report.suggestion!;
    assert.equal(s.met, true, JSON.stringify(s.history));
    assert.ok(s.achievedSqnrDb >= target);
    assert.ok(s.counts.int16 + s.counts.float > 0, 'something was promoted');
    assert.ok(s.counts.int8 > 0, 'not everything went to float');
    assert.ok(s.history.length >= 2);
    for (const l of report.layers) {
      assert.ok([8, 16, 32].includes(l.suggestedBits!), `${l.name}: ${l.suggestedBits}`);
      assert.ok(l.reason.length > 10, `${l.name} has a reason`);
    }
    // The recipe is valid and records why.
    const parsed = parseRecipeText(fs.readFileSync(recipe, 'utf8'), recipe);
    assert.equal(parsed.settings.mode, 'static');
    assert.ok(parsed.notes.some((n) => n.includes('verified')));
    // quantize --recipe with the same data options reproduces it.
    const q = await runQuantize([file, '-o', path.join(tmp.dir, 'q.onnx'), '--samples', '8', '--recipe', recipe, '--latency-runs', '0', '--json'], quiet);
    const achieved = Math.min(...q.eval.outputs.map((o) => o.sqnrDb));
    assert.ok(achieved >= target, `quantize --recipe: ${achieved} dB < ${target} dB`);
    assert.ok(Math.abs(achieved - s.achievedSqnrDb) < 1e-6, 'the verification is the quantize pipeline itself');
  });

  it('a size budget: the best model within it, verified', async () => {
    const floatBytes = fs.statSync(file).size;
    const budget = Math.round(int8Bytes + (floatBytes - int8Bytes) * 0.3);
    const recipe = path.join(tmp.dir, 'budget.json');
    const report = await runAnalyze([file, '--samples', '8', '--max-size', String(budget), '--write-recipe', recipe, '--json'], quiet);
    const s = report.suggestion!;
    assert.ok(s.sizeBytes <= budget, `${s.sizeBytes} > ${budget}`);
    assert.ok(s.counts.float > 0, 'the budget leaves room for some float layers');
    assert.ok(s.achievedSqnrDb >= int8Db - 0.5);
    const q = await runQuantize([file, '-o', path.join(tmp.dir, 'qb.onnx'), '--samples', '8', '--recipe', recipe, '--latency-runs', '0', '--json'], quiet);
    assert.ok(q.sizeBytes.after <= budget);
  });
});
