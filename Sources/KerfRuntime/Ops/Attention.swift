import KerfCore
import KerfKernels

// Attention (opset 23; 24's nonpad_kv_seqlen; the later left/right window attributes): scaled
// dot-product attention with grouped heads, a KV cache, a bool or additive mask, causal and
// window masking and soft-capping. Inputs Q, K, V, attn_mask, past_key, past_value,
// nonpad_kv_seqlen; outputs Y, present_key, present_value, qk_matmul_output. Float32, float16
// and bfloat16 (computed in float32, so softmax_precision is always met).

/// The node's attributes, read once.
struct AttentionAttributes {
    var qHeads: Int? = nil, kvHeads: Int? = nil
    var scale: Float? = nil
    var causal = false
    var softcap: Float = 0
    var scoreStage: AttentionScoreStage = .product
    var leftWindow = -1, rightWindow = -1
}

/// One of Q, K, V (float32) seen as [batch, heads, sequence, headSize] through strides: a 4-D
/// tensor is that layout; a 3-D [batch, sequence, heads·headSize] one is read in place.
private struct HeadView {
    let base: UnsafePointer<Float>
    let batch: Int, heads: Int, sequence: Int, headSize: Int
    let batchStride: Int, headStride: Int, rowStride: Int

    init(_ t: Tensor, heads attributeHeads: Int?, _ name: String) throws {
        base = UnsafePointer(t.storage.pointer.assumingMemoryBound(to: Float.self))
        if t.rank == 4 {
            (batch, heads, sequence, headSize) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
            (batchStride, headStride, rowStride) = (heads * sequence * headSize, sequence * headSize, headSize)
            return
        }
        guard let h = attributeHeads, h > 0 else {
            throw KerfError.invalidModel("Attention with 3-D inputs needs positive q_num_heads and kv_num_heads attributes")
        }
        guard t.shape[2] % h == 0 else {
            throw KerfError.shapeMismatch("Attention: \(name)'s hidden size \(t.shape[2]) is not a multiple of its \(h) heads")
        }
        (batch, heads, sequence, headSize) = (t.shape[0], h, t.shape[1], t.shape[2] / h)
        (batchStride, headStride, rowStride) = (sequence * t.shape[2], headSize, t.shape[2])
    }

    func head(_ b: Int, _ h: Int) -> UnsafePointer<Float> { base + b * batchStride + h * headStride }
}

/// [batch, heads, past + new, headSize]: the cache rows, then the new ones.
private func concatenatedCache(past: Tensor?, new: HeadView) throws -> Tensor {
    let pastLength = past?.shape[2] ?? 0, length = pastLength + new.sequence, d = new.headSize
    var out = try Tensor(uninitialized: .float, shape: [new.batch, new.heads, length, d])
    let pastPointer = past.map { UnsafePointer($0.storage.pointer.assumingMemoryBound(to: Float.self)) }
    out.withMutableElements(as: Float.self) { o in
        for b in 0..<new.batch {
            for h in 0..<new.heads {
                let dst = o.baseAddress! + (b * new.heads + h) * length * d
                if let pastPointer { dst.update(from: pastPointer + (b * new.heads + h) * pastLength * d, count: pastLength * d) }
                let src = new.head(b, h)
                for r in 0..<new.sequence { (dst + (pastLength + r) * d).update(from: src + r * new.rowStride, count: d) }
            }
        }
    }
    return out
}

/// An attention mask as float32 addends (a bool mask: 0 where true, −∞ where false) with its
/// broadcast strides over [batch, q heads, q sequence] and its own key count (keys beyond it
/// are masked).
private struct MaskView {
    let data: Tensor
    let batchStride: Int, headStride: Int, rowStride: Int, keys: Int

    init(_ mask: Tensor, batch: Int, heads: Int, queries: Int, totalKeys: Int) throws {
        guard (1...4).contains(mask.rank) else { throw KerfError.shapeMismatch("Attention: attn_mask must have rank 1 to 4, got \(mask.shape)") }
        let dims = [Int](repeating: 1, count: 4 - mask.rank) + mask.shape
        for (dim, (size, what)) in zip(dims.prefix(3), [(batch, "batch"), (heads, "q_num_heads"), (queries, "q_sequence_length")]) {
            guard dim == 1 || dim == size else {
                throw KerfError.shapeMismatch("Attention: attn_mask \(mask.shape) does not broadcast to [\(batch), \(heads), \(queries), \(totalKeys)] (\(what))")
            }
        }
        guard dims[3] <= totalKeys else {
            throw KerfError.shapeMismatch("Attention: attn_mask covers \(dims[3]) keys, more than the \(totalKeys) of past and new keys")
        }
        switch mask.dtype {
        case .bool:
            var f = try Tensor(uninitialized: .float, shape: mask.shape)
            mask.withElements(as: UInt8.self) { m in
                f.withMutableElements(as: Float.self) { o in for i in 0..<m.count { o[i] = m[i] != 0 ? 0 : -.infinity } }
            }
            data = f
        case .float, .float16, .bfloat16:
            data = try mask.convertedToFloat32()
        default:
            throw KerfError.unsupported("Attention: attn_mask of type \(mask.dtype) is not supported (bool or Q's float type)")
        }
        keys = dims[3]
        rowStride = dims[2] == 1 ? 0 : keys
        headStride = dims[1] == 1 ? 0 : dims[2] * keys
        batchStride = dims[0] == 1 ? 0 : dims[1] * dims[2] * keys
    }
}

/// The outputs of Attention: Y, present_key, present_value and, when `wantScores`, the
/// [batch, q heads, q sequence, keys] scores at the attributes' stage; in Q's dtype.
func attention(_ inputs: [Tensor?], _ a: AttentionAttributes, wantScores: Bool, threads: Int) throws -> [Tensor] {
    let q0 = try inputs.required(0, "Q"), k0 = try inputs.required(1, "K"), v0 = try inputs.required(2, "V")
    let dtype = q0.dtype
    guard [.float, .float16, .bfloat16].contains(dtype) else {
        throw KerfError.unsupported("Attention on \(dtype) is not supported (float, float16, bfloat16)")
    }
    let past = (inputs.optional(4), inputs.optional(5))
    for (t, name) in [(k0, "K"), (v0, "V"), (past.0, "past_key"), (past.1, "past_value")] {
        guard let t else { continue }
        guard t.dtype == dtype else { throw KerfError.invalidArgument("Attention: \(name) is \(t.dtype), Q is \(dtype)") }
    }
    guard q0.rank == k0.rank && q0.rank == v0.rank, q0.rank == 3 || q0.rank == 4 else {
        throw KerfError.shapeMismatch("Attention needs Q, K and V all 3-D or all 4-D, got \(q0.shape), \(k0.shape), \(v0.shape)")
    }
    let qf = try q0.convertedToFloat32(), kf = try k0.convertedToFloat32(), vf = try v0.convertedToFloat32()
    let q = try HeadView(qf, heads: a.qHeads, "Q"), k = try HeadView(kf, heads: a.kvHeads, "K"), v = try HeadView(vf, heads: a.kvHeads, "V")
    guard k.batch == q.batch, v.batch == q.batch, k.heads == v.heads, k.sequence == v.sequence else {
        throw KerfError.shapeMismatch("Attention: K \(k0.shape) and V \(v0.shape) do not match each other or Q \(q0.shape)")
    }
    guard k.headSize == q.headSize else {
        throw KerfError.shapeMismatch("Attention: Q's head size \(q.headSize) differs from K's \(k.headSize)")
    }
    guard k.heads > 0, q.heads % k.heads == 0 else {
        throw KerfError.shapeMismatch("Attention: \(q.heads) query heads are not a multiple of \(k.heads) key/value heads")
    }
    if (past.0 == nil) != (past.1 == nil) { throw KerfError.invalidArgument("Attention: past_key and past_value come together") }
    var pastLength = 0
    if let pk = past.0, let pv = past.1 {
        guard pk.rank == 4, pv.rank == 4, pk.shape == [q.batch, k.heads, pk.shape[2], k.headSize],
              pv.shape == [q.batch, k.heads, pk.shape[2], v.headSize] else {
            throw KerfError.shapeMismatch("Attention: past_key \(pk.shape) / past_value \(pv.shape) must be [batch, kv_num_heads, past, head size]")
        }
        pastLength = pk.shape[2]
    }
    let presentKey = try concatenatedCache(past: try past.0?.convertedToFloat32(), new: k)
    let presentValue = try concatenatedCache(past: try past.1?.convertedToFloat32(), new: v)
    let (batch, heads, s, t, dk, dv) = (q.batch, q.heads, q.sequence, pastLength + k.sequence, q.headSize, v.headSize)

    let mask = try inputs.optional(3).map { try MaskView($0, batch: batch, heads: heads, queries: s, totalKeys: t) }
    var validKeys = [Int](repeating: t, count: batch)
    var offsets = [Int](repeating: pastLength, count: batch)  // the absolute position of each batch's first query
    if let lengths = inputs.optional(6) {
        let values = try intValues(lengths, "Attention nonpad_kv_seqlen")
        guard values.count == batch, values.allSatisfy({ (0...t).contains($0) }) else {
            throw KerfError.invalidArgument("Attention: nonpad_kv_seqlen must hold \(batch) lengths in 0...\(t), got \(values)")
        }
        validKeys = values
        if past.0 == nil { offsets = values.map { $0 - s } }  // an external cache: the queries are its last valid rows
    }
    let structural = a.causal || a.leftWindow >= 0 || a.rightWindow >= 0 || inputs.optional(6) != nil
    let needsBias = mask != nil || structural

    let is3D = q0.rank == 3
    let y = try Tensor(uninitialized: .float, shape: is3D ? [batch, s, heads * dv] : [batch, heads, s, dv])
    let scores = wantScores ? try Tensor(uninitialized: .float, shape: [batch, heads, s, t]) : nil
    let units = batch * heads, workers = max(1, min(threads, units))
    let scratch = try Tensor(uninitialized: .float, shape: [workers, needsBias ? 2 : 1, s, t])
    let scale = a.scale ?? 1 / Float(dk).squareRoot()
    let yp = y.storage.pointer.assumingMemoryBound(to: Float.self)
    let sp = scores.map { $0.storage.pointer.assumingMemoryBound(to: Float.self) }
    let scratchPointer = scratch.storage.pointer.assumingMemoryBound(to: Float.self)
    let kp = UnsafePointer(presentKey.storage.pointer.assumingMemoryBound(to: Float.self))
    let vp = UnsafePointer(presentValue.storage.pointer.assumingMemoryBound(to: Float.self))
    let mp = mask.map { UnsafePointer($0.data.storage.pointer.assumingMemoryBound(to: Float.self)) }
    let group = heads / k.heads
    parallelFor(units, threads: workers) { worker, unit in
        let b = unit / heads, h = unit % heads, kvHead = b * k.heads + h / group
        let work = scratchPointer + worker * (needsBias ? 2 : 1) * s * t
        var bias: UnsafeMutablePointer<Float>? = nil
        if needsBias {
            let rows = work + s * t
            for i in 0..<s {
                let row = rows + i * t
                if let mask, let mp {
                    let src = mp + b * mask.batchStride + h * mask.headStride + i * mask.rowStride
                    row.update(from: src, count: mask.keys)
                    (row + mask.keys).update(repeating: -.infinity, count: t - mask.keys)
                } else {
                    row.update(repeating: 0, count: t)
                }
                if structural {
                    maskKeyPositions(row, t: t, position: offsets[b] + i, causal: a.causal, leftWindow: a.leftWindow,
                                     rightWindow: a.rightWindow, validKeys: validKeys[b])
                }
            }
            bias = rows
        }
        let out = is3D ? yp + b * s * heads * dv + h * dv : yp + unit * s * dv
        attentionHead(q: q.head(b, h), ldq: q.rowStride, k: kp + kvHead * t * dk, ldk: dk, v: vp + kvHead * t * dv, ldv: dv,
                      s: s, t: t, dk: dk, dv: dv, scale: scale, softcap: a.softcap, bias: bias, scores: work,
                      y: out, ldy: is3D ? heads * dv : dv, stage: a.scoreStage, stageOut: sp.map { $0 + unit * s * t })
    }
    let back = { (x: Tensor) throws -> Tensor in dtype == .float ? x : try x.convertedFromFloat32(to: dtype) }
    var outputs = [try back(y), try back(presentKey), try back(presentValue)]
    if let scores { outputs.append(try back(scores)) }
    return outputs
}

enum DotProductAttentionOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Attention"] = { c in
            var a = AttentionAttributes()
            a.qHeads = try c.int("q_num_heads")
            a.kvHeads = try c.int("kv_num_heads")
            if c.has("scale") { a.scale = try c.float("scale", default: 1) }
            a.causal = try c.int("is_causal", default: 0) != 0
            a.softcap = try c.float("softcap", default: 0)
            let mode = try c.int("qk_matmul_output_mode", default: 0)
            switch mode {
            case 0, 1: a.scoreStage = .product
            case 2: a.scoreStage = .biased
            case 3: a.scoreStage = .probabilities
            default: throw KerfError.invalidModel("\(c.node.label): qk_matmul_output_mode must be 0 to 3, got \(mode)")
            }
            a.leftWindow = try c.int("left_window_size", default: -1)
            a.rightWindow = try c.int("right_window_size", default: -1)
            let wantScores = c.node.outputs.count > 3 && !c.node.outputs[3].isEmpty
            let threads = c.options.resolvedThreads
            return ClosureOperator { inputs in try attention(inputs, a, wantScores: wantScores, threads: threads) }
        }
    }
}
