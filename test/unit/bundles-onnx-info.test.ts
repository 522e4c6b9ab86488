import { describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { readModelInfo } from '../../bundle-build/onnx-info.js';
import { ModelProto } from '../../bundle-build/onnx-proto.js';

const code = (c: string) => expect.objectContaining({ code: c });

describe('readModelInfo', () => {
  it('describes the categorical MLP: names, element types, dynamic dims by name, opset', () => {
    expect(readModelInfo(buildMlp({ categorical: true }))).toEqual({
      inputs: [
        { name: 'x', type: 'float32', shape: ['batch', 4] },
        { name: 'category', type: 'int64', shape: ['batch', 1] },
      ],
      outputs: [{ name: 'y', type: 'float32', shape: ['batch', 2] }],
      opset: 13,
    });
    expect(readModelInfo(buildMlp({ features: 16, outputs: 3, opset: 17 }))).toEqual({
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 16] }],
      outputs: [{ name: 'y', type: 'float32', shape: ['batch', 3] }],
      opset: 17,
    });
  });

  it('agrees with what onnxruntime reports for the same model', async () => {
    const bytes = buildMlp({ categorical: true, features: 6 });
    const s = await ort.InferenceSession.create(bytes);
    try {
      const info = readModelInfo(bytes);
      expect(info.inputs.map((t) => t.name)).toEqual([...s.inputNames]);
      expect(info.outputs.map((t) => t.name)).toEqual([...s.outputNames]);
    } finally {
      await s.release();
    }
  });

  it('leaves out graph inputs that are initializers, and names unnamed dynamic dims per tensor', () => {
    const m = ModelProto.toObject(ModelProto.decode(buildMlp()), { longs: Number }) as { graph: { input: unknown[] } };
    m.graph.input.push({ name: 'W0', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 4 }, { dim_value: 16 }] } } } });
    (m.graph.input[0] as { type: { tensor_type: { shape: { dim: unknown[] } } } }).type.tensor_type.shape.dim[0] = {};
    const info = readModelInfo(ModelProto.encode(ModelProto.fromObject(m)).finish());
    expect(info.inputs).toEqual([{ name: 'x', type: 'float32', shape: ['x:0', 4] }]);
  });

  it('describes a 100 MB model', () => {
    const bytes = buildMlp({ padFloats: 25_000_000 });
    expect(bytes.length).toBeGreaterThan(100_000_000);
    expect(readModelInfo(bytes).inputs[0].shape).toEqual(['batch', 4]);
  });

  it('refuses what is not an ONNX model with BUNDLE_ERR_BAD_MODEL', () => {
    for (const bytes of [Buffer.from('hello world, not a model'), Buffer.alloc(0), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])]) {
      expect(() => readModelInfo(bytes)).toThrow(code('BUNDLE_ERR_BAD_MODEL'));
    }
    const m = ModelProto.toObject(ModelProto.decode(buildMlp()), { longs: Number }) as { graph: { input: { type: unknown }[] }; opset_import: unknown[] };
    const noOpset = { ...m, opset_import: [] };
    expect(() => readModelInfo(ModelProto.encode(ModelProto.fromObject(noOpset)).finish())).toThrow(code('BUNDLE_ERR_BAD_MODEL'));
    const bf16 = structuredClone(m);
    (bf16.graph.input[0].type as { tensor_type: { elem_type: number } }).tensor_type.elem_type = 16; // bfloat16
    expect(() => readModelInfo(ModelProto.encode(ModelProto.fromObject(bf16)).finish())).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_MODEL', message: expect.stringContaining('"x"') }));
    const noShape = structuredClone(m);
    noShape.graph.input[0].type = { tensor_type: { elem_type: 1 } };
    expect(() => readModelInfo(ModelProto.encode(ModelProto.fromObject(noShape)).finish())).toThrow(code('BUNDLE_ERR_BAD_MODEL'));
  });
});
