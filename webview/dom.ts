/**
 * DOM building for the webview. Text goes in with textContent and attributes with setAttribute,
 * never through innerHTML: everything shown comes from a model file and is untrusted.
 */

export type Child = Node | string | number | null | undefined | false;

export interface ElementOptions {
  className?: string;
  /** Text content (set with textContent). */
  text?: string | number;
  /** Attributes, set with setAttribute; booleans add (true) or omit (false) the attribute. */
  attrs?: Record<string, string | number | boolean | undefined>;
}

/** `el('td', { className: 'num', text: 3 })`, `el('ul', {}, items)`: an element with safe content. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, options: ElementOptions = {}, children: readonly Child[] = []): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.attrs) {
    for (const [name, value] of Object.entries(options.attrs)) {
      if (value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  if (options.text !== undefined) node.textContent = String(options.text);
  append(node, children);
  return node;
}

/** Appends children; strings and numbers become text nodes. */
export function append(parent: Node, children: readonly Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

/** Replaces all children of `parent`. */
export function replaceChildren(parent: Element, children: readonly Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}
