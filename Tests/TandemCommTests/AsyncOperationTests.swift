import TandemComm
import TandemTensor
import XCTest

/// Every asynchronous form, queued together and waited for afterwards, gives the synchronous results.
final class AsyncOperationTests: XCTestCase {
    func testQueuedAsyncOperationsCompleteInOrderWithCorrectResults() throws {
        try runRanks(4) { group, failures in
            let (rank, world) = (group.rank, group.worldSize)
            let count = 37
            let dtype = DType.bfloat16
            var works: [Work] = []

            let reduceInput = Reference.tensor([count], dtype) { Reference.reduceInput(.sum, rank: rank, index: $0) }
            let reduced = Tensor(zeros: [count], dtype: dtype)
            works.append(group.allReduceAsync(reduceInput, into: reduced))

            let sizes = (0..<world).map { $0 + 1 }
            let mine = Reference.tensor([sizes[rank]], dtype) { Reference.movedInput(rank: rank, index: $0) }
            let gatheredV = Tensor(zeros: [sizes.reduce(0, +)], dtype: dtype)
            works.append(group.allGatherVAsync(mine, sizes: sizes, into: gatheredV))

            let scatterInput = Reference.tensor([sizes.reduce(0, +)], dtype) { Reference.reduceInput(.sum, rank: rank, index: $0) }
            let scatteredV = Tensor(zeros: [sizes[rank]], dtype: dtype)
            works.append(group.reduceScatterVAsync(scatterInput, sizes: sizes, into: scatteredV))

            let gathered = rank == 0 ? Tensor(zeros: [world * count], dtype: dtype) : nil
            let part = Reference.tensor([count], dtype) { Reference.movedInput(rank: rank, index: $0, salt: 1) }
            works.append(group.gatherAsync(part, into: gathered, destination: 0))

            let whole = rank == 1 ? Reference.tensor([world * count], dtype) { Reference.movedInput(rank: 1, index: $0, salt: 2) } : nil
            let piece = Tensor(zeros: [count], dtype: dtype)
            works.append(group.scatterAsync(whole, into: piece, source: 1))

            let sendSizes = (0..<world).map { (rank + $0) % 3 }
            let receiveSizes = (0..<world).map { ($0 + rank) % 3 }
            let rows = Reference.tensor([sendSizes.reduce(0, +)], dtype) { Reference.movedInput(rank: rank, index: $0, salt: 3) }
            let landed = Tensor(zeros: [receiveSizes.reduce(0, +)], dtype: dtype)
            works.append(group.allToAllVAsync(rows, sendSizes: sendSizes, into: landed, receiveSizes: receiveSizes))

            let outgoing = Reference.tensor([count], dtype) { Reference.movedInput(rank: rank, index: $0, salt: 4) }
            let incoming = Tensor(zeros: [count], dtype: dtype)
            works.append(group.batchSendReceiveAsync([.send(outgoing, to: (rank + 1) % world), .receive(incoming, from: (rank + world - 1) % world)]))

            for work in works { try work.wait() }

            failures.check(reduced, Tensor(converting: (0..<count).map { Reference.reduced(.sum, worldSize: world, index: $0) }, dtype: dtype), "allReduceAsync into")
            failures.check(gatheredV, Tensor(converting: (0..<world).flatMap { peer in (0..<sizes[peer]).map { Double(Reference.movedInput(rank: peer, index: $0)) } }, dtype: dtype), "allGatherVAsync")
            let start = sizes[..<rank].reduce(0, +)
            failures.check(scatteredV, Tensor(converting: (0..<sizes[rank]).map { Reference.reduced(.sum, worldSize: world, index: start + $0) }, dtype: dtype), "reduceScatterVAsync")
            if let gathered {
                failures.check(gathered, Reference.tensor([world * count], dtype) { Reference.movedInput(rank: $0 / count, index: $0 % count, salt: 1) }, "gatherAsync")
            }
            failures.check(piece, Reference.tensor([count], dtype) { Reference.movedInput(rank: 1, index: rank * count + $0, salt: 2) }, "scatterAsync")
            var expectedRows: [Double] = []
            for peer in 0..<world {
                let offset = (0..<rank).map { (peer + $0) % 3 }.reduce(0, +)
                expectedRows += (0..<receiveSizes[peer]).map { Double(Reference.movedInput(rank: peer, index: offset + $0, salt: 3)) }
            }
            failures.check(landed, Tensor(converting: expectedRows, dtype: dtype), "allToAllVAsync")
            failures.check(incoming, Reference.tensor([count], dtype) { Reference.movedInput(rank: (rank + world - 1) % world, index: $0, salt: 4) }, "batchSendReceiveAsync")
        }
    }
}
