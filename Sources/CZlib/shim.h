#include <zlib.h>

// inflateInit2/deflateInit2 are macros, which Swift does not import.
static inline int berth_inflate_init_auto(z_streamp s) { return inflateInit2(s, 15 + 32); }
static inline int berth_deflate_init_gzip(z_streamp s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
