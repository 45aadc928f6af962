/**
 * What every job command needs to know about a model before it runs: its settings, the recipe that
 * goes with it (`<name>.recipe.json` next to it, else the `onnxQuant.recipe` setting) and the data
 * folders from the settings.
 */
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { QuantConfig } from '../quant/config';
import { parseRecipeText } from '../quant/recipe';
import { recipePathFor, resolveSettingPath } from './job-settings';
import { readSettings, settingsBase, type Settings } from './settings';

export interface ModelContext {
  model: vscode.Uri;
  settings: Settings;
  recipe?: { file: string; settings: Partial<QuantConfig> };
  /** Calibration folder from the settings (resolved), if set. */
  calib?: string;
  eval?: string;
}

/** Reads the settings and the model's recipe; a broken recipe throws a RecipeError naming the file. */
export function modelContext(model: vscode.Uri): ModelContext {
  const settings = readSettings(model);
  const base = settingsBase(model);
  const ctx: ModelContext = { model, settings };
  const next = recipePathFor(model.fsPath);
  const file = fs.existsSync(next) ? next : settings.recipe ? resolveSettingPath(settings.recipe, base) : undefined;
  if (file) ctx.recipe = { file, settings: parseRecipeText(fs.readFileSync(file, 'utf8'), file).settings };
  if (settings.calibrationFolder) ctx.calib = resolveSettingPath(settings.calibrationFolder, base);
  if (settings.evalFolder) ctx.eval = resolveSettingPath(settings.evalFolder, base);
  return ctx;
}
