// The comparison loop, threaded over blocks (OpenMP), in float64.
#include "cli/error_stats.hpp"

#include "core/scalar.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moeq::cli {
namespace {

// Float rounding in quantize (x * 1/a) and dequantize (code * a'), relative to a.
constexpr double kRoundingSlack = 1e-6;

template <class T>
void accumulate(const T* original, const float* restored, const float* block_scales, int64_t count,
                int64_t blocksize, double half_step, ErrorStats& stats) {
  const int64_t blocks = (count + blocksize - 1) / blocksize;
  int64_t compared = 0, non_finite = 0;
  double sum_abs = 0.0, sum_squared = 0.0, sum_squared_original = 0.0, max_abs = 0.0, worst = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : compared, non_finite, sum_abs, sum_squared, \
                                                     sum_squared_original) reduction(max : max_abs, worst)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t begin = block * blocksize, end = std::min(count, begin + blocksize);
    double absmax = 0.0;
    bool finite = true;
    for (int64_t i = begin; i < end; ++i) {
      const double value = to_float(original[i]);
      finite = finite && std::isfinite(value);
      absmax = std::max(absmax, std::fabs(value));
    }
    if (!finite) {
      non_finite += end - begin;
      continue;
    }
    const double bound =
        half_step * absmax + std::fabs(block_scales[block] - absmax) + kRoundingSlack * absmax;
    for (int64_t i = begin; i < end; ++i) {
      const double value = to_float(original[i]);
      const double error = std::fabs(static_cast<double>(restored[i]) - value);
      sum_abs += error;
      sum_squared += error * error;
      sum_squared_original += value * value;
      max_abs = std::max(max_abs, error);
      worst = std::max(worst, bound > 0.0 ? error / bound : (error > 0.0 ? HUGE_VAL : 0.0));
    }
    compared += end - begin;
  }
  stats.compared += compared;
  stats.non_finite += non_finite;
  stats.sum_abs_error += sum_abs;
  stats.sum_squared_error += sum_squared;
  stats.sum_squared_original += sum_squared_original;
  stats.max_abs_error = std::max(stats.max_abs_error, max_abs);
  stats.worst_bound_ratio = std::max(stats.worst_bound_ratio, worst);
}

}  // namespace

double ErrorStats::mean_abs_error() const { return compared > 0 ? sum_abs_error / compared : 0.0; }

double ErrorStats::relative_error() const {
  return sum_squared_original > 0.0 ? std::sqrt(sum_squared_error / sum_squared_original) : 0.0;
}

double half_code_step(const float* code_values) {
  std::vector<float> sorted(code_values, code_values + 16);
  std::sort(sorted.begin(), sorted.end());
  double widest = 0.0;
  for (size_t i = 1; i < sorted.size(); ++i)
    widest = std::max(widest, double(sorted[i]) - double(sorted[i - 1]));
  return widest / 2.0;
}

void accumulate_errors(const void* original, safetensors::Dtype dtype, const float* restored,
                       const float* block_scales, int64_t count, int64_t blocksize, double half_step,
                       ErrorStats& stats) {
  const ScalarType type = dtype == safetensors::Dtype::F32   ? ScalarType::Float32
                          : dtype == safetensors::Dtype::F16 ? ScalarType::Float16
                                                             : ScalarType::BFloat16;
  dispatch_scalar(type, [&](auto tag) {
    using T = decltype(tag);
    accumulate(static_cast<const T*>(original), restored, block_scales, count, blocksize, half_step, stats);
  });
}

}  // namespace moeq::cli
