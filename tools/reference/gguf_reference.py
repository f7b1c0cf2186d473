#!/usr/bin/env python3
"""Independent reference for Tandem's GGUF reader: llama.cpp's own Python library, the `gguf` package.

  gguf_reference.py OUT.gguf
      writes OUT.gguf with gguf.GGUFWriter — metadata of every value type (arrays of strings and of numbers),
      a 64-byte alignment, and tensors in F32, F16, BF16, Q8_0 and Q4_0 (quantized by gguf.quants) — then reads
      it back with gguf.GGUFReader and prints as JSON what that reader found: version, alignment, the data
      section's start, each metadata key with its type name and value (in file order, the reader's own bookkeeping
      keys GGUF.* left out), and each tensor's name, ggml type number, row-major shape, data offset (relative to
      the data section), byte count, and the sum and first 16 bytes (hex) of its data.
"""
import json
import sys

import numpy as np
import gguf


def main(path):
    writer = gguf.GGUFWriter(path, "llama")
    writer.data_alignment = 64
    writer.add_uint32("general.alignment", 64)
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4000000000)
    writer.add_int32("test.i32", -2000000000)
    writer.add_float32("test.f32", 0.15625)
    writer.add_uint64("test.u64", 18000000000000000000)
    writer.add_int64("test.i64", -9000000000000000000)
    writer.add_float64("test.f64", -2.5e-300)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "naïve ✓ text")
    writer.add_array("test.strings", ["a", "", "ünï"])
    writer.add_array("test.ints", [1, -2, 3])
    writer.add_array("test.floats", [0.5, -1.25])
    random = np.random.default_rng(7)
    tensors = [
        ("f32.weight", random.standard_normal((3, 5)).astype(np.float32), None),
        ("f16.weight", random.standard_normal((2, 64)).astype(np.float16), None),
        ("bf16.weight", random.standard_normal((4, 32)).astype(np.float32), gguf.GGMLQuantizationType.BF16),
        ("q8_0.weight", random.standard_normal((4, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0),
        ("q4_0.weight", random.standard_normal((2, 96)).astype(np.float32), gguf.GGMLQuantizationType.Q4_0),
    ]
    for name, values, qtype in tensors:
        if qtype is None:
            writer.add_tensor(name, values)
        else:
            data = gguf.quants.quantize(values, qtype)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    reader = gguf.GGUFReader(path)
    names = {t.value: t.name.lower() for t in gguf.GGUFValueType}
    metadata = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        kind = names[field.types[0]]
        if kind == "array":
            element = names[field.types[1]]
            values = [field.parts[i].tolist()[0] if element != "string" else bytes(field.parts[i]).decode("utf-8") for i in field.data]
            metadata.append([key, "array", element, values])
        elif kind == "string":
            metadata.append([key, kind, bytes(field.parts[field.data[0]]).decode("utf-8")])
        else:
            metadata.append([key, kind, field.parts[field.data[0]].tolist()[0]])
    out = {
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata": metadata,
        "tensors": [
            {"name": t.name, "type": int(t.tensor_type), "shape": [int(x) for x in reversed(t.shape.tolist())],
             "offset": int(t.data_offset) - reader.data_offset, "bytes": int(t.n_bytes),
             "byte_sum": int(np.frombuffer(t.data.tobytes(), dtype=np.uint8).sum()), "head": t.data.tobytes()[:16].hex()}
            for t in reader.tensors
        ],
    }
    print(json.dumps(out, default=lambda value: value.item()))


if __name__ == "__main__":
    main(sys.argv[1])
