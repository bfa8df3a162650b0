import KerfCKernels

// Converts images between channels-first (NCHW) and channels-last (NHWC) layouts.

/// dst[n, p, c] = src[n, c, p] for n < images, c < channels, p < positions (= H*W):
/// NCHW to NHWC. `src` and `dst` must not overlap.
/// With `team`, each transpose is split over the calling thread's OpenMP team.
public func channelsFirstToLast(_ src: UnsafePointer<Float>, images: Int, channels: Int, positions: Int,
                                _ dst: UnsafeMutablePointer<Float>, team: Bool = false) {
    let size = channels * positions
    for n in 0..<images {
        transpose(src + n * size, rows: channels, columns: positions, lds: positions, adding: nil, dst + n * size, ldd: channels,
                  team: team)
    }
}

/// dst[n, c, p] = src[n, p, c] (+ add[n, c, p] when `add` is given) for n < images,
/// c < channels, p < positions (= H*W): NHWC to NCHW. `src` must not overlap `dst`; `add`
/// may be `dst` itself.
/// With `team`, each transpose is split over the calling thread's OpenMP team.
public func channelsLastToFirst(_ src: UnsafePointer<Float>, images: Int, channels: Int, positions: Int,
                                adding add: UnsafePointer<Float>? = nil, _ dst: UnsafeMutablePointer<Float>, team: Bool = false) {
    let size = channels * positions
    for n in 0..<images {
        transpose(src + n * size, rows: positions, columns: channels, lds: channels, adding: add.map { $0 + n * size },
                  dst + n * size, ldd: positions, team: team)
    }
}

/// dst[j * ldd + i] = src[i * lds + j] (+ add[j * ldd + i]) for i < rows, j < columns
/// (AVX2 when the CPU has it).
/// With `team`, split over the calling thread's OpenMP team (KerfCKernels/transpose_avx2.c).
func transpose(_ src: UnsafePointer<Float>, rows: Int, columns: Int, lds: Int, adding add: UnsafePointer<Float>?,
               _ dst: UnsafeMutablePointer<Float>, ldd: Int, team: Bool = false) {
    if int8GemmAccelerated && team {
        kerf_transpose_add_f32_team(src, rows, columns, lds, add, dst, ldd)
    } else if int8GemmAccelerated {
        kerf_transpose_add_f32_avx2(src, rows, columns, lds, add, dst, ldd)
    } else {
        transposeReference(src, rows: rows, columns: columns, lds: lds, adding: add, dst, ldd: ldd)
    }
}

/// The same as `transpose`, in portable Swift: 8 x 8 tiles, so both sides stay in L1 even
/// when a row stride is a multiple of 4 KiB (which maps 16 lines to one cache set).
func transposeReference(_ src: UnsafePointer<Float>, rows: Int, columns: Int, lds: Int, adding add: UnsafePointer<Float>?,
                        _ dst: UnsafeMutablePointer<Float>, ldd: Int) {
    let tile = 8
    var i0 = 0
    while i0 < rows {
        let i1 = min(i0 + tile, rows)
        var j0 = 0
        while j0 < columns {
            let j1 = min(j0 + tile, columns)
            for j in j0..<j1 {
                let d = dst + j * ldd
                if let add {
                    let a = add + j * ldd
                    for i in i0..<i1 { d[i] = src[i * lds + j] + a[i] }
                } else {
                    for i in i0..<i1 { d[i] = src[i * lds + j] }
                }
            }
            j0 = j1
        }
        i0 = i1
    }
}
