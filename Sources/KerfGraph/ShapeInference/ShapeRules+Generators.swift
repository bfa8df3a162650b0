import KerfCore

/// Random generators and sequence queries: RandomUniform/RandomNormal (shape and dtype from
/// attributes, float by default), their *Like forms and Bernoulli (the input's shape, `dtype`
/// or the input's dtype), Multinomial ([batch, sample_size], int32 by default), SequenceLength.
extension ShapeRules {
    static let generators: [String: ShapeRule] = {
        var t = each(["RandomUniformLike", "RandomNormalLike", "Bernoulli"]) { c in
            c.set(0, dtype: c.dtypeAttribute("dtype") ?? c.dtype(0), shape: c.shape(0))
        }
        t.merge(each(["RandomUniform", "RandomNormal"]) { c in
            let shape = c.ints("shape")
            if let shape, shape.contains(where: { $0 < 0 }) { c.fail("negative dims \(shape)") }
            c.set(0, dtype: c.dtypeAttribute("dtype") ?? .float,
                  shape: shape.flatMap { s in s.allSatisfy { $0 >= 0 } ? s.map(Dim.value) : nil })
        }) { a, _ in a }
        t["Multinomial"] = { c in
            let batch = c.shape(0).flatMap { $0.count == 2 ? $0[0] : nil } ?? .unknown
            let samples = c.int("sample_size", default: 1)
            c.set(0, dtype: c.dtypeAttribute("dtype") ?? .int32, shape: c.rank(0) == 2 && samples >= 0 ? [batch, .value(samples)] : nil)
        }
        t["SequenceLength"] = { c in c.set(0, dtype: .int64, shape: []) }
        return t
    }()
}
