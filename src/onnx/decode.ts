/**
 * ModelProto decoder on top of protobufjs's wire Reader.
 *
 * Hand-written per message (like Netron's reader) rather than reflection-based, because we need:
 * - zero-copy: `bytes` fields and packed numeric arrays stay subarray views of the input buffer;
 * - laziness: tensor values are not decoded here at all (see tensor-data.ts);
 * - lossless round trips: unknown fields are kept as raw bytes;
 * - exact int64 attributes (bigint) and bounds-checked lengths with byte offsets in errors.
 */
import { Reader } from 'protobufjs/minimal';
import { OnnxFormatError } from './errors';
import {
  AttributeProto,
  AttributeType,
  Dimension,
  emptyAttribute,
  emptyGraph,
  emptyModel,
  emptyNode,
  emptyTensor,
  emptyTypeProto,
  emptyValueInfo,
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

/** Deeper nesting than this (graphs in attributes, types in types) is treated as hostile input. */
const MAX_DEPTH = 64;

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

class WireReader {
  readonly r: Reader;
  readonly buf: Buffer;
  /** Offset of the tag of the field being read, for error messages. */
  fieldStart = 0;
  constructor(buf: Uint8Array) {
    // A Buffer view (no copy) gives fast utf8 decoding of sub-ranges.
    this.buf = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.r = Reader.create(this.buf);
  }

  get pos(): number {
    return this.r.pos;
  }

  /** Reads a length prefix and returns the end offset of the payload, checked against `end`. */
  lengthEnd(end: number): number {
    const at = this.r.pos;
    let len: number;
    try {
      len = this.r.size();
    } catch {
      throw new DecodeFault(`invalid or truncated length at byte ${at}`, at);
    }
    const stop = this.r.pos + len;
    if (stop > end) {
      throw new DecodeFault(`length ${len} at byte ${at} runs past the end of its message (byte ${end})`, at);
    }
    return stop;
  }

  bytes(end: number): Uint8Array {
    const stop = this.lengthEnd(end);
    const view = this.buf.subarray(this.r.pos, stop);
    this.r.pos = stop;
    return view;
  }

  string(end: number): string {
    const stop = this.lengthEnd(end);
    const s = stop === this.r.pos ? '' : this.buf.toString('utf8', this.r.pos, stop);
    this.r.pos = stop;
    return s;
  }

  /** Reads a varint as a JS number; exact up to 2^53, which covers dims, versions and counts. */
  int64Number(): number {
    // Fast path: values below 2^28 (nearly every dim and version) fit in four varint bytes.
    const buf = this.buf;
    let pos = this.r.pos;
    let value = 0;
    for (let shift = 0; shift < 28 && pos < buf.length; shift += 7) {
      const b = buf[pos++]!;
      value |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.r.pos = pos;
        return value;
      }
    }
    return Number(this.int64BigInt());
  }

  int64BigInt(): bigint {
    const buf = this.buf;
    let pos = this.r.pos;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    let b: number;
    // Low 28 bits.
    for (; shift < 28; shift += 7) {
      if (pos >= buf.length) throw new DecodeFault('truncated varint', pos);
      b = buf[pos++]!;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.r.pos = pos;
        return BigInt(lo >>> 0);
      }
    }
    // Bits 28..34 straddle lo/hi.
    if (pos >= buf.length) throw new DecodeFault('truncated varint', pos);
    b = buf[pos++]!;
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b >= 0x80) {
      for (shift = 3; shift < 32; shift += 7) {
        if (pos >= buf.length) throw new DecodeFault('truncated varint', pos);
        b = buf[pos++]!;
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
      }
      if (b! >= 0x80) throw new DecodeFault('varint longer than 10 bytes', pos);
    }
    this.r.pos = pos;
    return BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
  }

  skip(wireType: number, field: number): void {
    if (wireType === 3 || wireType === 4) {
      throw new DecodeFault(`unsupported group wire type in field ${field}`, this.r.pos);
    }
    this.r.skipType(wireType, 0, field);
  }

  /** Reads a repeated scalar element (packed or not) as an encoded chunk view. */
  packedChunk(wireType: number, end: number, scalarWire: number, field: number): Uint8Array {
    if (wireType === WIRE_LEN) return this.bytes(end);
    if (wireType !== scalarWire) throw wrongWire(field, wireType, this.fieldStart);
    const start = this.r.pos;
    this.r.skipType(wireType, 0, field);
    if (this.r.pos > end) throw new DecodeFault(`field ${field} runs past the end of its message`, start);
    return this.buf.subarray(start, this.r.pos);
  }
}

/** Internal: carries a byte offset until `decodeModel` turns it into an OnnxFormatError. */
class DecodeFault extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

function wrongWire(field: number, wire: number, at: number): DecodeFault {
  return new DecodeFault(`field ${field} has unexpected wire type ${wire}`, at);
}

type FieldHandler<T> = (w: WireReader, msg: T, field: number, wire: number, end: number, depth: number) => boolean;

/** Generic message loop: known fields go to `handle`, others are kept verbatim. */
function readMessage<T extends { unknownFields: Uint8Array[] }>(
  w: WireReader,
  end: number,
  msg: T,
  depth: number,
  handle: FieldHandler<T>,
): T {
  if (depth > MAX_DEPTH) throw new DecodeFault(`message nesting deeper than ${MAX_DEPTH}`, w.pos);
  while (w.r.pos < end) {
    const start = w.r.pos;
    const tag = w.r.uint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    w.fieldStart = start;
    if (field === 0) throw new DecodeFault('invalid tag with field number 0', start);
    if (wire !== WIRE_VARINT && wire !== WIRE_FIXED64 && wire !== WIRE_LEN && wire !== WIRE_FIXED32) {
      throw new DecodeFault(`field ${field} has invalid wire type ${wire}`, start);
    }
    if (!handle(w, msg, field, wire, end, depth)) {
      w.skip(wire, field);
      msg.unknownFields.push(w.buf.subarray(start, w.r.pos));
    }
    if (w.r.pos > end) throw new DecodeFault(`field ${field} runs past the end of its message (byte ${end})`, start);
  }
  return msg;
}

function expectWire(w: WireReader, field: number, wire: number, expected: number): void {
  if (wire !== expected) throw wrongWire(field, wire, w.fieldStart);
}

function str(w: WireReader, field: number, wire: number, end: number): string {
  expectWire(w, field, wire, WIRE_LEN);
  return w.string(end);
}

function int64(w: WireReader, field: number, wire: number): number {
  expectWire(w, field, wire, WIRE_VARINT);
  return w.int64Number();
}

/** Repeated int64 as numbers (packed or not): dims. */
function int64List(w: WireReader, field: number, wire: number, end: number, out: number[]): void {
  if (wire === WIRE_LEN) {
    const stop = w.lengthEnd(end);
    while (w.r.pos < stop) out.push(w.int64Number());
    if (w.r.pos !== stop) throw new DecodeFault(`packed field ${field} overruns its length`, w.pos);
  } else {
    out.push(int64(w, field, wire));
  }
}

function nested<T>(w: WireReader, field: number, wire: number, end: number, decode: (w: WireReader, end: number) => T): T {
  expectWire(w, field, wire, WIRE_LEN);
  const stop = w.lengthEnd(end);
  return decode(w, stop);
}

function decodeEntry(w: WireReader, end: number): StringStringEntry {
  const e: StringStringEntry & { unknownFields: Uint8Array[] } = { key: '', value: '', unknownFields: [] };
  readMessage(w, end, e, 0, (w, m, f, wire, end) => {
    if (f === 1) m.key = str(w, f, wire, end);
    else if (f === 2) m.value = str(w, f, wire, end);
    else return false;
    return true;
  });
  return { key: e.key, value: e.value };
}

function decodeOpset(w: WireReader, end: number): OperatorSetId {
  const o: OperatorSetId & { unknownFields: Uint8Array[] } = { domain: '', version: 0, unknownFields: [] };
  readMessage(w, end, o, 0, (w, m, f, wire, end) => {
    if (f === 1) m.domain = str(w, f, wire, end);
    else if (f === 2) m.version = int64(w, f, wire);
    else return false;
    return true;
  });
  return { domain: o.domain, version: o.version };
}

export function decodeTensorAt(w: WireReader, end: number, depth: number): TensorProto {
  return readMessage(w, end, emptyTensor(), depth, (w, t, f, wire, end) => {
    switch (f) {
      case 1:
        int64List(w, f, wire, end, t.dims);
        return true;
      case 2:
        expectWire(w, f, wire, WIRE_VARINT);
        t.dataType = w.r.int32();
        return true;
      case 3:
        t.segment = nested(w, f, wire, end, (w, end) => {
          const s = { begin: 0, end: 0, unknownFields: [] as Uint8Array[] };
          readMessage(w, end, s, depth + 1, (w, m, f, wire) => {
            if (f === 1) m.begin = int64(w, f, wire);
            else if (f === 2) m.end = int64(w, f, wire);
            else return false;
            return true;
          });
          return { begin: s.begin, end: s.end };
        });
        return true;
      case 4:
        t.floatData.push(w.packedChunk(wire, end, WIRE_FIXED32, f));
        return true;
      case 5:
        t.int32Data.push(w.packedChunk(wire, end, WIRE_VARINT, f));
        return true;
      case 6:
        expectWire(w, f, wire, WIRE_LEN);
        t.stringData.push(w.bytes(end));
        return true;
      case 7:
        t.int64Data.push(w.packedChunk(wire, end, WIRE_VARINT, f));
        return true;
      case 8:
        t.name = str(w, f, wire, end);
        return true;
      case 9:
        expectWire(w, f, wire, WIRE_LEN);
        t.rawData = w.bytes(end);
        return true;
      case 10:
        t.doubleData.push(w.packedChunk(wire, end, WIRE_FIXED64, f));
        return true;
      case 11:
        t.uint64Data.push(w.packedChunk(wire, end, WIRE_VARINT, f));
        return true;
      case 12:
        t.docString = str(w, f, wire, end);
        return true;
      case 13:
        t.externalData.push(nested(w, f, wire, end, decodeEntry));
        return true;
      case 14:
        expectWire(w, f, wire, WIRE_VARINT);
        t.dataLocation = w.r.int32();
        return true;
      case 16:
        t.metadataProps.push(nested(w, f, wire, end, decodeEntry));
        return true;
      default:
        return false;
    }
  });
}

function decodeSparseTensor(w: WireReader, end: number, depth: number): SparseTensorProto {
  const s: SparseTensorProto = { dims: [], unknownFields: [] };
  return readMessage(w, end, s, depth, (w, m, f, wire, end, depth) => {
    if (f === 1) m.values = nested(w, f, wire, end, (w, e) => decodeTensorAt(w, e, depth + 1));
    else if (f === 2) m.indices = nested(w, f, wire, end, (w, e) => decodeTensorAt(w, e, depth + 1));
    else if (f === 3) int64List(w, f, wire, end, m.dims);
    else return false;
    return true;
  });
}

function decodeShape(w: WireReader, end: number, depth: number): TensorShape {
  const shape: TensorShape = { dims: [], unknownFields: [] };
  return readMessage(w, end, shape, depth, (w, m, f, wire, end, depth) => {
    if (f !== 1) return false;
    m.dims.push(
      nested(w, f, wire, end, (w, end) => {
        const d: Dimension = { denotation: '', unknownFields: [] };
        return readMessage(w, end, d, depth + 1, (w, d, f, wire, end) => {
          if (f === 1) d.value = int64(w, f, wire);
          else if (f === 2) d.param = str(w, f, wire, end);
          else if (f === 3) d.denotation = str(w, f, wire, end);
          else return false;
          return true;
        });
      }),
    );
    return true;
  });
}

function decodeType(w: WireReader, end: number, depth: number): TypeProto {
  return readMessage(w, end, emptyTypeProto(), depth, (w, t, f, wire, end, depth) => {
    const d = depth + 1;
    switch (f) {
      case 1:
      case 8: {
        const tensor = nested(w, f, wire, end, (w, end) => {
          const tt: { elemType: number; shape?: TensorShape; unknownFields: Uint8Array[] } = { elemType: 0, unknownFields: [] };
          return readMessage(w, end, tt, d, (w, m, f, wire, end) => {
            if (f === 1) {
              expectWire(w, f, wire, WIRE_VARINT);
              m.elemType = w.r.int32();
            } else if (f === 2) m.shape = nested(w, f, wire, end, (w, e) => decodeShape(w, e, d + 1));
            else return false;
            return true;
          });
        });
        if (f === 1) t.tensorType = tensor;
        else t.sparseTensorType = tensor;
        return true;
      }
      case 4:
      case 9: {
        const inner = nested(w, f, wire, end, (w, end) => {
          const s: { elemType?: TypeProto; unknownFields: Uint8Array[] } = { unknownFields: [] };
          return readMessage(w, end, s, d, (w, m, f, wire, end) => {
            if (f !== 1) return false;
            m.elemType = nested(w, f, wire, end, (w, e) => decodeType(w, e, d + 1));
            return true;
          });
        });
        if (f === 4) t.sequenceType = inner;
        else t.optionalType = inner;
        return true;
      }
      case 5:
        t.mapType = nested(w, f, wire, end, (w, end) => {
          const m: { keyType: number; valueType?: TypeProto; unknownFields: Uint8Array[] } = { keyType: 0, unknownFields: [] };
          return readMessage(w, end, m, d, (w, m, f, wire, end) => {
            if (f === 1) {
              expectWire(w, f, wire, WIRE_VARINT);
              m.keyType = w.r.int32();
            } else if (f === 2) m.valueType = nested(w, f, wire, end, (w, e) => decodeType(w, e, d + 1));
            else return false;
            return true;
          });
        });
        return true;
      case 6:
        t.denotation = str(w, f, wire, end);
        return true;
      default:
        return false;
    }
  });
}

function decodeValueInfo(w: WireReader, end: number, depth: number): ValueInfoProto {
  return readMessage(w, end, emptyValueInfo(), depth, (w, v, f, wire, end, depth) => {
    if (f === 1) v.name = str(w, f, wire, end);
    else if (f === 2) v.type = nested(w, f, wire, end, (w, e) => decodeType(w, e, depth + 1));
    else if (f === 3) v.docString = str(w, f, wire, end);
    else if (f === 4) v.metadataProps.push(nested(w, f, wire, end, decodeEntry));
    else return false;
    return true;
  });
}

function decodeAttribute(w: WireReader, end: number, depth: number): AttributeProto {
  return readMessage(w, end, emptyAttribute(), depth, (w, a, f, wire, end, depth) => {
    const d = depth + 1;
    switch (f) {
      case 1:
        a.name = str(w, f, wire, end);
        return true;
      case 21:
        a.refAttrName = str(w, f, wire, end);
        return true;
      case 13:
        a.docString = str(w, f, wire, end);
        return true;
      case 20:
        expectWire(w, f, wire, WIRE_VARINT);
        a.type = w.r.int32() as AttributeType;
        return true;
      case 2:
        expectWire(w, f, wire, WIRE_FIXED32);
        a.f = w.r.float();
        return true;
      case 3:
        expectWire(w, f, wire, WIRE_VARINT);
        a.i = w.int64BigInt();
        return true;
      case 4:
        expectWire(w, f, wire, WIRE_LEN);
        a.s = w.bytes(end);
        return true;
      case 5:
        a.t = nested(w, f, wire, end, (w, e) => decodeTensorAt(w, e, d));
        return true;
      case 6:
        a.g = nested(w, f, wire, end, (w, e) => decodeGraphAt(w, e, d));
        return true;
      case 22:
        a.sparseTensor = nested(w, f, wire, end, (w, e) => decodeSparseTensor(w, e, d));
        return true;
      case 14:
        a.tp = nested(w, f, wire, end, (w, e) => decodeType(w, e, d));
        return true;
      case 7:
        if (wire === WIRE_LEN) {
          const stop = w.lengthEnd(end);
          if ((stop - w.r.pos) % 4 !== 0) throw new DecodeFault('packed floats length is not a multiple of 4', w.pos);
          while (w.r.pos < stop) a.floats.push(w.r.float());
        } else {
          expectWire(w, f, wire, WIRE_FIXED32);
          a.floats.push(w.r.float());
        }
        return true;
      case 8:
        if (wire === WIRE_LEN) {
          const stop = w.lengthEnd(end);
          while (w.r.pos < stop) a.ints.push(w.int64BigInt());
          if (w.r.pos !== stop) throw new DecodeFault('packed ints overrun their length', w.pos);
        } else {
          expectWire(w, f, wire, WIRE_VARINT);
          a.ints.push(w.int64BigInt());
        }
        return true;
      case 9:
        expectWire(w, f, wire, WIRE_LEN);
        a.strings.push(w.bytes(end));
        return true;
      case 10:
        a.tensors.push(nested(w, f, wire, end, (w, e) => decodeTensorAt(w, e, d)));
        return true;
      case 11:
        a.graphs.push(nested(w, f, wire, end, (w, e) => decodeGraphAt(w, e, d)));
        return true;
      case 23:
        a.sparseTensors.push(nested(w, f, wire, end, (w, e) => decodeSparseTensor(w, e, d)));
        return true;
      case 15:
        a.typeProtos.push(nested(w, f, wire, end, (w, e) => decodeType(w, e, d)));
        return true;
      default:
        return false;
    }
  });
}

function decodeNode(w: WireReader, end: number, depth: number): NodeProto {
  return readMessage(w, end, emptyNode(), depth, (w, n, f, wire, end, depth) => {
    switch (f) {
      case 1:
        n.input.push(str(w, f, wire, end));
        return true;
      case 2:
        n.output.push(str(w, f, wire, end));
        return true;
      case 3:
        n.name = str(w, f, wire, end);
        return true;
      case 4:
        n.opType = str(w, f, wire, end);
        return true;
      case 7:
        n.domain = str(w, f, wire, end);
        return true;
      case 8:
        n.overload = str(w, f, wire, end);
        return true;
      case 5:
        n.attribute.push(nested(w, f, wire, end, (w, e) => decodeAttribute(w, e, depth + 1)));
        return true;
      case 6:
        n.docString = str(w, f, wire, end);
        return true;
      case 9:
        n.metadataProps.push(nested(w, f, wire, end, decodeEntry));
        return true;
      default:
        return false; // device_configurations (10) and newer fields pass through untouched
    }
  });
}

function decodeAnnotation(w: WireReader, end: number, depth: number): TensorAnnotation {
  const a: TensorAnnotation = { tensorName: '', quantParameterTensorNames: [], unknownFields: [] };
  return readMessage(w, end, a, depth, (w, a, f, wire, end) => {
    if (f === 1) a.tensorName = str(w, f, wire, end);
    else if (f === 2) a.quantParameterTensorNames.push(nested(w, f, wire, end, decodeEntry));
    else return false;
    return true;
  });
}

function decodeGraphAt(w: WireReader, end: number, depth: number): GraphProto {
  return readMessage(w, end, emptyGraph(), depth, (w, g, f, wire, end, depth) => {
    const d = depth + 1;
    switch (f) {
      case 1:
        g.node.push(nested(w, f, wire, end, (w, e) => decodeNode(w, e, d)));
        return true;
      case 2:
        g.name = str(w, f, wire, end);
        return true;
      case 5:
        g.initializer.push(nested(w, f, wire, end, (w, e) => decodeTensorAt(w, e, d)));
        return true;
      case 15:
        g.sparseInitializer.push(nested(w, f, wire, end, (w, e) => decodeSparseTensor(w, e, d)));
        return true;
      case 10:
        g.docString = str(w, f, wire, end);
        return true;
      case 11:
        g.input.push(nested(w, f, wire, end, (w, e) => decodeValueInfo(w, e, d)));
        return true;
      case 12:
        g.output.push(nested(w, f, wire, end, (w, e) => decodeValueInfo(w, e, d)));
        return true;
      case 13:
        g.valueInfo.push(nested(w, f, wire, end, (w, e) => decodeValueInfo(w, e, d)));
        return true;
      case 14:
        g.quantizationAnnotation.push(nested(w, f, wire, end, (w, e) => decodeAnnotation(w, e, d)));
        return true;
      case 16:
        g.metadataProps.push(nested(w, f, wire, end, decodeEntry));
        return true;
      default:
        return false;
    }
  });
}

function decodeFunction(w: WireReader, end: number, depth: number): FunctionProto {
  const fn: FunctionProto = {
    name: '',
    input: [],
    output: [],
    attribute: [],
    attributeProto: [],
    node: [],
    docString: '',
    opsetImport: [],
    domain: '',
    overload: '',
    valueInfo: [],
    metadataProps: [],
    unknownFields: [],
  };
  return readMessage(w, end, fn, depth, (w, fn, f, wire, end, depth) => {
    const d = depth + 1;
    switch (f) {
      case 1:
        fn.name = str(w, f, wire, end);
        return true;
      case 4:
        fn.input.push(str(w, f, wire, end));
        return true;
      case 5:
        fn.output.push(str(w, f, wire, end));
        return true;
      case 6:
        fn.attribute.push(str(w, f, wire, end));
        return true;
      case 11:
        fn.attributeProto.push(nested(w, f, wire, end, (w, e) => decodeAttribute(w, e, d)));
        return true;
      case 7:
        fn.node.push(nested(w, f, wire, end, (w, e) => decodeNode(w, e, d)));
        return true;
      case 8:
        fn.docString = str(w, f, wire, end);
        return true;
      case 9:
        fn.opsetImport.push(nested(w, f, wire, end, decodeOpset));
        return true;
      case 10:
        fn.domain = str(w, f, wire, end);
        return true;
      case 13:
        fn.overload = str(w, f, wire, end);
        return true;
      case 12:
        fn.valueInfo.push(nested(w, f, wire, end, (w, e) => decodeValueInfo(w, e, d)));
        return true;
      case 14:
        fn.metadataProps.push(nested(w, f, wire, end, decodeEntry));
        return true;
      default:
        return false;
    }
  });
}

function decodeModelAt(w: WireReader, end: number): ModelProto {
  return readMessage(w, end, emptyModel(), 0, (w, m, f, wire, end) => {
    switch (f) {
      case 1:
        m.irVersion = int64(w, f, wire);
        return true;
      case 8:
        m.opsetImport.push(nested(w, f, wire, end, decodeOpset));
        return true;
      case 2:
        m.producerName = str(w, f, wire, end);
        return true;
      case 3:
        m.producerVersion = str(w, f, wire, end);
        return true;
      case 4:
        m.domain = str(w, f, wire, end);
        return true;
      case 5:
        m.modelVersion = int64(w, f, wire);
        return true;
      case 6:
        m.docString = str(w, f, wire, end);
        return true;
      case 7:
        m.graph = nested(w, f, wire, end, (w, e) => decodeGraphAt(w, e, 1));
        return true;
      case 14:
        m.metadataProps.push(nested(w, f, wire, end, decodeEntry));
        return true;
      case 25:
        m.functions.push(nested(w, f, wire, end, (w, e) => decodeFunction(w, e, 1)));
        return true;
      default:
        return false;
    }
  });
}

/** Turns any decoding failure into an OnnxFormatError that names the file and the byte offset. */
function withOffsets<T>(w: WireReader, file: string, what: string, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (err instanceof OnnxFormatError) throw err;
    const offset = err instanceof DecodeFault ? err.offset : w.pos;
    const detail = err instanceof Error ? err.message : String(err);
    throw new OnnxFormatError(`${file}: corrupt ${what} at byte ${offset}: ${detail}`, { file, offset });
  }
}

/**
 * Decodes a serialized ModelProto. `buf` must stay alive as long as the model: tensors and
 * strings of bytes are views into it.
 */
export function decodeModel(buf: Uint8Array, file = '<buffer>'): ModelProto {
  const w = new WireReader(buf);
  const model = withOffsets(w, file, 'ONNX protobuf', () => decodeModelAt(w, buf.length));
  return model;
}

/** Decodes a standalone TensorProto (ONNX test-data `.pb` files). */
export function decodeTensor(buf: Uint8Array, file = '<buffer>'): TensorProto {
  const w = new WireReader(buf);
  return withOffsets(w, file, 'TensorProto', () => decodeTensorAt(w, buf.length, 0));
}

export type { PackedField };
