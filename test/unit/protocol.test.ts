import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_LAYER_NAME_LENGTH, MAX_REQUEST_ID, parseWebviewMessage, WebviewToHost } from '../../src/shared/protocol';

describe('parseWebviewMessage: valid messages', () => {
  test('ready', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'ready' }), { type: 'ready' });
  });

  test('getSummary request', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'request', requestId: 1, method: 'getSummary' }), {
      type: 'request',
      requestId: 1,
      method: 'getSummary',
    });
  });

  test('request ids at both ends of the range', () => {
    assert.equal((parseWebviewMessage({ type: 'request', requestId: 0, method: 'getSummary' }) as { requestId: number }).requestId, 0);
    assert.equal(
      (parseWebviewMessage({ type: 'request', requestId: MAX_REQUEST_ID, method: 'getSummary' }) as { requestId: number }).requestId,
      MAX_REQUEST_ID,
    );
  });

  test('an explicit undefined params is the same as none', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'request', requestId: 3, method: 'getSummary', params: undefined }), {
      type: 'request',
      requestId: 3,
      method: 'getSummary',
    });
  });

  test('objects with a null prototype are accepted', () => {
    const m = Object.assign(Object.create(null) as object, { type: 'ready' });
    assert.deepEqual(parseWebviewMessage(m), { type: 'ready' });
  });

  test('the result is a fresh object, not the input', () => {
    const input = { type: 'request', requestId: 5, method: 'getSummary' };
    const out = parseWebviewMessage(input);
    assert.notEqual(out, input);
    input.method = 'changed';
    assert.equal((out as { method: string }).method, 'getSummary');
  });
});

describe('parseWebviewMessage: rejects malformed messages', () => {
  const rejected: [string, unknown][] = [
    ['undefined', undefined],
    ['null', null],
    ['a string', 'ready'],
    ['a number', 1],
    ['a boolean', true],
    ['an array', [{ type: 'ready' }]],
    ['an array with a type key', Object.assign([], { type: 'ready' })],
    ['a function', () => ({ type: 'ready' })],
    ['an empty object', {}],
    ['a missing type', { requestId: 1, method: 'getSummary' }],
    ['a numeric type', { type: 1 }],
    ['an unknown type', { type: 'summary' }],
    ['a type with different case', { type: 'Ready' }],
    ['a type with padding', { type: ' ready' }],
    ['ready with an extra field', { type: 'ready', extra: true }],
    ['a request without requestId', { type: 'request', method: 'getSummary' }],
    ['a request without method', { type: 'request', requestId: 1 }],
    ['a string requestId', { type: 'request', requestId: '1', method: 'getSummary' }],
    ['a negative requestId', { type: 'request', requestId: -1, method: 'getSummary' }],
    ['a fractional requestId', { type: 'request', requestId: 1.5, method: 'getSummary' }],
    ['a NaN requestId', { type: 'request', requestId: Number.NaN, method: 'getSummary' }],
    ['an infinite requestId', { type: 'request', requestId: Number.POSITIVE_INFINITY, method: 'getSummary' }],
    ['a requestId over the range', { type: 'request', requestId: MAX_REQUEST_ID + 1, method: 'getSummary' }],
    ['an unsafe-integer requestId', { type: 'request', requestId: 2 ** 60, method: 'getSummary' }],
    ['a bigint requestId', { type: 'request', requestId: 1n, method: 'getSummary' }],
    ['a boxed-number requestId', { type: 'request', requestId: new Number(1), method: 'getSummary' }],
    ['an unknown method', { type: 'request', requestId: 1, method: 'deleteFile' }],
    ['a numeric method', { type: 'request', requestId: 1, method: 7 }],
    ['an Object.prototype method name', { type: 'request', requestId: 1, method: 'toString' }],
    ['a __proto__ method name', { type: 'request', requestId: 1, method: '__proto__' }],
    ['a constructor method name', { type: 'request', requestId: 1, method: 'constructor' }],
    ['params for a method that takes none', { type: 'request', requestId: 1, method: 'getSummary', params: {} }],
    ['null params for a method that takes none', { type: 'request', requestId: 1, method: 'getSummary', params: null }],
    ['a request with an extra field', { type: 'request', requestId: 1, method: 'getSummary', result: {} }],
    ['a boxed-string type', { type: new String('ready') }],
    ['a Date', new Date()],
    ['a Map', new Map([['type', 'ready']])],
    ['a class instance', new (class Msg { type = 'ready'; })()],
  ];
  for (const [name, value] of rejected) {
    test(name, () => {
      assert.equal(parseWebviewMessage(value), undefined);
    });
  }
});

describe('parseWebviewMessage: hostile input', () => {
  test('huge strings are rejected without being used', () => {
    const huge = 'x'.repeat(10_000_000);
    assert.equal(parseWebviewMessage({ type: huge }), undefined);
    assert.equal(parseWebviewMessage({ type: 'request', requestId: 1, method: huge }), undefined);
    assert.equal(parseWebviewMessage({ type: 'request', requestId: 1, method: 'getSummary' + huge }), undefined);
    assert.equal(parseWebviewMessage(huge), undefined);
  });

  test('many keys are rejected', () => {
    const m: Record<string, unknown> = { type: 'ready' };
    for (let i = 0; i < 100_000; i++) m[`k${i}`] = i;
    assert.equal(parseWebviewMessage(m), undefined);
  });

  test('an own __proto__ key (as JSON.parse makes) is rejected', () => {
    const m: unknown = JSON.parse('{"type":"ready","__proto__":{"polluted":true}}');
    assert.equal(parseWebviewMessage(m), undefined);
    const r: unknown = JSON.parse('{"type":"request","requestId":1,"method":"getSummary","__proto__":{"polluted":true}}');
    assert.equal(parseWebviewMessage(r), undefined);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('constructor and prototype keys are rejected', () => {
    assert.equal(parseWebviewMessage({ type: 'ready', constructor: { prototype: { polluted: true } } }), undefined);
    assert.equal(parseWebviewMessage({ type: 'ready', prototype: {} }), undefined);
  });

  test('fields inherited from a prototype are not read', () => {
    const viaProto = Object.create({ type: 'ready' }) as object;
    assert.equal(parseWebviewMessage(viaProto), undefined);
    const proto = { requestId: 1, method: 'getSummary' };
    const m = Object.assign(Object.create(proto) as object, { type: 'request' });
    assert.equal(parseWebviewMessage(m), undefined);
  });

  test('a polluted Object.prototype does not make a message valid', () => {
    const objectProto = Object.prototype as Record<string, unknown>;
    objectProto.requestId = 1;
    objectProto.method = 'getSummary';
    try {
      assert.equal(parseWebviewMessage({ type: 'request' }), undefined);
    } finally {
      delete objectProto.requestId;
      delete objectProto.method;
    }
  });

  test('getters are never run', () => {
    let ran = false;
    const m = {
      get type(): string {
        ran = true;
        return 'ready';
      },
    };
    assert.equal(parseWebviewMessage(m), undefined);
    assert.equal(ran, false);
  });

  test('throwing getters do not throw out of the validator', () => {
    const m = Object.defineProperty({ type: 'ready' }, 'requestId', {
      enumerable: true,
      get() {
        throw new Error('boom');
      },
    });
    assert.doesNotThrow(() => parseWebviewMessage(m));
    assert.equal(parseWebviewMessage(m), undefined);
  });

  test('proxies that throw are contained or rejected', () => {
    const trap = new Proxy(
      {},
      {
        getPrototypeOf() {
          throw new Error('trap');
        },
      },
    );
    // A structured-cloned message can never be a proxy; if one shows up, failing loudly is fine too.
    try {
      assert.equal(parseWebviewMessage(trap), undefined);
    } catch (err) {
      assert.equal((err as Error).message, 'trap');
    }
  });

  test('symbol keys are rejected', () => {
    assert.equal(parseWebviewMessage({ type: 'ready', [Symbol('x')]: 1 }), undefined);
  });

  test('non-enumerable extra fields are rejected', () => {
    const m = Object.defineProperty({ type: 'ready' }, 'hidden', { value: 1, enumerable: false });
    assert.equal(parseWebviewMessage(m), undefined);
  });

  test('deeply nested junk in an unexpected field is rejected without being walked', () => {
    let deep: unknown = {};
    for (let i = 0; i < 100_000; i++) deep = { d: deep };
    assert.equal(parseWebviewMessage({ type: 'request', requestId: 1, method: 'getSummary', params: deep }), undefined);
  });
});

describe('protocol types', () => {
  test('the parsed union narrows on type and method', () => {
    const m: WebviewToHost | undefined = parseWebviewMessage({ type: 'request', requestId: 9, method: 'getSummary' });
    assert.ok(m && m.type === 'request' && m.method === 'getSummary');
    const method: 'getSummary' = m.method;
    assert.equal(method, 'getSummary');
  });
});

describe('layer table requests', () => {
  test('getLayers and cancelAnalysis take no params', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'request', requestId: 1, method: 'getLayers' }), { type: 'request', requestId: 1, method: 'getLayers' });
    assert.deepEqual(parseWebviewMessage({ type: 'request', requestId: 2, method: 'cancelAnalysis' }), { type: 'request', requestId: 2, method: 'cancelAnalysis' });
    assert.equal(parseWebviewMessage({ type: 'request', requestId: 1, method: 'getLayers', params: {} }), undefined);
  });

  test('getLayerDetails: a bounded layer name, rebuilt', () => {
    const params = { name: 'p2o.Conv.0' };
    const m = parseWebviewMessage({ type: 'request', requestId: 3, method: 'getLayerDetails', params });
    assert.deepEqual(m, { type: 'request', requestId: 3, method: 'getLayerDetails', params: { name: 'p2o.Conv.0' } });
    assert.ok(m && m.type === 'request' && m.method === 'getLayerDetails');
    assert.notEqual(m.params, params);
    // Empty and long (but bounded) names are names; the host answers null when no node has it.
    assert.ok(parseWebviewMessage({ type: 'request', requestId: 3, method: 'getLayerDetails', params: { name: '' } }));
    assert.ok(parseWebviewMessage({ type: 'request', requestId: 3, method: 'getLayerDetails', params: { name: 'x'.repeat(MAX_LAYER_NAME_LENGTH) } }));
  });

  test('runAnalysis: data is an enum', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'request', requestId: 4, method: 'runAnalysis', params: { data: 'synthetic' } }), {
      type: 'request', requestId: 4, method: 'runAnalysis', params: { data: 'synthetic' },
    });
    assert.ok(parseWebviewMessage({ type: 'request', requestId: 4, method: 'runAnalysis', params: { data: 'folder' } }));
  });

  const rejected: [string, unknown][] = [
    ['getLayerDetails without params', { type: 'request', requestId: 1, method: 'getLayerDetails' }],
    ['getLayerDetails with a name too long', { type: 'request', requestId: 1, method: 'getLayerDetails', params: { name: 'x'.repeat(MAX_LAYER_NAME_LENGTH + 1) } }],
    ['getLayerDetails with a numeric name', { type: 'request', requestId: 1, method: 'getLayerDetails', params: { name: 5 } }],
    ['getLayerDetails with an extra field', { type: 'request', requestId: 1, method: 'getLayerDetails', params: { name: 'a', index: 1 } }],
    ['getLayerDetails with an array', { type: 'request', requestId: 1, method: 'getLayerDetails', params: ['a'] }],
    ['getLayerDetails with a class instance', { type: 'request', requestId: 1, method: 'getLayerDetails', params: new (class { name = 'a'; })() }],
    ['getLayerDetails with a getter', { type: 'request', requestId: 1, method: 'getLayerDetails', params: Object.defineProperty({}, 'name', { get: () => 'a', enumerable: true }) }],
    ['runAnalysis with an unknown data kind', { type: 'request', requestId: 1, method: 'runAnalysis', params: { data: 'network' } }],
    ['runAnalysis with a path', { type: 'request', requestId: 1, method: 'runAnalysis', params: { data: 'folder', path: '/etc' } }],
    ['runAnalysis without params', { type: 'request', requestId: 1, method: 'runAnalysis' }],
    ['cancelAnalysis with params', { type: 'request', requestId: 1, method: 'cancelAnalysis', params: { now: true } }],
    ['a host-only message type', { type: 'revealLayer', name: 'a' }],
    ['a layerUpdate from the webview', { type: 'layerUpdate', patch: {} }],
  ];
  for (const [what, value] of rejected) {
    test(`rejects ${what}`, () => assert.equal(parseWebviewMessage(value), undefined));
  }
});
