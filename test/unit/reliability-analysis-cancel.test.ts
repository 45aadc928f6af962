/**
 * Cancelling an analysis (activation calibration, local and global sensitivity on worker threads,
 * the verified suggestion) at random progress events of every phase and at random times: the
 * promise rejects with an AbortError promptly, and nothing is left behind — no worker thread, no
 * onnxruntime session, no temporary folder of the suggestion's verifier, no partial recipe file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeModel, type AnalysisEvent } from '../../src/analysis/analyze';
import { liveWorkerCount } from '../../src/analysis/sensitivity-global';
import { runAnalyze } from '../../src/cli/analyze';
import { buildDemoModel } from '../../src/cli/demo-model';
import { Rng } from '../../src/onnx/builder';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { syntheticSource } from '../../src/runtime/data';
import { liveSessionCount } from '../../src/runtime/session';
import { tempDir } from '../helpers/ort';

/** Generous: an abort waits at most for the onnxruntime call in flight (milliseconds here). */
const MAX_CANCEL_MS = 3000;

function phaseOf(e: AnalysisEvent): string {
  if (e.event === 'suggestion') return 'suggest';
  if (e.event === 'finding') return 'findings';
  return e.phase;
}

/** What this project puts in the temporary folder (other tools of the machine write there too). */
function ours(names: string[]): string[] {
  return names.filter((n) => n.startsWith('onnx-quant') || n.endsWith('.tmp'));
}

/** Worker threads and message ports the process holds (a live Worker shows as MessagePort). */
function threadHandles(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r === 'MessagePort' || r === 'Worker');
}

describe('cancelling analysis', () => {
  let dir: string;
  let cleanup: () => void;
  let input: string;
  let model: OnnxModel;
  let savedTmp: string | undefined;
  let tmp: string;

  before(() => {
    ({ dir, cleanup } = tempDir());
    input = path.join(dir, 'in.onnx');
    saveModel(buildDemoModel(), input);
    model = OnnxModel.load(input);
    // The verifier's temporary folders go to os.tmpdir(): a private one shows what is left.
    tmp = path.join(dir, 'tmp');
    fs.mkdirSync(tmp);
    savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
  });
  after(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    model.close();
    cleanup();
  });

  const run = (signal?: AbortSignal, onProgress?: (e: AnalysisEvent) => void) =>
    analyzeModel({
      model: input,
      calib: syntheticSource(model, { count: 8, seed: 1, dims: { N: 1 } }),
      eval: syntheticSource(model, { count: 4, seed: 2, dims: { N: 1 } }),
      sensitivity: 'global',
      workers: 2,
      maxRounds: 2,
      signal,
      onProgress,
    });

  /** Nothing of a finished or cancelled run may remain. */
  const assertClean = (when: string) => {
    assert.equal(liveSessionCount(), 0, `no onnxruntime session left ${when}`);
    assert.equal(liveWorkerCount(), 0, `no worker thread left ${when}`);
    assert.deepEqual(threadHandles(), [], `no worker handles left ${when}`);
    assert.deepEqual(ours(fs.readdirSync(tmp)), [], `no temporary files left ${when}`);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['in.onnx', 'tmp'], `no output files left ${when}`);
  };

  it('at random progress events of every phase', { timeout: 240_000 }, async () => {
    const events: AnalysisEvent[] = [];
    const full = await run(undefined, (e) => events.push(e));
    assert.ok(full.suggestion && full.global, 'the uncancelled run reaches global sensitivity and the suggestion');
    assertClean('after an uncancelled run');

    // One random event of every phase, then random events anywhere: deterministic (seeded).
    const rng = new Rng(6);
    const byPhase = new Map<string, number[]>();
    events.forEach((e, i) => byPhase.set(phaseOf(e), [...(byPhase.get(phaseOf(e)) ?? []), i]));
    for (const p of ['calibrate', 'activations', 'global', 'suggest']) assert.ok(byPhase.has(p), `phase ${p} reports progress`);
    const targets = [...byPhase.values()].map((ix) => ix[Math.floor(rng.next() * ix.length)]!);
    while (targets.length < 24) targets.push(Math.floor(rng.next() * events.length));

    const latencies: number[] = [];
    let aborted = 0;
    for (const at of targets) {
      const controller = new AbortController();
      let seen = 0;
      let abortedAt = 0;
      const label = `abort at event ${at} (${phaseOf(events[at]!)})`;
      try {
        await run(controller.signal, () => {
          if (seen++ === at) {
            abortedAt = performance.now();
            controller.abort();
          }
        });
        // Only the last event ("done") comes too late to cancel anything.
        assert.equal(phaseOf(events[at]!), 'done', `${label}: the run finished instead of rejecting`);
      } catch (err) {
        assert.equal((err as Error).name, 'AbortError', `${label}: ${String(err)}`);
        latencies.push(performance.now() - abortedAt);
        aborted++;
      }
      assertClean(`after an ${label}`);
    }
    const worst = Math.max(...latencies);
    console.log(`analysis cancel latency over ${latencies.length} aborts: median ${latencies.sort((a, b) => a - b)[latencies.length >> 1]!.toFixed(1)} ms, max ${worst.toFixed(1)} ms`);
    assert.ok(aborted >= targets.length - 2, `${aborted} of ${targets.length} runs were cancelled`);
    assert.ok(worst < MAX_CANCEL_MS, `every abort took effect within ${MAX_CANCEL_MS} ms (worst ${worst.toFixed(0)} ms)`);
  });

  it('at random times', { timeout: 240_000 }, async () => {
    // The shorter of two runs: abort times drawn from a run slowed by other load on the machine
    // would mostly fall after the later, faster runs had finished.
    let duration = Infinity;
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      await run();
      duration = Math.min(duration, performance.now() - t0);
    }
    const rng = new Rng(9);
    const latencies: number[] = [];
    for (let i = 0; i < 12; i++) {
      const controller = new AbortController();
      let abortedAt = 0;
      const timer = setTimeout(() => {
        abortedAt = performance.now();
        controller.abort();
      }, rng.next() * duration);
      try {
        await run(controller.signal);
      } catch (err) {
        assert.equal((err as Error).name, 'AbortError', String(err));
        latencies.push(performance.now() - abortedAt);
      } finally {
        clearTimeout(timer);
      }
      assertClean(`after an abort at a random time (round ${i})`);
    }
    assert.ok(latencies.length >= 6, `${latencies.length} of 12 runs were cancelled`);
    assert.ok(Math.max(...latencies) < MAX_CANCEL_MS, `worst cancel latency ${Math.max(...latencies).toFixed(0)} ms`);
  });

  it('analyze --write-recipe cancelled leaves no recipe file', { timeout: 120_000 }, async () => {
    const recipe = path.join(dir, 'recipe.json');
    const args = [input, '--sensitivity', 'local', '--write-recipe', recipe, '--progress', 'ndjson', '--json'];
    let lines = 0;
    await runAnalyze(args, { out: () => undefined, err: () => lines++ });
    assert.ok(JSON.parse(fs.readFileSync(recipe, 'utf8')), 'an uncancelled run writes the recipe');
    fs.rmSync(recipe);
    const rng = new Rng(3);
    for (let i = 0; i < 6; i++) {
      const at = Math.floor(rng.next() * (lines - 2));
      const controller = new AbortController();
      let seen = 0;
      await assert.rejects(
        runAnalyze(args, { out: () => undefined, err: () => (seen++ === at ? controller.abort() : undefined) }, controller.signal),
        (err: Error) => err.name === 'AbortError',
      );
      assert.ok(!fs.existsSync(recipe), `no recipe after an abort at event ${at}`);
      assertClean(`after cancelling analyze --write-recipe at event ${at}`);
    }
  });
});
