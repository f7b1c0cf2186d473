#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a shared-memory segment could not be created or mapped.
enum SharedSegmentError: Error, CustomStringConvertible {
    /// The shared-memory file system has less room than the segment needs.
    case insufficientSpace(name: String, needed: Int, available: Int?)
    /// A system call failed.
    case system(name: String, call: String, code: Int32)
    /// The segment exists but is smaller than expected (another job's segment, or a half-made one).
    case wrongSize(name: String, expected: Int, actual: Int)

    var description: String {
        switch self {
        case let .insufficientSpace(name, needed, available):
            let free = available.map { ", \($0) bytes free" } ?? ""
            return "shared memory segment \(name) needs \(needed) bytes, more than /dev/shm has room for\(free) "
                + "(in a container, raise it: docker run --shm-size=1g …)"
        case let .system(name, call, code):
            return "shared memory segment \(name): \(call) failed: \(String(cString: strerror(code)))"
        case let .wrongSize(name, expected, actual):
            return "shared memory segment \(name) has \(actual) bytes, expected \(expected)"
        }
    }
}

/// One POSIX shared-memory segment mapped into this process.
///
/// The creator reserves the pages a group will use up front (`posix_fallocate`), so a full `/dev/shm` is
/// reported here, by name and size, instead of as a `SIGBUS` on first touch; the rest of the mapping stays
/// sparse (it costs no memory) until a split sub-group reserves its region. The name is unlinked as soon as every process
/// that needs the segment has mapped it (`unlink`), so nothing is left behind even after `kill -9`.
final class SharedSegment: @unchecked Sendable {
    /// The POSIX name (`/tdm…`).
    let name: String
    /// The mapped size in bytes.
    let byteCount: Int
    /// The start of the mapping, page aligned.
    let base: UnsafeMutableRawPointer

    /// Kept open by the creator, to reserve more of the segment later (`reserve`); -1 for a peer's segment.
    private let descriptor: Int32

    private init(name: String, byteCount: Int, base: UnsafeMutableRawPointer, descriptor: Int32) {
        self.name = name
        self.byteCount = byteCount
        self.base = base
        self.descriptor = descriptor
    }

    deinit {
        munmap(base, byteCount)
        if descriptor >= 0 { close(descriptor) }
    }

    /// Creates a new zero-filled segment of `byteCount` bytes, of which the first `reservedBytes` are reserved
    /// now (the rest stays sparse until `reserve`d); fails if the name exists.
    static func create(name: String, byteCount: Int, reservedBytes: Int) throws(SharedSegmentError) -> SharedSegment {
        let descriptor = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0o600)
        guard descriptor >= 0 else { throw .system(name: name, call: "shm_open(create)", code: errno) }
        do throws(SharedSegmentError) {
            guard ftruncate(descriptor, off_t(byteCount)) == 0 else {
                throw SharedSegmentError.system(name: name, call: "ftruncate", code: errno)
            }
            try reserve(descriptor, name: name, offset: 0, bytes: reservedBytes)
            let base = try map(name: name, descriptor: descriptor, byteCount: byteCount)
            return SharedSegment(name: name, byteCount: byteCount, base: base, descriptor: descriptor)
        } catch {
            close(descriptor)
            shm_unlink(name)
            throw error
        }
    }

    /// Reserves `bytes` at `offset` of a segment this process created, so touching them cannot fail later.
    func reserve(offset: Int, bytes: Int) throws(SharedSegmentError) {
        precondition(descriptor >= 0, "only the creator reserves")
        try Self.reserve(descriptor, name: name, offset: offset, bytes: bytes)
    }

    private static func reserve(_ descriptor: Int32, name: String, offset: Int, bytes: Int) throws(SharedSegmentError) {
        let result = posix_fallocate(descriptor, off_t(offset), off_t(bytes))
        if result == ENOSPC || result == EFBIG {
            throw .insufficientSpace(name: name, needed: bytes, available: freeSharedMemoryBytes())
        }
        if result != 0 { throw .system(name: name, call: "posix_fallocate", code: result) }
    }

    /// Maps an existing segment created by a peer; its size must be `byteCount`.
    static func open(name: String, byteCount: Int) throws(SharedSegmentError) -> SharedSegment {
        let descriptor = shm_open(name, O_RDWR, 0)
        guard descriptor >= 0 else { throw .system(name: name, call: "shm_open", code: errno) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .system(name: name, call: "fstat", code: errno) }
        guard Int(status.st_size) == byteCount else {
            throw .wrongSize(name: name, expected: byteCount, actual: Int(status.st_size))
        }
        return SharedSegment(
            name: name, byteCount: byteCount, base: try map(name: name, descriptor: descriptor, byteCount: byteCount), descriptor: -1)
    }

    /// Removes `name` from the file system; mappings stay valid until unmapped. Missing names are ignored.
    static func unlink(_ name: String) {
        shm_unlink(name)
    }

    private static func map(name: String, descriptor: Int32, byteCount: Int) throws(SharedSegmentError) -> UnsafeMutableRawPointer {
        guard let base = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0), base != MAP_FAILED else {
            throw .system(name: name, call: "mmap", code: errno)
        }
        return base
    }

    /// Free bytes on the file system behind `/dev/shm`, when it can be asked.
    private static func freeSharedMemoryBytes() -> Int? {
        var info = statvfs()
        guard statvfs("/dev/shm", &info) == 0 else { return nil }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }
}
