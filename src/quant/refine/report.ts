/** What one post-training refinement did, for the quantization report. */
export interface RefinementReport {
  name: 'cross-layer equalization' | 'depthwise-equalization' | 'smoothquant' | 'learned rounding' | 'bias correction';
  /** One line: what changed, in numbers. */
  summary: string;
  /** Layers (node names) it changed. */
  layers: string[];
  seconds: number;
}
