// C entry point moeq_dequantize: argument checks, then a backend.
#include "api/device_dispatch.hpp"
#include "api/qtensor_check.hpp"
#include "core/backend.hpp"

extern "C" MOEQ_API moeq_status moeq_dequantize(const moeq_qtensor* q, DLTensor* out,
                                                void* stream) {
  using namespace moeq;
  return api_guard([&] {
    Device device;
    DequantizeProblem problem;
    problem.in = check_qtensor(q, "q", &device);
    const DLTensor& output = require_tensor(out, "out");
    problem.output_type = float_type(output, "out");
    expect_device(output, device, "out");
    bool same_shape = output.ndim == q->ndim;
    for (int32_t i = 0; same_shape && i < q->ndim; ++i) same_shape = output.shape[i] == q->shape[i];
    if (!same_shape) {
      DLTensor expected = output;
      expected.ndim = q->ndim;
      expected.shape = const_cast<int64_t*>(q->shape);
      fail_argument("out", "expected shape " + shape_string(expected) + " (q.shape), got " +
                               shape_string(output));
    }
    expect_contiguous(output, "out");
    const DLTensor* inputs[] = {&q->packed, &q->absmax, &q->nested_absmax, &q->nested_code,
                                &q->nested_offset};
    const char* input_names[] = {"q.packed", "q.absmax", "q.nested_absmax", "q.nested_code",
                                 "q.nested_offset"};
    for (int i = 0; i < (problem.in.nested ? 5 : 2); ++i)
      expect_no_overlap(output, "out", *inputs[i], input_names[i]);
    problem.output = data_pointer(output, "out");
    problem.device_id = device.id;
    if (device.kind == DeviceKind::Cpu) {
      cpu::dequantize(problem);
    } else {
      require_cuda_device(device, "q.packed");
      cuda::dequantize(problem, stream);
    }
  });
}
