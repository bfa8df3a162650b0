import KerfCore
import KerfKernels

/// Window attributes shared by Conv and the pooling ops, parsed once per node.
struct WindowAttributes {
    var kernelShape: [Int]?
    var strides: [Int]?
    var dilations: [Int]?
    var pads: [Int]?
    var autoPad: String
    var ceilMode: Bool

    init(kernelShape: [Int]?, strides: [Int]?, dilations: [Int]?, pads: [Int]?, autoPad: String, ceilMode: Bool) {
        self.kernelShape = kernelShape
        self.strides = strides
        self.dilations = dilations
        self.pads = pads
        self.autoPad = autoPad
        self.ceilMode = ceilMode
    }

    init(_ c: OperatorContext) throws {
        kernelShape = try c.ints("kernel_shape")
        strides = try c.ints("strides")
        dilations = try c.ints("dilations")
        pads = try c.ints("pads")
        autoPad = try c.string("auto_pad", default: "NOTSET")
        ceilMode = try c.int("ceil_mode", default: 0) != 0
        guard ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].contains(autoPad) else {
            throw KerfError.invalidModel("unknown auto_pad '\(autoPad)'")
        }
    }

    /// Output size and padding for an input of spatial size `input` and kernel `kernel`.
    /// Every size is computed with overflow checks: attributes that overflow (pads, strides or
    /// dilations near Int.max) are `.invalidModel`, an output of more than
    /// `maxComputedTensorBytes` floats per plane `.outOfMemory`. Callers check the whole output
    /// shape (batch and channels included) with `checkedElementCount` before allocating it.
    func geometry(input: [Int], kernel: [Int]) throws -> (WindowGeometry, padsEnd: [Int]) {
        let n = input.count
        let s = strides ?? Array(repeating: 1, count: n)
        let d = dilations ?? Array(repeating: 1, count: n)
        guard kernel.count == n, s.count == n, d.count == n, s.allSatisfy({ $0 > 0 }), d.allSatisfy({ $0 > 0 }),
              kernel.allSatisfy({ $0 > 0 }) else {
            throw KerfError.invalidModel("kernel \(kernel), strides \(s) or dilations \(d) do not fit \(n) spatial dims")
        }
        func checked(_ r: (partialValue: Int, overflow: Bool)) throws -> Int {
            try windowSize(r, "input \(input), kernel \(kernel), strides \(s), dilations \(d) and pads \(pads ?? [])")
        }
        var begin = [Int](repeating: 0, count: n), end = [Int](repeating: 0, count: n)
        var out = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let span = try checked(try checked((kernel[i] - 1).multipliedReportingOverflow(by: d[i])).addingReportingOverflow(1))
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                out[i] = try checked(input[i].addingReportingOverflow(s[i] - 1)) / s[i]
                let last = try checked((out[i] - 1).multipliedReportingOverflow(by: s[i]))
                let total = Swift.max(0, try checked(try checked(last.addingReportingOverflow(span)).subtractingReportingOverflow(input[i])))
                begin[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                end[i] = total - begin[i]
            case "VALID":
                out[i] = input[i] >= span ? (input[i] - span) / s[i] + 1 : 0
            default:
                if let p = pads {
                    guard p.count == 2 * n, p.allSatisfy({ $0 >= 0 }) else { throw KerfError.invalidModel("pads \(p) do not fit \(n) spatial dims") }
                    begin[i] = p[i]
                    end[i] = p[i + n]
                }
                let extent = try checked(try checked(input[i].addingReportingOverflow(begin[i])).addingReportingOverflow(end[i]))
                let padded = extent - span  // both non-negative: no overflow
                if padded < 0 {
                    out[i] = 0
                } else if ceilMode {
                    out[i] = try checked((padded / s[i] + (padded % s[i] == 0 ? 0 : 1)).addingReportingOverflow(1))
                    // The last window must start inside the input or its begin padding.
                    let lastStart = try checked((out[i] - 1).multipliedReportingOverflow(by: s[i]))
                    if lastStart >= input[i] + begin[i] { out[i] -= 1 }
                } else {
                    out[i] = try checked((padded / s[i]).addingReportingOverflow(1))
                }
            }
        }
        try checkedElementCount(out, dtype: .float, "window output")
        return (WindowGeometry(inputSize: input, kernel: kernel, strides: s, dilations: d, padsBegin: begin, outputSize: out), end)
    }
}

/// The size computed in `r`, or `.invalidModel` saying that `operands` overflow the output size.
func windowSize(_ r: (partialValue: Int, overflow: Bool), _ operands: @autoclosure () -> String) throws -> Int {
    guard !r.overflow else { throw KerfError.invalidModel("\(operands()) overflow the output size") }
    return r.partialValue
}
