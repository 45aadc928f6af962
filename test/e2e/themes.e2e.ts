/**
 * The model editor's layer table in VS Code's light, dark, high-contrast light and high-contrast
 * dark themes: its text must stay readable
 * (WCAG contrast ≥ 4.5 between each element's text colour and the background behind it), which holds
 * only if every colour comes from the theme's variables; and the section headers (vscode-elements'
 * collapsibles, whose own fallbacks are dark-theme colours) must follow the theme's background. One
 * VS Code session per theme, with the theme set in the user settings (by the theme's id in
 * extensions/theme-defaults, not its label: "Default High Contrast" is the one labelled "Dark High
 * Contrast"); screenshots in test/e2e/screenshots/.
 *
 * Each session is fresh and opens its model with its first click in the explorer. An earlier 120 s
 * timeout of the dark high-contrast case was not the theme: that click had come before VS Code
 * registered its custom editors and opened the file in the text editor, which can happen in any
 * theme on a loaded machine. Session.start now waits for that registration (see
 * Workbench.waitForExtensions), and Workbench.openModelEditor recovers, logging it, if it happens anyway.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, describe } from 'node:test';
import { CLS_MODEL, Session, copyModel, e2eTest } from './harness';

const MODEL = path.basename(CLS_MODEL);

/** Computes a Readability in the editor's page. */
const READABILITY_JS = String.raw`(() => {
        const rgb = (c) => {
          const m = /rgba?\(([^)]+)\)/.exec(c);
          const v = m ? m[1].split(',').map((x) => Number(x.trim())) : [0, 0, 0, 0];
          return [v[0] ?? 0, v[1] ?? 0, v[2] ?? 0, v[3] ?? 1];
        };
        const lum = ([r, g, b]) => {
          const ch = (x) => {
            const s = x / 255;
            return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
          };
          return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b);
        };
        /** An element's parent, crossing out of shadow roots to their hosts. */
        const parentOf = (e) => e.parentElement ?? (e.parentNode instanceof ShadowRoot ? e.parentNode.host : null);
        /** The first opaque background at or above an element. */
        const backgroundOf = (e) => {
          for (let x = e; x; x = parentOf(x)) {
            const c = rgb(getComputedStyle(x).backgroundColor);
            if (c[3] > 0.5) return c;
          }
          return rgb(getComputedStyle(document.body).backgroundColor);
        };
        const page = backgroundOf(document.body);
        let worst = Infinity;
        let worstWhat = '';
        // Section headers live in the collapsibles' shadow roots.
        const collapsibles = Array.from(document.querySelectorAll('vscode-collapsible'));
        const headers = collapsibles.map((c) => c.shadowRoot?.querySelector('.collapsible-header')).filter((h) => h);
        const titles = collapsibles.map((c) => c.shadowRoot?.querySelector('.title')).filter((h) => h);
        const headerBackgrounds = headers.map((h) => lum(backgroundOf(h)));
        for (const e of [...Array.from(document.querySelectorAll('h1, h2, td, th, .lt-row, .lt-header > *, .lt-count, label')), ...titles]) {
          if (!(e instanceof HTMLElement) || !e.offsetParent || !e.textContent?.trim()) continue;
          const fg = lum(rgb(getComputedStyle(e).color));
          const bg = lum(backgroundOf(e));
          const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
          if (ratio < worst) {
            worst = ratio;
            worstWhat = e.tagName.toLowerCase() + '.' + e.className + ' "' + e.textContent.trim().slice(0, 30) + '"';
          }
        }
        return { background: lum(page), headerBackgrounds, worst, worstWhat };
})()`;

const THEMES = [
  { theme: 'Default Light Modern', tag: 'light', light: true },
  { theme: 'Default Dark Modern', tag: 'dark', light: false },
  { theme: 'Default High Contrast Light', tag: 'high-contrast-light', light: true },
  { theme: 'Default High Contrast', tag: 'high-contrast-dark', light: false },
] as const;

/** Worst text contrast in the editor page, and the relative luminance of its backgrounds. */
interface Readability {
  background: number;
  /** Of each section header. */
  headerBackgrounds: number[];
  worst: number;
  worstWhat: string;
}

describe('model editor in light, dark and high-contrast themes', { timeout: 600_000 }, () => {
  let session: Session | undefined;
  after(async () => {
    await session?.stop();
  });

  for (const t of THEMES) {
    e2eTest(() => session, `${t.theme}: the layer table's text is readable (contrast ≥ 4.5)`, async () => {
      await session?.stop();
      session = await Session.start(`theme-${t.tag}`, (ws) => copyModel(ws, MODEL), { 'workbench.colorTheme': t.theme });
      const wb = session.workbench;
      const frame = await wb.openModelEditor(MODEL, 120_000);
      await frame.locator('section.layers[aria-busy="false"]').waitFor({ timeout: 120_000 });
      await frame.locator('.lt-row').first().click();
      // The selected row's details (they come from the host) are part of what must be readable.
      await frame.locator('.layer-details .ld-name').waitFor({ timeout: 30_000 });
      // A string, not a function: the test runner's transpiler would add helpers the page lacks.
      const r = (await frame.evaluate(READABILITY_JS)) as Readability;
      await wb.screenshot(`theme-${t.tag}`);
      const follows = (l: number) => (t.light ? l > 0.5 : l < 0.1);
      assert.ok(follows(r.background), `the editor follows the ${t.theme} background (luminance ${r.background.toFixed(3)})`);
      assert.ok(r.headerBackgrounds.length >= 3, `section headers found: ${r.headerBackgrounds.length}`);
      assert.ok(r.headerBackgrounds.every(follows), `the section headers follow the ${t.theme} background (luminances ${r.headerBackgrounds.map((l) => l.toFixed(3)).join(', ')})`);
      assert.ok(r.worst >= 4.5, `worst contrast ${r.worst.toFixed(2)} at ${r.worstWhat}`);
    });
  }
});
