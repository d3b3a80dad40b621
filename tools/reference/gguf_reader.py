#!/usr/bin/python3
# Interpreter: /usr/bin/python3 (Debian's, with python3-numpy from apt).
# The pyenv `python3` on PATH has no numpy; run these scripts as `/usr/bin/python3 ...`.
"""Minimal GGUF (v2/v3) reader in pure Python + numpy.

Independent reference code for cross-checking the strata C++ engine: it shares no
code with it. Written from the GGUF file-format description:

    header   : magic "GGUF" (4 bytes) | version u32 | tensor_count u64 | kv_count u64
    metadata : kv_count x (key: string, value_type: u32, value)
    tensors  : tensor_count x (name: string, n_dims: u32, dims: n_dims x u64,
                               ggml_type: u32, offset: u64)
    padding  : to a multiple of general.alignment (default 32)
    data     : tensor bytes; each tensor at data_start + offset

  string = u64 length + UTF-8 bytes; array = elem_type u32 + count u64 + elements.
  All little-endian. (Version 1 used u32 counts/lengths; it is not supported.)

Dims are listed fastest-varying first (ggml ne[0], ne[1], ...), so a GGUF tensor with
dims [cols, rows] is a row-major numpy array of shape (rows, cols): we reverse them.

Supported tensor types (dequantized to float32): F32, F16, BF16, Q8_0.
"""

import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"

# Metadata value types.
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, \
    T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)

# Scalar metadata types -> struct format.
_SCALAR_FMT = {
    T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h",
    T_UINT32: "<I", T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?",
    T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d",
}
# Same types -> numpy dtype (for fast reading of big arrays, e.g. token scores).
_SCALAR_NP = {
    T_UINT8: "<u1", T_INT8: "<i1", T_UINT16: "<u2", T_INT16: "<i2",
    T_UINT32: "<u4", T_INT32: "<i4", T_FLOAT32: "<f4", T_BOOL: "<u1",
    T_UINT64: "<u8", T_INT64: "<i8", T_FLOAT64: "<f8",
}

# ggml tensor types we can decode.
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
GGML_TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1",
                   8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K",
                   13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 30: "BF16"}

QK8_0 = 32  # Q8_0 block: one f16 scale d, then 32 int8 q; value = d * q


class GGUFError(Exception):
    pass


class _Cursor:
    """Sequential little-endian reader over a bytes buffer."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise GGUFError(f"truncated file: need {n} bytes at offset {self.pos}")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def scalar(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))[0]

    def u32(self):
        return self.scalar("<I")

    def u64(self):
        return self.scalar("<Q")

    def string(self):
        n = self.u64()
        return self.take(n).decode("utf-8", errors="surrogateescape")

    def value(self, vtype):
        if vtype in _SCALAR_FMT:
            return self.scalar(_SCALAR_FMT[vtype])
        if vtype == T_STRING:
            return self.string()
        if vtype == T_ARRAY:
            etype = self.u32()
            count = self.u64()
            if etype in _SCALAR_NP:  # read numeric arrays in one go
                dt = np.dtype(_SCALAR_NP[etype])
                arr = np.frombuffer(self.take(dt.itemsize * count), dtype=dt)
                if etype == T_BOOL:
                    arr = arr.astype(bool)
                return arr.tolist()
            return [self.value(etype) for _ in range(count)]
        raise GGUFError(f"unknown metadata value type {vtype}")


class TensorInfo:
    def __init__(self, name, dims, ggml_type, offset):
        self.name = name
        self.dims = dims            # GGUF order: fastest-varying first
        self.ggml_type = ggml_type
        self.offset = offset        # relative to the data section start

    @property
    def shape(self):
        """numpy shape = reversed GGUF dims."""
        return tuple(reversed(self.dims))

    @property
    def n_elements(self):
        n = 1
        for d in self.dims:
            n *= d
        return n

    def n_bytes(self):
        n = self.n_elements
        t = self.ggml_type
        if t == GGML_F32:
            return 4 * n
        if t in (GGML_F16, GGML_BF16):
            return 2 * n
        if t == GGML_Q8_0:
            if n % QK8_0:
                raise GGUFError(f"{self.name}: Q8_0 size {n} not a multiple of 32")
            return (n // QK8_0) * (2 + QK8_0)
        raise GGUFError(f"{self.name}: unsupported tensor type "
                        f"{GGML_TYPE_NAMES.get(t, t)}")


class GGUFFile:
    """Parsed GGUF file: .version, .metadata (dict), .tensors (dict name -> TensorInfo)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        c = _Cursor(self.buf)
        if c.take(4) != GGUF_MAGIC:
            raise GGUFError(f"{path}: not a GGUF file (bad magic)")
        self.version = c.u32()
        if self.version not in (2, 3):
            raise GGUFError(f"{path}: unsupported GGUF version {self.version}")
        n_tensors = c.u64()
        n_kv = c.u64()

        self.metadata = {}
        self.metadata_types = {}
        for _ in range(n_kv):
            key = c.string()
            vtype = c.u32()
            self.metadata[key] = c.value(vtype)
            self.metadata_types[key] = vtype

        self.tensors = {}
        for _ in range(n_tensors):
            name = c.string()
            n_dims = c.u32()
            dims = [c.u64() for _ in range(n_dims)]
            ttype = c.u32()
            offset = c.u64()
            self.tensors[name] = TensorInfo(name, dims, ttype, offset)

        # Data section: header end rounded up to general.alignment.
        self.alignment = int(self.metadata.get("general.alignment", 32))
        a = self.alignment
        self.data_start = (c.pos + a - 1) // a * a

        for t in self.tensors.values():
            end = self.data_start + t.offset + t.n_bytes()
            if end > len(self.buf):
                raise GGUFError(f"tensor {t.name} runs past end of file")

    def get(self, key, default=None):
        return self.metadata.get(key, default)

    def tensor(self, name):
        """Dequantize tensor `name` to a float32 numpy array of numpy shape."""
        t = self.tensors[name]
        start = self.data_start + t.offset
        raw = self.buf[start:start + t.n_bytes()]
        n = t.n_elements
        if t.ggml_type == GGML_F32:
            out = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif t.ggml_type == GGML_F16:
            out = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif t.ggml_type == GGML_BF16:
            # bf16 = the top 16 bits of an IEEE float32.
            u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
            out = (u16 << 16).view(np.float32)
        elif t.ggml_type == GGML_Q8_0:
            # Block of 34 bytes: d (f16) then q[32] (int8); x = d * q.
            blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("q", "i1", (QK8_0,))]))
            out = (blocks["d"].astype(np.float32)[:, None]
                   * blocks["q"].astype(np.float32)).reshape(n)
        else:
            raise GGUFError(f"{name}: unsupported type {t.ggml_type}")
        return out.reshape(t.shape)


def _summary(path):
    g = GGUFFile(path)
    print(f"GGUF v{g.version}, {len(g.metadata)} keys, {len(g.tensors)} tensors, "
          f"alignment {g.alignment}, data at {g.data_start}")
    for k, v in g.metadata.items():
        if isinstance(v, list) and len(v) > 8:
            v = f"[{len(v)} items: {v[:5]} ...]"
        print(f"  {k} = {v!r}")
    for t in g.tensors.values():
        print(f"  {t.name}: dims {t.dims} -> numpy {t.shape} "
              f"{GGML_TYPE_NAMES.get(t.ggml_type, t.ggml_type)} @ {t.offset}")


if __name__ == "__main__":
    _summary(sys.argv[1])
