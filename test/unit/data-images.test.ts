/**
 * Images as model inputs: PNG and JPEG files made with pngjs's and jpeg-js's encoders, decoded and
 * preprocessed, against values computed by hand here ((x/255 − mean)/std, bilinear weights worked
 * out on paper); NCHW vs NHWC, RGB/BGR/GRAY, uint8 inputs, and the errors, which name the file.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import * as jpeg from 'jpeg-js';
import { DataType } from '../../src/onnx/dtypes';
import { SampleDataError } from '../../src/runtime/samples';
import { decodeImage, imagePlan, ImageOptions, loadImage } from '../../src/runtime/data/images';
import { InputSpec } from '../../src/runtime/data/model-inputs';
import { tempDir } from '../helpers/ort';

/** RGBA rows → PNG bytes. */
function png(rows: [number, number, number, number?][][]): Buffer {
  const img = new PNG({ width: rows[0]!.length, height: rows.length });
  rows.flat().forEach(([r, g, b, a], i) => img.data.set([r, g, b, a ?? 255], i * 4));
  return PNG.sync.write(img);
}

function spec(shape: (number | string)[], dtype: 'float32' | 'uint8' = 'float32'): InputSpec {
  return { name: 'x', elemType: dtype === 'float32' ? DataType.FLOAT : DataType.UINT8, dtype, shape };
}

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
// A 2×3 image (h = 2, w = 3), pixel (y, x) = [r, g, b].
const PIXELS: [number, number, number][][] = [
  [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
  ],
  [
    [10, 20, 30],
    [128, 64, 32],
    [0, 0, 0],
  ],
];

async function load(bytes: Uint8Array, s: InputSpec, options: ImageOptions, dir: string, name = 'img.png') {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return loadImage(file, imagePlan(s, options, 'model.onnx'));
}

function near(actual: ArrayLike<number>, expected: number[], tol = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `element ${i}: ${actual[i]} vs ${expected[i]}`);
}

describe('images: PNG preprocessing', () => {
  const bytes = png(PIXELS.map((row) => row.map(([r, g, b]) => [r, g, b] as [number, number, number])));

  it('NCHW RGB with mean/std: (x/255 − mean)/std, channel planes', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const t = await load(bytes, spec([1, 3, 2, 3]), { mean: MEAN, std: STD }, dir);
      assert.equal(t.type, 'float32');
      assert.deepEqual(t.dims, [1, 3, 2, 3]);
      const expected: number[] = [];
      for (let c = 0; c < 3; c++) for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) expected.push((PIXELS[y]![x]![c]! / 255 - MEAN[c]!) / STD[c]!);
      // Spot values worked out by hand: red of (0,0) = (1 − 0.485)/0.229, blue of (1,1) = (32/255 − 0.406)/0.225.
      assert.ok(Math.abs(expected[0]! - 2.2489083) < 1e-6);
      assert.ok(Math.abs(expected[2 * 6 + 4]! - -1.2467102) < 1e-6);
      near(t.data as Float32Array, expected);
    } finally {
      cleanup();
    }
  });

  it('NHWC is inferred from a last channel dim and interleaves channels', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const t = await load(bytes, spec(['N', 2, 3, 3]), {}, dir);
      assert.deepEqual(t.dims, [1, 2, 3, 3]);
      near(t.data as Float32Array, PIXELS.flat(2).map((v) => v / 255));
      const explicit = await load(bytes, spec(['N', 'H', 'W', 'C']), { layout: 'NHWC', scale: 1 }, dir);
      near(explicit.data as Float32Array, PIXELS.flat(2));
    } finally {
      cleanup();
    }
  });

  it('BGR reverses channels; GRAY is 0.299 R + 0.587 G + 0.114 B', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const bgr = await load(bytes, spec([1, 3, 2, 3]), { channels: 'BGR', scale: 1 }, dir);
      const expected: number[] = [];
      for (const c of [2, 1, 0]) for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) expected.push(PIXELS[y]![x]![c]!);
      near(bgr.data as Float32Array, expected);
      const gray = await load(bytes, spec([1, 1, 2, 3]), { mean: [0.5], std: [0.5] }, dir);
      assert.deepEqual(gray.dims, [1, 1, 2, 3]);
      // (128, 64, 32): luma 0.299·128 + 0.587·64 + 0.114·32 = 79.488
      near(
        gray.data as Float32Array,
        PIXELS.flat().map(([r, g, b]) => ((0.299 * r + 0.587 * g + 0.114 * b) / 255 - 0.5) / 0.5),
      );
      assert.ok(Math.abs((gray.data as Float32Array)[4]! - ((79.488 / 255 - 0.5) / 0.5)) < 1e-6);
    } finally {
      cleanup();
    }
  });

  it('alpha is dropped, not composited', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const t = await load(png([[[200, 100, 50, 0]]]), spec([1, 3, 1, 1]), { scale: 1 }, dir);
      near(t.data as Float32Array, [200, 100, 50]);
    } finally {
      cleanup();
    }
  });

  it('uint8 inputs take the pixel values themselves', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const t = await load(bytes, spec([1, 2, 3, 3], 'uint8'), {}, dir);
      assert.equal(t.type, 'uint8');
      assert.deepEqual([...(t.data as Uint8Array)], PIXELS.flat(2));
      assert.throws(() => imagePlan(spec([1, 2, 3, 3], 'uint8'), { mean: [0.5] }, 'model.onnx'), /uint8 input.*cannot apply/);
    } finally {
      cleanup();
    }
  });
});

describe('images: resize (bilinear, half-pixel centers)', () => {
  it('upscales 2×2 → 4×4 with the weights worked out by hand', async () => {
    const { dir, cleanup } = tempDir();
    try {
      // Gray levels [[0, 100], [200, 40]] in all three channels.
      const img = png([
        [
          [0, 0, 0],
          [100, 100, 100],
        ],
        [
          [200, 200, 200],
          [40, 40, 40],
        ],
      ]);
      const t = await load(img, spec([1, 3, 4, 4]), { resize: 'model', scale: 1 }, dir);
      const v = t.data as Float32Array;
      // Source coordinates of outputs 0..3: clamp((o + 0.5)/2 − 0.5) = 0, 0.25, 0.75, 1.
      near([v[0]!, v[1]!, v[2]!, v[3]!], [0, 25, 75, 100]);
      // (1,1): rows 0.25 → top 25, bottom 200 − 160·0.25 = 160; 25 + 135·0.25 = 58.75.
      assert.ok(Math.abs(v[1 * 4 + 1]! - 58.75) < 1e-4);
      // (2,3): column 1 → top 100, bottom 40; row 0.75 → 100 − 60·0.75 = 55.
      assert.ok(Math.abs(v[2 * 4 + 3]! - 55) < 1e-4);
      near([v[12]!, v[13]!, v[14]!, v[15]!], [200, 160, 80, 40]);
      // Every channel plane is the same for a gray image.
      near(v.subarray(16, 32), [...v.subarray(0, 16)]);
    } finally {
      cleanup();
    }
  });

  it('halving averages 2×2 blocks; an explicit [h, w] works for symbolic dims', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const rows: [number, number, number][][] = [];
      for (let y = 0; y < 4; y++) rows.push(Array.from({ length: 4 }, (_, x) => [y * 40 + x * 10, 0, 0] as [number, number, number]));
      const t = await load(png(rows), spec([1, 3, 'H', 'W']), { resize: [2, 2], scale: 1 }, dir);
      assert.deepEqual(t.dims, [1, 3, 2, 2]);
      // Block (0,0): pixels 0, 10, 40, 50 → 25; (0,1): 20, 30, 60, 70 → 45; (1,0): 105; (1,1): 125.
      near((t.data as Float32Array).subarray(0, 4), [25, 45, 105, 125]);
    } finally {
      cleanup();
    }
  });

  it('without resize, an image of another size is an error that says how to fix it', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'small.png');
      await assert.rejects(load(png([[[1, 2, 3]]]), spec([1, 3, 224, 224]), {}, dir, 'small.png'), (e: unknown) => {
        assert.ok(e instanceof SampleDataError);
        assert.equal(e.message, `${file}: image is 1×1 (w×h) but input "x" expects 224×224; set resize: 'model' (or [h, w]) to resize images`);
        return true;
      });
    } finally {
      cleanup();
    }
  });
});

describe('images: JPEG', () => {
  it('decodes a JPEG made by jpeg-js and preprocesses the decoded pixels', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const w = 16;
      const h = 8;
      const data = Buffer.alloc(w * h * 4);
      for (let i = 0; i < w * h; i++) data.set([i < (w * h) / 2 ? 200 : 30, 120, 60, 255], i * 4);
      const bytes = jpeg.encode({ width: w, height: h, data }, 100).data;
      const decoded = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
      // Lossy, but close to what was encoded.
      assert.ok(Math.abs(decoded.data[0]! - 200) <= 4 && Math.abs(decoded.data[(w * h - 1) * 4]! - 30) <= 4);
      const t = await load(bytes, spec([1, 3, h, w]), { mean: MEAN, std: STD }, dir, 'img.jpg');
      const expected: number[] = [];
      for (let c = 0; c < 3; c++) for (let i = 0; i < w * h; i++) expected.push((decoded.data[i * 4 + c]! / 255 - MEAN[c]!) / STD[c]!);
      near(t.data as Float32Array, expected);
    } finally {
      cleanup();
    }
  });
});

describe('images: errors name the file', () => {
  const isError = (file: string, pattern: RegExp) => (e: unknown) => {
    assert.ok(e instanceof SampleDataError, String(e));
    assert.ok(e.message.startsWith(`${file}: `), e.message);
    assert.match(e.message, pattern);
    return true;
  };

  it('unreadable, corrupt and unknown images', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const good = png(PIXELS);
      await assert.rejects(load(good.subarray(0, 60), spec([1, 3, 2, 3]), {}, dir, 'cut.png'), isError(path.join(dir, 'cut.png'), /cannot decode the PNG image/));
      await assert.rejects(load(Buffer.from('hello, not an image'), spec([1, 3, 2, 3]), {}, dir, 'text.png'), isError(path.join(dir, 'text.png'), /not a PNG or JPEG image/));
      const jpg = jpeg.encode({ width: 8, height: 8, data: Buffer.alloc(256, 100) }, 90).data;
      await assert.rejects(load(jpg.subarray(0, 40), spec([1, 3, 8, 8]), {}, dir, 'cut.jpg'), isError(path.join(dir, 'cut.jpg'), /cannot decode the JPEG image/));
      const missing = path.join(dir, 'missing.png');
      await assert.rejects(loadImage(missing, imagePlan(spec([1, 3, 2, 3]), {}, 'model.onnx')), isError(missing, /cannot read/));
    } finally {
      cleanup();
    }
  });

  it('images over the pixel limit are refused before decoding', () => {
    const bytes = Buffer.from(png(PIXELS));
    bytes.writeUInt32BE(100000, 16); // IHDR width
    bytes.writeUInt32BE(100000, 20); // IHDR height
    assert.throws(() => decodeImage(bytes, 'huge.png'), isError('huge.png', /100000×100000 = 10000\.0 megapixels, over the limit of 100/));
  });

  it('options that do not fit the input', () => {
    const bad = (s: InputSpec, o: ImageOptions, pattern: RegExp) => assert.throws(() => imagePlan(s, o, 'model.onnx'), isError('model.onnx', pattern));
    bad(spec([1, 3, 'H', 'W']), { resize: 'model' }, /resize 'model' needs fixed height and width/);
    bad(spec([1, 3, 4, 4]), { mean: [1, 2] }, /mean has 2 values; give 1 or 3/);
    bad(spec([1, 3, 4, 4]), { std: [0] }, /std values must not be 0/);
    bad(spec([1, 3, 4, 4]), { channels: 'GRAY' }, /channel dim is 3, which does not fit GRAY/);
    bad(spec([4, 3, 4, 4]), {}, /batch dim is 4/);
    bad(spec([3, 4, 4]), {}, /rank-4 input/);
    bad({ ...spec([1, 3, 4, 4]), dtype: 'int64' }, {}, /float32 or uint8 inputs, not int64/);
  });
});
