/**
 * Text-like images for the OCR models without a font renderer: lines of dark glyph-like strokes
 * (bars, arcs and dots at a fixed x-height) on a light, slightly textured background. Enough to
 * drive the detector's and classifier's feature maps the way text does; deterministic by seed.
 */
import * as ort from 'onnxruntime-node';
import { Rng } from '../../src/onnx/builder';

export interface Normalization {
  mean: readonly number[];
  std: readonly number[];
}

export const IMAGENET: Normalization = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
export const HALF: Normalization = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

/** Grey image in [0, 1] with `lines` rows of glyph strokes. */
export function textImage(h: number, w: number, rng: Rng, lines = 1, flip = false): Float32Array {
  const img = new Float32Array(h * w);
  const bg = 0.8 + 0.15 * rng.next();
  for (let i = 0; i < img.length; i++) img[i] = bg + 0.03 * (rng.next() - 0.5);
  const ink = 0.1 + 0.2 * rng.next();
  const rowH = Math.floor(h / lines);
  for (let l = 0; l < lines; l++) {
    const xh = Math.max(6, Math.floor(rowH * (0.35 + 0.2 * rng.next())));
    const base = l * rowH + Math.floor((rowH + xh) / 2);
    let x = 4 + Math.floor(rng.next() * 8);
    const end = w - 4 - Math.floor(rng.next() * w * 0.3);
    while (x < end) {
      const glyphW = Math.max(3, Math.floor(xh * (0.5 + 0.4 * rng.next())));
      const stroke = Math.max(1, Math.floor(xh / 6));
      const kind = Math.floor(rng.next() * 4);
      const tall = rng.next() < 0.3 ? Math.floor(xh * 0.5) : 0;
      for (let y = base - xh - tall; y < base; y++) {
        for (let dx = 0; dx < glyphW; dx++) {
          const yy = y - (base - xh);
          const on =
            kind === 0 ? dx < stroke || dx >= glyphW - stroke // n-like
            : kind === 1 ? dx < stroke || yy >= xh - stroke || yy < stroke // o-like box
            : kind === 2 ? dx < stroke // l-like bar
            : Math.abs(dx - (yy * glyphW) / xh) < stroke; // slanted
          if (on && y >= 0 && y < h && x + dx < w) img[y * w + x + dx] = ink;
        }
      }
      x += glyphW + stroke + Math.floor(rng.next() * 3) + (rng.next() < 0.15 ? xh : 0);
    }
  }
  if (flip) img.reverse();
  return img;
}

/** [1, 3, h, w] float32 tensor from a grey image, normalized per channel. */
export function toTensor(img: Float32Array, h: number, w: number, norm: Normalization): ort.Tensor {
  const data = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) for (let i = 0; i < h * w; i++) data[c * h * w + i] = (img[i]! - norm.mean[c]!) / norm.std[c]!;
  return new ort.Tensor('float32', data, [1, 3, h, w]);
}
