/**
 * The subset of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto3)
 * that fleetcast reads (model inputs, outputs, opset) and writes (small models
 * for tests and the demo). Field numbers are the ones in onnx.proto.
 */
import protobuf from 'protobufjs';

const ONNX_PROTO = `
syntax = "proto3";
package onnx;
message AttributeProto {
  string name = 1; float f = 2; int64 i = 3; bytes s = 4; TensorProto t = 5;
  repeated float floats = 7; repeated int64 ints = 8; repeated bytes strings = 9;
  int32 type = 20;
}
message ValueInfoProto { string name = 1; TypeProto type = 2; string doc_string = 3; }
message NodeProto {
  repeated string input = 1; repeated string output = 2; string name = 3; string op_type = 4;
  string domain = 7; repeated AttributeProto attribute = 5; string doc_string = 6;
}
message ModelProto {
  int64 ir_version = 1; repeated OperatorSetIdProto opset_import = 8; string producer_name = 2;
  string producer_version = 3; string domain = 4; int64 model_version = 5; string doc_string = 6;
  GraphProto graph = 7;
}
message GraphProto {
  repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5;
  string doc_string = 10; repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}
message TensorProto {
  repeated int64 dims = 1; int32 data_type = 2; repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true]; repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true]; string name = 8; bytes raw_data = 9;
  repeated double double_data = 10 [packed = true];
}
message TensorShapeProto {
  message Dimension { oneof value { int64 dim_value = 1; string dim_param = 2; } string denotation = 3; }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; }
  oneof value { Tensor tensor_type = 1; }
  string denotation = 6;
}
message OperatorSetIdProto { string domain = 1; int64 version = 2; }

// Read-side views of the same wire format (field numbers as above). Fields not
// declared here are skipped by length, so describing a 100 MB model does not
// decode its weights, nodes or raw_data.
message TensorNameOnly { string name = 8; }
message SparseTensorNameOnly { TensorNameOnly values = 1; }
message GraphInfoProto {
  repeated TensorNameOnly initializer = 5; repeated SparseTensorNameOnly sparse_initializer = 15;
  repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12;
}
message ModelInfoProto { int64 ir_version = 1; repeated OperatorSetIdProto opset_import = 8; GraphInfoProto graph = 7; }
`;

const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
export const ModelProto = root.lookupType('onnx.ModelProto');
/** ModelProto read for its interface only (opset, graph inputs/outputs, initializer names). */
export const ModelInfoProto = root.lookupType('onnx.ModelInfoProto');

/** TensorProto.DataType numbers (onnx.proto) ↔ fleetcast element type names. */
export const ONNX_ELEMENT_TYPES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64',
};
export const ELEMENT_TYPE_CODES: Record<string, number> = Object.fromEntries(Object.entries(ONNX_ELEMENT_TYPES).map(([k, v]) => [v, Number(k)]));
