import KerfCore

/// Dimension arithmetic for static shape inference. Every operation is total: overflow, negative
/// results and mixed symbols give `.unknown` (or nil where a conflict must be reported), never a trap.
extension Dim {
    /// The dimension's size when it is a known non-negative number.
    public var intValue: Int? {
        if case .value(let v) = self, v >= 0 { return v }
        return nil
    }

    /// True when the dimension is a known number or a named symbol.
    var isKnown: Bool {
        switch self {
        case .value(let v): return v >= 0
        case .symbol: return true
        case .unknown: return false
        }
    }

    /// `a * b`: numbers multiply (overflow gives unknown), 1 is neutral for symbols, 0 absorbs.
    static func product(_ a: Dim, _ b: Dim) -> Dim {
        if a.intValue == 0 || b.intValue == 0 { return .value(0) }
        if a.intValue == 1 { return b }
        if b.intValue == 1 { return a }
        guard let x = a.intValue, let y = b.intValue else { return .unknown }
        let (p, o) = x.multipliedReportingOverflow(by: y)
        return o ? .unknown : .value(p)
    }

    /// The product of `dims` (1 for none).
    static func product<S: Sequence>(of dims: S) -> Dim where S.Element == Dim {
        dims.reduce(Dim.value(1), product)
    }

    /// `a + b` for numbers (0 is neutral for symbols); unknown otherwise or on overflow.
    static func sum(_ a: Dim, _ b: Dim) -> Dim {
        if a.intValue == 0 { return b }
        if b.intValue == 0 { return a }
        guard let x = a.intValue, let y = b.intValue else { return .unknown }
        let (s, o) = x.addingReportingOverflow(y)
        return o ? .unknown : .value(s)
    }

    /// The broadcast of dims from several operands (numpy rules): a number other than 1 wins,
    /// 1 yields to anything, equal symbols stay. Returns nil when two numbers other than 1 differ.
    static func broadcast(_ dims: [Dim]) -> Dim? {
        var number: Int?
        var symbols = Set<String>()
        var sawUnknown = false
        for d in dims {
            switch d {
            case .value(let v) where v == 1: continue
            case .value(let v) where v >= 0:
                if let n = number, n != v { return nil }
                number = v
            case .symbol(let s): symbols.insert(s)
            default: sawUnknown = true
            }
        }
        if let n = number { return .value(n) }
        if sawUnknown || symbols.count > 1 { return .unknown }
        if let s = symbols.first { return .symbol(s) }
        return .value(1)
    }

    /// Two facts about the same dimension combined: a number beats a symbol beats unknown.
    /// Returns nil when they are different numbers.
    static func merge(_ a: Dim, _ b: Dim) -> Dim? {
        switch (a, b) {
        case (.value(let x), .value(let y)): return x == y ? a : nil
        case (.value, _): return a
        case (_, .value): return b
        case (.symbol, _): return a
        default: return b
        }
    }
}

/// Shape helpers on `[Dim]`.
enum Shapes {
    /// Numpy broadcasting of several shapes (right-aligned); nil when they conflict.
    static func broadcast(_ shapes: [[Dim]]) -> [Dim]? {
        let rank = shapes.map(\.count).max() ?? 0
        var out: [Dim] = []
        out.reserveCapacity(rank)
        for i in 0..<rank {
            let column = shapes.compactMap { s -> Dim? in
                let j = i - (rank - s.count)
                return j >= 0 ? s[j] : nil
            }
            guard let d = Dim.broadcast(column) else { return nil }
            out.append(d)
        }
        return out
    }

    /// Element-wise merge of two facts about one shape; nil on a rank or number conflict.
    static func merge(_ a: [Dim], _ b: [Dim]) -> [Dim]? {
        guard a.count == b.count else { return nil }
        var out: [Dim] = []
        for (x, y) in zip(a, b) {
            guard let m = Dim.merge(x, y) else { return nil }
            out.append(m)
        }
        return out
    }

    /// The element count of `dims` when every dim is a number (nil on overflow).
    static func count(_ dims: [Dim]) -> Int? {
        var n = 1
        for d in dims {
            guard let v = d.intValue else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: v)
            guard !o else { return nil }
            n = p
        }
        return n
    }

    /// `axis` in `-rank..<rank` mapped to `0..<rank`; nil outside.
    static func axis(_ axis: Int, rank: Int) -> Int? {
        let a = axis < 0 ? axis + rank : axis
        return a >= 0 && a < rank ? a : nil
    }
}
