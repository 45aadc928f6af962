/**
 * The bundled default model: a small image classifier (Conv-ReLU ×3, global pooling, Gemm) built
 * with our own builder and seeded weights, so the README's first command needs no download.
 */
import { ModelBuilder } from '../onnx/builder';
import { DataType } from '../onnx/dtypes';
import { ModelProto } from '../onnx/proto';

export const DEMO_INPUT_SHAPE = [1, 3, 32, 32];

export function buildDemoModel(): ModelProto {
  const b = new ModelBuilder({ opset: 17, seed: 2024, graphName: 'demo_cnn' });
  let x = b.input('image', DataType.FLOAT, ['N', 3, 32, 32]);
  x = b.relu(b.conv(x, 3, 16, 3, { name: 'conv1' }));
  x = b.relu(b.conv(x, 16, 32, 3, { stride: 2, name: 'conv2' }));
  x = b.relu(b.conv(x, 32, 64, 3, { stride: 2, name: 'conv3' }));
  x = b.node('GlobalAveragePool', [x], {}, { name: 'pool' });
  x = b.node('Flatten', [x], {}, { name: 'flatten' });
  x = b.gemm(x, 64, 10, { name: 'classifier' });
  b.output(b.node('Softmax', [x], { axis: 1 }, { name: 'softmax', outputs: ['scores'] }), DataType.FLOAT, ['N', 10]);
  return b.build();
}
