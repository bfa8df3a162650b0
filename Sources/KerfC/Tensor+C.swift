import KerfCore
import KerfCShims
#if canImport(Glibc)
import Glibc
#endif

/// The object behind a `kerf_tensor *`.
final class TensorHandle {
    let tensor: Tensor
    /// Dims as int64, at a stable address for `kerf_tensor_shape` (nil for rank 0).
    let dims: UnsafeMutablePointer<Int64>?

    init(_ tensor: Tensor) {
        self.tensor = tensor
        dims = tensor.rank == 0 ? nil : UnsafeMutablePointer<Int64>.allocate(capacity: tensor.rank)
        for (i, d) in tensor.shape.enumerated() { dims![i] = Int64(d) }
    }

    deinit { dims?.deallocate() }
}

/// Validates dtype, dims and byte size of a tensor the caller describes.
private func describe(_ dtypeCode: Int32, _ dims: UnsafePointer<Int64>?, _ rank: Int, _ byteSize: Int) throws -> (DType, [Int]) {
    // Sub-byte types (int4, uint2, float4e2m1, ...) are accepted unpacked: one element per byte.
    guard let dtype = DType(rawValue: dtypeCode), dtype != .string, dtype.byteSize > 0 else {
        throw KerfError.invalidArgument("dtype \(dtypeCode) cannot be used in a kerf_tensor")
    }
    try argument(rank <= 64, "rank \(rank) is too large (at most 64)")
    try argument(rank == 0 || dims != nil, "dims is NULL but rank is \(rank)")
    var shape: [Int] = []
    var count = 1
    for i in 0..<rank {
        let d = dims![i]
        try argument(d >= 0, "dims[\(i)] is negative (\(d))")
        let (c, overflow) = count.multipliedReportingOverflow(by: Int(d))
        let (_, overflow2) = c.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, !overflow2 else {
            throw KerfError.invalidArgument("a tensor of dims \(Array(UnsafeBufferPointer(start: dims, count: rank))) overflows its byte size")
        }
        count = c
        shape.append(Int(d))
    }
    let expected = count * dtype.byteSize
    guard byteSize == expected else {
        throw KerfError.invalidArgument("byte_size is \(byteSize) but \(dtype) dims \(shape) need \(expected) bytes")
    }
    return (dtype, shape)
}

/// A tensor over caller memory the caller describes (validated like kerf_tensor_create),
/// borrowed without copying; `release` (if any) runs when the storage goes away.
func describedTensor(_ dtypeCode: Int32, _ dims: UnsafePointer<Int64>?, _ rank: Int, _ data: UnsafeMutableRawPointer?,
                     _ byteSize: Int, release: (() -> Void)? = nil) throws -> Tensor {
    let (dtype, shape) = try describe(dtypeCode, dims, rank, byteSize)
    try argument(data != nil || byteSize == 0, "data is NULL")
    let base = data ?? UnsafeMutableRawPointer(bitPattern: 64)!
    return Tensor(dtype: dtype, shape: shape, storage: TensorStorage(borrowing: base, byteCount: byteSize, release: release))
}

@c @implementation
public func kerf_tensor_create(_ dtypeCode: Int32, _ dims: UnsafePointer<Int64>?, _ rank: Int, _ data: UnsafeRawPointer?,
                               _ byteSize: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    out?.pointee = nil
    return guarded {
        try argument(out != nil, "out is NULL")
        let (dtype, shape) = try describe(dtypeCode, dims, rank, byteSize)
        // Refused before a byte is zeroed or copied (also by the allocation, with what is in use).
        try MemoryLimit.check(byteCount: byteSize, for: "kerf_tensor_create: a tensor \(shape) of \(dtype)")
        let t = try data == nil ? Tensor(zeros: dtype, shape: shape) : Tensor(uninitialized: dtype, shape: shape)
        if let data, byteSize > 0 { t.storage.pointer.copyMemory(from: data, byteCount: byteSize) }
        out!.pointee = HandleRegistry.shared.register(TensorHandle(t))
    }
}

@c @implementation
public func kerf_tensor_wrap(_ dtypeCode: Int32, _ dims: UnsafePointer<Int64>?, _ rank: Int, _ data: UnsafeMutableRawPointer?,
                             _ byteSize: Int,
                             _ release: (@convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void)?,
                             _ user: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    out?.pointee = nil
    return guarded {
        try argument(out != nil, "out is NULL")
        let t = try describedTensor(dtypeCode, dims, rank, data, byteSize, release: release.map { r in { r(data, user) } })
        out!.pointee = HandleRegistry.shared.register(TensorHandle(t))
    }
}

@c @implementation
public func kerf_tensor_free(_ tensor: OpaquePointer?) {
    HandleRegistry.shared.release(tensor, as: TensorHandle.self)
}

@c @implementation
public func kerf_tensors_free(_ tensors: UnsafePointer<OpaquePointer?>?, _ count: Int) {
    guard let tensors, count > 0 else { return }
    for i in 0..<count { HandleRegistry.shared.release(tensors[i], as: TensorHandle.self) }
}

@c @implementation
public func kerf_tensor_dtype(_ tensor: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let t = try HandleRegistry.shared.resolve(tensor, as: TensorHandle.self, "tensor")
        try store(out, t.tensor.dtype.rawValue, "out")
    }
}

@c @implementation
public func kerf_tensor_shape(_ tensor: OpaquePointer?, _ dims: UnsafeMutablePointer<UnsafePointer<Int64>?>?,
                              _ rank: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded {
        let t = try HandleRegistry.shared.resolve(tensor, as: TensorHandle.self, "tensor")
        try argument(dims != nil && rank != nil, "dims or rank is NULL")
        dims!.pointee = t.dims.map { UnsafePointer($0) }
        rank!.pointee = t.tensor.rank
    }
}

@c @implementation
public func kerf_tensor_data(_ tensor: OpaquePointer?, _ data: UnsafeMutablePointer<UnsafeRawPointer?>?,
                             _ byteSize: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded {
        let t = try HandleRegistry.shared.resolve(tensor, as: TensorHandle.self, "tensor")
        try argument(data != nil && byteSize != nil, "data or byte_size is NULL")
        data!.pointee = UnsafeRawPointer(t.tensor.storage.pointer)
        byteSize!.pointee = t.tensor.byteCount
    }
}

@c @implementation
public func kerf_tensor_info(_ tensor: OpaquePointer?, _ dtype: UnsafeMutablePointer<Int32>?,
                             _ dims: UnsafeMutablePointer<UnsafePointer<Int64>?>?, _ rank: UnsafeMutablePointer<Int>?,
                             _ data: UnsafeMutablePointer<UnsafeRawPointer?>?, _ byteSize: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded {
        let t = try HandleRegistry.shared.resolve(tensor, as: TensorHandle.self, "tensor")
        try argument(dtype != nil && dims != nil && rank != nil && data != nil && byteSize != nil, "an out-pointer is NULL")
        dtype!.pointee = t.tensor.dtype.rawValue
        dims!.pointee = t.dims.map { UnsafePointer($0) }
        rank!.pointee = t.tensor.rank
        data!.pointee = UnsafeRawPointer(t.tensor.storage.pointer)
        byteSize!.pointee = t.tensor.byteCount
    }
}
