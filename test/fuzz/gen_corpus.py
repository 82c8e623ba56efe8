#!/usr/bin/env python3
"""Writes the seed corpora corpus/spvec_in/ and corpus/spvec_recv/.

Run from anywhere: python3 test/fuzz/gen_corpus.py.  The files are small
and committed; this script documents what they are and regenerates them.
Files named crash-* or regress-* in those directories are kept (they are
inputs that once failed and must stay in the corpus).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

TEXT = {
    "basic": "{1:0.5,3:-2}/64",
    "empty": "{}/1",
    "empty_maxdim": "{}/1000000",
    "single": "{1:1}/1",
    "full": "{1:1,2:2,3:3,4:4,5:5,6:6,7:7,8:8}/8",
    "bitmap": "{1:1,9:2}/9",
    "bitmap_tail": "{1:1,3:1,5:1,7:1,9:1,11:1,13:1,15:1,17:1,19:1,21:1,23:1,25:1,27:1,29:1,31:1,33:1,35:1,37:1,39:1,41:1,43:1,45:1,47:1,49:1,51:1,53:1,55:1,57:1,59:1,61:1,63:1,65:1,67:1,69:1,71:1,73:1,75:1,77:1,79:1,81:1,83:1,85:1,87:1,89:1,91:1,93:1,95:1,97:1,99:1}/99",
    "unsorted_zero": "{3:1,1:2,2:0}/5",
    "uint16_edge": "{65536:1}/65536",
    "int32_edge": "{65537:1,1:2}/65537",
    # 65575 = 61 * 1075: int32 encoding that fz_check_valid also densifies
    "int32_dense": "{65575:2,1:1}/65575",
    "maxdim_maxfloat": "{1000000:3.4028235e38}/1000000",
    # the bitmap encoding above 65536 dimensions needs nnz > dim / 32: the
    # only seeds over 4 kB (about 13 and 16 kB; FUZZ_FLAGS' -max_len fits)
    "bitmap_bigdim": "{" + ",".join(f"{i}:1" for i in range(1, 2050)) + "}/65537",
    "denormals": "{1:1.4e-45,2:-1.17549435e-38}/2",
    "spaces": " { 1 : 1e10 , 2 : -0 } / 3 \t\n",
    "vtab": "{\v1:1}/2",
    "hexfloat": "{1:0x1p-3,2:+.5}/2",
    "dup": "{1:1,1:2}/2",
    "index0": "{0:1}/2",
    "inf": "{1:inf}/1",
    "nan": "{1:NaN}/1",
    "overflow_value": "{1:1e39}/1",
    "underflow_value": "{1:1e-50}/1",
    "overflow_index": "{99999999999999999999:1}/3",
    "dim0": "{1:1}/0",
    "dim_over": "{1:1}/1000001",
    "dim_overflow": "{1:1}/99999999999999999999",
    "junk": "{1:1}/2 junk",
    "unclosed": "{1:1",
    "no_colon": "{1 1}/2",
    "brackets": "[1:1]/2",
    "trailing_comma": "{1:1,}/2",
    "grow": "{" + ",".join(f"{i}:{i}" for i in range(40, 0, -1)) + "}/64",
}


def spvec_bin(dim, nnz, reserved, idx, vals, trailing=b""):
    b = struct.pack(">iii", dim, nnz, reserved)
    b += b"".join(struct.pack(">i", i) for i in idx)
    b += b"".join(struct.pack(">f", v) if isinstance(v, float) else struct.pack(">I", v)
                  for v in vals)
    return b + trailing


NAN = 0x7FC00000
INF = 0x7F800000
NEGZERO = 0x80000000
DENORMAL = 0x00000001

BINARY = {
    "basic": spvec_bin(64, 2, 0, [0, 2], [0.5, -2.0]),
    "empty": spvec_bin(1, 0, 0, [], []),
    "empty_maxdim": spvec_bin(1000000, 0, 0, [], []),
    "full": spvec_bin(4, 4, 0, [0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0]),
    "bitmap": spvec_bin(9, 2, 0, [0, 8], [1.0, 2.0]),
    "uint16_edge": spvec_bin(65536, 1, 0, [65535], [1.0]),
    "int32_edge": spvec_bin(65537, 2, 0, [0, 65536], [2.0, 1.0]),
    "int32_dense": spvec_bin(65575, 2, 0, [0, 65574], [1.0, 2.0]),
    "bitmap_bigdim": spvec_bin(65537, 2049, 0, list(range(0, 65537, 32)),
                               [1.0] * 2049),
    "maxdim": spvec_bin(1000000, 1, 0, [999999], [3.4028235e38]),
    "denormal": spvec_bin(2, 1, 0, [1], [DENORMAL]),
    "reserved": spvec_bin(2, 1, 1, [0], [1.0]),
    "descending": spvec_bin(3, 2, 0, [2, 1], [1.0, 1.0]),
    "duplicate": spvec_bin(3, 2, 0, [1, 1], [1.0, 1.0]),
    "index_range": spvec_bin(3, 1, 0, [3], [1.0]),
    "negative_index": spvec_bin(3, 1, 0, [-1], [1.0]),
    "zero": spvec_bin(3, 1, 0, [0], [0.0]),
    "negzero": spvec_bin(3, 1, 0, [0], [NEGZERO]),
    "nan": spvec_bin(3, 1, 0, [0], [NAN]),
    "inf": spvec_bin(3, 1, 0, [0], [INF]),
    "nnz_over": spvec_bin(2, 3, 0, [0, 1], [1.0, 1.0]),
    "nnz_negative": spvec_bin(2, -1, 0, [], []),
    "dim0": spvec_bin(0, 0, 0, [], []),
    "dim_over": spvec_bin(1000001, 0, 0, [], []),
    "short": spvec_bin(2, 1, 0, [0], [])[:-1],
    "header_only": struct.pack(">ii", 5, 0),
    "trailing": spvec_bin(2, 1, 0, [1], [1.0], trailing=b"\x00\x01"),
}


def write(dirname, files, mode):
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if not name.startswith(("crash-", "regress-")):
            os.remove(os.path.join(d, name))
    for name, content in files.items():
        with open(os.path.join(d, name), "w" + mode) as f:
            f.write(content)


write("spvec_in", TEXT, "")
write("spvec_recv", BINARY, "b")
