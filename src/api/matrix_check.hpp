// Checks of 2-D activation tensors that several entry points share: exact shapes,
// row-major matrices with padded rows, one dtype for related tensors.
#pragma once

#include "core/problems.hpp"
#include "core/tensor_check.hpp"

#include <initializer_list>
#include <string>

namespace moeq {

// "[3, 4]".
std::string dims_text(std::initializer_list<int64_t> dims);
// The tensor has exactly `dims` ("x: expected shape [M, K] = [3, 4], got [3, 5]").
void expect_shape(const DLTensor& tensor, std::initializer_list<int64_t> dims,
                  const std::string& name, const std::string& meaning);
// A 2-D float tensor as a [rows, cols] matrix whose rows may be padded but whose
// columns are adjacent (unit stride along the last dim, row stride >= cols).
StridedTensor row_major_matrix(const DLTensor& tensor, const std::string& name);
// `actual` is `expected`, else "name: expected dtype <expected> (<why>), got ...".
void expect_type(ScalarType actual, ScalarType expected, const std::string& name,
                 const std::string& why);

}  // namespace moeq
