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

