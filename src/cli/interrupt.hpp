// Ctrl-C and SIGTERM stop the command between tensors, so its temporary
// output files are removed on the way out instead of being left behind.
#pragma once

namespace moeq::cli {

void stop_on_interrupt();
// Throws safetensors::Error("interrupted") once a signal arrived.
void throw_if_interrupted();

}  // namespace moeq::cli
