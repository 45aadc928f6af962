/** Models shared by the benchmarks, built with our own builder (seeded, so every run makes the same file). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelBuilder } from '../src/onnx/builder';
import { DataType } from '../src/onnx/dtypes';
import { saveModel } from '../src/onnx/save';

/** Builds a VGG-style float32 CNN whose weights total about 176 MB (44M parameters). */
export function bigCnn(file: string): string {
  if (fs.existsSync(file)) return file;
  const b = new ModelBuilder({ opset: 17, seed: 11 });
  let x = b.input('x', DataType.FLOAT, [1, 3, 224, 224]);
  x = b.relu(b.conv(x, 3, 512, 3));
  for (let i = 0; i < 18; i++) x = b.relu(b.conv(x, 512, 512, 3));
  x = b.node('GlobalAveragePool', [x]);
  x = b.node('Flatten', [x]);
  x = b.relu(b.gemm(x, 512, 1000));
  x = b.gemm(x, 1000, 1000);
  b.output(x, DataType.FLOAT, [1, 1000]);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  saveModel(b.build(), file);
  return file;
}


export interface ResnetSpec {
  seed: number;
  size: number;
  /** Stem: output channels, kernel, stride (a 3×3 max pool follows when `pool`). */
  stem: { channels: number; kernel: number; stride: number; pool: boolean };
  /** Residual stages: output channels and the first block's stride; two blocks each. */
  stages: readonly (readonly [number, number])[];
  classes: number;
}

/** A ResNet-style network: stem, stages of two residual 3×3 blocks, global pooling, classifier. */
export function resnet(file: string, spec: ResnetSpec): string {
  if (fs.existsSync(file)) return file;
  const b = new ModelBuilder({ opset: 17, seed: spec.seed });
  let x = b.input('image', DataType.FLOAT, [1, 3, spec.size, spec.size]);
  const { stem } = spec;
  x = b.relu(b.conv(x, 3, stem.channels, stem.kernel, { stride: stem.stride, pad: Math.floor(stem.kernel / 2) }));
  if (stem.pool) x = b.node('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  let channels = stem.channels;
  for (const [out, stride] of spec.stages) {
    for (let block = 0; block < 2; block++) {
      const s = block === 0 ? stride : 1;
      const inC = block === 0 ? channels : out;
      let h = b.relu(b.conv(x, inC, out, 3, { stride: s }));
      h = b.conv(h, out, out, 3);
      const shortcut = s !== 1 || inC !== out ? b.conv(x, inC, out, 1, { stride: s, pad: 0 }) : x;
      x = b.relu(b.node('Add', [h, shortcut]));
    }
    channels = out;
  }
  x = b.node('GlobalAveragePool', [x]);
  x = b.node('Flatten', [x]);
  b.output(b.gemm(x, channels, spec.classes), DataType.FLOAT, [1, spec.classes]);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  saveModel(b.build(), file);
  return file;
}
