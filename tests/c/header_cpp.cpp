// The C header must compile as C++ (extern "C", no C-only constructs) and link names must match.
#include "norman.h"

static_assert(NORMAN_OK == 0, "NORMAN_OK is 0");
static_assert(NORMAN_ABI_VERSION >= 1, "ABI version");

int main() {
    norman_result (*new_client)(const norman_config *, norman_client **) = norman_client_new;
    norman_result (*write)(const norman_upload *, const uint8_t *, size_t) = norman_upload_write;
    return new_client != nullptr && write != nullptr ? 0 : 1;
}
