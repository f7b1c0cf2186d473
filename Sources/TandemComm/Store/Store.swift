#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A key-value store that ranks use to find each other, with torch `TCPStore` semantics.
///
/// Keys are strings, values bytes. `get` and `wait` block until the keys exist or the timeout passes;
/// `add` is an atomic counter. A `PrefixStore` scopes keys to one group or job phase.
public protocol Store: AnyObject, Sendable {
    /// Sets `key` to `value`, replacing any previous value, and wakes waiters on it.
    func set(_ key: String, _ value: [UInt8]) throws(StoreError)
    /// The value of `key`, waiting up to `timeout` seconds for it to be set.
    func get(_ key: String, timeout: Double) throws(StoreError) -> [UInt8]
    /// Waits up to `timeout` seconds until every key in `keys` is set.
    func wait(_ keys: [String], timeout: Double) throws(StoreError)
    /// Adds `amount` to the integer counter at `key` (created as 0) and returns the new value.
    func add(_ key: String, _ amount: Int64) throws(StoreError) -> Int64
    /// Sets `key` to `desired` if its value is `expected` (or if it is absent and `expected` is empty), and
    /// returns the value now stored (or `expected` when the key is absent and `expected` is not empty).
    func compareSet(_ key: String, expected: [UInt8], desired: [UInt8]) throws(StoreError) -> [UInt8]
    /// Deletes `key`; returns whether it existed.
    func delete(_ key: String) throws(StoreError) -> Bool
    /// The number of keys in the whole store (all prefixes).
    func numKeys() throws(StoreError) -> Int
}

extension Store {
    /// Sets `key` to the UTF-8 bytes of `value`.
    public func set(_ key: String, string value: String) throws(StoreError) {
        try set(key, Array(value.utf8))
    }

    /// The value of `key` decoded as UTF-8.
    public func getString(_ key: String, timeout: Double) throws(StoreError) -> String {
        String(decoding: try get(key, timeout: timeout), as: UTF8.self)
    }
}

/// Why a store operation failed.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// The keys were not set within the timeout.
    case timeout(keys: [String], seconds: Double)
    /// The server refused the connection because the job token did not match.
    case refused(address: String)
    /// The store could not be reached or the connection broke.
    case connection(address: String, underlying: SystemCallError)
    /// The server could not listen on its address (the port is taken, the address is not this host's).
    case cannotServe(address: String, underlying: SystemCallError)
    /// The server answered something this client does not understand, or the server shut down.
    case protocolViolation(address: String, detail: String)
    /// A key or value exceeds the wire limits.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .timeout(keys, seconds):
            "store timeout after \(seconds) s waiting for key(s) \(keys.joined(separator: ", "))"
        case let .refused(address):
            "the store at \(address) refused this connection: the job token does not match "
                + "(every rank needs the same \(TandemEnvironment.jobToken.name))"
        case let .connection(address, underlying):
            "cannot reach the store at \(address): \(underlying)"
        case let .cannotServe(address, underlying) where underlying.errno == EADDRINUSE:
            "cannot serve the store on \(address): the port is in use (another job, or a store still running?); choose another "
                + "--master-port, or 0 for a free one on a single node"
        case let .cannotServe(address, underlying) where underlying.errno == EADDRNOTAVAIL:
            "cannot serve the store on \(address): that address is not one of this host's (give --master-addr an address of node 0)"
        case let .cannotServe(address, underlying):
            "cannot serve the store on \(address): \(underlying)"
        case let .protocolViolation(address, detail):
            "store at \(address): \(detail)"
        case let .invalidArgument(detail):
            "invalid store argument: \(detail)"
        }
    }
}

/// A view of another store in which every key is prefixed with `prefix/`.
public final class PrefixStore: Store {
    /// The prefix, without the trailing slash.
    public let prefix: String
    /// The store that holds the keys.
    public let base: any Store

    /// Scopes `base` to `prefix`.
    public init(prefix: String, base: any Store) {
        self.prefix = prefix
        self.base = base
    }

    /// The prefix with those of the prefix stores beneath it: the scope of its keys in the store that holds them.
    public var fullPrefix: String { (base as? PrefixStore).map { "\($0.fullPrefix)/\(prefix)" } ?? prefix }

    private func scoped(_ key: String) -> String { "\(prefix)/\(key)" }

    public func set(_ key: String, _ value: [UInt8]) throws(StoreError) { try base.set(scoped(key), value) }
    public func get(_ key: String, timeout: Double) throws(StoreError) -> [UInt8] {
        try base.get(scoped(key), timeout: timeout)
    }
    public func wait(_ keys: [String], timeout: Double) throws(StoreError) {
        try base.wait(keys.map(scoped), timeout: timeout)
    }
    public func add(_ key: String, _ amount: Int64) throws(StoreError) -> Int64 { try base.add(scoped(key), amount) }
    public func compareSet(_ key: String, expected: [UInt8], desired: [UInt8]) throws(StoreError) -> [UInt8] {
        try base.compareSet(scoped(key), expected: expected, desired: desired)
    }
    public func delete(_ key: String) throws(StoreError) -> Bool { try base.delete(scoped(key)) }
    public func numKeys() throws(StoreError) -> Int { try base.numKeys() }
}
