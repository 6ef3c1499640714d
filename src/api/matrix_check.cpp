// Checks of 2-D activation tensors shared by the entry points.
#include "api/matrix_check.hpp"

#include <vector>

namespace moeq {

std::string dims_text(std::initializer_list<int64_t> dims) {
  std::string text = "[";
  bool first = true;
  for (int64_t d : dims) {
    if (!first) text += ", ";
    text += std::to_string(d);
    first = false;
  }
  return text + "]";
}

void expect_shape(const DLTensor& tensor, std::initializer_list<int64_t> dims,
                  const std::string& name, const std::string& meaning) {
  expect_ndim(tensor, static_cast<int>(dims.size()), name, meaning);
  int i = 0;
  for (int64_t d : dims) {
    if (tensor.shape[i] != d)
      fail_argument(name, "expected shape " + meaning + " = " + dims_text(dims) + ", got " +
                              shape_string(tensor));
    ++i;
  }
}

// A [rows, cols] matrix whose rows may be padded but whose columns are adjacent.
StridedTensor row_major_matrix(const DLTensor& tensor, const std::string& name) {
  const std::vector<int64_t> strides = strides_of(tensor);
  const int64_t cols = tensor.shape[1];
  if (cols > 1 && strides[1] != 1)
    fail_argument(name, "expected unit stride along the last dim, got stride " +
                            std::to_string(strides[1]));
  if (tensor.shape[0] > 1 && strides[0] < cols)
    fail_argument(name, "expected a row stride >= " + std::to_string(cols) + ", got " +
                            std::to_string(strides[0]));
  StridedTensor view;
  view.data = data_pointer(tensor, name);
  view.type = float_type(tensor, name);
  view.stride[0] = strides[0];
  view.stride[1] = 1;
  return view;
}

void expect_type(ScalarType actual, ScalarType expected, const std::string& name,
                 const std::string& why) {
  if (actual != expected)
    fail_argument(name, std::string("expected dtype ") + scalar_type_name(expected) + " (" + why +
                            "), got " + scalar_type_name(actual));
}

}  // namespace moeq
