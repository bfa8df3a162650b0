import KerfCore
import KerfTestSupport
import XCTest

/// Every gradient rule against central finite differences (`checkGradients`).
final class GradientRuleTests: XCTestCase {
    private func ints(_ name: String, _ values: [Int]) -> Initializer {
        Initializer(name: name, tensor: Tensor(shape: [values.count], values: values.map(Int64.init)))
    }
    private func attr(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(Int64(v))) }
    private func attr(_ name: String, _ v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v.map(Int64.init))) }
    private func attr(_ name: String, _ v: Float) -> Attribute { Attribute(name: name, value: .float(v)) }

    func testArithmeticWithBroadcasting() throws {
        for op in ["Add", "Sub", "Mul", "Div"] {
            let b: ClosedRange<Double> = op == "Div" ? 0.5...2 : -1...1
            try checkGradients(GradientCase(op: op, trained: [("a", [2, 3, 4], -1...1), ("b", [3, 1], b)], inputs: ["a", "b"]))
            try checkGradients(GradientCase(op: op, trained: [("a", [4], -1...1), ("b", [2, 3, 4], b)], inputs: ["a", "b"]))
        }
        try checkGradients(GradientCase(op: "Pow", trained: [("a", [3, 4], 0.5...2), ("b", [4], 0.5...3)], inputs: ["a", "b"]))
        try checkGradients(GradientCase(op: "Sum", trained: [("a", [3, 4], -1...1), ("b", [4], -1...1), ("c", [3, 1], -1...1)],
                                        inputs: ["a", "b", "c"]))
    }

    func testUnaryMath() throws {
        for (op, range) in [("Neg", -1.0...1.0), ("Sqrt", 0.5...2), ("Exp", -1...1), ("Log", 0.5...2), ("Reciprocal", 0.5...2),
                            ("Abs", 0.1...1), ("Identity", -1...1)] {
            try checkGradients(GradientCase(op: op, trained: [("x", [3, 5], range)], inputs: ["x"]))
        }
        try checkGradients(GradientCase(op: "Abs", trained: [("x", [3, 5], -1...(-0.1))], inputs: ["x"]))
    }

    func testActivations() throws {
        for op in ["Relu", "Sigmoid", "Tanh", "Erf", "Softplus", "HardSwish", "LeakyRelu", "Elu", "HardSigmoid"] {
            // Away from kinks (finite differences straddle them): values in ±[0.05, 4].
            try checkGradients(GradientCase(op: op, trained: [("x", [4, 6], 0.05...4)], inputs: ["x"]))
            try checkGradients(GradientCase(op: op, trained: [("x", [4, 6], -4...(-0.05))], inputs: ["x"]))
        }
        try checkGradients(GradientCase(op: "LeakyRelu", attributes: [attr("alpha", Float(0.3))], trained: [("x", [4, 6], -4...(-0.05))], inputs: ["x"]))
        try checkGradients(GradientCase(op: "Gelu", trained: [("x", [4, 6], -3...3)], inputs: ["x"], opset: 20), dtype: .float)
        try checkGradients(GradientCase(op: "Gelu", attributes: [Attribute(name: "approximate", value: .string(Data("tanh".utf8)))],
                                        trained: [("x", [4, 6], -3...3)], inputs: ["x"], opset: 20), dtype: .float)
        let bounds = [Initializer(name: "lo", tensor: Tensor(scalar: -0.5)), Initializer(name: "hi", tensor: Tensor(scalar: 0.5))]
        try checkGradients(GradientCase(op: "Clip", trained: [("x", [4, 6], -0.45...0.45)], inputs: ["x", "lo", "hi"], constants: bounds))
        try checkGradients(GradientCase(op: "Clip", trained: [("x", [4, 6], 0.55...2)], inputs: ["x", "lo", "hi"], constants: bounds))
    }

    func testMatMulShapes() throws {
        let cases: [([Int], [Int])] = [([3, 4], [4, 5]), ([2, 3, 4], [4, 5]), ([2, 3, 4], [2, 4, 5]), ([1, 3, 4], [2, 4, 5]),
                                       ([2, 1, 3, 4], [3, 4, 2]), ([4], [4, 5]), ([3, 4], [4]), ([2, 3, 4], [4]), ([4], [2, 4, 5])]
        for (a, b) in cases {
            try checkGradients(GradientCase(op: "MatMul", trained: [("a", a, -1...1), ("b", b, -1...1)], inputs: ["a", "b"]))
        }
    }

    func testGemmTransposesAlphaBetaAndBias() throws {
        for (transA, transB) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let a = transA == 1 ? [4, 3] : [3, 4], b = transB == 1 ? [5, 4] : [4, 5]
            for c in [[5], [3, 5], [1, 1], [3, 1]] {
                try checkGradients(GradientCase(op: "Gemm", attributes: [attr("transA", transA), attr("transB", transB),
                                                                        attr("alpha", Float(0.7)), attr("beta", Float(1.3))],
                                                trained: [("a", a, -1...1), ("b", b, -1...1), ("c", c, -1...1)], inputs: ["a", "b", "c"]))
            }
        }
        try checkGradients(GradientCase(op: "Gemm", trained: [("a", [3, 4], -1...1), ("b", [4, 5], -1...1)], inputs: ["a", "b"]))
    }

    func testSoftmaxAndLogSoftmax() throws {
        for op in ["Softmax", "LogSoftmax"] {
            for axis in [-1, 1, 0] {
                try checkGradients(GradientCase(op: op, attributes: [attr("axis", axis)], trained: [("x", [2, 3, 4], -2...2)], inputs: ["x"]),
                                   dtype: .float)
            }
            // Opset 11: the input is coerced to 2-D at the axis.
            try checkGradients(GradientCase(op: op, attributes: [attr("axis", 1)], trained: [("x", [2, 3, 4], -2...2)], inputs: ["x"], opset: 11),
                               dtype: .float)
        }
    }

    func testLayerNormalization() throws {
        for axis in [-1, 1] {
            let norm = axis == -1 ? [4] : [3, 4]
            try checkGradients(GradientCase(op: "LayerNormalization", attributes: [attr("axis", axis), attr("epsilon", Float(1e-5))],
                                            trained: [("x", [2, 3, 4], -2...2), ("scale", norm, 0.5...1.5), ("bias", norm, -1...1)],
                                            inputs: ["x", "scale", "bias"]))
        }
    }

    func testLayoutOps() throws {
        try checkGradients(GradientCase(op: "Reshape", trained: [("x", [2, 3, 4], -1...1)], inputs: ["x", "s"], constants: [ints("s", [4, -1])]))
        try checkGradients(GradientCase(op: "Flatten", attributes: [attr("axis", 2)], trained: [("x", [2, 3, 4], -1...1)], inputs: ["x"]))
        try checkGradients(GradientCase(op: "Transpose", attributes: [attr("perm", [2, 0, 1])], trained: [("x", [2, 3, 4], -1...1)], inputs: ["x"]))
        try checkGradients(GradientCase(op: "Transpose", trained: [("x", [2, 3, 4], -1...1)], inputs: ["x"]))
        try checkGradients(GradientCase(op: "Squeeze", trained: [("x", [2, 1, 4], -1...1)], inputs: ["x", "axes"], constants: [ints("axes", [1])]))
        try checkGradients(GradientCase(op: "Unsqueeze", trained: [("x", [2, 4], -1...1)], inputs: ["x", "axes"], constants: [ints("axes", [0, 2])]))
        try checkGradients(GradientCase(op: "Expand", trained: [("x", [3, 1], -1...1)], inputs: ["x", "s"], constants: [ints("s", [2, 3, 4])]))
        try checkGradients(GradientCase(op: "Concat", attributes: [attr("axis", 1)],
                                        trained: [("a", [2, 3, 4], -1...1), ("b", [2, 2, 4], -1...1)], inputs: ["a", "b"]))
        try checkGradients(GradientCase(op: "Concat", attributes: [attr("axis", -1)],
                                        trained: [("a", [2, 3], -1...1), ("b", [2, 5], -1...1)], inputs: ["a", "b"], opset: 11))
        for lossOutput in [0, 1] {
            try checkGradients(GradientCase(op: "Split", attributes: [attr("axis", 1)], trained: [("x", [2, 5, 3], -1...1)],
                                            inputs: ["x", "sizes"], constants: [ints("sizes", [2, 3])], outputs: 2, lossOutput: lossOutput))
        }
        try checkGradients(GradientCase(op: "Slice", trained: [("x", [4, 6, 5], -1...1)], inputs: ["x", "st", "en", "ax", "sp"],
                                        constants: [ints("st", [1, -1]), ints("en", [4, 0]), ints("ax", [0, 1]), ints("sp", [2, -2])]))
        let indices = Initializer(name: "i", tensor: Tensor(shape: [2, 3], values: [Int64(0), 2, 2, -1, 1, 0]))
        try checkGradients(GradientCase(op: "Gather", trained: [("x", [4, 3], -1...1)], inputs: ["x", "i"], constants: [indices]))
        try checkGradients(GradientCase(op: "Gather", attributes: [attr("axis", 1)], trained: [("x", [2, 4, 3], -1...1)],
                                        inputs: ["x", "i"], constants: [indices]))
        let condition = Initializer(name: "c", tensor: Tensor(shape: [3, 1], values: [true, false, true]))
        try checkGradients(GradientCase(op: "Where", trained: [("a", [3, 4], -1...1), ("b", [4], -1...1)], inputs: ["c", "a", "b"],
                                        constants: [condition]))
    }

    func testReductions() throws {
        for op in ["ReduceSum", "ReduceMean"] {
            for keep in [0, 1] {
                if op == "ReduceSum" {
                    try checkGradients(GradientCase(op: op, attributes: [attr("keepdims", keep)], trained: [("x", [2, 3, 4], -1...1)],
                                                    inputs: ["x", "axes"], constants: [ints("axes", [0, -1])]))
                } else {
                    try checkGradients(GradientCase(op: op, attributes: [attr("keepdims", keep), attr("axes", [0, -1])],
                                                    trained: [("x", [2, 3, 4], -1...1)], inputs: ["x"]))
                    try checkGradients(GradientCase(op: op, attributes: [attr("keepdims", keep)], trained: [("x", [2, 3, 4], -1...1)],
                                                    inputs: ["x", "axes"], constants: [ints("axes", [1])], opset: 18))
                }
                try checkGradients(GradientCase(op: op, attributes: [attr("keepdims", keep)], trained: [("x", [2, 3], -1...1)], inputs: ["x"]))
            }
        }
        try checkGradients(GradientCase(op: "GlobalAveragePool", trained: [("x", [2, 3, 4, 5], -1...1)], inputs: ["x"]), dtype: .float)
    }
}
