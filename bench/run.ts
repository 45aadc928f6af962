/** `npm run bench`: every benchmark, each printing ratios against a baseline measured in the same run. */
import * as os from 'node:os';
import { benchAnalysis } from './analysis';
import { benchCalibrationReal } from './calibration-real';
import { benchInspect } from './inspect';
import { benchObservers } from './observers';
import { benchQuantize } from './quantize';
import { benchRefinements } from './refinements';
import { benchResponsiveness } from './responsiveness';

async function main(): Promise<void> {
  console.log(`onnx-quant benchmarks — node ${process.version}, ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}\n`);
  // `npm run bench -- refinements [args]`: only the refinement evidence on the real models (minutes).
  if (process.argv[2] === 'refinements') {
    for (const line of await benchRefinements(process.argv.slice(3))) console.log(line);
    return;
  }
  // `npm run bench -- calibration-real [args]`: calibration cost on the real models (a few minutes).
  if (process.argv[2] === 'calibration-real') {
    for (const line of await benchCalibrationReal(process.argv.slice(3))) console.log(line);
    return;
  }
  // `npm run bench -- quantize`: only the PTQ engine's figures (ResNet-style CNN).
  if (process.argv[2] === 'quantize') {
    for (const line of await benchQuantize()) console.log(line);
    return;
  }
  for (const line of benchInspect()) console.log(line);
  console.log('');
  for (const line of benchObservers()) console.log(line);
  console.log('');
  for (const line of await benchQuantize()) console.log(line);
  console.log('');
  for (const line of await benchAnalysis()) console.log(line);
  console.log('');
  for (const line of await benchResponsiveness()) console.log(line);
}

void main();
