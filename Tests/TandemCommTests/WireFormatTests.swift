import Foundation
import TandemTestSupport
import XCTest

import TandemComm

/// The wire formats' decoders refuse what no Tandem peer sends — trailing bytes, strings that are not UTF-8,
/// lengths past their limits — with the reason, instead of trapping, allocating the announced size, or acting
/// on a changed message. (The fuzz harnesses in Fuzz/ run the same decoders on millions of inputs.)
final class WireFormatTests: XCTestCase {
    private func lengthPrefixed(_ bytes: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { Array($0) } + bytes
    }

    func testStoreRequestsDecodeStrictly() throws {
        let set: [UInt8] = [2] + lengthPrefixed(Array("key".utf8)) + lengthPrefixed([1, 2])
        XCTAssertEqual(try StoreRequest(decoding: set), .set(key: "key", value: [1, 2]))
        XCTAssertThrowsError(try StoreRequest(decoding: set + [0])) { XCTAssertTrue("\($0)".contains("1 unexpected bytes"), "\($0)") }
        // Two keys that differ only in invalid bytes were both read as "k\u{FFFD}": one key for two.
        XCTAssertThrowsError(try StoreRequest(decoding: [7] + lengthPrefixed([0x6B, 0xFF]))) { XCTAssertTrue("\($0)".contains("not UTF-8"), "\($0)") }
        // A wait announcing 4 billion keys in a 9-byte body is refused before any work.
        let wait: [UInt8] = [4] + withUnsafeBytes(of: UInt32.max) { Array($0) } + [0, 0, 0, 0]
        XCTAssertThrowsError(try StoreRequest(decoding: wait)) { XCTAssertTrue("\($0)".contains("4294967295 strings in the last 4 bytes"), "\($0)") }
        XCTAssertThrowsError(try StoreRequest(decoding: [42])) { XCTAssertTrue("\($0)".contains("unknown command 42"), "\($0)") }
        XCTAssertThrowsError(try StoreAnswer(decoding: [9])) { XCTAssertTrue("\($0)".contains("unknown status 9"), "\($0)") }
    }

    /// A malformed request gets a bad-request answer naming the fault, and the connection keeps serving.
    func testTheStoreServerAnswersAMalformedRequestAndGoesOn() throws {
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, token: "secret")
        defer { server.stop() }
        let connection = try XCTUnwrap(RawConnection(host: "127.0.0.1", port: server.port))
        XCTAssertTrue(connection.send(lengthPrefixed([1] + lengthPrefixed(Array("secret".utf8)))))
        XCTAssertEqual(connection.receive(upTo: 5, seconds: 5), lengthPrefixed([StoreStatus.ok.rawValue]))
        XCTAssertTrue(connection.send(lengthPrefixed([8, 0xEE])))  // numKeys with a trailing byte
        let answer = connection.receive(upTo: 4096, seconds: 5)
        XCTAssertGreaterThan(answer.count, 5)
        XCTAssertEqual(try StoreAnswer(decoding: Array(answer.dropFirst(4))), .badRequest("malformed request: 1 unexpected bytes after byte 1"))
        XCTAssertTrue(connection.send(lengthPrefixed([8])))
        XCTAssertEqual(connection.receive(upTo: 4096, seconds: 5), lengthPrefixed([StoreStatus.ok.rawValue] + withUnsafeBytes(of: Int64(0)) { Array($0) }))
    }

    func testPeerHellosDecodeStrictly() throws {
        let hello = PeerHello(token: Array("token-of-sixteen-bytes".utf8), group: "world", rank: 1, worldSize: 2, channel: .liveness)
        let frame = hello.frame()
        XCTAssertEqual(try PeerHello.bodyLength(Array(frame[0..<4])), frame.count - 4)
        XCTAssertEqual(try PeerHello(decoding: Array(frame[4...])), hello)
        XCTAssertNil(try PeerHello.bodyLength(withUnsafeBytes(of: UInt32(PeerHello.maximumBytes + 1).littleEndian) { Array($0) }))
        XCTAssertThrowsError(try PeerHello(decoding: Array(frame[4...]) + [0]))
        var badChannel = Array(frame[4...])
        badChannel[badChannel.count - 1] = 3
        XCTAssertThrowsError(try PeerHello(decoding: badChannel)) { XCTAssertTrue("\($0)".contains("unknown channel 3"), "\($0)") }
        // A data connection names its stream (the byte before the channel).
        let data = PeerHello(token: Array("token-of-sixteen-bytes".utf8), group: "tp", rank: 3, worldSize: 4, stream: 5, channel: .data)
        let body = Array(data.frame()[4...])
        XCTAssertEqual(Array(body.suffix(2)), [5, TCPMesh.Channel.data.rawValue])
        XCTAssertEqual(try PeerHello(decoding: body), data)
        XCTAssertThrowsError(try PeerHello(decoding: Array(body.dropLast(2)) + [TCPMesh.Channel.data.rawValue]))
    }

    /// An abort announcing 4 GiB of text was buffered without bound while it "arrived"; now the announcement
    /// itself is refused. Messages cut anywhere still come out whole.
    func testLivenessMessagesAreBoundedAndSurviveAnyCut() throws {
        let stream = LivenessMessage.goodbye.encoded() + LivenessMessage.abort(lostRank: 3, reason: "rank 3 died é").encoded()
        for cut in 1..<stream.count {
            var buffer = Array(stream[0..<cut])
            var messages: [LivenessMessage] = []
            while let message = try LivenessMessage.next(from: &buffer) { messages.append(message) }
            buffer += stream[cut...]
            while let message = try LivenessMessage.next(from: &buffer) { messages.append(message) }
            XCTAssertEqual(messages, [.goodbye, .abort(lostRank: 3, reason: "rank 3 died é")], "cut at \(cut)")
            XCTAssertTrue(buffer.isEmpty)
        }
        var huge: [UInt8] = [2] + withUnsafeBytes(of: Int32(-1)) { Array($0) } + withUnsafeBytes(of: UInt32.max) { Array($0) }
        XCTAssertThrowsError(try LivenessMessage.next(from: &huge)) { XCTAssertTrue("\($0)".contains("abort text of 4294967295 bytes"), "\($0)") }
        var badRank: [UInt8] = [2] + withUnsafeBytes(of: Int32(-7)) { Array($0) } + [0, 0, 0, 0]
        XCTAssertThrowsError(try LivenessMessage.next(from: &badRank)) { XCTAssertTrue("\($0)".contains("rank -7"), "\($0)") }
        // A long error is cut to the limit at a character boundary when sent.
        let long = LivenessMessage.abort(lostRank: nil, reason: String(repeating: "é", count: LivenessMessage.maximumReasonBytes)).encoded()
        var buffer = long
        guard case let .abort(nil, reason)? = try LivenessMessage.next(from: &buffer) else { return XCTFail("not an abort") }
        XCTAssertEqual(reason.utf8.count, LivenessMessage.maximumReasonBytes)
    }

    /// A frame length of 2⁶³ trapped in `Int(_:)` and one of 2⁴⁰ was allocated; a chunk's inline length was
    /// trusted past the chunk's end.
    func testQueueFrameLengthsAreChecked() throws {
        XCTAssertEqual(try QueueFrame.length(decodingPrefix: QueueFrame.prefix(length: 100)), 100)
        XCTAssertNil(try QueueFrame.length(decodingPrefix: QueueFrame.prefix(length: nil)))
        for length in [UInt64(1) << 63, 1 << 40, UInt64(QueueFrame.maximumMessageBytes) + 1] {
            XCTAssertThrowsError(try QueueFrame.length(decodingPrefix: withUnsafeBytes(of: length.littleEndian) { Array($0) })) {
                XCTAssertTrue("\($0)".contains("a frame of \(length) bytes"), "\($0)")
            }
        }
        let inline = withUnsafeBytes(of: UInt64(200).littleEndian) { Array($0) } + Array(repeating: 0, count: 8)
        XCTAssertEqual(try QueueFrame.ChunkHeader(decoding: inline, inlineBytes: 200), .init(length: 200, overflow: false))
        XCTAssertThrowsError(try QueueFrame.ChunkHeader(decoding: inline, inlineBytes: 199)) {
            XCTAssertTrue("\($0)".contains("a chunk announcing 200 bytes (at most 199 inline)"), "\($0)")
        }
    }
}
