import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

// Gelu, HardSigmoid, HardSwish, PRelu, Softplus, Elu, Selu.

/// PRelu: x < 0 ? x * slope : x, with slope broadcast to x's shape (unidirectionally).
func preluTensor(_ x: Tensor, _ slope: Tensor) throws -> Tensor {
    guard x.dtype == slope.dtype else {
        throw KerfError.shapeMismatch("PRelu: X and slope have different dtypes (\(x.dtype) and \(slope.dtype))")
    }
    guard broadcastShape(x.shape, slope.shape) == x.shape else {
        throw KerfError.shapeMismatch("PRelu: slope of shape \(slope.shape) does not broadcast to \(x.shape)")
    }
    return try withFloat32([x, slope]) { ins in
        struct Body: NumericBody {
            let x: Tensor, slope: Tensor
            func run<T: NumericElement>(_: T.Type) throws -> Tensor {
                var out = try Tensor(uninitialized: x.dtype, shape: x.shape)
                x.withElements(as: T.self) { px in
                    slope.withElements(as: T.self) { ps in
                        out.withMutableElements(as: T.self) { po in
                            broadcastBinary(px.baseAddress!, x.shape, ps.baseAddress!, slope.shape, po.baseAddress!, x.shape) { v, s in
                                v < T.zero ? T.mul(v, s) : v
                            }
                        }
                    }
                }
                return out
            }
        }
        let x32 = ins[0]!
        return [try dispatchNumeric(x32.dtype, Body(x: x32, slope: ins[1]!))]
    }[0]
}

@inline(__always)
private func softplus(_ x: Double) -> Double { x > 0 ? x + Glibc.log1p(Glibc.exp(-x)) : Glibc.log1p(Glibc.exp(x)) }

@inline(__always)
private func softplus(_ x: Float) -> Float { x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)) }

enum ActivationExtraOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Gelu"] = { c in
            let approximate = try c.string("approximate", default: "none")
            switch approximate {
            case "none":
                let k = 1 / Double(2).squareRoot()
                return floatKernelOperator(threads: c.options.resolvedThreads, { KerfKernels.gelu($0, $1, count: $2) }) {
                    try unaryFloat($0, { 0.5 * $0 * (1 + erff($0 * Float(k))) }, { 0.5 * $0 * (1 + Glibc.erf($0 * k)) })
                }
            case "tanh":
                let k = (2 / Double.pi).squareRoot()
                return ClosureOperator {
                    [try unaryFloat(try $0.required(0),
                                    { 0.5 * $0 * (1 + tanhf(Float(k) * ($0 + 0.044715 * $0 * $0 * $0))) },
                                    { 0.5 * $0 * (1 + Glibc.tanh(k * ($0 + 0.044715 * $0 * $0 * $0))) })]
                }
            default:
                throw KerfError.invalidModel("Gelu: approximate must be 'none' or 'tanh', got '\(approximate)'")
            }
        }
        r["HardSigmoid"] = { c in
            let alpha = try c.float("alpha", default: 0.2), beta = try c.float("beta", default: 0.5)
            let a = Double(alpha), b = Double(beta)
            return ClosureOperator {
                [try unaryFloat(try $0.required(0),
                                { Swift.max(0, Swift.min(1, alpha * $0 + beta)) },
                                { Swift.max(0, Swift.min(1, a * $0 + b)) })]
            }
        }
        r["HardSwish"] = { _ in
            ClosureOperator {
                // alpha = 1/6 as ONNX defines it (a multiplication, not a division by 6).
                [try unaryFloat(try $0.required(0),
                                { $0 * Swift.max(0, Swift.min(1, $0 * (1 / 6 as Float) + 0.5)) },
                                { $0 * Swift.max(0, Swift.min(1, $0 * (1 / 6 as Double) + 0.5)) })]
            }
        }
        r["PRelu"] = { _ in ClosureOperator { [try preluTensor(try $0.required(0), try $0.required(1, "slope"))] } }
        r["Softplus"] = { _ in
            ClosureOperator { [try unaryFloat(try $0.required(0), { softplus($0) }, { softplus($0) })] }
        }
        r["Elu"] = { c in
            let alpha = try c.float("alpha", default: 1), a = Double(alpha)
            return ClosureOperator {
                [try unaryFloat(try $0.required(0),
                                { $0 < 0 ? alpha * (expf($0) - 1) : $0 },
                                { $0 < 0 ? a * (Glibc.exp($0) - 1) : $0 })]
            }
        }
        r["Celu"] = { c in
            let alpha = try c.float("alpha", default: 1), a = Double(alpha)
            return ClosureOperator {
                [try unaryFloat(try $0.required(0),
                                { Swift.max(0, $0) + Swift.min(0, alpha * (expf($0 / alpha) - 1)) },
                                { Swift.max(0, $0) + Swift.min(0, a * (Glibc.exp($0 / a) - 1)) })]
            }
        }
        r["Softsign"] = { _ in ClosureOperator { [try unaryFloat(try $0.required(0), { $0 / (1 + abs($0)) }, { $0 / (1 + abs($0)) })] } }
        r["ThresholdedRelu"] = { c in
            let alpha = try c.float("alpha", default: 1), a = Double(alpha)
            return ClosureOperator { [try unaryFloat(try $0.required(0), { $0 > alpha ? $0 : 0 }, { $0 > a ? $0 : 0 })] }
        }
        r["Mish"] = { _ in
            ClosureOperator { [try unaryFloat(try $0.required(0), { $0 * tanhf(softplus($0)) }, { $0 * Glibc.tanh(softplus($0)) })] }
        }
        r["Swish"] = { c in
            let alpha = try c.float("alpha", default: 1), a = Double(alpha)
            return ClosureOperator {
                [try unaryFloat(try $0.required(0), { $0 / (1 + expf(-alpha * $0)) }, { $0 / (1 + Glibc.exp(-a * $0)) })]
            }
        }
        r["Shrink"] = { c in
            let bias = try c.float("bias", default: 0), lambd = try c.float("lambd", default: 0.5)
            let b = Double(bias), l = Double(lambd)
            return ClosureOperator {
                [try unaryFloat(try $0.required(0),
                                { $0 < -lambd ? $0 + bias : $0 > lambd ? $0 - bias : 0 },
                                { $0 < -l ? $0 + b : $0 > l ? $0 - b : 0 })]
            }
        }
        r["Selu"] = { c in
            let alpha = try c.float("alpha", default: 1.67326319217681884765625)
            let gamma = try c.float("gamma", default: 1.05070102214813232421875)
            let a = Double(alpha), g = Double(gamma)
            return ClosureOperator {
                [try unaryFloat(try $0.required(0),
                                { $0 <= 0 ? gamma * (alpha * expf($0) - alpha) : gamma * $0 },
                                { $0 <= 0 ? g * (a * Glibc.exp($0) - a) : g * $0 })]
            }
        }
    }
}
