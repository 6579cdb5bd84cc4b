/// Splits `S` admission slots between gateway replicas by their demand (max-min fair).
///
/// Every replica first gets its demand, raised to a floor (so an idle replica can
/// admit at once) — or, when the demands add up to more than `S`, water-filling gives
/// the smallest demands in full and splits the rest evenly. Whatever is left over
/// after all demands are met is spread as headroom in `n + 1` equal parts of which
/// the `n` replicas get one each: the last part stays free for a replica that joins.
/// The shares never add up to more than `S`.
///
/// | S | demands | floor | shares |
/// |---|---|---|---|
/// | 12 | 10, 10, 10 | 1 | 4, 4, 4 |
/// | 12 | 2, 20, 20 | 1 | 2, 5, 5 |
/// | 12 | 0, 0, 6 | 1 | 2, 2, 7 (leftover 4 → 1 each, 1 free) |
/// | 2 | 5, 5, 5 | 1 | 1, 1, 0 |
public enum FairShare {
    public static func split(capacity: Int, demands: [Int], floor: Int) -> [Int] {
        let n = demands.count
        guard n > 0, capacity > 0 else { return Array(repeating: 0, count: n) }
        let lowest = Swift.min(Swift.max(floor, 0), capacity / n)
        let wanted = demands.map { Swift.max($0, lowest, capacity >= n ? 1 : 0) }
        var shares = Array(repeating: 0, count: n)
        if wanted.reduce(0, +) <= capacity {
            let leftover = capacity - wanted.reduce(0, +)
            let headroom = leftover / (n + 1)
            for index in 0..<n { shares[index] = wanted[index] + headroom }
            return shares
        }
        // Water-filling: satisfy the smallest wants while they fit an even split.
        var remaining = capacity
        var open = Array(0..<n).sorted { (wanted[$0], $0) < (wanted[$1], $1) }
        while let first = open.first, wanted[first] <= remaining / open.count {
            shares[first] = wanted[first]
            remaining -= wanted[first]
            open.removeFirst()
        }
        guard !open.isEmpty else { return shares }
        let even = remaining / open.count
        var extra = remaining % open.count
        // The remainder goes one slot each in index order (deterministic for every replica).
        for index in open.sorted() {
            shares[index] = even + (extra > 0 ? 1 : 0)
            if extra > 0 { extra -= 1 }
        }
        return shares
    }
}
