/**
 * Which layer names a recipe mentions, and where in its text: the keys of `nodes` and the entries
 * of `exclude`, with their offsets, so an editor can underline names the model does not have.
 * A small JSON scanner of its own, because JSON.parse keeps no positions. Plain data in, plain
 * data out: no `vscode`, no file access.
 */

export interface RecipeNameRef {
  name: string;
  where: 'nodes' | 'exclude';
  /** Offsets of the string token in the text, quotes included. */
  start: number;
  end: number;
}

export interface RecipeNames {
  refs: RecipeNameRef[];
  /** The recipe's `model` field, if it is a string. */
  model?: string;
}

class Scanner {
  i = 0;
  constructor(private readonly s: string) {}

  ws(): void {
    while (this.i < this.s.length && ' \t\n\r'.includes(this.s[this.i]!)) this.i++;
  }

  peek(): string | undefined {
    this.ws();
    return this.s[this.i];
  }

  expect(c: string): void {
    if (this.peek() !== c) throw new SyntaxError(`expected ${c} at ${this.i}`);
    this.i++;
  }

  /** A string token: its value and its offsets (quotes included). */
  string(): { value: string; start: number; end: number } {
    this.ws();
    const start = this.i;
    if (this.s[this.i] !== '"') throw new SyntaxError(`expected a string at ${this.i}`);
    this.i++;
    while (this.i < this.s.length && this.s[this.i] !== '"') this.i += this.s[this.i] === '\\' ? 2 : 1;
    if (this.i >= this.s.length) throw new SyntaxError('unterminated string');
    this.i++;
    return { value: JSON.parse(this.s.slice(start, this.i)) as string, start, end: this.i };
  }

  /** Skips any JSON value. */
  value(): void {
    const c = this.peek();
    if (c === '"') this.string();
    else if (c === '{') this.object(() => this.value());
    else if (c === '[') this.array(() => this.value());
    else {
      const m = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(this.s.slice(this.i, this.i + 64));
      if (!m) throw new SyntaxError(`unexpected character at ${this.i}`);
      this.i += m[0].length;
    }
  }

  /** An object; `onMember` reads each member's value (the key already consumed). */
  object(onValue: (key: { value: string; start: number; end: number }) => void): void {
    this.expect('{');
    if (this.peek() === '}') {
      this.i++;
      return;
    }
    for (;;) {
      const key = this.string();
      this.expect(':');
      onValue(key);
      const c = this.peek();
      this.i++;
      if (c === '}') return;
      if (c !== ',') throw new SyntaxError(`expected , or } at ${this.i - 1}`);
    }
  }

  array(onItem: () => void): void {
    this.expect('[');
    if (this.peek() === ']') {
      this.i++;
      return;
    }
    for (;;) {
      onItem();
      const c = this.peek();
      this.i++;
      if (c === ']') return;
      if (c !== ',') throw new SyntaxError(`expected , or ] at ${this.i - 1}`);
    }
  }
}

/** The names a recipe's text mentions; undefined when the text is not a JSON object. */
export function recipeNames(text: string): RecipeNames | undefined {
  const sc = new Scanner(text);
  const out: RecipeNames = { refs: [] };
  try {
    sc.object((key) => {
      if (key.value === 'nodes' && sc.peek() === '{') {
        sc.object((node) => {
          out.refs.push({ name: node.value, where: 'nodes', start: node.start, end: node.end });
          sc.value();
        });
      } else if (key.value === 'exclude' && sc.peek() === '[') {
        sc.array(() => {
          if (sc.peek() === '"') {
            const t = sc.string();
            out.refs.push({ name: t.value, where: 'exclude', start: t.start, end: t.end });
          } else sc.value();
        });
      } else if (key.value === 'model' && sc.peek() === '"') {
        out.model = sc.string().value;
      } else sc.value();
    });
  } catch {
    return undefined;
  }
  return out;
}

/**
 * The references to layers the model does not have: `nodes` keys that are no node name, and
 * `exclude` entries that are neither a node name nor an op type of the model.
 */
export function unknownRecipeNames(names: RecipeNames, nodeNames: ReadonlySet<string>, opTypes: ReadonlySet<string>): RecipeNameRef[] {
  return names.refs.filter((r) => !nodeNames.has(r.name) && !(r.where === 'exclude' && opTypes.has(r.name)));
}

/** The message for one unknown name; names the layer and the model file. */
export function unknownNameMessage(r: RecipeNameRef, modelFile: string): string {
  return r.where === 'nodes'
    ? `no node named "${r.name}" in ${modelFile}: this override applies to nothing`
    : `"${r.name}" is neither a node name nor an op type of ${modelFile}: excluding it keeps nothing in float`;
}
