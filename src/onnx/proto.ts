/**
 * In-memory form of the ONNX protobuf messages (onnx.proto, IR versions 3–11).
 *
 * Written from the ONNX IR specification. Field names are camelCase versions of the proto names.
 * Decoding is lazy and zero-copy: `bytes` fields and packed numeric arrays stay views over the file
 * buffer (see `PackedField`), and are decoded only when asked for (src/onnx/tensor-data.ts).
 * Every message keeps the fields this code does not model as raw wire bytes in `unknownFields`, so a
 * decode → encode round trip preserves them.
 */

/** Raw encoded fields (tag + payload), kept verbatim so that re-encoding preserves them. */
export type UnknownFields = Uint8Array[];

/**
 * A repeated scalar field kept in its encoded form: each chunk is a run of encoded scalars without
 * tags (a packed payload, or the payload of one unpacked element). Concatenating the chunks gives the
 * packed encoding of the whole field.
 */
export type PackedField = Uint8Array[];

export interface StringStringEntry {
  key: string;
  value: string;
}

export interface OperatorSetId {
  domain: string;
  version: number;
}

export enum TensorDataLocation {
  Default = 0,
  External = 1,
}

export interface TensorSegment {
  begin: number;
  end: number;
}

export interface TensorProto {
  dims: number[];
  dataType: number;
  segment?: TensorSegment;
  /** Encoded float32 values (field 4, fixed32). */
  floatData: PackedField;
  /** Encoded int32 varints (field 5): int32, int16, int8, uint16, uint8, bool, float16 bits, … */
  int32Data: PackedField;
  /** string_data (field 6): views into the file buffer. */
  stringData: Uint8Array[];
  /** Encoded int64 varints (field 7). */
  int64Data: PackedField;
  name: string;
  docString: string;
  /** raw_data (field 9): a view into the file buffer, or undefined when absent. */
  rawData?: Uint8Array;
  externalData: StringStringEntry[];
  dataLocation: TensorDataLocation;
  /** Encoded float64 values (field 10, fixed64). */
  doubleData: PackedField;
  /** Encoded uint64 varints (field 11): uint32, uint64. */
  uint64Data: PackedField;
  metadataProps: StringStringEntry[];
  unknownFields: UnknownFields;
}

export interface SparseTensorProto {
  values?: TensorProto;
  indices?: TensorProto;
  dims: number[];
  unknownFields: UnknownFields;
}

export interface Dimension {
  /** dim_value; undefined when the dimension is symbolic or unknown. */
  value?: number;
  param?: string;
  denotation: string;
  unknownFields: UnknownFields;
}

export interface TensorShape {
  dims: Dimension[];
  unknownFields: UnknownFields;
}

/** TypeProto: exactly one of the `*Type` members is set in a valid model. */
export interface TypeProto {
  tensorType?: { elemType: number; shape?: TensorShape; unknownFields: UnknownFields };
  sequenceType?: { elemType?: TypeProto; unknownFields: UnknownFields };
  mapType?: { keyType: number; valueType?: TypeProto; unknownFields: UnknownFields };
  optionalType?: { elemType?: TypeProto; unknownFields: UnknownFields };
  sparseTensorType?: { elemType: number; shape?: TensorShape; unknownFields: UnknownFields };
  denotation: string;
  unknownFields: UnknownFields;
}

export interface ValueInfoProto {
  name: string;
  type?: TypeProto;
  docString: string;
  metadataProps: StringStringEntry[];
  unknownFields: UnknownFields;
}

export enum AttributeType {
  Undefined = 0,
  Float = 1,
  Int = 2,
  String = 3,
  Tensor = 4,
  Graph = 5,
  Floats = 6,
  Ints = 7,
  Strings = 8,
  Tensors = 9,
  Graphs = 10,
  SparseTensor = 11,
  SparseTensors = 12,
  TypeProto = 13,
  TypeProtos = 14,
}

export interface AttributeProto {
  name: string;
  refAttrName: string;
  docString: string;
  type: AttributeType;
  f?: number;
  /** int64 attribute; bigint because values such as INT64_MAX (Slice ends) must survive a round trip. */
  i?: bigint;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  sparseTensor?: SparseTensorProto;
  tp?: TypeProto;
  floats: number[];
  ints: bigint[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  sparseTensors: SparseTensorProto[];
  typeProtos: TypeProto[];
  unknownFields: UnknownFields;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  domain: string;
  overload: string;
  attribute: AttributeProto[];
  docString: string;
  metadataProps: StringStringEntry[];
  unknownFields: UnknownFields;
}

export interface TensorAnnotation {
  tensorName: string;
  quantParameterTensorNames: StringStringEntry[];
  unknownFields: UnknownFields;
}

export interface GraphProto {
  node: NodeProto[];
  name: string;
  initializer: TensorProto[];
  sparseInitializer: SparseTensorProto[];
  docString: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  quantizationAnnotation: TensorAnnotation[];
  metadataProps: StringStringEntry[];
  unknownFields: UnknownFields;
}

export interface FunctionProto {
  name: string;
  input: string[];
  output: string[];
  attribute: string[];
  attributeProto: AttributeProto[];
  node: NodeProto[];
  docString: string;
  opsetImport: OperatorSetId[];
  domain: string;
  overload: string;
  valueInfo: ValueInfoProto[];
  metadataProps: StringStringEntry[];
  unknownFields: UnknownFields;
}

export interface ModelProto {
  irVersion: number;
  opsetImport: OperatorSetId[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph?: GraphProto;
  metadataProps: StringStringEntry[];
  functions: FunctionProto[];
  /**
   * Fields this code passes through untouched (training_info, configuration, and anything newer
   * than the IR versions modelled here) stay in `unknownFields`.
   */
  unknownFields: UnknownFields;
}

// ---- constructors with every field at its default, for builders and transforms ----

export function emptyTensor(name = ''): TensorProto {
  return {
    dims: [],
    dataType: 0,
    floatData: [],
    int32Data: [],
    stringData: [],
    int64Data: [],
    name,
    docString: '',
    externalData: [],
    dataLocation: TensorDataLocation.Default,
    doubleData: [],
    uint64Data: [],
    metadataProps: [],
    unknownFields: [],
  };
}

export function emptyAttribute(name = ''): AttributeProto {
  return {
    name,
    refAttrName: '',
    docString: '',
    type: AttributeType.Undefined,
    floats: [],
    ints: [],
    strings: [],
    tensors: [],
    graphs: [],
    sparseTensors: [],
    typeProtos: [],
    unknownFields: [],
  };
}

export function emptyNode(opType = ''): NodeProto {
  return {
    input: [],
    output: [],
    name: '',
    opType,
    domain: '',
    overload: '',
    attribute: [],
    docString: '',
    metadataProps: [],
    unknownFields: [],
  };
}

export function emptyGraph(name = ''): GraphProto {
  return {
    node: [],
    name,
    initializer: [],
    sparseInitializer: [],
    docString: '',
    input: [],
    output: [],
    valueInfo: [],
    quantizationAnnotation: [],
    metadataProps: [],
    unknownFields: [],
  };
}

export function emptyValueInfo(name = ''): ValueInfoProto {
  return { name, docString: '', metadataProps: [], unknownFields: [] };
}

export function emptyTypeProto(): TypeProto {
  return { denotation: '', unknownFields: [] };
}

export function emptyModel(): ModelProto {
  return {
    irVersion: 0,
    opsetImport: [],
    producerName: '',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    metadataProps: [],
    functions: [],
    unknownFields: [],
  };
}
