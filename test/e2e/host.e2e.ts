/**
 * Runs test/e2e/host/index.ts inside the extension host of a real VS Code, with the packaged
 * extension (the .vsix, unpacked) as the extension under development: VS Code's own
 * `extensionDevelopmentPath` / `extensionTestsPath` mechanism, driven through the workbench URL's
 * `payload`. The page reports the outcome through `window.codeAutomationExit(code)` and the extension
 * host's console through `window.codeAutomationLog(type, args)`.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import * as esbuild from 'esbuild';
import { CodeServer, REPO_ROOT, Workbench, copyModel, findVsix, loadEnv, makeRunDirs, unpackVsix, waitFor, writeCorruptModel } from './harness';

let server: CodeServer | undefined;
let workbench: Workbench | undefined;
let failed = false;

after(async () => {
  await workbench?.close();
  await server?.stop();
  if (server && !failed && process.env.E2E_KEEP !== '1') {
    const { rmSync } = await import('node:fs');
    rmSync(server.dirs.root, { recursive: true, force: true });
  } else if (server) {
    console.log(`e2e: kept ${server.dirs.root} (code-server log: ${server.dirs.log})`);
  }
});

test('extension-host tests pass against the packaged extension', { timeout: 180_000 }, async () => {
  try {
    const env = loadEnv();
    const dirs = makeRunDirs('host');
    copyModel(dirs.workspace, 'cls.onnx');
    writeCorruptModel(dirs.workspace, 'corrupt.onnx');
    const extensionDir = unpackVsix(findVsix(), path.join(dirs.root, 'extension-under-test'));
    const testsFile = path.join(dirs.root, 'host-tests', 'index.js');
    await esbuild.build({
      absWorkingDir: REPO_ROOT,
      entryPoints: ['test/e2e/host/index.ts'],
      outfile: testsFile,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      external: ['vscode'],
      logLevel: 'error',
    });

    server = await CodeServer.start(env, dirs);
    const payload = [
      ['extensionDevelopmentPath', server.remoteUri(extensionDir)],
      ['extensionTestsPath', server.remoteUri(testsFile)],
    ];
    const lines: string[] = [];
    let exitCode: number | undefined;
    const started = Date.now();
    workbench = await Workbench.open(env, server, {
      query: { payload: JSON.stringify(payload) },
      beforeLoad: async (context) => {
        await context.exposeFunction('codeAutomationLog', (type: unknown, args: unknown) => {
          const text = (Array.isArray(args) ? args : [args]).map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
          lines.push(type === 'error' ? `[error] ${text}` : text);
        });
        await context.exposeFunction('codeAutomationExit', (code: unknown) => {
          exitCode = typeof code === 'number' ? code : 1;
        });
      },
    });
    await waitFor('the extension-host tests to finish', () => exitCode !== undefined, 120_000, 200);
    const report = lines.filter((l) => /^(\[error\] )?(ok|not ok|1\.\.)/.test(l) || l.startsWith('[error]'));
    console.log(`extension-host tests (${Date.now() - started} ms from page load):\n  ${report.join('\n  ')}`);
    assert.equal(exitCode, 0, `the extension-host tests failed:\n${lines.join('\n')}\n--- code-server log ---\n${server.logTail()}`);
    assert.ok(lines.some((l) => l.startsWith('1..')), `no test report arrived:\n${lines.join('\n')}`);
  } catch (err) {
    failed = true;
    throw err;
  }
});
