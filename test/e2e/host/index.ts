/**
 * Extension-host tests: run inside VS Code's Node extension host, against the `vscode` API, the
 * way @vscode/test-electron runs them (test/e2e/host.e2e.ts bundles this file with esbuild and
 * points the workbench's `extensionTestsPath` at it). VS Code calls `run()`; a rejection fails the
 * run. Output goes to the console, which the workbench forwards to the harness.
 *
 * Expects a workspace holding `cls.onnx` (a valid model) and `corrupt.onnx` (a truncated one).
 */
import * as assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as vscode from 'vscode';

const EXTENSION_ID = 'onnx-quant.onnx-quant';
const VIEW_TYPE = 'onnxQuant.modelEditor';
const INSPECT_COMMAND = 'onnxQuant.inspectModel';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function workspaceFile(name: string): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'a workspace folder is open');
  return vscode.Uri.joinPath(folder.uri, name);
}

/** The active tab's custom editor input, once it shows `uri`. */
function activeCustomTab(uri: vscode.Uri): vscode.TabInputCustom | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  return input instanceof vscode.TabInputCustom && input.uri.toString() === uri.toString() ? input : undefined;
}

const cases: [string, () => Promise<void>][] = [
  [
    'the extension is installed and declares the model editor and the command',
    async () => {
      const ext = vscode.extensions.getExtension(EXTENSION_ID);
      assert.ok(ext, `${EXTENSION_ID} is installed`);
      const contributes = (ext.packageJSON as { contributes?: { customEditors?: { viewType: string }[]; commands?: { command: string }[] } }).contributes;
      assert.deepEqual(contributes?.customEditors?.map((e) => e.viewType), [VIEW_TYPE]);
      assert.ok(contributes?.commands?.some((c) => c.command === INSPECT_COMMAND));
    },
  ],
  [
    'vscode.openWith opens a model in the model editor and activates the extension',
    async () => {
      const uri = workspaceFile('cls.onnx');
      await vscode.commands.executeCommand('vscode.openWith', uri, VIEW_TYPE);
      const input = await until('the model editor tab', () => activeCustomTab(uri));
      assert.equal(input.viewType, VIEW_TYPE);
      const ext = vscode.extensions.getExtension(EXTENSION_ID);
      await until('the extension to activate', () => ext?.isActive);
    },
  ],
  [
    'the extension registers its commands',
    async () => {
      const commands = await vscode.commands.getCommands(true);
      assert.ok(commands.includes(INSPECT_COMMAND), `${INSPECT_COMMAND} is registered`);
    },
  ],
  [
    'Inspect Model opens the file it is given, a corrupt one too, without failing',
    async () => {
      const uri = workspaceFile('corrupt.onnx');
      await vscode.commands.executeCommand(INSPECT_COMMAND, uri);
      const input = await until('the corrupt model in the model editor', () => activeCustomTab(uri));
      assert.equal(input.viewType, VIEW_TYPE);
    },
  ],
  [
    "the .vsix's onnxruntime-node loads in the extension host and runs the model",
    async () => {
      const ext = vscode.extensions.getExtension(EXTENSION_ID);
      assert.ok(ext);
      // Resolved from the installed extension's own node_modules, as the extension's bundle does.
      const ort = createRequire(path.join(ext.extensionPath, 'package.json'))('onnxruntime-node') as typeof import('onnxruntime-node');
      const session = await ort.InferenceSession.create(workspaceFile('cls.onnx').fsPath);
      try {
        const x = new ort.Tensor('float32', new Float32Array(3 * 48 * 192).fill(0.5), [1, 3, 48, 192]);
        const out = await session.run({ [session.inputNames[0]!]: x });
        const probs = out[session.outputNames[0]!]!;
        assert.deepEqual(probs.dims, [1, 2]);
        const data = probs.data as Float32Array;
        assert.ok(Math.abs(data[0]! + data[1]! - 1) < 1e-4, `softmax sums to 1: ${Array.from(data).join(', ')}`);
      } finally {
        await session.release();
      }
    },
  ],
  [
    'the extension host keeps working: the good model opens again',
    async () => {
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      const uri = workspaceFile('cls.onnx');
      await vscode.commands.executeCommand(INSPECT_COMMAND, uri);
      await until('the model editor tab', () => activeCustomTab(uri));
    },
  ],
];

export async function run(): Promise<void> {
  let failed = 0;
  let n = 0;
  for (const [name, fn] of cases) {
    n++;
    const started = Date.now();
    try {
      await fn();
      console.log(`ok ${n} - ${name} (${Date.now() - started} ms)`);
    } catch (err) {
      failed++;
      console.error(`not ok ${n} - ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
  console.log(`1..${n}`);
  await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  if (failed) throw new Error(`${failed} of ${n} extension-host tests failed`);
}
