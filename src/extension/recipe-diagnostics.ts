/**
 * Warnings in recipe files for layer names the model does not have: `nodes` keys and `exclude`
 * entries (that are not op types), underlined where they are in the JSON. The model is the
 * recipe's `model` field (relative to the recipe) or, for `<x>.recipe.json`, `<x>.onnx` next to it.
 * Schema errors are the JSON language service's job (the jsonValidation contribution).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { OnnxModel } from '../onnx/model';
import { modelScopes } from '../quant/graph/edit';
import { recipeNames, unknownNameMessage, unknownRecipeNames } from '../quant/recipe-names';
import { readSettings, settingsBase } from './settings';
import { resolveSettingPath } from './job-settings';

const DEBOUNCE_MS = 300;

interface ModelNames {
  mtimeMs: number;
  size: number;
  nodes: Set<string>;
  opTypes: Set<string>;
}

/** Node names and op types of every graph of a model, cached by file time and size. */
class ModelNameCache {
  private readonly cache = new Map<string, ModelNames>();

  get(file: string): ModelNames {
    const st = fs.statSync(file);
    const hit = this.cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
    const model = OnnxModel.load(file);
    try {
      const nodes = new Set<string>();
      const opTypes = new Set<string>();
      for (const scope of modelScopes(model.proto)) {
        for (const n of scope.graph.node) {
          if (n.name) nodes.add(n.name);
          opTypes.add(n.opType);
        }
      }
      const names = { mtimeMs: st.mtimeMs, size: st.size, nodes, opTypes };
      this.cache.set(file, names);
      return names;
    } finally {
      model.close();
    }
  }
}

function isRecipeDocument(doc: vscode.TextDocument): boolean {
  if (doc.uri.scheme !== 'file') return false;
  if (doc.uri.fsPath.endsWith('.recipe.json')) return true;
  const setting = readSettings(doc.uri).recipe;
  return setting !== '' && path.resolve(resolveSettingPath(setting, settingsBase(doc.uri))) === path.resolve(doc.uri.fsPath);
}

/** The model a recipe goes with, or undefined when none can be found. */
function modelFor(recipe: string, named: string | undefined): string | undefined {
  if (named) {
    const file = path.resolve(path.dirname(recipe), named);
    return fs.existsSync(file) ? file : undefined;
  }
  const m = /^(.*)\.recipe\.json$/.exec(recipe);
  const file = m ? `${m[1]}.onnx` : undefined;
  return file && fs.existsSync(file) ? file : undefined;
}

export function registerRecipeDiagnostics(log: vscode.LogOutputChannel): vscode.Disposable {
  const collection = vscode.languages.createDiagnosticCollection('onnx-quant-recipe');
  const cache = new ModelNameCache();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();

  const check = (doc: vscode.TextDocument) => {
    try {
      if (!isRecipeDocument(doc)) return;
      const names = recipeNames(doc.getText());
      const modelFile = names ? modelFor(doc.uri.fsPath, names.model) : undefined;
      if (!names || !modelFile) {
        collection.delete(doc.uri);
        return;
      }
      const model = cache.get(modelFile);
      const shown = path.basename(modelFile);
      collection.set(
        doc.uri,
        unknownRecipeNames(names, model.nodes, model.opTypes).map((r) => {
          const d = new vscode.Diagnostic(new vscode.Range(doc.positionAt(r.start), doc.positionAt(r.end)), unknownNameMessage(r, shown), vscode.DiagnosticSeverity.Warning);
          d.source = 'onnx-quant';
          d.code = 'unknown-layer';
          return d;
        }),
      );
    } catch (err) {
      // A model that cannot be read: no layer warnings, and the reason in the log.
      collection.delete(doc.uri);
      log.warn(`recipe ${doc.uri.fsPath}: cannot check layer names: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const schedule = (doc: vscode.TextDocument) => {
    const key = doc.uri.toString();
    clearTimeout(timers.get(key));
    timers.set(key, setTimeout(() => {
      timers.delete(key);
      check(doc);
    }, DEBOUNCE_MS));
  };

  vscode.workspace.textDocuments.forEach(check);
  return vscode.Disposable.from(
    collection,
    vscode.workspace.onDidOpenTextDocument(check),
    vscode.workspace.onDidChangeTextDocument((e) => schedule(e.document)),
    vscode.workspace.onDidCloseTextDocument((doc) => collection.delete(doc.uri)),
    { dispose: () => timers.forEach((t) => clearTimeout(t)) },
  );
}
