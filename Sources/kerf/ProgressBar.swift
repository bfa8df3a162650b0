#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress bar on stderr, redrawn in place; silent when stderr is not a terminal.
final class ProgressBar {
    private let label: String
    private let enabled = isatty(STDERR_FILENO) != 0

    init(_ label: String) { self.label = label }

    /// Draws `done` of `total`; always returns true (never cancels).
    func update(_ done: Int, _ total: Int, _ message: String) -> Bool {
        guard enabled, total > 0 else { return true }
        let width = 30
        let filled = min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        fputs("\r\(label) [\(bar)] \(done)/\(total) \(message.prefix(40))\u{1B}[K", stderr)
        if done >= total { fputs("\n", stderr) }
        return true
    }
}
