extension Sequence<Int> {
    /// The product of the elements, or nil when it passes `Int.max` (sizes read from a file may multiply past it).
    var checkedProduct: Int? {
        var product = 1
        for factor in self {
            let (next, overflow) = product.multipliedReportingOverflow(by: factor)
            if overflow { return nil }
            product = next
        }
        return product
    }
}
