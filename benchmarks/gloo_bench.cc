// Gloo side of benchmarks/compare_comm.sh: the same ops, sizes and timing rule as `tandem bench comm`
// (median per-iteration time, slowest rank), float32 data, one JSON object per line on rank 0.
// Runs one rank per process under `tandem launch` (RANK, WORLD_SIZE); rendezvous through a FileStore.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/reduce_scatter.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

static double busFactor(const std::string& op, int ranks) {
  double n = ranks;
  if (op == "all_reduce") return 2 * (n - 1) / n;
  if (op == "broadcast" || op == "send_recv") return 1;
  return (n - 1) / n;
}

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: gloo_bench STORE_DIR OPS MIN_BYTES MAX_BYTES STEP_FACTOR ITERS [WARMUP]\n");
    return 2;
  }
  const int rank = std::atoi(std::getenv("RANK"));
  const int ranks = std::atoi(std::getenv("WORLD_SIZE"));
  const long minBytes = std::atol(argv[3]), maxBytes = std::atol(argv[4]);
  const int step = std::atoi(argv[5]), iters = std::atoi(argv[6]), warmup = argc > 7 ? std::atoi(argv[7]) : 5;

  gloo::transport::tcp::attr attr;
  attr.hostname = "127.0.0.1";
  auto device = gloo::transport::tcp::CreateDevice(attr);
  gloo::rendezvous::FileStore store(argv[1]);
  auto context = std::make_shared<gloo::rendezvous::Context>(rank, ranks);
  context->connectFullMesh(store, device);

  std::vector<float> in(maxBytes / 4 + 16), out(maxBytes / 4 + 16);
  std::vector<double> times(iters);
  uint32_t tag = 0;
  std::stringstream opList(argv[2]);
  std::string op;
  while (std::getline(opList, op, ',')) {
    for (long bytes = minBytes; bytes <= maxBytes; bytes *= step) {
      int count = static_cast<int>(bytes / 4);
      if (op == "all_gather" || op == "reduce_scatter" || op == "all_to_all") count -= count % ranks;
      for (int i = 0; i < count; i++) in[i] = static_cast<float>(i % 3 + 1);
      std::vector<float*> ptrs{in.data()};
      std::vector<int> recvElems(ranks, count / ranks);
      gloo::ReduceScatterHalvingDoubling<float> reduceScatter(context, ptrs, count, recvElems);
      auto sendBuffer = context->createUnboundBuffer(in.data(), count * 4);
      auto recvBuffer = context->createUnboundBuffer(out.data(), count * 4);
      auto run = [&]() {
        tag++;
        if (op == "all_reduce") {
          gloo::AllreduceOptions opts(context);
          opts.setOutput(in.data(), count);
          opts.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
          opts.setTag(tag);
          gloo::allreduce(opts);
        } else if (op == "all_gather") {
          gloo::AllgatherOptions opts(context);
          opts.setInput(in.data(), count / ranks);
          opts.setOutput(out.data(), count);
          opts.setTag(tag);
          gloo::allgather(opts);
        } else if (op == "reduce_scatter") {
          reduceScatter.run();
        } else if (op == "broadcast") {
          gloo::BroadcastOptions opts(context);
          opts.setOutput(in.data(), count);
          opts.setRoot(0);
          opts.setTag(tag);
          gloo::broadcast(opts);
        } else if (op == "all_to_all") {
          gloo::AlltoallOptions opts(context);
          opts.setInput(in.data(), count);
          opts.setOutput(out.data(), count);
          opts.setTag(tag);
          gloo::alltoall(opts);
        } else if (op == "send_recv") {
          recvBuffer->recv((rank + ranks - 1) % ranks, tag);
          sendBuffer->send((rank + 1) % ranks, tag);
          sendBuffer->waitSend();
          recvBuffer->waitRecv();
        }
      };
      for (int i = 0; i < warmup; i++) run();
      gloo::BarrierOptions barrier(context);
      gloo::barrier(barrier);
      for (int i = 0; i < iters; i++) {
        auto start = std::chrono::steady_clock::now();
        run();
        times[i] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
      }
      std::sort(times.begin(), times.end());
      double median = times[iters / 2];
      std::vector<double> medians(ranks);
      gloo::AllgatherOptions gatherOpts(context);
      gatherOpts.setInput(&median, 1);
      gatherOpts.setOutput(medians.data(), ranks);
      gloo::allgather(gatherOpts);
      double slowest = *std::max_element(medians.begin(), medians.end());
      if (rank == 0) {
        double algbw = static_cast<double>(count) * 4 / (slowest * 1000);
        std::printf(
            "{\"tool\":\"gloo\",\"op\":\"%s\",\"bytes\":%d,\"ranks\":%d,\"time_us\":%.3f,\"algbw_gbps\":%.4f,"
            "\"busbw_gbps\":%.4f}\n",
            op.c_str(), count * 4, ranks, slowest, algbw, algbw * busFactor(op, ranks));
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
