import KerfCompress
import KerfCore
import KerfCShims

extension kerf_student_options: OptionsStruct {
    static let cName = "kerf_student_options"
    /// ABI 1.11: up to narrow.
    static let firstSize = size(through: \.narrow)
    static let unsizedInitSize = size(through: \.narrow)
    static var defaults: kerf_student_options {
        kerf_student_options(struct_size: currentSize, drop: Int32(KERF_DROP_EVERY_OTHER), drop_indices: nil, n_drop_indices: 0, narrow: 0)
    }
}

@c @implementation
public func kerf_student_options_init_sized(_ options: UnsafeMutablePointer<kerf_student_options>?, _ size: Int) -> kerf_status {
    fillOptions(options, size: size)
}

/// `StudentOptions` from a C options struct (NULL = defaults).
private func studentOptions(_ pointer: UnsafePointer<kerf_student_options>?) throws -> StudentOptions {
    let c = try readOptions(pointer)
    var o = StudentOptions()
    switch Int(c.drop) {
    case KERF_DROP_NONE: o.dropLayers = .none
    case KERF_DROP_EVERY_OTHER: o.dropLayers = .everyOther
    case KERF_DROP_INDICES:
        try argument(c.n_drop_indices < 1 << 20 && (c.n_drop_indices == 0 || c.drop_indices != nil),
                     "options->drop_indices is NULL but n_drop_indices is \(c.n_drop_indices)")
        o.dropLayers = .indices((0..<c.n_drop_indices).map { Int(clamping: c.drop_indices![$0]) })
    default: throw KerfError.invalidArgument("options->drop \(c.drop) is not a KERF_DROP_* value")
    }
    o.narrow = c.narrow == 0 ? nil : c.narrow
    return o
}

@c @implementation
public func kerf_student(_ model: OpaquePointer?, _ options: UnsafePointer<kerf_student_options>?,
                         _ report: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> kerf_status {
    report?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        let result = try makeStudent(m.model, options: try studentOptions(options))
        try storeString(try result.json(), report)
    }
}
