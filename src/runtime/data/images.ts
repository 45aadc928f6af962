/**
 * PNG and JPEG images as model inputs: decoded with pngjs and jpeg-js (pure JavaScript, no native
 * code to ship with the extension), one image at a time, then resized and normalized into the
 * model's image input:  value = (pixel · scale − mean[c]) / std[c].
 *
 * Conventions (those of PIL/torchvision and OpenCV pipelines, so published preprocessing settings
 * carry over):
 * - pixels as stored: EXIF orientation is not applied, and alpha is dropped (not composited);
 * - GRAY is ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B (PIL's "L"); BGR is OpenCV's channel order;
 * - resize is bilinear with half-pixel centers (OpenCV INTER_LINEAR, torch align_corners=False),
 *   without antialiasing, to exactly [h, w] (no aspect-preserving crop);
 * - uint8 inputs get the (resized, rounded) pixel values themselves: scale, mean and std do not apply.
 */
import * as fs from 'node:fs';
import { PNG } from 'pngjs';
import * as jpeg from 'jpeg-js';
import type { Tensor } from 'onnxruntime-node';
import { dataError, formatShape, InputSpec, makeOrtTensor } from './model-inputs';

export type ImageLayout = 'NCHW' | 'NHWC';
export type ImageChannels = 'RGB' | 'BGR' | 'GRAY';

export interface ImageOptions {
  /** Output [height, width], or 'model' for the input's fixed dims. Default: the image's own size. */
  resize?: readonly [number, number] | 'model';
  /** Multiplies 0–255 pixel values first; default 1/255. */
  scale?: number;
  /** Subtracted per channel after scaling (one value, or one per channel); default 0. */
  mean?: readonly number[];
  /** Divides per channel after subtracting the mean; default 1. */
  std?: readonly number[];
  /** Default: from the model's shape (a channel dim of 1 or 3 second → NCHW, last → NHWC), else NCHW. */
  layout?: ImageLayout;
  /** Default: GRAY for a one-channel input, else RGB. */
  channels?: ImageChannels;
  /** Images with more pixels are refused before decoding; default 100 (megapixels). */
  maxMegapixels?: number;
}

/** ImageOptions resolved against one model input. */
export interface ImagePlan {
  input: string;
  dtype: 'float32' | 'uint8';
  layout: ImageLayout;
  channels: ImageChannels;
  /** Output [h, w]; undefined keeps each image's size. */
  size: [number, number] | undefined;
  /** The input's fixed [h, w], if any, for a clear error when an image does not match. */
  modelSize: [number | undefined, number | undefined];
  scale: number;
  mean: number[];
  std: number[];
  maxPixels: number;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Works out layout, channels, size and normalization for `spec` from `options`; `where` names the model in errors. */
export function imagePlan(spec: InputSpec, options: ImageOptions, where: string): ImagePlan {
  const fail = (message: string) => dataError(where, `input "${spec.name}": ${message}`);
  const shape = spec.shape;
  if (!shape || shape.length !== 4) {
    throw fail(`images need a rank-4 input ([N, C, H, W] or [N, H, W, C]); this one has shape ${shape ? formatShape(shape) : 'unknown'}`);
  }
  if (spec.dtype !== 'float32' && spec.dtype !== 'uint8') throw fail(`images can feed float32 or uint8 inputs, not ${spec.dtype}`);
  if (typeof shape[0] === 'number' && shape[0] !== 1) throw fail(`its batch dim is ${shape[0]}; each image is one sample, so the batch must be 1 or symbolic`);
  const isChannelDim = (d: string | number | undefined) => d === 1 || d === 3;
  const layout: ImageLayout = options.layout ?? (isChannelDim(shape[1]) ? 'NCHW' : isChannelDim(shape[3]) ? 'NHWC' : 'NCHW');
  const [cDim, hDim, wDim] = layout === 'NCHW' ? [shape[1], shape[2], shape[3]] : [shape[3], shape[1], shape[2]];
  const channels: ImageChannels = options.channels ?? (cDim === 1 ? 'GRAY' : 'RGB');
  const c = channels === 'GRAY' ? 1 : 3;
  if (typeof cDim === 'number' && cDim !== c) {
    throw fail(`with layout ${layout} its channel dim is ${cDim}, which does not fit ${channels} (${c} channel${c > 1 ? 's' : ''}); shape ${formatShape(shape)}`);
  }
  const modelSize: [number | undefined, number | undefined] = [typeof hDim === 'number' ? hDim : undefined, typeof wDim === 'number' ? wDim : undefined];
  let size: [number, number] | undefined;
  if (options.resize === 'model') {
    if (modelSize[0] === undefined || modelSize[1] === undefined) {
      throw fail(`resize 'model' needs fixed height and width, but the shape is ${formatShape(shape)}; give resize: [h, w]`);
    }
    size = [modelSize[0], modelSize[1]];
  } else if (options.resize) {
    const [h, w] = options.resize;
    if (!Number.isSafeInteger(h) || !Number.isSafeInteger(w) || h < 1 || w < 1) throw fail(`resize [${h}, ${w}] must be two positive integers`);
    size = [h, w];
  }
  const perChannel = (name: string, v: readonly number[] | undefined, fallback: number): number[] => {
    if (v === undefined) return new Array<number>(c).fill(fallback);
    if (v.length === 1) return new Array<number>(c).fill(v[0]!);
    if (v.length !== c) throw fail(`${name} has ${v.length} values; give 1 or ${c} (one per ${channels} channel)`);
    if (!v.every(Number.isFinite)) throw fail(`${name} values must be finite numbers`);
    return [...v];
  };
  if (spec.dtype === 'uint8' && (options.scale !== undefined || options.mean !== undefined || options.std !== undefined)) {
    throw fail('it is a uint8 input: it takes pixel values as they are, so scale, mean and std cannot apply');
  }
  const std = perChannel('std', options.std, 1);
  if (std.some((s) => s === 0)) throw fail('std values must not be 0');
  const scale = options.scale ?? 1 / 255;
  if (!Number.isFinite(scale)) throw fail('scale must be a finite number');
  const mp = options.maxMegapixels ?? 100;
  return {
    input: spec.name,
    dtype: spec.dtype,
    layout,
    channels,
    size,
    modelSize,
    scale,
    mean: perChannel('mean', options.mean, 0),
    std,
    maxPixels: mp * 1e6,
  };
}

/** "NCHW RGB float32, resized to 224×224, (x·0.00392 − mean)/std, mean [0.485,…], std […]" */
export function describeImagePlan(p: ImagePlan): string {
  const parts = [`${p.layout} ${p.channels} ${p.dtype}`];
  if (p.size) parts.push(`resized to ${p.size[0]}×${p.size[1]} (bilinear)`);
  if (p.dtype === 'float32') {
    parts.push(`(x·${+p.scale.toPrecision(6)} − mean)/std with mean ${JSON.stringify(p.mean)}, std ${JSON.stringify(p.std)}`);
  }
  return parts.join(', ');
}

export interface DecodedImage {
  width: number;
  height: number;
  /** 8-bit RGBA, row-major. */
  rgba: Uint8Array;
}

/** Decodes a PNG or JPEG (told apart by content, not by extension). */
export function decodeImage(buf: Uint8Array, file: string, maxPixels = 100e6): DecodedImage {
  const tooBig = (w: number, h: number) =>
    dataError(file, `image is ${w}×${h} = ${((w * h) / 1e6).toFixed(1)} megapixels, over the limit of ${maxPixels / 1e6} (maxMegapixels)`);
  if (PNG_MAGIC.every((b, i) => buf[i] === b)) {
    // Check IHDR's size before pngjs allocates for it.
    if (buf.length >= 24) {
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      const w = dv.getUint32(16);
      const h = dv.getUint32(20);
      if (w * h > maxPixels) throw tooBig(w, h);
    }
    try {
      const png = PNG.sync.read(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
      return { width: png.width, height: png.height, rgba: png.data };
    } catch (err) {
      throw dataError(file, `cannot decode the PNG image: ${(err as Error).message}`);
    }
  }
  if (buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) {
    try {
      const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: maxPixels / 1e6, maxMemoryUsageInMB: 2048 });
      return { width: img.width, height: img.height, rgba: img.data };
    } catch (err) {
      throw dataError(file, `cannot decode the JPEG image: ${(err as Error).message}`);
    }
  }
  throw dataError(file, 'not a PNG or JPEG image (unrecognized content)');
}

/** Source pixel index pairs and weights along one axis: bilinear, half-pixel centers, edges clamped. */
function axisTaps(outSize: number, inSize: number): { i0: Int32Array; i1: Int32Array; f: Float32Array } {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const f = new Float32Array(outSize);
  const ratio = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.min(Math.max((o + 0.5) * ratio - 0.5, 0), inSize - 1);
    const lo = Math.floor(src);
    i0[o] = lo;
    i1[o] = Math.min(lo + 1, inSize - 1);
    f[o] = src - lo;
  }
  return { i0, i1, f };
}

/** Resizes and normalizes a decoded image into the input tensor ([1, C, H, W] or [1, H, W, C]). */
export function imageToTensor(img: DecodedImage, plan: ImagePlan, file: string): Tensor {
  const [outH, outW] = plan.size ?? [img.height, img.width];
  const [mh, mw] = plan.modelSize;
  if (!plan.size && ((mh !== undefined && mh !== img.height) || (mw !== undefined && mw !== img.width))) {
    throw dataError(
      file,
      `image is ${img.width}×${img.height} (w×h) but input "${plan.input}" expects ${mw ?? 'any'}×${mh ?? 'any'}; set resize: 'model' (or [h, w]) to resize images`,
    );
  }
  const c = plan.channels === 'GRAY' ? 1 : 3;
  const n = outH * outW * c;
  const out = plan.dtype === 'uint8' ? new Uint8Array(n) : new Float32Array(n);
  const ys = axisTaps(outH, img.height);
  const xs = axisTaps(outW, img.width);
  const src = img.rgba;
  const stride = img.width * 4;
  const rgb = [0, 0, 0];
  const order = plan.channels === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const { scale, mean, std } = plan;
  for (let y = 0; y < outH; y++) {
    const r0 = ys.i0[y]! * stride;
    const r1 = ys.i1[y]! * stride;
    const fy = ys.f[y]!;
    for (let x = 0; x < outW; x++) {
      const c0 = xs.i0[x]! * 4;
      const c1 = xs.i1[x]! * 4;
      const fx = xs.f[x]!;
      for (let k = 0; k < 3; k++) {
        const top = src[r0 + c0 + k]! + (src[r0 + c1 + k]! - src[r0 + c0 + k]!) * fx;
        const bottom = src[r1 + c0 + k]! + (src[r1 + c1 + k]! - src[r1 + c0 + k]!) * fx;
        rgb[k] = top + (bottom - top) * fy;
      }
      for (let ch = 0; ch < c; ch++) {
        const v = c === 1 ? 0.299 * rgb[0]! + 0.587 * rgb[1]! + 0.114 * rgb[2]! : rgb[order[ch]!]!;
        const at = plan.layout === 'NCHW' ? (ch * outH + y) * outW + x : (y * outW + x) * c + ch;
        out[at] = plan.dtype === 'uint8' ? Math.round(v) : (v * scale - mean[ch]!) / std[ch]!;
      }
    }
  }
  const dims = plan.layout === 'NCHW' ? [1, c, outH, outW] : [1, outH, outW, c];
  return plan.dtype === 'uint8' ? makeOrtTensor('uint8', out as Uint8Array, dims) : makeOrtTensor('float32', out as Float32Array, dims);
}

/** Reads, decodes and preprocesses one image file. */
export async function loadImage(file: string, plan: ImagePlan): Promise<Tensor> {
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch (err) {
    throw dataError(file, `cannot read: ${(err as Error).message}`);
  }
  return imageToTensor(decodeImage(buf, file, plan.maxPixels), plan, file);
}
