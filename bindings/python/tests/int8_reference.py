"""How ONNX Runtime's int8 results relate to a file's exact meaning on this CPU, for the tests
that compare Kerf's int8 runs with it."""

import os
import subprocess
import sys


def cpu_level():
    """Kerf's instruction-set level without KERF_MAX_ISA: the CPU's, read from CPUID as ONNX
    Runtime reads it (not from /proc/cpuinfo, which a process can be shown differently)."""
    env = dict(os.environ)
    env.pop("KERF_MAX_ISA", None)
    return subprocess.run([sys.executable, "-c", "import kerf; print(kerf.instruction_set())"], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()


# ONNX Runtime's U8S8 GEMM (MLAS) adds each pair of k products with int16 saturation
# (vpmaddubsw) on CPUs without VNNI, exactly with VNNI (vpdpbusd); a saturated pair can move a
# MatMulInteger output by up to 2 * 255 * 127 - 32767. Kerf's integer products are exact at
# every instruction-set level, so the two engines compute the same products only where ONNX
# Runtime's are exact (its kernels cannot be capped, Kerf's can: KERF_MAX_ISA).
ORT_SATURATES = cpu_level() not in ("avx_vnni", "avx512_vnni")
same_int8_products = not ORT_SATURATES
INTEGER_PRODUCTS = {"MatMulInteger", "ConvInteger"}


def _dequantize_linear():
    """onnx's reference DequantizeLinear for every opset: it implements opset 19 on, whose
    meaning for the int8, uint8 and int32 inputs of earlier opsets is theirs."""
    from onnx.reference.ops.op_dequantize_linear import DequantizeLinear_19

    class DequantizeLinear(DequantizeLinear_19):
        op_domain = ""

        def _run(self, x, x_scale, x_zero_point=None, axis=None, block_size=None, output_dtype=None):
            return super()._run(x, x_scale, x_zero_point, axis=axis)

    return DequantizeLinear


def file_meaning(model, feeds):
    """{output name: array}: the outputs of `model` (a ModelProto or a path) as ONNX defines
    them. ONNX Runtime with graph optimizations disabled runs each node as written (QDQ in
    float); where its integer products saturate (`ORT_SATURATES` and a MatMulInteger or
    ConvInteger in the graph) onnx's reference evaluator (numpy, exact integer products) does."""
    import onnx
    import onnxruntime
    from onnx.reference import ReferenceEvaluator

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    names = [output.name for output in model.graph.output]
    if ORT_SATURATES and INTEGER_PRODUCTS & {node.op_type for node in model.graph.node}:
        return dict(zip(names, ReferenceEvaluator(model, new_ops=[_dequantize_linear()]).run(names, feeds)))
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(names, feeds)))
