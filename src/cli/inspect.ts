import { OnnxModel } from '../onnx/model';
import { formatSummary, summarizeModel } from '../onnx/summary';

export interface InspectOptions {
  json: boolean;
}

/** `onnx-quant inspect <model>`: the model summary, human-readable or as one JSON object. */
export function runInspect(file: string, options: InspectOptions, out: (text: string) => void): void {
  const model = OnnxModel.load(file);
  try {
    const summary = summarizeModel(model);
    out(options.json ? JSON.stringify(summary) : formatSummary(summary));
  } finally {
    model.close();
  }
}
