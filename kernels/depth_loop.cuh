// The depth loop shared by the expert GEMM kernels: two shared-memory stages of
// operand tiles, filled by loaders while the tensor cores consume the other stage.
#pragma once

#include <cstdint>

namespace moeq::cuda {

template <class Accumulator>
struct OperandStage {
  typename Accumulator::ATile a;
  typename Accumulator::BTile b;
};

// Runs `steps` depth steps with double buffering: the global loads of step s + 1
// are in flight (in registers or as copies into the other stage, free since the
// last barrier) while the tensor cores work on step s.
// position(step, &a_row, &a_col, &b_row, &b_col) gives the tiles' first coordinates.
// Ends with a barrier, so the stages can be refilled by the next loop.
template <class Accumulator, class ALoader, class BLoader, class Position>
__device__ __forceinline__ void run_depth_steps(Accumulator& accumulator,
                                                OperandStage<Accumulator> (&stage)[2], ALoader& a,
                                                BLoader& b, int64_t steps, Position&& position) {
  if (steps <= 0) return;
  int64_t a_row, a_col, b_row, b_col;
  position(0, &a_row, &a_col, &b_row, &b_col);
  a.fetch(a_row, a_col, stage[0].a);
  b.fetch(b_row, b_col, stage[0].b);
  a.commit(stage[0].a);
  b.commit(stage[0].b);
  __syncthreads();
  for (int64_t step = 0; step < steps; ++step) {
    const bool more = step + 1 < steps;
    if (more) {
      position(step + 1, &a_row, &a_col, &b_row, &b_col);
      a.fetch(a_row, a_col, stage[(step + 1) % 2].a);
      b.fetch(b_row, b_col, stage[(step + 1) % 2].b);
    }
    accumulator.step(stage[step % 2].a, stage[step % 2].b);
    if (more) {
      a.commit(stage[(step + 1) % 2].a);
      b.commit(stage[(step + 1) % 2].b);
    }
    __syncthreads();
  }
}

}  // namespace moeq::cuda
