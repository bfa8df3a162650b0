import KerfCore
import KerfCShims

/// A struct of kerf.h that starts with `struct_size` and grows only at its end. The rule that
/// every such struct follows is written once, in kerf.h ("Structs that start with
/// struct_size"); `readOptions`, `fillOptions` and `writeSized` are its only implementation.
protocol SizedStruct {
    /// The C name, for messages ("kerf_prune_options").
    static var cName: String { get }
    /// sizeof the struct in the first ABI that had it: the smallest struct_size accepted. Named
    /// through a field of that release (`size(through:)`), so that it does not grow with the struct.
    static var firstSize: Int { get }
}

/// An options struct: what the caller leaves out takes the defaults of its `_init`.
protocol OptionsStruct: SizedStruct {
    /// What `kerf_*_options_init` gives, struct_size = sizeof included.
    static var defaults: Self { get }
    /// sizeof the struct as of ABI 1.7: what the unsized `kerf_*_options_init` symbol fills (programs
    /// built before ABI 1.8 call it with a struct of that size).
    static var unsizedInitSize: Int { get }
}

extension SizedStruct {
    /// sizeof the struct as C lays it out (tail padding included).
    static var currentSize: Int { MemoryLayout<Self>.stride }

    /// sizeof a struct that ends with `field`: its end rounded up to the struct's alignment.
    static func size<F>(through field: KeyPath<Self, F>) -> Int {
        let end = MemoryLayout<Self>.offset(of: field)! + MemoryLayout<F>.size
        let alignment = MemoryLayout<Self>.alignment
        return (end + alignment - 1) / alignment * alignment
    }

    /// Throws INVALID_ARGUMENT unless `size` lies between the first release's sizeof and this ABI's.
    static func checkSize(_ size: Int, _ what: @autoclosure () -> String) throws {
        guard size >= firstSize, size <= currentSize else {
            throw KerfError.invalidArgument(
                "\(what())->struct_size is \(size), but \(cName) is \(firstSize) to \(currentSize) bytes in this library "
                + "(ABI \(KERF_ABI_VERSION_MAJOR).\(KERF_ABI_VERSION_MINOR)); set it to sizeof(\(cName))")
        }
    }
}

/// The caller's options (`pointer` NULL: the defaults): its first struct_size bytes over the
/// defaults, after checking struct_size.
func readOptions<T: OptionsStruct>(_ pointer: UnsafePointer<T>?, _ what: @autoclosure () -> String = "options") throws -> T {
    var value = T.defaults
    guard let pointer else { return value }
    let size = UnsafeRawPointer(pointer).load(as: Int.self)
    try T.checkSize(size, what())
    withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: min(size, $0.count))) }
    return value
}

/// Writes the first `size` bytes of `value` (struct_size set to `size`) to `pointer`, the caller's
/// struct of `size` bytes.
func writeSized<T: SizedStruct>(_ value: T, to pointer: UnsafeMutableRawPointer, size: Int) {
    var value = value
    withUnsafeMutableBytes(of: &value) { bytes in
        bytes.storeBytes(of: size, as: Int.self)
        pointer.copyMemory(from: bytes.baseAddress!, byteCount: min(size, bytes.count))
    }
}

/// `kerf_*_options_init_sized`: the defaults into the caller's struct of `size` bytes. A size
/// out of range is reported, and only struct_size is written, so that the call that takes
/// the struct fails with the same message.
func fillOptions<T: OptionsStruct>(_ pointer: UnsafeMutablePointer<T>?, size: Int) -> kerf_status {
    guarded {
        guard let pointer else { throw KerfError.invalidArgument("options is NULL") }
        do {
            try T.checkSize(size, "options")
        } catch {
            if size >= MemoryLayout<Int>.size { UnsafeMutableRawPointer(pointer).storeBytes(of: size, as: Int.self) }
            throw error
        }
        writeSized(T.defaults, to: UnsafeMutableRawPointer(pointer), size: size)
    }
}

/// The unsized `kerf_*_options_init` of programs built before ABI 1.8: the ABI 1.7 struct.
func fillLegacyOptions<T: OptionsStruct>(_ pointer: UnsafeMutablePointer<T>?) {
    if let pointer { writeSized(T.defaults, to: UnsafeMutableRawPointer(pointer), size: T.unsizedInitSize) }
}
