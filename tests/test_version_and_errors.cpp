// Versions, build information, status names and the thread-local last error.
#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <string>
#include <thread>

TEST_CASE("moeq_version matches the header the caller compiled against") {
  CHECK(moeq_version() == MOEQ_VERSION_NUMBER);
  CHECK(MOEQ_VERSION_NUMBER == MOEQ_VERSION_MAJOR * 10000 + MOEQ_VERSION_MINOR * 100 + MOEQ_VERSION_PATCH);
}

TEST_CASE("moeq_build_info names the version and the backends") {
  const std::string info = moeq_build_info();
  CHECK(info.find("moeq 0.1.0") != std::string::npos);
  CHECK(info.find("cpu") != std::string::npos);
  CHECK(info.find("CUDA") != std::string::npos);
}

TEST_CASE("every status code has a stable name") {
  CHECK(std::string(moeq_status_name(MOEQ_OK)) == "MOEQ_OK");
  CHECK(std::string(moeq_status_name(MOEQ_ERR_INVALID_ARGUMENT)) == "MOEQ_ERR_INVALID_ARGUMENT");
  CHECK(std::string(moeq_status_name(MOEQ_ERR_UNSUPPORTED)) == "MOEQ_ERR_UNSUPPORTED");
  CHECK(std::string(moeq_status_name(MOEQ_ERR_NO_DEVICE)) == "MOEQ_ERR_NO_DEVICE");
  CHECK(std::string(moeq_status_name(MOEQ_ERR_OUT_OF_MEMORY)) == "MOEQ_ERR_OUT_OF_MEMORY");
  CHECK(std::string(moeq_status_name(MOEQ_ERR_WORKSPACE_TOO_SMALL)) == "MOEQ_ERR_WORKSPACE_TOO_SMALL");
  CHECK(std::string(moeq_status_name(MOEQ_ERR_CUDA)) == "MOEQ_ERR_CUDA");
  CHECK(std::string(moeq_status_name(MOEQ_ERR_INTERNAL)) == "MOEQ_ERR_INTERNAL");
  CHECK(std::string(moeq_status_name(12345)) == "MOEQ_UNKNOWN_STATUS");
}

TEST_CASE("the last error is per thread and cleared by the next successful call") {
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  const int64_t shape[1] = {10};
  REQUIRE(moeq_quantized_layout(nullptr, 1, shape, &layout) == MOEQ_ERR_INVALID_ARGUMENT);
  const std::string message = moeq_last_error();
  CHECK(message.find("config") != std::string::npos);

  std::string other_thread_message = "not run";
  std::thread([&] { other_thread_message = moeq_last_error(); }).join();
  CHECK(other_thread_message.empty());
  CHECK(std::string(moeq_last_error()) == message);

  moeq_quant_config config{sizeof(moeq_quant_config), MOEQ_FORMAT_NF4, 64, 0};
  REQUIRE(moeq_quantized_layout(&config, 1, shape, &layout) == MOEQ_OK);
  CHECK(std::string(moeq_last_error()).empty());
}

TEST_CASE("moeq_cuda_available is false or a GPU is really there") {
  const int32_t available = moeq_cuda_available();
  CHECK((available == 0 || available == 1));
}
