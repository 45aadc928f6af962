/**
 * ModelProto encoder on top of protobufjs's wire Writer: the inverse of decode.ts.
 *
 * Fields are written in field-number order and with the packing onnx.proto declares (dims and
 * attribute lists unpacked, tensor data packed), as the reference C++ serializer does, so an
 * unmodified model re-encodes byte for byte. Unknown fields kept by the decoder are appended
 * verbatim, and packed arrays (still in encoded form) are written without being decoded.
 */
import { Writer } from 'protobufjs/minimal';
import {
  AttributeProto,
  Dimension,
  FunctionProto,
  GraphProto,
  ModelProto,
  NodeProto,
  OperatorSetId,
  PackedField,
  SparseTensorProto,
  StringStringEntry,
  TensorAnnotation,
  TensorProto,
  TensorShape,
  TypeProto,
  ValueInfoProto,
} from './proto';

const VARINT = 0;
const LEN = 2;
const FIXED32 = 5;

function tag(w: Writer, field: number, wire: number): void {
  w.uint32(((field << 3) | wire) >>> 0);
}

/** int64 varint from a bigint or a safe-integer number, two's complement for negatives. */
function int64(w: Writer, v: bigint | number): void {
  if (typeof v === 'number' && v >= 0 && v <= 0xffffffff) {
    w.uint32(v);
    return;
  }
  // Negative and large values: up to ten 7-bit groups of the two's-complement bits.
  let big = BigInt.asUintN(64, BigInt(v));
  const out = new Uint8Array(10);
  let n = 0;
  while (big > 0x7fn) {
    out[n++] = Number(big & 0x7fn) | 0x80;
    big >>= 7n;
  }
  out[n++] = Number(big);
  w.raw(out.subarray(0, n));
}

function str(w: Writer, field: number, s: string): void {
  tag(w, field, LEN);
  w.bytes(Buffer.from(s, 'utf8'));
}

function optStr(w: Writer, field: number, s: string): void {
  if (s) str(w, field, s);
}

function bytes(w: Writer, field: number, b: Uint8Array): void {
  tag(w, field, LEN);
  w.bytes(b);
}

function int64Field(w: Writer, field: number, v: number | bigint): void {
  tag(w, field, VARINT);
  int64(w, v);
}

function int32Field(w: Writer, field: number, v: number): void {
  tag(w, field, VARINT);
  w.int32(v);
}

function packed(w: Writer, field: number, chunks: PackedField): void {
  if (chunks.length === 0) return;
  let len = 0;
  for (const c of chunks) len += c.length;
  tag(w, field, LEN);
  w.uint32(len);
  for (const c of chunks) w.raw(c);
}

function message<T>(w: Writer, field: number, value: T, encode: (w: Writer, v: T) => void): void {
  tag(w, field, LEN);
  w.fork();
  encode(w, value);
  w.ldelim();
}

function unknown(w: Writer, fields: Uint8Array[]): void {
  for (const f of fields) w.raw(f);
}

function entry(w: Writer, e: StringStringEntry): void {
  optStr(w, 1, e.key);
  optStr(w, 2, e.value);
}

function entries(w: Writer, field: number, list: StringStringEntry[]): void {
  for (const e of list) message(w, field, e, entry);
}

function opset(w: Writer, o: OperatorSetId): void {
  str(w, 1, o.domain); // exporters write the default domain explicitly, as an empty string
  int64Field(w, 2, o.version);
}

export function encodeTensorTo(w: Writer, t: TensorProto): void {
  for (const d of t.dims) int64Field(w, 1, d);
  if (t.dataType) int32Field(w, 2, t.dataType);
  if (t.segment) {
    message(w, 3, t.segment, (w, s) => {
      int64Field(w, 1, s.begin);
      int64Field(w, 2, s.end);
    });
  }
  packed(w, 4, t.floatData);
  packed(w, 5, t.int32Data);
  for (const s of t.stringData) bytes(w, 6, s);
  packed(w, 7, t.int64Data);
  optStr(w, 8, t.name);
  if (t.rawData) bytes(w, 9, t.rawData);
  packed(w, 10, t.doubleData);
  packed(w, 11, t.uint64Data);
  optStr(w, 12, t.docString);
  entries(w, 13, t.externalData);
  if (t.dataLocation) int32Field(w, 14, t.dataLocation);
  entries(w, 16, t.metadataProps);
  unknown(w, t.unknownFields);
}

function sparseTensor(w: Writer, s: SparseTensorProto): void {
  if (s.values) message(w, 1, s.values, encodeTensorTo);
  if (s.indices) message(w, 2, s.indices, encodeTensorTo);
  for (const d of s.dims) int64Field(w, 3, d);
  unknown(w, s.unknownFields);
}

function dimension(w: Writer, d: Dimension): void {
  if (d.value !== undefined) int64Field(w, 1, d.value);
  if (d.param !== undefined) str(w, 2, d.param);
  optStr(w, 3, d.denotation);
  unknown(w, d.unknownFields);
}

function shape(w: Writer, s: TensorShape): void {
  for (const d of s.dims) message(w, 1, d, dimension);
  unknown(w, s.unknownFields);
}

function typeProto(w: Writer, t: TypeProto): void {
  const tensorLike = (w: Writer, tt: { elemType: number; shape?: TensorShape; unknownFields: Uint8Array[] }) => {
    if (tt.elemType) int32Field(w, 1, tt.elemType);
    if (tt.shape) message(w, 2, tt.shape, shape);
    unknown(w, tt.unknownFields);
  };
  const elemOnly = (w: Writer, s: { elemType?: TypeProto; unknownFields: Uint8Array[] }) => {
    if (s.elemType) message(w, 1, s.elemType, typeProto);
    unknown(w, s.unknownFields);
  };
  if (t.tensorType) message(w, 1, t.tensorType, tensorLike);
  if (t.sequenceType) message(w, 4, t.sequenceType, elemOnly);
  if (t.mapType) {
    message(w, 5, t.mapType, (w, m) => {
      if (m.keyType) int32Field(w, 1, m.keyType);
      if (m.valueType) message(w, 2, m.valueType, typeProto);
      unknown(w, m.unknownFields);
    });
  }
  optStr(w, 6, t.denotation);
  if (t.sparseTensorType) message(w, 8, t.sparseTensorType, tensorLike);
  if (t.optionalType) message(w, 9, t.optionalType, elemOnly);
  unknown(w, t.unknownFields);
}

function valueInfo(w: Writer, v: ValueInfoProto): void {
  optStr(w, 1, v.name);
  if (v.type) message(w, 2, v.type, typeProto);
  optStr(w, 3, v.docString);
  entries(w, 4, v.metadataProps);
  unknown(w, v.unknownFields);
}

function attribute(w: Writer, a: AttributeProto): void {
  optStr(w, 1, a.name);
  if (a.f !== undefined) {
    tag(w, 2, FIXED32);
    w.float(a.f);
  }
  if (a.i !== undefined) int64Field(w, 3, a.i);
  if (a.s !== undefined) bytes(w, 4, a.s);
  if (a.t) message(w, 5, a.t, encodeTensorTo);
  if (a.g) message(w, 6, a.g, encodeGraphTo);
  for (const f of a.floats) {
    tag(w, 7, FIXED32);
    w.float(f);
  }
  for (const i of a.ints) int64Field(w, 8, i);
  for (const s of a.strings) bytes(w, 9, s);
  for (const t of a.tensors) message(w, 10, t, encodeTensorTo);
  for (const g of a.graphs) message(w, 11, g, encodeGraphTo);
  optStr(w, 13, a.docString);
  if (a.tp) message(w, 14, a.tp, typeProto);
  for (const t of a.typeProtos) message(w, 15, t, typeProto);
  if (a.type) int32Field(w, 20, a.type);
  optStr(w, 21, a.refAttrName);
  if (a.sparseTensor) message(w, 22, a.sparseTensor, sparseTensor);
  for (const s of a.sparseTensors) message(w, 23, s, sparseTensor);
  unknown(w, a.unknownFields);
}

function node(w: Writer, n: NodeProto): void {
  for (const i of n.input) str(w, 1, i);
  for (const o of n.output) str(w, 2, o);
  optStr(w, 3, n.name);
  optStr(w, 4, n.opType);
  for (const a of n.attribute) message(w, 5, a, attribute);
  optStr(w, 6, n.docString);
  optStr(w, 7, n.domain);
  optStr(w, 8, n.overload);
  entries(w, 9, n.metadataProps);
  unknown(w, n.unknownFields);
}

function annotation(w: Writer, a: TensorAnnotation): void {
  optStr(w, 1, a.tensorName);
  entries(w, 2, a.quantParameterTensorNames);
  unknown(w, a.unknownFields);
}

export function encodeGraphTo(w: Writer, g: GraphProto): void {
  for (const n of g.node) message(w, 1, n, node);
  optStr(w, 2, g.name);
  for (const t of g.initializer) message(w, 5, t, encodeTensorTo);
  optStr(w, 10, g.docString);
  for (const v of g.input) message(w, 11, v, valueInfo);
  for (const v of g.output) message(w, 12, v, valueInfo);
  for (const v of g.valueInfo) message(w, 13, v, valueInfo);
  for (const a of g.quantizationAnnotation) message(w, 14, a, annotation);
  for (const s of g.sparseInitializer) message(w, 15, s, sparseTensor);
  entries(w, 16, g.metadataProps);
  unknown(w, g.unknownFields);
}

function fn(w: Writer, f: FunctionProto): void {
  optStr(w, 1, f.name);
  for (const i of f.input) str(w, 4, i);
  for (const o of f.output) str(w, 5, o);
  for (const a of f.attribute) str(w, 6, a);
  for (const n of f.node) message(w, 7, n, node);
  optStr(w, 8, f.docString);
  for (const o of f.opsetImport) message(w, 9, o, opset);
  optStr(w, 10, f.domain);
  for (const a of f.attributeProto) message(w, 11, a, attribute);
  for (const v of f.valueInfo) message(w, 12, v, valueInfo);
  optStr(w, 13, f.overload);
  entries(w, 14, f.metadataProps);
  unknown(w, f.unknownFields);
}

/** Serializes a model. Throws if the result would exceed protobuf's 2 GB limit. */
export function encodeModel(m: ModelProto): Uint8Array {
  const w = Writer.create();
  if (m.irVersion) int64Field(w, 1, m.irVersion);
  optStr(w, 2, m.producerName);
  optStr(w, 3, m.producerVersion);
  optStr(w, 4, m.domain);
  if (m.modelVersion) int64Field(w, 5, m.modelVersion);
  optStr(w, 6, m.docString);
  if (m.graph) message(w, 7, m.graph, encodeGraphTo);
  for (const o of m.opsetImport) message(w, 8, o, opset);
  entries(w, 14, m.metadataProps);
  for (const f of m.functions) message(w, 25, f, fn);
  unknown(w, m.unknownFields);
  return w.finish();
}

/** Serializes one TensorProto (ONNX test-data `.pb` files). */
export function encodeTensor(t: TensorProto): Uint8Array {
  const w = Writer.create();
  encodeTensorTo(w, t);
  return w.finish();
}

export const PROTOBUF_LIMIT_BYTES = 2 ** 31 - 1;
