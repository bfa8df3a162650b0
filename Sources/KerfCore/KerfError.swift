/// An error Kerf reports to its callers. Each case maps to one `kerf_status` code of the
/// C API (`include/kerf.h`); the message is meant for a human and names the offending
/// file, node, op or value.
public enum KerfError: Error, CustomStringConvertible, Equatable {
    case invalidArgument(String)
    case io(String)
    case invalidModel(String)
    case unsupported(String)
    case shapeMismatch(String)
    case outOfMemory(String)
    case cancelled(String)
    case `internal`(String)

    /// The `kerf_status` value of this error.
    public var status: Int32 {
        switch self {
        case .invalidArgument: return 1
        case .io: return 2
        case .invalidModel: return 3
        case .unsupported: return 4
        case .shapeMismatch: return 5
        case .outOfMemory: return 6
        case .cancelled: return 7
        case .internal: return 8
        }
    }

    public var message: String {
        switch self {
        case .invalidArgument(let m), .io(let m), .invalidModel(let m), .unsupported(let m),
             .shapeMismatch(let m), .outOfMemory(let m), .cancelled(let m), .internal(let m):
            return m
        }
    }

    public var description: String { message }

    /// The same error with `context` put in front of its message ("node 'conv1' (Conv): ...").
    public func prefixed(_ context: String) -> KerfError {
        let m = "\(context): \(message)"
        switch self {
        case .invalidArgument: return .invalidArgument(m)
        case .io: return .io(m)
        case .invalidModel: return .invalidModel(m)
        case .unsupported: return .unsupported(m)
        case .shapeMismatch: return .shapeMismatch(m)
        case .outOfMemory: return .outOfMemory(m)
        case .cancelled: return .cancelled(m)
        case .internal: return .internal(m)
        }
    }
}
