/// The float32 constants of one SGD step (`SGD` states the rule). Flags record torch's
/// float64 tests (`weight_decay != 0`, `momentum != 0`), which the float32 casts could lose.
struct SGDStepConstants {
    var maximize: Bool
    var decays: Bool
    /// weightDecay as float32.
    var weightDecay: Float
    /// momentum as float32.
    var momentum: Float
    /// 1 - dampening as float32.
    var gradientShare: Float
    var nesterov: Bool
    /// -lr as float32.
    var negativeLR: Float

    init(_ options: SGD, learningRate: Double, weightDecay: Double, momentum: Double) {
        maximize = options.maximize
        decays = weightDecay != 0
        self.weightDecay = Float(weightDecay)
        self.momentum = Float(momentum)
        gradientShare = Float(1 - options.dampening)
        nesterov = options.nesterov
        negativeLR = Float(-learningRate)
    }
}

/// One SGD step of `count` elements of `parameter` (updated in place) from `gradient`.
/// With `momentumBuffer` (count elements) the step uses and updates it; `firstStep` fills it
/// from the gradient instead of reading it. Each element is computed as torch's CPU kernels
/// do: every `a + alpha * b` of torch is one fused multiply-add.
func sgdStep(parameter: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>,
             momentumBuffer: UnsafeMutablePointer<Float>?, firstStep: Bool, count: Int,
             constants c: SGDStepConstants, threads: Int) {
    let wd = Lanes(repeating: c.weightDecay), mu = Lanes(repeating: c.momentum)
    let share = Lanes(repeating: c.gradientShare), negativeLR = Lanes(repeating: c.negativeLR)
    forEachRange(count, threads: threads) { range in
        forEachChunk(range) { i, n in
            var p = loadLanes(parameter + i, n)
            var g = loadLanes(gradient + i, n)
            if c.maximize { g = -g }
            if c.decays { g = g.addingProduct(p, wd) }
            if let buffer = momentumBuffer {
                let b = firstStep ? g : (loadLanes(buffer + i, n) * mu).addingProduct(g, share)
                storeLanes(b, buffer + i, n)
                g = c.nesterov ? g.addingProduct(b, mu) : b
            }
            p = p.addingProduct(g, negativeLR)
            storeLanes(p, parameter + i, n)
        }
    }
}
