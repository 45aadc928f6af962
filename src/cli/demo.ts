/**
 * `onnx-quant demo`: the main job on the bundled default model. Builds the small CNN classifier
 * (demo-model.ts), writes calibration images it generates (smooth gradients with shapes, as .npy),
 * and quantizes the model end to end with the report — no download, no data of your own.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../onnx/builder';
import { saveModel } from '../onnx/save';
import { writeNpy } from '../runtime/data';
import { buildDemoModel } from './demo-model';
import { runInspect } from './inspect';
import { runQuantize } from './quantize';

/** A 3×64×64 image in [0, 1]: a colour gradient with a few discs, normalized like ImageNet inputs. */
function demoImage(rng: Rng): Float32Array {
  const size = 64;
  const img = new Float32Array(3 * size * size);
  const base = [rng.next(), rng.next(), rng.next()];
  const tilt = [rng.next() - 0.5, rng.next() - 0.5];
  const discs = Array.from({ length: 3 }, () => ({ x: rng.next() * size, y: rng.next() * size, r: 3 + rng.next() * 8, c: [rng.next(), rng.next(), rng.next()] }));
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let v = base[c]! + tilt[0]! * (x / size) + tilt[1]! * (y / size);
        for (const d of discs) if ((x - d.x) ** 2 + (y - d.y) ** 2 < d.r ** 2) v = d.c[c]!;
        v = Math.min(1, Math.max(0, v + 0.02 * rng.normal()));
        img[(c * size + y) * size + x] = (v - mean[c]!) / std[c]!;
      }
    }
  }
  return img;
}

export async function runDemo(
  options: { out?: string; json: boolean },
  io: { out: (s: string) => void; err: (s: string) => void },
  signal?: AbortSignal,
): Promise<void> {
  const dir = options.out ?? path.join(os.tmpdir(), 'onnx-quant-demo');
  const calib = path.join(dir, 'calib');
  fs.mkdirSync(calib, { recursive: true });
  const model = path.join(dir, 'demo-cnn.onnx');
  saveModel(buildDemoModel(), model);
  const rng = new Rng(7);
  for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(calib, `image_${String(i).padStart(2, '0')}.npy`), writeNpy(demoImage(rng), [1, 3, 64, 64]));
  if (!options.json) {
    io.out(`default model: ${model}`);
    runInspect(model, { json: false }, io.out);
    io.out(`\ncalibration data: 40 generated images in ${calib}\n\nquantizing (static int8, the defaults):`);
  }
  await runQuantize([model, '-o', path.join(dir, 'demo-cnn.int8.onnx'), '--calib', calib, ...(options.json ? ['--json'] : [])], io, signal);
}
