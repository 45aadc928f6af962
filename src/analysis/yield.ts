/**
 * Cooperative yielding for long synchronous loops (weight statistics over hundreds of MB): the
 * extension host runs analysis on its own event loop, which must keep answering the UI.
 */
import { setImmediate as immediate } from 'node:timers/promises';

/**
 * Returns a function to await between units of work: it lets the event loop run when `budgetMs`
 * have passed since the last time, and otherwise resolves at once (a microtask, no timer).
 */
export function yieldEvery(budgetMs = 15): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < budgetMs) return;
    await immediate();
    last = performance.now();
  };
}
