/** Errors raised for bad model files. Messages always name the file; callers show them as they are. */

export interface OnnxErrorDetails {
  file: string;
  /** Byte offset in the file where decoding failed, for corrupt protobuf. */
  offset?: number;
  /** The tensor or node the problem concerns, when there is one. */
  tensor?: string;
}

/** The file is not a valid ONNX model (corrupt, truncated, inconsistent) or refers to missing data. */
export class OnnxFormatError extends Error {
  readonly file: string;
  readonly offset: number | undefined;
  readonly tensor: string | undefined;
  constructor(message: string, details: OnnxErrorDetails) {
    super(message);
    this.name = 'OnnxFormatError';
    this.file = details.file;
    this.offset = details.offset;
    this.tensor = details.tensor;
  }
}
