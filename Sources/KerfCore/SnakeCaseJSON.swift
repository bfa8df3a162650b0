import FoundationEssentials

/// `value` as JSON with snake_case keys, sorted (the form of every report of the C API).
public func snakeCaseJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
