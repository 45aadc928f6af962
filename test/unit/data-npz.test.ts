/**
 * .npz archives: stored and deflated entries (archives made with fflate's zip writer, as np.savez
 * and np.savez_compressed make them), and errors for archives that are not zips, hold other
 * files, are truncated, or claim impossible sizes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { zipSync } from 'fflate';
import { SampleDataError } from '../../src/runtime/samples';
import { writeNpy } from '../../src/runtime/data/npy';
import { parseNpz, readNpzFile } from '../../src/runtime/data/npz';
import { tempDir } from '../helpers/ort';

const x = Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i));
const entries = {
  'x.npy': writeNpy(x, [1, 3, 32, 32]),
  'sr.npy': writeNpy(BigInt64Array.from([16000n]), []),
};

function assertSampleError(err: unknown, file: string, pattern: RegExp): true {
  assert.ok(err instanceof SampleDataError, `expected SampleDataError, got ${String(err)}`);
  assert.ok(err.message.startsWith(file), `message should name ${file}: ${err.message}`);
  assert.match(err.message, pattern);
  return true;
}

describe('npz', () => {
  for (const [kind, level] of [
    ['stored', 0],
    ['deflated', 6],
  ] as const) {
    it(`reads ${kind} entries`, () => {
      const zip = zipSync(Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, [v, { level }]])));
      // The archive really uses the method under test (compression method field of the first local header).
      assert.equal(Buffer.from(zip).readUInt16LE(8), level === 0 ? 0 : 8);
      const arrays = parseNpz(zip, 'a.npz');
      assert.deepEqual([...arrays.keys()].sort(), ['sr', 'x']);
      assert.deepEqual(arrays.get('x')!.shape, [1, 3, 32, 32]);
      assert.deepEqual([...arrays.get('x')!.data], [...x]);
      assert.equal(arrays.get('sr')!.dtype, 'int64');
      assert.deepEqual([...arrays.get('sr')!.data], [16000n]);
    });
  }

  it('reads archives from disk; errors name the file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 's.npz');
      fs.writeFileSync(file, zipSync(entries));
      assert.equal((await readNpzFile(file)).size, 2);
      const missing = path.join(dir, 'none.npz');
      await assert.rejects(readNpzFile(missing), (e) => assertSampleError(e, missing, /cannot read/));
    } finally {
      cleanup();
    }
  });

  it('refuses what is not an archive of .npy arrays', () => {
    assert.throws(() => parseNpz(Buffer.from('not a zip at all, just text that is long enough'), 'a.npz'), (e) => assertSampleError(e, 'a.npz', /not a valid \.npz \(zip\) archive/));
    assert.throws(() => parseNpz(zipSync({ 'x.npy': entries['x.npy'], 'notes.txt': Buffer.from('hi') }), 'a.npz'), (e) =>
      assertSampleError(e, 'a.npz', /entry "notes\.txt" is not an \.npy array/),
    );
    assert.throws(() => parseNpz(zipSync({}), 'a.npz'), (e) => assertSampleError(e, 'a.npz', /no \.npy arrays|not a valid/));
  });

  it('names the entry when an array inside is corrupt', () => {
    const bad = entries['x.npy'].slice(0, 500);
    assert.throws(() => parseNpz(zipSync({ 'x.npy': [bad, { level: 0 }] }), 'a.npz'), (e) => assertSampleError(e, 'a.npz[x.npy]', /truncated \.npy file/));
  });

  it('refuses truncated archives and impossible sizes before inflating', () => {
    const zip = zipSync(entries);
    assert.throws(() => parseNpz(zip.subarray(0, zip.length - 30), 'a.npz'), (e) => assertSampleError(e, 'a.npz', /not a valid|corrupt|truncated/));
    // Claim 4 GB uncompressed in the central directory (uncompressed size at offset 24 of each entry).
    const patched = Buffer.from(zipSync({ 'x.npy': [entries['x.npy'], { level: 9 }] }));
    const cd = patched.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    assert.ok(cd > 0);
    patched.writeUInt32LE(0xfffffff0, cd + 24);
    assert.throws(() => parseNpz(patched, 'a.npz'), (e) => assertSampleError(e, 'a.npz', /claims 4294967280 bytes .* corrupt/));
  });
});
