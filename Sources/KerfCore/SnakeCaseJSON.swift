import FoundationEssentials

/// `value` as JSON with snake_case keys, sorted (the form of every report of the C API).
public func snakeCaseJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// The JSON object `object` (as `snakeCaseJSON` writes it) with one more member, `key`: `value`
/// (JSON text). Throws when `object` is not an object.
public func jsonObject(_ object: String, adding key: String, _ value: String) throws -> String {
    var text = object
    while let last = text.last, last.isWhitespace { text.removeLast() }
    guard text.hasPrefix("{"), text.hasSuffix("}") else { throw KerfError.internal("not a JSON object: \(text.prefix(40))") }
    text.removeLast()
    let keyText = String(decoding: try JSONEncoder().encode(key), as: UTF8.self)
    return text + (text.count > 1 ? "," : "") + keyText + ":" + value + "}"
}
