"""FP16 ONNX for strongly typed TensorRT (11, RTX), where precision comes from the graph.

Converted with ONNX Runtime's float16 tool, keeping the graph I/O in FP32 and the ops SegFormer
needs in FP32 (LayerNormalization, Softmax and the reductions/pow/sqrt of a decomposed norm)
so its attention and norms do not overflow. For TensorRT 8.6/10 the FP32 graph is used with the
FP16 builder flag and the same ops pinned to FP32 by layer precision instead.
"""

from __future__ import annotations

import contextlib
import io
import logging

DEFAULT_FP32_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt")


def to_fp16(proto, keep_fp32_ops=DEFAULT_FP32_OPS):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        out = convert_float_to_float16(proto, keep_io_types=True, op_block_list=list(keep_fp32_ops),
                                       disable_shape_infer=False)
    return out
