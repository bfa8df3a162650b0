#if canImport(Glibc)
import Glibc
#endif
import OnnxProto

extension OnnxImport {
    /// Expands a COO sparse tensor (`values` [NNZ]; `indices` int64, linear [NNZ] or coordinates
    /// [NNZ, rank]) into a dense tensor of `dims`.
    ///
    /// Everything is checked before the dense tensor is allocated: dims (as for any stored
    /// tensor, overflow-checked), the index tensor's shape, every coordinate against its own
    /// dimension (a coordinate out of range in one dimension can still give a flat index in
    /// range), and the dense size against the allocation limit (`MemoryLimit`; a few bytes of sparse tensor can
    /// declare terabytes). Throws `.invalidModel`, `.unsupported` (string values) or
    /// `.outOfMemory`, naming the tensor.
    static func denseTensor(fromSparse sparse: Onnx_SparseTensorProto, external: ExternalDataReader?) throws -> Tensor {
        let what = "sparse tensor '\(sparse.values.name)'"
        let values = try Tensor.decode(sparse.values, external: external)
        let indices = try Tensor.decode(sparse.indices, external: external)
        let (shape, total) = try Tensor.checkedShape(sparse.dims, what: what)
        guard values.dtype != .string else { throw KerfError.unsupported("\(what) holds strings, which Kerf cannot expand") }
        guard values.rank == 1 else {
            throw KerfError.invalidModel("\(what) has values of shape \(values.shape); expected one dimension [NNZ]")
        }
        let nnz = values.count, rank = shape.count
        let coordinates: Bool
        if indices.dtype == .int64 && indices.shape == [nnz] {
            coordinates = false
        } else if indices.dtype == .int64 && indices.shape == [nnz, rank] {
            coordinates = true
        } else {
            throw KerfError.invalidModel("\(what) has \(indices.dtype) indices of shape \(indices.shape); expected int64 [\(nnz)] or [\(nnz), \(rank)]")
        }
        let size = values.dtype.byteSize
        try MemoryLimit.check(byteCount: total * size, for: "\(what) (dense shape \(shape))")

        // Row-major strides; each is at most `total`, so no product below overflows.
        var strides = [Int](repeating: 1, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        let offsets: [Int] = try indices.withElements(as: Int64.self) { idx in
            var offsets = [Int](repeating: 0, count: nnz)
            for k in 0..<nnz {
                if !coordinates {
                    let l = idx[k]
                    guard l >= 0, l < Int64(total) else {
                        throw KerfError.invalidModel("\(what): index \(l) of value \(k) is outside the \(total) elements of shape \(shape)")
                    }
                    offsets[k] = Int(l)
                    continue
                }
                var l = 0
                for d in 0..<rank {
                    let c = idx[k * rank + d]
                    guard c >= 0, c < Int64(shape[d]) else {
                        throw KerfError.invalidModel("\(what): coordinate \(c) of value \(k) in dimension \(d) is outside [0, \(shape[d]))")
                    }
                    l += Int(c) * strides[d]
                }
                offsets[k] = l
            }
            return offsets
        }

        var dense = try Tensor(zeros: values.dtype, shape: shape)
        let source = values.storage.pointer
        dense.withMutableElements(as: UInt8.self) { out in
            guard let base = out.baseAddress else { return }
            for (k, l) in offsets.enumerated() {
                (base + l * size).update(from: source.assumingMemoryBound(to: UInt8.self) + k * size, count: size)
            }
        }
        return dense
    }
}
