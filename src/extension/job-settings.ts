/**
 * How a job's settings come together, without `vscode` (plain Node tests run it):
 * onnx-quant defaults < target preset < the user's settings < the model's recipe < what the user
 * answered just now (the mode). A setting the recipe also sets is left out, so the recipe — made
 * for this model — wins over general preferences; the rest is resolved by the CLI's own code.
 */
import * as path from 'node:path';
import type { QuantConfig } from '../quant/config';
import type { JobSettings } from '../runtime/worker/job-protocol';

/** Settings the user set explicitly (undefined: not set, so the defaults or the preset apply). */
export interface ExplicitSettings {
  method?: QuantConfig['method'];
  perChannel?: boolean;
  target?: NonNullable<QuantConfig['target']>;
  samples?: number;
  activationQdq?: QuantConfig['activationQdq'];
}

/** The recipe that goes with a model: `<name>.recipe.json` next to `<name>.onnx`. */
export function recipePathFor(model: string): string {
  const dir = path.dirname(model);
  const base = path.basename(model).replace(/\.onnx$/i, '');
  return path.join(dir, `${base}.recipe.json`);
}

/** The default output: `<name>.quant.onnx` next to the input. */
export function defaultOutputPath(model: string): string {
  return path.join(path.dirname(model), `${path.basename(model).replace(/\.onnx$/i, '')}.quant.onnx`);
}

/** Why an output path cannot be used, or undefined when it can. */
export function outputPathProblem(output: string, input: string): string | undefined {
  if (!output.trim()) return 'enter a file name';
  if (!/\.onnx$/i.test(output)) return 'the output must be a .onnx file';
  if (path.resolve(output) === path.resolve(input)) return `that is the input model (${path.basename(input)}); it is never overwritten`;
  return undefined;
}

/** A settings path: absolute as is, relative to the workspace folder (or the model's folder). */
export function resolveSettingPath(value: string, base: string): string {
  return path.isAbsolute(value) ? value : path.resolve(base, value);
}

export function jobSettings(o: {
  user: ExplicitSettings;
  /** The recipe's settings (parsed), if a recipe applies. */
  recipe?: { file: string; settings: Partial<QuantConfig> };
  mode?: QuantConfig['mode'];
  calib?: string;
  eval?: string;
}): JobSettings {
  const s: JobSettings = {};
  const fromRecipe = o.recipe?.settings ?? {};
  const keys = ['method', 'perChannel', 'target', 'samples', 'activationQdq'] as const;
  for (const k of keys) {
    const v = o.user[k];
    if (v !== undefined && fromRecipe[k] === undefined) (s as Record<string, unknown>)[k] = v;
  }
  if (o.recipe) s.recipe = o.recipe.file;
  if (o.mode) s.mode = o.mode;
  if (o.calib) s.calib = o.calib;
  if (o.eval) s.eval = o.eval;
  return s;
}
