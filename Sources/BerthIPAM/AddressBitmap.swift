/// A fixed-size set of address indices, one bit each, with Docker's sequential allocation order:
/// the next allocation starts after the last one handed out and wraps around, so a released
/// address is not reused at once.
public struct AddressBitmap: Sendable, Hashable {
    /// The number of indices (addresses in the subnet).
    public let count: Int
    private var words: [UInt64]
    /// The index after which the next sequential search starts.
    public var cursor: Int
    /// How many indices are set.
    public private(set) var setCount: Int = 0

    /// An empty bitmap of `count` indices.
    public init(count: Int) {
        self.count = count
        words = [UInt64](repeating: 0, count: (count + 63) / 64)
        cursor = -1
    }

    /// Whether `index` is set.
    public func contains(_ index: Int) -> Bool {
        words[index >> 6] & (1 << UInt64(index & 63)) != 0
    }

    /// Sets `index`; returns false when it was already set.
    @discardableResult
    public mutating func insert(_ index: Int) -> Bool {
        let bit: UInt64 = 1 << UInt64(index & 63)
        if words[index >> 6] & bit != 0 { return false }
        words[index >> 6] |= bit
        setCount += 1
        return true
    }

    /// Clears `index`; returns false when it was not set.
    @discardableResult
    public mutating func remove(_ index: Int) -> Bool {
        let bit: UInt64 = 1 << UInt64(index & 63)
        if words[index >> 6] & bit == 0 { return false }
        words[index >> 6] &= ~bit
        setCount -= 1
        return true
    }

    /// Finds the first clear index after ``cursor`` (wrapping), sets it and moves the cursor there.
    /// - Returns: The index, or `nil` when every index is set.
    public mutating func insertNext() -> Int? {
        guard setCount < count else { return nil }
        var i = (cursor + 1) % count
        var scanned = 0
        while scanned < count {
            let w = i >> 6
            // Skip full words quickly.
            if i & 63 == 0, words[w] == .max, i + 64 <= count {
                i += 64
                scanned += 64
                if i >= count { i = 0 }
                continue
            }
            if !contains(i) {
                insert(i)
                cursor = i
                return i
            }
            i += 1
            scanned += 1
            if i >= count { i = 0 }
        }
        return nil
    }

    /// The set indices as closed ranges, in order (a compact form for persistence).
    public var ranges: [ClosedRange<Int>] {
        var result: [ClosedRange<Int>] = []
        var start: Int? = nil
        var w = 0
        while w < words.count {
            let word = words[w]
            if start == nil && word == 0 { w += 1; continue }
            if let _ = start, word == .max { w += 1; continue }
            for b in 0..<64 {
                let i = w * 64 + b
                if i >= count { break }
                if word & (1 << UInt64(b)) != 0 {
                    if start == nil { start = i }
                } else if let s = start {
                    result.append(s...(i - 1))
                    start = nil
                }
            }
            w += 1
        }
        if let s = start { result.append(s...(count - 1)) }
        return result
    }
}
