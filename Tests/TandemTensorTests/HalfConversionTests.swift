import TandemTensor
import XCTest

/// The software conversions against the platform's own `Float16` (an independent implementation) and
/// against the round-to-nearest-even rule computed on neighbouring representable values.
final class HalfConversionTests: XCTestCase {
    func testEveryFloat16BitPatternRoundTripsThroughFloat() {
        for bits in 0...UInt16.max {
            let value = HalfConversion.float(fromFloat16: bits)
            if value.isNaN {
                XCTAssertTrue(HalfConversion.float(fromFloat16: HalfConversion.float16Bits(from: value)).isNaN)
                continue
            }
            XCTAssertEqual(HalfConversion.float16Bits(from: value), bits, "bits \(String(bits, radix: 16))")
        }
    }

    #if arch(x86_64) || arch(arm64)
    func testFloat16ConversionMatchesThePlatformFloat16() {
        var generator = SystemRandomNumberGenerator()
        for bits in 0...UInt16.max {
            let platform = Float16(bitPattern: bits)
            if platform.isNaN { continue }
            XCTAssertEqual(HalfConversion.float(fromFloat16: bits), Float(platform))
        }
        let specials: [Float] = [0, -0, 65504, 65519.99, 65520, -65520, 5.96e-8, 2.98e-8, 2.9802322e-8, 6.1035156e-5, .infinity, -.infinity, 1e-30]
        let randomValues = (0..<200_000).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &generator)) }
        for value in specials + randomValues where !value.isNaN {
            XCTAssertEqual(HalfConversion.float16Bits(from: value), Float16(value).bitPattern, "\(value) (\(String(value.bitPattern, radix: 16)))")
        }
    }
    #endif

    func testBFloat16RoundsToNearestEvenAtEveryMidpointOfOneBinade() {
        // Between 1 and 2 bfloat16 steps by 2^-7; test every midpoint and its neighbours.
        for step in 0..<128 {
            let low = 1 + Float(step) / 128
            let high = 1 + Float(step + 1) / 128
            let middle = (low + high) / 2
            let lowBits = HalfConversion.bfloat16Bits(from: low)
            let highBits = HalfConversion.bfloat16Bits(from: high)
            XCTAssertEqual(highBits, lowBits + 1)
            let even = lowBits % 2 == 0 ? lowBits : highBits
            XCTAssertEqual(HalfConversion.bfloat16Bits(from: middle), even, "midpoint of step \(step)")
            XCTAssertEqual(HalfConversion.bfloat16Bits(from: middle.nextUp), highBits)
            XCTAssertEqual(HalfConversion.bfloat16Bits(from: middle.nextDown), lowBits)
        }
    }

    func testBFloat16KeepsInfinityNaNAndTheLargestFinite() {
        XCTAssertEqual(HalfConversion.bfloat16Bits(from: .infinity), 0x7F80)
        XCTAssertEqual(HalfConversion.bfloat16Bits(from: -.infinity), 0xFF80)
        XCTAssertTrue(HalfConversion.float(fromBFloat16: HalfConversion.bfloat16Bits(from: .nan)).isNaN)
        XCTAssertEqual(HalfConversion.bfloat16Bits(from: Float.greatestFiniteMagnitude), 0x7F80, "rounds up to infinity")
        XCTAssertEqual(HalfConversion.float(fromBFloat16: 0x3F80), 1)
    }
}

/// The vectorised widening against the scalar conversions, on every 16-bit pattern.
final class WidenTests: XCTestCase {
    /// Both kernels: the F16C one (where the CPU has AVX2) and the portable Swift one.
    func testVectorWideningMatchesScalarConversionOnEveryPattern() {
        let patterns = (0...UInt16.max).map { $0 }
        for dtype in [DType.bfloat16, .float16] {
            for portable in [false, true] {
                var widened = [Float](repeating: 0, count: patterns.count)
                patterns.withUnsafeBufferPointer { source in
                    widened.withUnsafeMutableBufferPointer {
                        Widen.copy(dtype, from: source.baseAddress!, count: patterns.count - 3, into: $0.baseAddress!, portable: portable)
                    }
                }
                let scalar = HalfConversion.widening(dtype)
                // All but the last 3 patterns: 65,533 values end in a scalar tail.
                var mismatches = 0
                for (index, bits) in patterns.enumerated().dropLast(3) where widened[index].bitPattern != scalar(bits).bitPattern {
                    mismatches += 1
                }
                XCTAssertEqual(mismatches, 0, "\(dtype) portable \(portable)")
            }
        }
    }
}
