/**
 * The model editor's layer table in VS Code's light, dark, high-contrast light and high-contrast
 * dark themes: its text must stay readable
 * (WCAG contrast ≥ 4.5 between each element's text colour and the background behind it), which holds
 * only if every colour comes from the theme's variables. One VS Code session per theme, with the
 * theme set in the user settings (by the theme's id in extensions/theme-defaults, not its label:
 * "Default High Contrast" is the one labelled "Dark High Contrast"); screenshots in
 * test/e2e/screenshots/.
 *
 * Each session is fresh, so each opens its model with the first click of the session, which can
 * race the extension's activation and land in the text editor, whatever the theme (an earlier
 * 120 s timeout of the dark high-contrast case was this race): Workbench.openModelEditor handles it.
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
        /** The first opaque background at or above an element. */
        const backgroundOf = (e) => {
          for (let x = e; x; x = x.parentElement) {
            const c = rgb(getComputedStyle(x).backgroundColor);
            if (c[3] > 0.5) return c;
          }
          return rgb(getComputedStyle(document.body).backgroundColor);
        };
        const page = backgroundOf(document.body);
        let worst = Infinity;
        let worstWhat = '';
        for (const e of Array.from(document.querySelectorAll('h1, h2, td, th, .lt-row, .lt-header > *, .lt-count, label'))) {
          if (!(e instanceof HTMLElement) || !e.offsetParent || !e.textContent?.trim()) continue;
          const fg = lum(rgb(getComputedStyle(e).color));
          const bg = lum(backgroundOf(e));
          const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
          if (ratio < worst) {
            worst = ratio;
            worstWhat = e.tagName.toLowerCase() + '.' + e.className + ' "' + e.textContent.trim().slice(0, 30) + '"';
          }
        }
        return { background: lum(page), worst, worstWhat };
})()`;

const THEMES = [
  { theme: 'Default Light Modern', tag: 'light', light: true },
  { theme: 'Default Dark Modern', tag: 'dark', light: false },
  { theme: 'Default High Contrast Light', tag: 'high-contrast-light', light: true },
  { theme: 'Default High Contrast', tag: 'high-contrast-dark', light: false },
] as const;

/** Worst text contrast in the editor page, and the page background's relative luminance. */
interface Readability {
  background: number;
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
      // A string, not a function: the test runner's transpiler would add helpers the page lacks.
      const r = (await frame.evaluate(READABILITY_JS)) as Readability;
      await wb.screenshot(`theme-${t.tag}`);
      assert.ok(t.light ? r.background > 0.5 : r.background < 0.1, `the editor follows the ${t.theme} background (luminance ${r.background.toFixed(3)})`);
      assert.ok(r.worst >= 4.5, `worst contrast ${r.worst.toFixed(2)} at ${r.worstWhat}`);
    });
  }
});
