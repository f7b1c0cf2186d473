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
/// The creator reserves every page up front (`posix_fallocate`), so a full `/dev/shm` is reported here, by
/// name and size, instead of as a `SIGBUS` on first touch. The name is unlinked as soon as every process
/// that needs the segment has mapped it (`unlink`), so nothing is left behind even after `kill -9`.
final class SharedSegment: @unchecked Sendable {
    /// The POSIX name (`/tdm…`).
    let name: String
    /// The mapped size in bytes.
    let byteCount: Int
    /// The start of the mapping, page aligned.
    let base: UnsafeMutableRawPointer

    private init(name: String, byteCount: Int, base: UnsafeMutableRawPointer) {
        self.name = name
        self.byteCount = byteCount
        self.base = base
    }

    deinit { munmap(base, byteCount) }

    /// Creates a new zero-filled segment of `byteCount` bytes; fails if the name exists.
    static func create(name: String, byteCount: Int) throws(SharedSegmentError) -> SharedSegment {
        let descriptor = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0o600)
        guard descriptor >= 0 else { throw .system(name: name, call: "shm_open(create)", code: errno) }
        defer { close(descriptor) }
        let reserved = posix_fallocate(descriptor, 0, off_t(byteCount))
        if reserved != 0 {
            shm_unlink(name)
            if reserved == ENOSPC || reserved == EFBIG {
                throw .insufficientSpace(name: name, needed: byteCount, available: freeSharedMemoryBytes())
            }
            throw .system(name: name, call: "posix_fallocate", code: reserved)
        }
        do {
            return try map(name: name, descriptor: descriptor, byteCount: byteCount)
        } catch {
            shm_unlink(name)
            throw error
        }
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
        return try map(name: name, descriptor: descriptor, byteCount: byteCount)
    }

    /// Removes `name` from the file system; mappings stay valid until unmapped. Missing names are ignored.
    static func unlink(_ name: String) {
        shm_unlink(name)
    }

    private static func map(name: String, descriptor: Int32, byteCount: Int) throws(SharedSegmentError) -> SharedSegment {
        guard let base = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0), base != MAP_FAILED else {
            throw .system(name: name, call: "mmap", code: errno)
        }
        return SharedSegment(name: name, byteCount: byteCount, base: base)
    }

    /// Free bytes on the file system behind `/dev/shm`, when it can be asked.
    private static func freeSharedMemoryBytes() -> Int? {
        var info = statvfs()
        guard statvfs("/dev/shm", &info) == 0 else { return nil }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }
}
