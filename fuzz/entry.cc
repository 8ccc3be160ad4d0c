// One libFuzzer binary per target: GATEWATCH_FUZZ_TARGET names the function.
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gatewatch::fuzz::GATEWATCH_FUZZ_TARGET(data, size);
}
