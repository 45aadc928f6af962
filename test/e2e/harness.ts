/**
 * End-to-end harness: the extension, packaged as a .vsix, installed into a real VS Code (the server
 * and web workbench of code-server, whose extension host is Node, so onnxruntime-node loads) and
 * driven through Debian's Chromium with playwright-core.
 *
 * `bash scripts/e2e-setup.sh` installs code-server and the browser and writes .e2e-cache/e2e-env.json;
 * `npm run package` makes the .vsix. `npm run test:e2e` does both and then runs test/e2e/*.e2e.ts.
 *
 * Every run is private: code-server binds to 127.0.0.1 on a free port, and its user data,
 * extensions, XDG folders, the workspace and the browser profile live in one temporary folder
 * (kept when a test failed, with code-server's log, for a look afterwards). code-server's whole
 * process group is killed on stop and on exit: its extension host would otherwise wait for a
 * reconnection for hours.
 *
 * Environment:
 *   E2E_CACHE_DIR            where scripts/e2e-setup.sh installed (default .e2e-cache)
 *   E2E_VSIX                 the .vsix to install (default <name>-<version>-linux-x64.vsix)
 *   E2E_UPDATE_SCREENSHOTS=1 also rewrite the README's screenshots in docs/screenshots/
 *   E2E_KEEP=1               keep the run folder even when every test passed
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { unzipSync } from 'fflate';
import { test } from 'node:test';
import { chromium, type BrowserContext, type Frame, type Locator, type Page } from 'playwright-core';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** Every screenshot of every run (gitignored). */
export const SCREENSHOTS_DIR = path.join(REPO_ROOT, 'test', 'e2e', 'screenshots');
/** The screenshots the README shows (committed; rewritten when missing or with E2E_UPDATE_SCREENSHOTS=1). */
export const DOCS_SCREENSHOTS_DIR = path.join(REPO_ROOT, 'docs', 'screenshots');

export const EXTENSION_ID = 'onnx-quant.onnx-quant';
export const MODEL_EDITOR_VIEW_TYPE = 'onnxQuant.modelEditor';

/** A real model from the devDependencies: PaddleOCR's mobile angle classifier (471 nodes, 250 Constant weights). */
export const CLS_MODEL = path.join(REPO_ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx');

export interface E2eEnv {
  /** The Node that code-server was built for. */
  node: string;
  codeServerEntry: string;
  codeServerVersion: string;
  vscodeVersion: string;
  chromium: string;
}

export function loadEnv(): E2eEnv {
  const cache = process.env.E2E_CACHE_DIR ?? path.join(REPO_ROOT, '.e2e-cache');
  const file = path.join(cache, 'e2e-env.json');
  let env: E2eEnv;
  try {
    env = JSON.parse(fs.readFileSync(file, 'utf8')) as E2eEnv;
  } catch {
    throw new Error(`${file} is missing: run \`bash scripts/e2e-setup.sh\` first`);
  }
  for (const p of [env.node, env.codeServerEntry, env.chromium]) {
    if (!fs.existsSync(p)) throw new Error(`${p} (from ${file}) is missing: run \`bash scripts/e2e-setup.sh\` again`);
  }
  return env;
}

/** The packaged extension to test. */
export function findVsix(): string {
  if (process.env.E2E_VSIX) return path.resolve(process.env.E2E_VSIX);
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  const file = path.join(REPO_ROOT, `${pkg.name}-${pkg.version}-linux-x64.vsix`);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run \`npm run package\` first`);
  return file;
}

/** Extracts the extension folder of a .vsix (its `extension/` entries) into `dir`. */
export function unpackVsix(vsix: string, dir: string): string {
  const files = unzipSync(fs.readFileSync(vsix), { filter: (f) => f.name.startsWith('extension/') && !f.name.endsWith('/') });
  for (const [name, data] of Object.entries(files)) {
    const target = path.join(dir, name.slice('extension/'.length));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, data);
  }
  return dir;
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: ${lastError.message.split('\n')[0]}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** User settings pinned for every run: no welcome pages, chat, telemetry, updates or tips; a fixed theme. */
export const USER_SETTINGS: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.colorTheme': 'Default Dark Modern',
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'workbench.editor.enablePreview': false,
  'workbench.editor.restoreViewState': false,
  'chat.disableAIFeatures': true,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'security.workspace.trust.enabled': false,
  'git.enabled': false,
  'git.openRepositoryInParentFolders': 'never',
  'files.hotExit': 'off',
  'window.zoomLevel': 0,
};

/** Folders of one run. */
export interface RunDirs {
  root: string;
  workspace: string;
  userData: string;
  extensions: string;
  xdg: string;
  browserProfile: string;
  log: string;
}

export function makeRunDirs(name: string, settings: Record<string, unknown> = {}): RunDirs {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `onnx-quant-e2e-${name}-`));
  const dirs: RunDirs = {
    root,
    workspace: path.join(root, 'models'),
    userData: path.join(root, 'user-data'),
    extensions: path.join(root, 'extensions'),
    xdg: path.join(root, 'xdg'),
    browserProfile: path.join(root, 'browser-profile'),
    log: path.join(root, 'code-server.log'),
  };
  for (const d of [dirs.workspace, dirs.extensions, dirs.browserProfile, path.join(dirs.userData, 'User')]) fs.mkdirSync(d, { recursive: true });
  for (const x of ['config', 'data', 'cache']) fs.mkdirSync(path.join(dirs.xdg, x), { recursive: true });
  fs.writeFileSync(path.join(dirs.userData, 'User', 'settings.json'), JSON.stringify({ ...USER_SETTINGS, ...settings }, null, 2));
  return dirs;
}

/** Process groups to kill however this process ends (a crash, an uncaught error, Ctrl+C). */
const liveGroups = new Set<number>();
let exitHooksInstalled = false;
function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
      process.exit(128 + (os.constants.signals[signal] ?? 1));
    });
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // the group is gone
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function codeServerEnv(dirs: RunDirs): NodeJS.ProcessEnv {
  return {
    ...process.env,
    XDG_CONFIG_HOME: path.join(dirs.xdg, 'config'),
    XDG_DATA_HOME: path.join(dirs.xdg, 'data'),
    XDG_CACHE_HOME: path.join(dirs.xdg, 'cache'),
    // No marketplace: it would retry DNS look-ups forever.
    EXTENSIONS_GALLERY: '{}',
    // Not inherited from a surrounding VS Code or test runner.
    VSCODE_IPC_HOOK_CLI: '',
    NODE_OPTIONS: '',
    NODE_TEST_CONTEXT: '',
  };
}

/** Installs a .vsix into the run's extensions folder with code-server's CLI (about 2 s). */
export function installExtension(env: E2eEnv, dirs: RunDirs, vsix: string): void {
  const r = spawnSync(
    env.node,
    [env.codeServerEntry, '--config', '/dev/null', '--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions, '--force', '--install-extension', vsix],
    { env: codeServerEnv(dirs), encoding: 'utf8', timeout: 120_000 },
  );
  if (r.status !== 0 || !/successfully installed/i.test(r.stdout + r.stderr)) {
    throw new Error(`installing ${vsix} failed (exit ${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  }
}

/**
 * Runs "$@" (code-server) and exits with it; a background reader kills the whole process group when
 * stdin, a pipe from this process, reaches its end.
 */
const WATCHDOG = `exec 3<&0
"$@" </dev/null 3<&- &
cs=$!
( while read -r _ <&3; do :; done; kill -TERM -- -$$ 2>/dev/null; sleep 3; kill -KILL -- -$$ 2>/dev/null ) </dev/null &
exec 3<&-
wait "$cs"`;

export class CodeServer {
  private exited = false;

  private constructor(
    readonly child: ChildProcess,
    readonly dirs: RunDirs,
    readonly url: string,
  ) {
    child.once('exit', () => {
      this.exited = true;
    });
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  /** The workbench URL for the run's workspace, with optional extra query parameters. */
  workbenchUrl(query: Record<string, string> = {}): string {
    const u = new URL(this.url);
    u.searchParams.set('folder', this.dirs.workspace);
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    return u.toString();
  }

  /** A `vscode-remote://` URI for a local path, as the workbench names server files. */
  remoteUri(file: string): string {
    return `vscode-remote://127.0.0.1:${this.port}${file}`;
  }

  /** Starts code-server on 127.0.0.1 and a free port; resolves when it serves HTTP (about 2 s). */
  static async start(env: E2eEnv, dirs: RunDirs): Promise<CodeServer> {
    installExitHooks();
    const logFd = fs.openSync(dirs.log, 'a');
    let logOpen = true;
    const writeLog = (chunk: Buffer) => {
      if (logOpen) fs.writeSync(logFd, chunk);
    };
    const args = [
      env.codeServerEntry,
      '--config', '/dev/null',
      '--auth', 'none',
      '--bind-addr', '127.0.0.1:0',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      '--ignore-last-opened',
      '--user-data-dir', dirs.userData,
      '--extensions-dir', dirs.extensions,
      dirs.workspace,
    ];
    // In its own process group, so that stop() reaches the extension host and every other child;
    // under a shell that also kills the group when this process dies without cleaning up (even by
    // SIGKILL): it waits for the end of its stdin, a pipe that only this process holds.
    const child = spawn('bash', ['-c', WATCHDOG, 'code-server', env.node, ...args], {
      env: codeServerEnv(dirs),
      cwd: dirs.root,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) throw new Error('code-server did not start');
    liveGroups.add(child.pid);
    let output = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`code-server did not report its address within 60 s:\n${output}`)), 60_000);
      const onData = (chunk: Buffer) => {
        writeLog(chunk);
        output += chunk.toString();
        const m = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+\/?)/.exec(output);
        if (m) done(undefined, m[1]!);
      };
      const onExit = (code: number | null) => done(new Error(`code-server exited (${code}) before listening:\n${output}`));
      function done(err: Error | undefined, value?: string) {
        clearTimeout(timer);
        child.off('exit', onExit);
        if (err) reject(err);
        else resolve(value!);
      }
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', onExit);
    }).catch((err: unknown) => {
      killGroup(child.pid!, 'SIGKILL');
      liveGroups.delete(child.pid!);
      throw err;
    });
    // Keep logging after startup (and keep the pipes drained) until every process has let go of them.
    child.stdout!.removeAllListeners('data').on('data', writeLog);
    child.stderr!.removeAllListeners('data').on('data', writeLog);
    child.once('close', () => {
      logOpen = false;
      fs.closeSync(logFd);
    });
    return new CodeServer(child, dirs, url.endsWith('/') ? url : `${url}/`);
  }

  /** Kills code-server's whole process group: SIGTERM, then SIGKILL after 3 s. */
  async stop(): Promise<void> {
    const pgid = this.child.pid;
    if (pgid === undefined || !liveGroups.has(pgid)) return;
    killGroup(pgid, 'SIGTERM');
    const deadline = Date.now() + 3000;
    while (groupAlive(pgid) && Date.now() < deadline) await sleep(100);
    if (groupAlive(pgid)) killGroup(pgid, 'SIGKILL');
    while (groupAlive(pgid) && Date.now() < deadline + 2000) await sleep(50);
    liveGroups.delete(pgid);
    if (!this.exited) await Promise.race([new Promise((resolve) => this.child.once('exit', resolve)), sleep(1000)]);
  }

  /** The last lines of code-server's log, for failure reports. */
  logTail(lines = 40): string {
    try {
      return fs.readFileSync(this.dirs.log, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

/** Chromium flags for a quiet, offline, headless run in a container. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export interface WorkbenchOptions {
  /** Query parameters for the workbench URL (e.g. the extension-host test payload). */
  query?: Record<string, string>;
  /** Called with the page before it loads (e.g. to expose functions). */
  beforeLoad?: (context: BrowserContext) => Promise<void>;
  viewport?: { width: number; height: number };
}

/** One browser window on the workbench. */
export class Workbench {
  /** Console errors of the workbench page, for failure reports. */
  readonly consoleErrors: string[] = [];

  private constructor(
    readonly context: BrowserContext,
    readonly page: Page,
    readonly server: CodeServer,
  ) {}

  static async open(env: E2eEnv, server: CodeServer, options: WorkbenchOptions = {}): Promise<Workbench> {
    const context = await chromium.launchPersistentContext(server.dirs.browserProfile, {
      executablePath: env.chromium,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: options.viewport ?? { width: 1280, height: 800 },
      deviceScaleFactor: 1,
      colorScheme: 'dark',
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    try {
      await options.beforeLoad?.(context);
      const page = context.pages()[0] ?? (await context.newPage());
      const wb = new Workbench(context, page, server);
      page.on('console', (m) => {
        if (m.type() === 'error') wb.consoleErrors.push(m.text());
      });
      await page.goto(server.workbenchUrl(options.query), { waitUntil: 'domcontentloaded', timeout: 60_000 });
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      return wb;
    } catch (err) {
      await context.close().catch(() => undefined);
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined);
  }

  /**
   * Waits until the workbench knows every extension's contributions (commands, custom editors) and
   * would open a file in the custom editor contributed for it.
   *
   * The `code/didLoadExtensions` mark alone does not ensure the latter: VS Code registers contributed
   * custom editors with its editor resolver only when its custom editor service is created, and that
   * service is a delayed singleton, created on the page's first idle callback after startup (or on
   * first use). A click on a .onnx file before then (a busy startup on a loaded machine) opens it in
   * the text editor ("binary or unsupported text encoding") for good. Idle callbacks run in the order
   * they were requested, so one requested after the mark runs after the one that creates the service.
   */
  async waitForExtensions(timeoutMs = 60_000): Promise<void> {
    await this.page.waitForFunction(() => performance.getEntriesByName('code/didLoadExtensions').length > 0, undefined, { timeout: timeoutMs, polling: 200 });
    await this.waitForIdle(timeoutMs);
  }

  /** Resolves once the page has been idle: every idle callback requested before this call has run. */
  async waitForIdle(timeoutMs = 60_000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.page.evaluate(() => new Promise<void>((resolve) => requestIdleCallback(() => resolve()))),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the workbench was not idle once within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs a command by its palette title (`Category: Title`), as a user would: F1, type, Enter. */
  async runCommand(title: string): Promise<void> {
    const input = this.page.locator('.quick-input-widget .quick-input-box input');
    for (let attempt = 1; ; attempt++) {
      await this.page.keyboard.press('F1');
      try {
        await input.waitFor({ state: 'visible', timeout: 4_000 });
        break;
      } catch (err) {
        if (attempt === 3) throw err;
        // F1 went into a webview that has just taken focus (a model editor opening) and did not
        // reach the workbench (seen once in CI under load): give the focus back, press again.
        console.log(`e2e: runCommand("${title}"): the palette did not open (attempt ${attempt}); refocusing the workbench`);
        await this.page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      }
    }
    await input.fill(`>${title}`);
    const row = this.page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first();
    await row.waitFor({ state: 'visible', timeout: 10_000 });
    await row.click();
  }

  /** The explorer row of a workspace file (top-level files only). */
  explorerRow(name: string): Locator {
    return this.page.locator(`.explorer-folders-view .monaco-list-row[aria-label="${name}"], .explorer-folders-view .monaco-list-row:has(.label-name:text-is("${name}"))`).first();
  }

  /** Makes sure the explorer is visible and shows `name`, with no hover over it. */
  async revealInExplorer(name: string): Promise<Locator> {
    const row = this.explorerRow(name);
    if (!(await row.isVisible().catch(() => false))) {
      await this.page.keyboard.press('Control+Shift+E');
      await row.waitFor({ state: 'visible', timeout: 15_000 });
    }
    await this.dismissHovers();
    return row;
  }

  /**
   * Moves the mouse off the workbench and waits for hovers to close: the mouse left resting on an
   * explorer row (after a right-click) brings up that file's path hover, which can cover the row
   * below and take the next click (seen in CI).
   */
  async dismissHovers(): Promise<void> {
    await this.page.mouse.move(0, 0);
    await this.page
      .locator('.context-view .hover-contents, .workbench-hover')
      .first()
      .waitFor({ state: 'hidden', timeout: 3_000 })
      .catch(() => undefined);
  }

  /** Opens a workspace file by clicking it in the explorer. */
  async openFromExplorer(name: string): Promise<void> {
    const row = await this.revealInExplorer(name);
    await row.click();
  }

  /**
   * Opens a workspace .onnx file in the model editor by clicking it in the explorer, and returns the
   * editor's webview frame once its header names the file.
   *
   * A click before VS Code has registered its custom editors opens the file in the text editor
   * ("not displayed … binary", a placeholder that stays for good) instead of the model editor;
   * waitForExtensions (Session.start) waits for that registration, so this should not happen. If it
   * does, it is detected here (no waiting out a fixed delay), logged, and the file is reopened with
   * "ONNX Quant: Inspect Model", as a user would.
   */
  async openModelEditor(name: string, timeoutMs = 120_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    await this.openFromExplorer(name);
    const textEditor = this.page.locator(
      '.editor-group-container.active .editor-instance .monaco-editor-pane-placeholder, .editor-group-container.active .editor-instance .monaco-editor',
    );
    const outcome = await waitFor(
      `${name} to open in the model editor or the text editor`,
      async () => {
        if (await this.findWebviewFrame('.model-header h1', name)) return 'model-editor' as const;
        if ((await this.activeTabLabel()) === name && (await textEditor.count()) > 0) return 'text-editor' as const;
        return undefined;
      },
      timeoutMs,
      300,
    );
    if (outcome === 'text-editor') {
      console.log(`e2e: ${name} opened in the text editor (the click came before VS Code registered its custom editors); reopening it with Inspect Model`);
      await this.runCommand('ONNX Quant: Inspect Model');
    }
    return this.webviewFrame('.model-header h1', name, Math.max(deadline - Date.now(), 30_000));
  }

  /** Right-clicks a file in the explorer; returns the labels of the context menu's actions. */
  async explorerContextMenu(name: string): Promise<string[]> {
    const row = await this.revealInExplorer(name);
    await row.click({ button: 'right' });
    const items = this.contextMenuItems();
    await items.first().waitFor({ state: 'visible', timeout: 10_000 });
    return (await items.allTextContents()).map((t) => t.trim()).filter((t) => t.length > 0);
  }

  /** The open context menu's action labels (the menu lives in a shadow root; Playwright's CSS pierces it). */
  contextMenuItems(): Locator {
    return this.page.locator('.context-view .monaco-menu .action-item:not(.disabled) .action-label:not(.codicon)');
  }

  /**
   * Clicks an action of the open context menu. VS Code's menus ignore a click that comes too soon
   * after they opened (so that the mouse-up of the right-click does not pick an item): click until
   * the menu closes.
   */
  async clickContextMenuItem(label: string): Promise<void> {
    const item = this.contextMenuItems().filter({ hasText: new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }).first();
    const menu = this.page.locator('.context-view .monaco-menu').first();
    for (let attempt = 1; ; attempt++) {
      await item.click({ timeout: 5000 });
      const closed = await menu.waitFor({ state: 'hidden', timeout: 1000 }).then(
        () => true,
        () => false,
      );
      if (closed) return;
      if (attempt === 5) throw new Error(`the context menu stayed open after clicking "${label}" ${attempt} times`);
    }
  }

  /** Picks an entry of the open quick pick (palette, "Open With…") by its label. */
  async pickQuickItem(label: string | RegExp): Promise<void> {
    const row = this.page.locator('.quick-input-widget .monaco-list-row', { hasText: label }).first();
    await row.waitFor({ state: 'visible', timeout: 10_000 });
    await row.click();
  }

  /** An action button of the active editor's title bar, by its label (tooltip). */
  editorTitleAction(label: string): Locator {
    return this.page.locator(`.editor-group-container.active .editor-actions .action-label[aria-label^="${label}"]`).first();
  }

  /** The label of the active editor tab. */
  async activeTabLabel(): Promise<string | undefined> {
    const tab = this.page.locator('.editor-group-container.active .tab.active .label-name').first();
    return (await tab.textContent({ timeout: 2000 }).catch(() => null))?.trim() ?? undefined;
  }

  async closeAllEditors(): Promise<void> {
    await this.runCommand('View: Close All Editors');
    await waitFor('editors to close', async () => (await this.page.locator('.tabs-container .tab').count()) === 0, 10_000);
  }

  /**
   * The inner frame of a webview (two iframes deep) whose document matches `selector` and, if
   * given, contains `text`. Hidden webviews keep their frames, so pass text that tells them apart.
   */
  async webviewFrame(selector: string, text?: string | RegExp, timeoutMs = 45_000): Promise<Frame> {
    return waitFor(`a webview with ${selector}${text ? ` containing ${String(text)}` : ''}`, () => this.findWebviewFrame(selector, text), timeoutMs, 300);
  }

  /** The frame webviewFrame waits for, if it is there now. */
  private async findWebviewFrame(selector: string, text?: string | RegExp): Promise<Frame | undefined> {
    for (const frame of this.page.frames()) {
      if (frame === this.page.mainFrame() || frame.isDetached()) continue;
      const el = frame.locator(selector).first();
      if ((await el.count().catch(() => 0)) === 0) continue;
      if (text === undefined) return frame;
      const content = (await el.textContent({ timeout: 1000 }).catch(() => null)) ?? '';
      if (typeof text === 'string' ? content.includes(text) : text.test(content)) return frame;
    }
    return undefined;
  }

  /** Notification toasts currently shown (their messages). */
  async notifications(): Promise<string[]> {
    return (await this.page.locator('.notification-toast .notification-list-item-message').allTextContents()).map((t) => t.trim());
  }

  /**
   * Saves a screenshot of the window as test/e2e/screenshots/<name>.png; with `docs`, also as
   * docs/screenshots/<name>.png when that is missing or E2E_UPDATE_SCREENSHOTS=1.
   */
  async screenshot(name: string, options: { docs?: boolean } = {}): Promise<string> {
    fs.mkdirSync(SCREENSHOTS_DIR, { recursive: true });
    const file = path.join(SCREENSHOTS_DIR, `${name}.png`);
    await this.page.mouse.move(1, 1); // no hover highlights or tooltips
    await this.page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
    if (options.docs) {
      const docs = path.join(DOCS_SCREENSHOTS_DIR, `${name}.png`);
      if (process.env.E2E_UPDATE_SCREENSHOTS === '1' || !fs.existsSync(docs)) {
        fs.mkdirSync(DOCS_SCREENSHOTS_DIR, { recursive: true });
        fs.copyFileSync(file, docs);
      }
    }
    return file;
  }
}

/**
 * A code-server with the packaged extension installed and one browser window on the workspace:
 * what most tests need. `stop()` always releases everything; the run folder is deleted unless a
 * test failed (call `markFailed()`) or E2E_KEEP=1.
 */
export class Session {
  private failed = false;

  private constructor(
    readonly name: string,
    readonly env: E2eEnv,
    readonly dirs: RunDirs,
    readonly server: CodeServer,
    readonly workbench: Workbench,
  ) {}

  /** `settings`: user settings over USER_SETTINGS for this run (a theme, say). */
  static async start(name: string, setupWorkspace: (workspace: string) => void, settings: Record<string, unknown> = {}): Promise<Session> {
    const env = loadEnv();
    const vsix = findVsix();
    fs.rmSync(path.join(SCREENSHOTS_DIR, `failure-${name}.png`), { force: true });
    const dirs = makeRunDirs(name, settings);
    setupWorkspace(dirs.workspace);
    installExtension(env, dirs, vsix);
    const server = await CodeServer.start(env, dirs);
    let workbench: Workbench;
    try {
      workbench = await Workbench.open(env, server);
      await workbench.waitForExtensions();
    } catch (err) {
      await server.stop();
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- code-server log (${dirs.log}) ---\n${server.logTail()}`);
    }
    return new Session(name, env, dirs, server, workbench);
  }

  markFailed(): void {
    this.failed = true;
  }

  async stop(): Promise<void> {
    try {
      if (this.failed) await this.workbench.screenshot(`failure-${this.name}`).catch(() => undefined);
      await this.workbench.close();
    } finally {
      await this.server.stop();
      if (this.failed || process.env.E2E_KEEP === '1') {
        console.log(`e2e: kept ${this.dirs.root} (code-server log: ${this.dirs.log})`);
      } else {
        fs.rmSync(this.dirs.root, { recursive: true, force: true });
      }
    }
  }
}

/** Copies the real model into the workspace under `name`. */
export function copyModel(workspace: string, name: string): string {
  const file = path.join(workspace, name);
  fs.copyFileSync(CLS_MODEL, file);
  return file;
}

/** Writes a corrupt model: the real one cut short, so a length field runs past the end of the file. */
export function writeCorruptModel(workspace: string, name: string): string {
  const file = path.join(workspace, name);
  fs.writeFileSync(file, fs.readFileSync(CLS_MODEL).subarray(0, 5000));
  return file;
}

/**
 * A test whose failure keeps the session's run folder and a screenshot of the window (see
 * Session.stop). `session` is read when the test runs: suites start their session in `before`.
 */
export function e2eTest(session: () => Session | undefined, name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    try {
      await fn();
    } catch (err) {
      session()?.markFailed();
      throw err;
    }
  });
}
