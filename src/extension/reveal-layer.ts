/**
 * "onnxQuant.revealLayer" (uri, layerName): opens the model in the model editor if needed, then
 * selects the layer in its layer table and scrolls to it. Other code (the Problems tab's finding
 * links, result panels) calls it with the model's URI (a Uri or its string form) and a node name.
 */
import * as vscode from 'vscode';
import { MAX_LAYER_NAME_LENGTH } from '../shared/protocol';
import { MODEL_EDITOR_VIEW_TYPE, revealLayerInEditors } from './model-editor';

export const REVEAL_LAYER_COMMAND = 'onnxQuant.revealLayer';

/** A URI from a command argument: a Uri, its string form (command links carry JSON), or its JSON object. */
export function uriArgument(value: unknown): vscode.Uri | undefined {
  if (value instanceof vscode.Uri) return value;
  if (typeof value === 'string' && value.length <= 8192) {
    try {
      return vscode.Uri.parse(value, true);
    } catch {
      return undefined;
    }
  }
  if (typeof value === 'object' && value !== null) {
    const { scheme, path, authority, query, fragment } = value as Record<string, unknown>;
    if (typeof scheme === 'string' && typeof path === 'string') {
      return vscode.Uri.from({ scheme, path, authority: typeof authority === 'string' ? authority : '', query: typeof query === 'string' ? query : '', fragment: typeof fragment === 'string' ? fragment : '' });
    }
  }
  return undefined;
}

/** The command URI that runs revealLayer, for links (diagnostic codes, markdown). */
export function revealLayerCommandUri(model: vscode.Uri, layerName: string): vscode.Uri {
  return vscode.Uri.parse(`command:${REVEAL_LAYER_COMMAND}?${encodeURIComponent(JSON.stringify([model.toString(), layerName]))}`);
}

/** Reveals a layer; false when the arguments are not a model URI and a layer name. */
export async function revealLayer(uriArg: unknown, nameArg: unknown): Promise<boolean> {
  const uri = uriArgument(uriArg);
  if (!uri || typeof nameArg !== 'string' || nameArg.length === 0 || nameArg.length > MAX_LAYER_NAME_LENGTH) return false;
  if (revealLayerInEditors(uri, nameArg)) return true;
  // Not open: open it; the new editor takes the request when its script starts.
  await vscode.commands.executeCommand('vscode.openWith', uri, MODEL_EDITOR_VIEW_TYPE);
  return revealLayerInEditors(uri, nameArg);
}

export function registerRevealLayerCommand(): vscode.Disposable {
  return vscode.commands.registerCommand(REVEAL_LAYER_COMMAND, (uri: unknown, layerName: unknown) => revealLayer(uri, layerName));
}
