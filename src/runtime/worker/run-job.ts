/**
 * What the job worker does with one job, apart from the thread plumbing (job-worker.ts): settings
 * and data resolved exactly as the CLI resolves them (src/cli/quantize.ts), then the quantize
 * pipeline, the analysis, or the float-vs-quantized comparison, with a signal and progress events.
 * Runs in plain Node; tests may call it in-process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeModel } from '../../analysis/analyze';
import { dataSources, resolveConfig } from '../../cli/quantize';
import { OnnxModel } from '../../onnx/model';
import { SampleDataError } from '../data';
import { compareModels } from '../evaluate';
import { quantizeModel } from '../quantize-model';
import type { AnalyzeJob, CompareJob, Job, JobResult, JobSettings, QuantizeJob, WorkerToHost } from './job-protocol';

type CliValues = Parameters<typeof resolveConfig>[0];
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** JobSettings as the CLI's parsed options, so that both resolve settings and data identically. */
export function cliValues(s: JobSettings): CliValues {
  const v: Mutable<CliValues> = {};
  if (s.mode !== undefined) v.mode = s.mode;
  if (s.method !== undefined) v.method = s.method;
  if (s.perChannel === true) v['per-channel'] = true;
  if (s.perChannel === false) v['per-tensor'] = true;
  if (s.target !== undefined) v.target = s.target;
  if (s.samples !== undefined) v.samples = String(s.samples);
  if (s.activationQdq !== undefined) v['activation-qdq'] = s.activationQdq;
  if (s.recipe !== undefined) v.recipe = s.recipe;
  if (s.calib !== undefined) v.calib = s.calib;
  if (s.eval !== undefined) v.eval = s.eval;
  if (s.evalFraction !== undefined) v['eval-fraction'] = String(s.evalFraction);
  return v;
}

type Post = (m: WorkerToHost) => void;

export async function runJob(job: Job, signal: AbortSignal, post: Post): Promise<JobResult> {
  switch (job.kind) {
    case 'quantize':
      return runQuantize(job, signal, post);
    case 'analyze':
      return runAnalyze(job, signal, post);
    case 'compare':
      return runCompare(job, signal, post);
  }
}

async function runQuantize(job: QuantizeJob, signal: AbortSignal, post: Post): Promise<JobResult> {
  const v = cliValues(job.settings);
  const config = resolveConfig(v);
  const model = OnnxModel.load(job.input);
  let sources;
  try {
    sources = dataSources(v, model, config);
  } finally {
    model.close();
  }
  let saved = false;
  try {
    const report = await quantizeModel({
      input: job.input,
      output: job.output,
      config,
      calib: sources.calib,
      eval: sources.eval,
      evalNote: sources.evalNote,
      signal,
      threads: job.settings.threads,
      latencyRuns: job.latencyRuns,
      onProgress: (p) => {
        // saveModel runs synchronously right after this event: an abort seen later finds the file written.
        if (p.phase === 'save') saved = true;
        post({ type: 'progress', progress: p });
      },
    });
    return { kind: 'quantize', report };
  } catch (err) {
    // Cancelled after the save (during the comparison): the user asked for no result, so the
    // verified file goes too. Before the save the pipeline wrote nothing.
    if (signal.aborted && saved) fs.rmSync(job.output, { force: true });
    throw err;
  }
}

async function runAnalyze(job: AnalyzeJob, signal: AbortSignal, post: Post): Promise<JobResult> {
  if (job.writeRecipe && path.resolve(job.writeRecipe) === path.resolve(job.input)) {
    throw new Error(`${job.writeRecipe}: the recipe would overwrite the model`);
  }
  const v = cliValues(job.settings);
  const config = resolveConfig(v);
  config.mode = 'static'; // analysis assumes static settings; the suggestion picks the mode
  const model = OnnxModel.load(job.input);
  try {
    const sources = analysisSources(job, v, model, config, post);
    const sensitivity = sources ? job.sensitivity : 'none';
    const report = await analyzeModel({
      model,
      config,
      calib: sources?.calib,
      eval: sources?.eval,
      sensitivity,
      suggest: job.suggest && sensitivity !== 'none',
      targetSqnrDb: job.targetSqnrDb,
      workers: job.workers,
      threads: job.settings.threads,
      signal,
      onProgress: (event) => post({ type: 'analysis', event }),
    });
    if (!job.writeRecipe) return { kind: 'analyze', report };
    if (!report.suggestion) throw new Error(`${job.input}: no bit-width suggestion was made (${report.notes.find((n) => n.startsWith('no suggestion')) ?? 'see the report'})`);
    // No "$schema": in VS Code a document's own $schema wins over the extension's jsonValidation,
    // and the CLI's relative schema file is not next to the model.
    const { $schema: _schema, ...rest } = report.suggestion.recipe;
    const recipe = { ...rest, model: path.basename(job.input) };
    // Temporary file then rename: an editor watching the recipe never sees half of it.
    const tmp = `${job.writeRecipe}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(recipe, null, 2) + '\n');
    fs.renameSync(tmp, job.writeRecipe);
    return { kind: 'analyze', report, recipeWritten: job.writeRecipe };
  } finally {
    model.close();
  }
}

/** The analysis's data; undefined (weights only) when synthetic data cannot be made and the job allows that. */
function analysisSources(job: AnalyzeJob, v: CliValues, model: OnnxModel, config: ReturnType<typeof resolveConfig>, post: Post): ReturnType<typeof dataSources> | undefined {
  if (job.weightsOnly) return undefined;
  try {
    return dataSources(v, model, config);
  } catch (err) {
    if (!job.weightsOnlyFallback || job.settings.calib !== undefined || !(err instanceof SampleDataError)) throw err;
    post({ type: 'log', message: `analysis without activations: ${err.message}` });
    return undefined;
  }
}

async function runCompare(job: CompareJob, signal: AbortSignal, post: Post): Promise<JobResult> {
  if (path.resolve(job.floatModel) === path.resolve(job.quantModel)) throw new Error(`${job.quantModel}: this is the float model itself; pick its quantized version`);
  const v = cliValues(job.settings);
  const config = resolveConfig(v);
  const model = OnnxModel.load(job.floatModel);
  let sources;
  try {
    sources = dataSources(v, model, config);
  } finally {
    model.close();
  }
  const comparison = await compareModels(job.floatModel, job.quantModel, sources.eval, {
    signal,
    threads: job.settings.threads,
    latencyRuns: job.latencyRuns,
    onProgress: (p) => post({ type: 'progress', progress: { phase: 'evaluate', done: p.done, total: p.total, message: p.phase } }),
  });
  const warnings = comparison.synthetic ? ['EVALUATED ON SYNTHETIC DATA: the accuracy figures compare outputs on random inputs'] : [];
  return { kind: 'compare', report: { floatModel: job.floatModel, quantModel: job.quantModel, comparison, evalSource: `${sources.eval.description} (${sources.evalNote})`, warnings } };
}
