/**
 * The extension's settings (`contributes.configuration`, section `onnxQuant`), read fresh for each
 * command so changes apply without a reload. Only values the user set explicitly count as
 * preferences over a recipe or target preset (see job-settings.ts).
 */
import * as vscode from 'vscode';
import type { QuantConfig } from '../quant/config';
import type { ExplicitSettings } from './job-settings';

export interface Settings {
  defaultMode: QuantConfig['mode'];
  calibrationFolder: string;
  evalFolder: string;
  recipe: string;
  sensitivity: 'local' | 'global';
  targetSqnr: number;
  workers: number;
  latencyRuns: number;
  explicit: ExplicitSettings;
}

const MODES = ['static', 'dynamic', 'weight-only', 'fp16'] as const;
const METHODS = ['minmax', 'percentile', 'entropy', 'mse'] as const;
const TARGETS = ['cpu-x86', 'cpu-arm', 'gpu-tensorrt', 'npu'] as const;
const ACTIVATION_QDQ = ['auto', 'integer-kernels', 'every-layer', 'none'] as const;

function oneOf<T extends string>(v: unknown, values: readonly T[]): T | undefined {
  return typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T) : undefined;
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

/** The settings for a resource (workspace-folder settings apply to files inside that folder). */
export function readSettings(scope?: vscode.Uri): Settings {
  const c = vscode.workspace.getConfiguration('onnxQuant', scope);
  const explicitValue = (key: string): unknown => {
    const i = c.inspect(key);
    return i?.workspaceFolderValue ?? i?.workspaceValue ?? i?.globalValue;
  };
  const str = (key: string) => (typeof c.get(key) === 'string' ? (c.get(key) as string).trim() : '');
  const explicit: ExplicitSettings = {};
  const method = oneOf(explicitValue('method'), METHODS);
  if (method) explicit.method = method;
  const perChannel = explicitValue('perChannel');
  if (typeof perChannel === 'boolean') explicit.perChannel = perChannel;
  const target = oneOf(explicitValue('target'), TARGETS);
  if (target) explicit.target = target;
  const samples = positiveInt(explicitValue('samples'));
  if (samples) explicit.samples = samples;
  const activationQdq = oneOf(explicitValue('activationQdq'), ACTIVATION_QDQ);
  if (activationQdq) explicit.activationQdq = activationQdq;
  const targetSqnr = c.get('targetSqnr');
  const latencyRuns = c.get('latencyRuns');
  return {
    defaultMode: oneOf(c.get('defaultMode'), MODES) ?? 'static',
    calibrationFolder: str('calibrationFolder'),
    evalFolder: str('evalFolder'),
    recipe: str('recipe'),
    sensitivity: oneOf(c.get('sensitivity'), ['local', 'global'] as const) ?? 'local',
    targetSqnr: typeof targetSqnr === 'number' && Number.isFinite(targetSqnr) ? targetSqnr : 25,
    workers: positiveInt(c.get('workers')) ?? 0,
    latencyRuns: typeof latencyRuns === 'number' && Number.isInteger(latencyRuns) && latencyRuns >= 0 ? latencyRuns : 20,
    explicit,
  };
}

/** The folder relative settings paths start from: the model's workspace folder, else its own folder. */
export function settingsBase(model: vscode.Uri): string {
  return vscode.workspace.getWorkspaceFolder(model)?.uri.fsPath ?? vscode.Uri.joinPath(model, '..').fsPath;
}
