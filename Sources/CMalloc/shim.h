// glibc's allocator controls and statistics, which the Glibc module does not include.
#include <malloc.h>

// `struct mallinfo2` and the function `mallinfo2` share a name, and Swift resolves `mallinfo2()`
// to the struct's zero initializer: the call is made here instead.
static inline size_t cmalloc_live_bytes(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}
