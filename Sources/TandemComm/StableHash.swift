/// 64-bit FNV-1a of a string's UTF-8 bytes: a hash that is the same on every rank, host and run (unlike
/// `Hasher`), behind group ids, shared-memory segment names and the split path's list check.
public func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash
}
