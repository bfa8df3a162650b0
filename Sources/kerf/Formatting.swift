/// `x` rounded to `places` decimals ("0.125", "-3.5000"), without Foundation's formatters.
func decimal(_ x: Double, places: Int) -> String {
    var scale = 1
    for _ in 0..<places { scale *= 10 }
    let scaled = Int((x * Double(scale)).rounded())
    let digits = String(abs(scaled) % scale)
    let fraction = places == 0 ? "" : "." + String(repeating: "0", count: places - digits.count) + digits
    return (scaled < 0 ? "-" : "") + String(abs(scaled) / scale) + fraction
}

/// A fraction as a percentage with one decimal ("72.5%").
func percent(_ x: Double) -> String { decimal(x * 100, places: 1) + "%" }

extension String {
    /// Left-aligned in a field of `width` characters (longer strings are kept whole).
    func padding(to width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
