/// Reports progress of long work: `done` of `total` steps finished, with a short description
/// of the current step. Returning false asks the work to stop; it then throws
/// `KerfError.cancelled` and leaves the model as it was.
public typealias ProgressHandler = (_ done: Int, _ total: Int, _ message: String) -> Bool
